"""Distillation on debtags: the fine-tuned default as teacher, and students that predict faster.

The teacher is ``TransformerMultiLabelClassifier()`` at its defaults, fitted on
``--n-labeled`` texts drawn from debtags train (seed 0; ``all`` for all 24,607). Each
student is fitted by :class:`sktext.distill.DistilledClassifier` on the teacher's
probabilities over those texts and ``--n-unlabeled`` of the untagged descriptions, its
thresholds tuned on the real labels of a held-out part of the labeled texts. Students:

- ``lexical``: TF-IDF + one logistic regression per label on the soft targets (the
  cheapest to run; plain arrays, no network);
- ``lexical_hard``: TF-IDF + a linear SVM per label on the teacher's hard view (p >= 0.5),
  to compare the two ways of teaching the lexical model;
- ``frozen``: the default encoder frozen, a trained head (and its lexical part);
- ``shallow``: the default encoder's first ``--shallow-layers`` layers at
  ``--shallow-max-length`` tokens, fine-tuned on the soft targets (and its lexical part).
- ``shallow_soft_lexical`` / ``frozen_soft_lexical``: the same with a lexical part that
  learns the probabilities (logistic regressions) instead of their hard view (SVMs), to
  see which blends better (not in the default list).
- ``shallow_balanced``: the shallow student with cost-sensitive lexical SVMs
  (``class_weight="balanced"``), as the teacher's on fewer than 10,000 texts; the
  default lexical part weighs every text alike on the student's 28k (not in the default
  list).

Per model: test micro / macro F1 (debtags' test split, 5,693 texts; reported, never
used to choose anything), the F1 on the held-out labeled part its thresholds were tuned
on (``valid_*``), ``predict`` texts/s on the test texts in this process, and fit seconds.
Teacher and students are timed in one run, and the teacher again right after each
student, whose speed-up is against that timing beside it: the ratio holds on a noisy machine.

The teacher's fit and its probabilities are cached in ``--cache-dir`` (a rerun reuses
them). A plot of F1 against predict speed is written beside the JSON.

Examples
--------
::

    python benchmarks/distill.py --cache-dir /tmp/distill                   # 3,000 labeled + 25k unlabeled
    python benchmarks/distill.py --cache-dir /tmp/distill --teacher-only     # only the teacher: fit, label, cache
    python benchmarks/distill.py --n-labeled 300 --n-unlabeled 2000 --max-test 500 --cache-dir /tmp/d  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

BENCHMARKS = Path(__file__).resolve().parent
sys.path[:0] = [str(BENCHMARKS), str(BENCHMARKS.parent)]

from common import (  # noqa: E402
    RESULTS_DIR,
    format_table,
    load_debtags,
    load_unlabeled_texts,
    machine_info,
    subsample,
    write_results,
)

COLUMNS = [
    "model",
    "micro_f1",
    "macro_f1",
    "micro_vs_teacher",
    "macro_vs_teacher",
    "valid_micro_f1",
    "valid_macro_f1",
    "predict_texts_per_s",
    "speedup",
    "fit_s",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--cache-dir", required=True, help="where the teacher and its probabilities are kept")
    parser.add_argument("--n-labeled", default="3000", help="labeled texts drawn from debtags train, or 'all'")
    parser.add_argument("--n-unlabeled", type=int, default=None, help="untagged texts (default: all 25k)")
    parser.add_argument("--max-test", type=int, default=None, help="score on the first N test texts only")
    parser.add_argument("--students", nargs="+", default=["lexical", "shallow", "frozen", "lexical_hard"])
    parser.add_argument("--shallow-layers", type=int, nargs="+", default=[2], help="one shallow student each")
    parser.add_argument(
        "--shallow-trainable",
        default="all",
        help="the shallow student's trainable_layers: 'all' (every layer and the embeddings), 'auto' or an int",
    )
    parser.add_argument("--shallow-max-length", type=int, default=64)
    parser.add_argument("--shallow-epochs", type=int, default=2)
    parser.add_argument("--lexical-c", type=float, default=1.0, help="C of the logistic lexical student")
    parser.add_argument(
        "--label-weights",
        type=float,
        nargs="+",
        default=[0.0],
        help="DistilledClassifier's label_weight: one fit of each student per value",
    )
    parser.add_argument(
        "--centre",
        nargs="+",
        choices=["no", "yes"],
        default=["no"],
        help="DistilledClassifier's centre_on_thresholds: one fit of each student per value",
    )
    parser.add_argument(
        "--grouped",
        action="store_true",
        help="hold out whole source packages (DistilledClassifier's groups), and their unlabeled siblings",
    )
    parser.add_argument(
        "--save-outputs",
        action="store_true",
        help="keep each student's held-out and test probabilities in --cache-dir/outputs (to study decision rules)",
    )
    parser.add_argument("--teacher-only", action="store_true", help="fit the teacher and label the texts, then stop")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.save_outputs and args.grouped:
        # save_outputs draws the held-out part again as the ungrouped fit does
        parser.error("--save-outputs reads the stratified held-out part; it cannot be combined with --grouped")
    return args


def labeled_part(data, n_labeled: str) -> tuple[list[str], np.ndarray, list[str]]:
    """The labeled texts drawn from train, their labels and their source packages."""
    n = None if n_labeled == "all" else int(n_labeled)
    rows, Y = subsample(range(len(data.train_texts)), data.train_Y, n, random_state=0)
    return [data.train_texts[row] for row in rows], Y, [data.train_sources[row] for row in rows]


def fit_teacher(cache: Path, texts: list[str], Y: np.ndarray) -> dict[str, Any]:
    """The fine-tuned default on the labeled texts, saved in ``cache/teacher`` (once)."""
    from sktext import TransformerMultiLabelClassifier

    folder, record = cache / "teacher", cache / "teacher_fit.json"
    if (folder / "sktext.json").is_file() and record.is_file():
        return json.loads(record.read_text())
    teacher = TransformerMultiLabelClassifier(random_state=0, verbose=1)
    start = time.perf_counter()
    teacher.fit(texts, Y)
    seconds = time.perf_counter() - start
    teacher.save(folder, overwrite=True)
    info = {"fit_s": seconds, "n_labeled": len(texts), "machine": machine_info("cpu")}
    record.write_text(json.dumps(info, indent=2))
    return info


def teacher_probabilities(cache: Path, teacher, texts: list[str], unlabeled: list[str]) -> tuple[np.ndarray, float]:
    """The teacher's ``predict_proba`` on the labeled then the unlabeled texts, and its seconds (both cached)."""
    path = cache / f"teacher_proba_{len(texts)}_{len(unlabeled)}.npy"
    record = path.with_suffix(".json")
    if path.is_file():
        seconds = json.loads(record.read_text())["seconds"] if record.is_file() else None
        return np.load(path), seconds
    start = time.perf_counter()
    proba = np.asarray(teacher.predict_proba(list(texts) + list(unlabeled)), dtype=np.float32)
    seconds = time.perf_counter() - start
    np.save(path, proba)
    record.write_text(json.dumps({"seconds": seconds, "texts": len(proba)}))
    return proba, seconds


class CachedTeacher:
    """A fitted teacher whose ``predict_proba`` answers from probabilities computed once (for several students)."""

    def __init__(self, texts: list[str], proba: np.ndarray, thresholds: np.ndarray) -> None:
        self.rows = {text: row for row, text in enumerate(texts)}
        self.proba = proba
        self.thresholds_ = thresholds

    def __sklearn_is_fitted__(self) -> bool:
        return True

    def predict_proba(self, X) -> np.ndarray:
        return self.proba[[self.rows[text] for text in X]]


def trainable(value: str) -> int | str | None:
    """``--shallow-trainable`` as ``trainable_layers``."""
    return None if value == "all" else value if value == "auto" else int(value)


def student_specs(args: argparse.Namespace) -> list[tuple[str, str, int | None, float, bool]]:
    """``(row name, student, shallow layers, label_weight, centre_on_thresholds)`` for each fit asked for."""
    specs = []
    for name in args.students:
        for layers in args.shallow_layers if name.startswith("shallow") else [None]:
            for weight in args.label_weights:
                for centre in args.centre:
                    row = name if layers is None else f"{name}_{layers}"
                    row += (f" w={weight:g}" if weight else "") + (" centred" if centre == "yes" else "")
                    row += " grouped" if args.grouped else ""
                    specs.append((row, name, layers, weight, centre == "yes"))
    return specs


def build_student(name: str, cache: Path, args: argparse.Namespace, layers: int | None = None):
    from sktext import TransformerMultiLabelClassifier
    from sktext.distill import shallow_encoder
    from sktext.lexical import TfidfLinearClassifier

    if name == "lexical":
        return TfidfLinearClassifier(
            loss="log_loss", C=args.lexical_c, class_weight="balanced", n_jobs=-1, random_state=0
        )
    if name == "lexical_hard":
        return TfidfLinearClassifier(class_weight="balanced", n_jobs=-1, random_state=0)
    if name == "frozen":
        return TransformerMultiLabelClassifier(freeze_encoder=True, random_state=0)
    soft_lexical = TfidfLinearClassifier(loss="log_loss", class_weight="balanced", n_jobs=-1, random_state=0)
    # the default lexical part weighs every text alike from 10,000 texts on; the teacher's, on fewer, does not
    balanced_lexical = TfidfLinearClassifier(class_weight="balanced", n_jobs=-1, random_state=0)
    if name == "frozen_soft_lexical":
        return TransformerMultiLabelClassifier(freeze_encoder=True, lexical=soft_lexical, random_state=0)
    if name in ("shallow", "shallow_soft_lexical", "shallow_balanced"):
        folder = cache / f"shallow_{layers}"
        if not (folder / "config.json").is_file():
            shallow_encoder(folder, n_layers=layers)
        # max_epochs="auto" trains at least 10 epochs: on 28k texts a CPU cannot afford it
        return TransformerMultiLabelClassifier(
            str(folder),
            max_length=args.shallow_max_length,
            max_epochs=args.shallow_epochs,
            trainable_layers=trainable(args.shallow_trainable),
            lexical={"shallow_soft_lexical": soft_lexical, "shallow_balanced": balanced_lexical}.get(name, "tfidf"),
            random_state=0,
        )
    raise SystemExit(f"unknown student {name!r}")


def timed_predict(model, texts: list[str]) -> tuple[np.ndarray, float]:
    """``(predict, texts/s of predict)`` on ``texts``, after a short warm-up."""
    model.predict(texts[:64])
    start = time.perf_counter()
    predicted = model.predict(texts)
    seconds = time.perf_counter() - start
    return np.asarray(predicted), len(texts) / seconds


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    cache = Path(args.cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    data = load_debtags(args.data_dir)
    texts, Y, sources = labeled_part(data, args.n_labeled)
    teacher_fit = fit_teacher(cache, texts, Y)
    print(f"teacher: fitted on {len(texts)} texts in {teacher_fit['fit_s']:.0f} s", file=sys.stderr, flush=True)

    from sklearn.metrics import f1_score

    from sktext import load_model
    from sktext.distill import DistilledClassifier

    teacher = load_model(cache / "teacher")
    unlabeled, unlabeled_sources = load_unlabeled_texts(args.data_dir, max_texts=args.n_unlabeled, with_sources=True)
    proba, labeling_s = teacher_probabilities(cache, teacher, texts, unlabeled)
    if args.teacher_only:
        return teacher_fit
    cached = CachedTeacher(list(texts) + list(unlabeled), proba, teacher.thresholds_)
    test_texts, test_Y = data.test_texts[: args.max_test], data.test_Y[: args.max_test]

    def row(name: str, model, fit_s: float, valid: dict | None) -> dict[str, Any]:
        predicted, speed = timed_predict(model, test_texts)
        result = {
            "model": name,
            "micro_f1": f1_score(test_Y, predicted, average="micro", zero_division=0),
            "macro_f1": f1_score(test_Y, predicted, average="macro", zero_division=0),
            "valid_micro_f1": None if valid is None else valid["f1_micro"],
            "valid_macro_f1": None if valid is None else valid["f1_macro"],
            "predict_texts_per_s": speed,
            "fit_s": fit_s,
        }
        print(format_table([result], COLUMNS[:3] + COLUMNS[5:8] + COLUMNS[9:]), file=sys.stderr, flush=True)
        return result

    out = Path(args.out) if args.out else RESULTS_DIR / f"distill_{len(texts)}.json"
    payload = {
        "machine": machine_info("cpu"),
        "n_labeled": len(texts),
        "n_unlabeled": len(unlabeled),
        "n_test": len(test_texts),
        "teacher_labeling_s": labeling_s,
        "shallow": {
            "layers": args.shallow_layers,
            "trainable_layers": args.shallow_trainable,
            "max_length": args.shallow_max_length,
            "epochs": args.shallow_epochs,
        },
        "rows": [row("teacher (fine-tuned default)", teacher, teacher_fit["fit_s"], None)],
    }
    rows = payload["rows"]
    for row_name, name, layers, weight, centre in student_specs(args):
        student = build_student(name, cache, args, layers)
        distilled = DistilledClassifier(
            cached, student, label_weight=weight, centre_on_thresholds=centre, random_state=0
        )
        start = time.perf_counter()
        grouping = {"groups": sources, "groups_unlabeled": unlabeled_sources} if args.grouped else {}
        distilled.fit(texts, Y, X_unlabeled=unlabeled, **grouping)
        rows.append(row(row_name, distilled, time.perf_counter() - start, distilled.validation_scores_))
        # The teacher timed again right after the student: the speed-up compares two
        # timings under the same load, whatever else the machine did during the fit.
        _, teacher_speed = timed_predict(teacher, test_texts)
        rows[-1].update(
            label_weight=weight,
            centre_on_thresholds=centre,
            grouped=args.grouped,
            teacher_texts_per_s_beside=teacher_speed,
        )
        compare(rows)
        if args.save_outputs:
            save_outputs(cache / "outputs" / f"{row_name.replace(' ', '_')}.npz", distilled, texts, Y, test_texts)
        write_results("distill", payload, out)  # after every student: a long run keeps what it measured
    print(format_table(rows, COLUMNS))
    print(f"wrote {out}")
    plot(rows, out.with_suffix(".png"))
    return payload


def save_outputs(path: Path, distilled, texts: list[str], Y: np.ndarray, test_texts: list[str]) -> None:
    """The student's probabilities on its held-out part (with its indices, real labels and the labels' rates) and on the test texts.

    The held-out part is drawn again as ``DistilledClassifier.fit`` draws it (ungrouped).
    """
    from sktext.splits import stratified_indices
    from sktext.validation import seed_from

    train, valid = stratified_indices(Y, distilled.validation_fraction, seed_from(distilled.random_state))
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(
        path,
        valid=valid,
        valid_Y=Y[valid],
        rates=Y[train].mean(axis=0),  # each label's rate among the labeled texts the student trained on
        valid_proba=distilled.student_.predict_proba([texts[i] for i in valid]),
        test_proba=distilled.predict_proba(test_texts),
        thresholds=distilled.thresholds_,
    )


def compare(rows: list[dict[str, Any]]) -> None:
    """Each row against the teacher (the first): F1 kept, speed-up, and whether the issue's bar is met."""
    teacher_row = rows[0]
    for result in rows:
        result["micro_vs_teacher"] = result["micro_f1"] / teacher_row["micro_f1"]
        result["macro_vs_teacher"] = result["macro_f1"] / teacher_row["macro_f1"]
        beside = result.get("teacher_texts_per_s_beside") or teacher_row["predict_texts_per_s"]
        result["speedup"] = result["predict_texts_per_s"] / beside
        result["meets_bar"] = (
            result["micro_vs_teacher"] >= 0.97 and result["macro_vs_teacher"] >= 0.95 and result["speedup"] >= 3
        )


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """F1 against predict speed, one point per model (skipped without matplotlib)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    figure, axis = plt.subplots(figsize=(6, 4))
    for metric, marker in (("micro_f1", "o"), ("macro_f1", "s")):
        axis.scatter([r["predict_texts_per_s"] for r in rows], [r[metric] for r in rows], marker=marker, label=metric)
    for r in rows:
        axis.annotate(r["model"].split(" ")[0], (r["predict_texts_per_s"], r["micro_f1"]), fontsize=8)
    axis.set_xscale("log")
    axis.set_xlabel("predict, texts/s on this CPU (log scale)")
    axis.set_ylabel("test F1")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
