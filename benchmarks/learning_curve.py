"""Learning curve: sktext's estimators at their defaults against the tuned linear baselines.

Draws random subsets of the debtags train split (250, 500, 1,000, 3,000 texts by
default; three draws up to 1,000, one above), fits every arm on the same subset and
scores it on the full test split (``--eval test``) or, to choose defaults and recipes
without looking at test, on a fixed held-out part of the train split that no subset
draws from (``--eval dev``).

Arms (``--arms``; add your own with ``--arm NAME=CLASS:JSON``):

- ``tfidf+lr`` and ``tfidf+svc``: :func:`sktext.baselines.tuned_linear_baselines`
  (TF-IDF + logistic regression, ``C=8``; TF-IDF + linear SVM, ``C=1``), each tuning
  per-label thresholds by sktext's rule on a stratified 10 % of the subset, then refitted
  on all of it: the baselines to beat.
- ``transformer``: ``TransformerMultiLabelClassifier()``; ``ulmfit``: ``ULMFiTClassifier()``;
  ``transformer-frozen``: ``TransformerMultiLabelClassifier(freeze_encoder=True)``;
  ``transformer-all-layers``: ``TransformerMultiLabelClassifier(trainable_layers=None, lr=1e-4,
  patience=3)``, every layer fine-tuned: the defaults before ``trainable_layers="auto"``.

Every arm gets ``random_state=seed``. Results are written after each fit, so a long run
can be read (or resumed with ``--resume``) while it goes on; ``--plot`` draws micro- and
macro-F1 against train size (log axis) from the JSON file.

Examples
--------
::

    python benchmarks/learning_curve.py --arms tfidf+lr tfidf+svc transformer ulmfit
    python benchmarks/learning_curve.py --eval dev --sizes 250 500 --seeds 0 \\
        --arm 'short=TransformerMultiLabelClassifier:{"max_length": 128}' --arms tfidf+svc short
    python benchmarks/learning_curve.py --plot-only --out benchmarks/results/learning_curve_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from common import (
    RESULTS_DIR,
    Timer,
    add_data_arguments,
    format_table,
    load_debtags,
    machine_info,
    scores,
    write_results,
)

from sktext.baselines import tuned_linear_baselines
from sktext.thresholds import apply_thresholds


def _baseline_arm(display_name: str) -> tuple[str, dict[str, Any]]:
    estimator = tuned_linear_baselines()[display_name]
    params = {k: v for k, v in estimator.get_params().items() if k not in ("random_state", "n_jobs")}
    return type(estimator).__name__, params


ARMS: dict[str, tuple[str, dict[str, Any]]] = {
    "tfidf+lr": _baseline_arm("TF-IDF + LR"),
    "tfidf+svc": _baseline_arm("TF-IDF + LinearSVC"),
    "transformer": ("TransformerMultiLabelClassifier", {}),
    "transformer-frozen": ("TransformerMultiLabelClassifier", {"freeze_encoder": True}),
    "transformer-all-layers": (
        "TransformerMultiLabelClassifier",
        {"trainable_layers": None, "lr": 1e-4, "patience": 3},
    ),
    "ulmfit": ("ULMFiTClassifier", {}),
}
BASELINES = ("tfidf+lr", "tfidf+svc")
COLUMNS = ["arm", "n_train", "draws", "micro_f1", "macro_f1", "samples_f1", "lrap", "fit_s"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, subsets=False)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 3000])
    parser.add_argument(
        "--seeds",
        type=int,
        nargs="+",
        default=[0, 1, 2],
        help="draws per size (sizes above --max-seeded-size use the first)",
    )
    parser.add_argument("--max-seeded-size", type=int, default=1000)
    parser.add_argument("--arms", nargs="+", default=list(BASELINES) + ["transformer", "ulmfit"])
    parser.add_argument(
        "--arm",
        action="append",
        default=[],
        metavar="NAME=CLASS:JSON",
        help=(
            "an extra arm: an estimator class of sktext and its parameters (a JSON object as 'lexical' "
            "gives the parameters of its TfidfLinearClassifier)"
        ),
    )
    parser.add_argument("--eval", choices=("test", "dev"), default="test")
    parser.add_argument(
        "--dev-size", type=int, default=2000, help="train texts held out as the dev set with --eval dev"
    )
    parser.add_argument("--threads", type=int, default=None, help="torch threads")
    parser.add_argument("--resume", action="store_true", help="keep the results already in --out and skip those fits")
    parser.add_argument("--plot", action="store_true", help="also write the PNG plot")
    parser.add_argument("--plot-only", action="store_true")
    parser.add_argument("--out", default=None)
    return parser.parse_args(argv)


def resolve_arms(names: list[str], extra: list[str]) -> dict[str, tuple[str, dict]]:
    """The arms to run, by name: the built-in ones and ``NAME=CLASS:JSON`` specs."""
    arms = dict(ARMS)
    for spec in extra:
        name, _, definition = spec.partition("=")
        class_name, _, params = definition.partition(":")
        arms[name] = (class_name, json.loads(params) if params else {})
        if name not in names:
            names.append(name)
    unknown = [name for name in names if name not in arms]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; known: {sorted(arms)}")
    return {name: arms[name] for name in names}


def make_estimator(class_name: str, params: dict[str, Any], seed: int):
    """An sktext estimator of that class with ``params`` and ``random_state=seed``."""
    import sktext
    from sktext.lexical import TfidfLinearClassifier

    classes = {"TfidfLinearClassifier": TfidfLinearClassifier}
    cls = classes.get(class_name) or getattr(sktext, class_name)
    if isinstance(params.get("lexical"), dict):  # the lexical part's own parameters, e.g. {"class_weight": "balanced"}
        params = {**params, "lexical": TfidfLinearClassifier(**{"random_state": 0, **params["lexical"]})}
    return cls(**{**params, "random_state": seed})


def draw(pool: np.ndarray, size: int, seed: int) -> np.ndarray:
    """``size`` rows of ``pool`` drawn at random by ``seed`` (the same for every arm)."""
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(pool, size=min(size, len(pool)), replace=False))


def summarise(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Mean of each metric over the draws of every (arm, size)."""
    rows = []
    keys = sorted({(r["arm"], r["n_train"]) for r in records}, key=lambda k: (k[1], k[0]))
    for arm, size in keys:
        group = [r for r in records if r["arm"] == arm and r["n_train"] == size]
        row = {"arm": arm, "n_train": size, "draws": len(group)}
        for metric in COLUMNS[3:]:
            row[metric] = float(np.mean([r[metric] for r in group]))
        rows.append(row)
    return rows


def best_baseline_margins(summary: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each non-baseline arm's micro / macro F1 minus the better baseline's, per size."""
    margins = []
    for row in summary:
        if row["arm"] in BASELINES:
            continue
        base = [r for r in summary if r["arm"] in BASELINES and r["n_train"] == row["n_train"]]
        if not base:
            continue
        margins.append(
            {
                "arm": row["arm"],
                "n_train": row["n_train"],
                "micro_vs_best_baseline": row["micro_f1"] - max(r["micro_f1"] for r in base),
                "macro_vs_best_baseline": row["macro_f1"] - max(r["macro_f1"] for r in base),
                "micro_vs_tfidf_lr": row["micro_f1"]
                - next((r["micro_f1"] for r in base if r["arm"] == "tfidf+lr"), float("nan")),
                "macro_vs_tfidf_lr": row["macro_f1"]
                - next((r["macro_f1"] for r in base if r["arm"] == "tfidf+lr"), float("nan")),
            }
        )
    return margins


def plot(summary: list[dict[str, Any]], records: list[dict[str, Any]], path: Path, title: str) -> None:
    """Micro- and macro-F1 against train size (log axis), one line per arm."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for axis, metric in zip(axes, ("micro_f1", "macro_f1")):
        for arm in dict.fromkeys(row["arm"] for row in summary):
            rows = [row for row in summary if row["arm"] == arm]
            sizes = [row["n_train"] for row in rows]
            style = "--" if arm in BASELINES else "-"
            (line,) = axis.plot(sizes, [row[metric] for row in rows], style, marker="o", label=arm)
            points = [(r["n_train"], r[metric]) for r in records if r["arm"] == arm]
            axis.scatter(*zip(*points), s=10, alpha=0.4, color=line.get_color())
        axis.set_xscale("log")
        axis.set_xlabel("train texts")
        axis.set_ylabel(metric.replace("_", "-"))
        axis.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    out = Path(args.out or RESULTS_DIR / f"learning_curve_{args.eval}.json")
    previous = json.loads(out.read_text()) if (args.resume or args.plot_only) and out.exists() else {}
    records: list[dict[str, Any]] = previous.get("records", [])
    if args.plot_only:
        plot(summarise(records), records, out.with_suffix(".png"), previous.get("title", ""))
        return previous
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    arms = resolve_arms(list(args.arms), args.arm)
    data = load_debtags(args.data_dir)
    pool = np.arange(len(data.train_texts))
    if args.eval == "dev":
        dev = draw(pool, args.dev_size, seed=12345)
        pool = np.setdiff1d(pool, dev)
        eval_texts = [data.train_texts[i] for i in dev]
        eval_Y = data.train_Y[dev]
    else:
        eval_texts, eval_Y = data.test_texts, data.test_Y
    title = f"debtags, {args.eval} split ({len(eval_texts)} texts, {data.train_Y.shape[1]} labels)"
    done = {(r["arm"], r["n_train"], r["seed"]) for r in records}
    payload: dict[str, Any] = {}
    for size in args.sizes:
        seeds = args.seeds if size <= args.max_seeded_size else args.seeds[:1]
        for seed in seeds:
            rows = draw(pool, size, seed)
            texts = [data.train_texts[i] for i in rows]
            Y = data.train_Y[rows]
            for name, (class_name, params) in arms.items():
                if (name, len(rows), seed) in done:
                    continue
                estimator = make_estimator(class_name, params, seed)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", UserWarning)
                    with Timer() as fit_timer:
                        estimator.fit(texts, Y)
                with Timer() as predict_timer:
                    proba = estimator.predict_proba(eval_texts)
                if hasattr(estimator, "thresholds_") and isinstance(proba, np.ndarray):
                    predicted = apply_thresholds(proba, estimator.thresholds_)  # predict, without a second pass
                else:
                    predicted = estimator.predict(eval_texts)
                record = {
                    "arm": name,
                    "class": class_name,
                    "params": params,
                    "n_train": len(rows),
                    "seed": seed,
                    **scores(eval_Y, predicted, proba),
                    "fit_s": fit_timer.seconds,
                    "predict_s": predict_timer.seconds,
                    # where the fit's seconds went, and the epochs it ran (the networks)
                    "fit_seconds_": dict(getattr(estimator, "fit_seconds_", {})),
                    "epochs": len(getattr(estimator, "history_", None) or []) or None,
                }
                records.append(record)
                print(
                    f"{name:<24} n={len(rows):<6} seed={seed}  micro {record['micro_f1']:.3f}"
                    f"  macro {record['macro_f1']:.3f}  fit {record['fit_s']:.0f}s",
                    flush=True,
                )
                summary = summarise(records)
                payload = {
                    "title": title,
                    "eval": args.eval,
                    "n_eval": len(eval_texts),
                    "options": {k: v for k, v in vars(args).items() if k != "arm"},
                    "arms": {n: {"class": c, "params": p} for n, (c, p) in arms.items()},
                    "machine": machine_info("cpu"),
                    "records": records,
                    "summary": summary,
                    "margins": best_baseline_margins(summary),
                }
                write_results("learning_curve", payload, out)
    summary = summarise(records)
    print("\n" + format_table(summary, COLUMNS))
    margins = best_baseline_margins(summary)
    if margins:
        print("\n" + format_table(margins, list(margins[0])))
    if args.plot and records:
        plot(summary, records, out.with_suffix(".png"), title)
    return payload


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
