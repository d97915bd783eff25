"""Regression guard for the CPU training speed-ups: each one on and off, per model family.

sktext's CPU training speed-ups (``FastDropout``, eager attention, fused AdamW, bf16
autocast) were measured on the transformer. This benchmark measures every model family
with each speed-up on and off (the others at the family's defaults), on long texts
(several debtags descriptions joined, about ``--words`` words each), and reports fit
seconds per 1,000 training tokens. ``ratio`` is the time with the speed-up off over the
time with it on: above 1 it helps, below 1 it slows the family down. A speed-up that
the family uses by default and that makes it slower (ratio below ``1 - --tolerance``)
prints a ``FLAG`` line and the script exits with status 1.

Families (``--families``):

- ``ulmfit_classifier``: ``ULMFiTClassifier`` (the default ``"small"`` AWD-LSTM), the
  classifier stage only (``lm_epochs=0``), all its unfreezing stages;
- ``ulmfit_lm``: the language-model stage (``fine_tune_language_model``, one epoch);
- ``transformer``: ``TransformerMultiLabelClassifier`` (the bundled all-MiniLM-L6-v2),
  one epoch at ``max_length`` 256;
- ``ulmfit_010``: ``ULMFiTClassifier`` as ``ulmfit_classifier``, run from another
  checkout (``--baseline-tree``, e.g. sktext 0.1.0, commit 6cda7bc, in a git worktree):
  the same fit in the version before the speed-ups, in the same run;
- ``ulmfit_default`` / ``ulmfit_default_010``: ``ULMFiTClassifier()`` whole, at its
  defaults (language-model stage, classifier stages, lexical part, thresholds), from this
  checkout and from ``--baseline-tree``: issue 20's comparison with sktext 0.1.0. Its
  seconds are the whole fit's wall time, per 1,000 tokens of the training texts (counted
  once, not per epoch).

The switches are the ``precision`` parameter (``"bf16"`` / ``"fp32"``) and the private
hook ``sktext.net._CPU_SPEEDUPS`` (``fast_dropout``, ``eager_attention``,
``fused_adamw``; None lets each family decide, True / False forces). Every fit runs in
its own process. Timings on a shared machine are noisy: ``--repeats`` runs every
variant that many times, interleaved, and keeps each one's fastest; the table also
gives CPU seconds (``process_time``), which another process's load disturbs less.

Examples
--------
The run in benchmarks/README.md::

    git worktree add /tmp/sktext010 6cda7bc
    python benchmarks/cpu_speedups.py --baseline-tree /tmp/sktext010

Smaller::

    python benchmarks/cpu_speedups.py --families ulmfit_classifier --n-train 40 --threads 1
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCHMARKS = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCHMARKS.parent))  # this checkout's sktext, also in the workers

# common.py imports this checkout's sktext: a worker for another checkout must not import it.

FAMILIES = ("ulmfit_classifier", "ulmfit_lm", "transformer", "ulmfit_010", "ulmfit_default", "ulmfit_default_010")
#: (speed-up, the family's default setting) for each family; ``bf16`` means
#: ``precision="bf16"`` against ``"fp32"``, the others the hook in ``sktext.net``.
SPEEDUPS = {
    "ulmfit_classifier": {"fast_dropout": False, "fused_adamw": True, "bf16": False},
    "ulmfit_lm": {"fused_adamw": True},
    "transformer": {"fast_dropout": True, "eager_attention": True, "fused_adamw": True, "bf16": None},
    "ulmfit_010": {},
    "ulmfit_default": {},
    "ulmfit_default_010": {},
}
COLUMNS = ["family", "speedup", "default", "on_s_per_1k", "off_s_per_1k", "ratio", "on_cpu", "off_cpu", "cpu_ratio"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--families", nargs="+", default=list(FAMILIES[:3]), choices=FAMILIES)
    parser.add_argument("--speedups", nargs="+", default=None, help="measure only these (default: all)")
    parser.add_argument("--n-train", type=int, default=120, help="long training texts")
    parser.add_argument("--n-test", type=int, default=100, help="long test texts (F1)")
    parser.add_argument("--words", type=int, default=330, help="words per long text, at least")
    parser.add_argument("--max-epochs", type=int, default=5, help="ULMFiT classifier epochs (5: every stage)")
    parser.add_argument("--transformer-texts", type=int, default=48, help="the transformer's training texts")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each variant (the fastest is kept)")
    parser.add_argument("--tolerance", type=float, default=0.05, help="ratios within 1 - this are noise")
    parser.add_argument("--baseline-tree", default=None, help="checkout of another sktext (for ulmfit_010)")
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON path (default: benchmarks/results/)")
    parser.add_argument("--worker", default=None, help=argparse.SUPPRESS)  # internal: JSON spec
    args = parser.parse_args(argv)
    if any(family.endswith("_010") for family in args.families) and not args.baseline_tree:
        parser.error(
            "ulmfit_010 and ulmfit_default_010 need --baseline-tree (a checkout of sktext 0.1.0, e.g. a git worktree of 6cda7bc)"
        )
    return args


def long_texts(data_dir, words: int, n_train: int, n_test: int) -> tuple[list[str], list, list[str], list]:
    """Consecutive debtags descriptions joined until each text has ``words`` words; labels united.

    Returns train texts and label lists (from the train split) and test ones (from the test split).
    """
    folder = Path(data_dir)

    def joined(name: str, count: int):
        texts, labels, parts, tags = [], [], [], set()
        with gzip.open(folder / name, "rt", encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                parts.append(record["text"])
                tags |= set(record["labels"])
                if sum(len(part.split()) for part in parts) >= words:
                    texts.append("\n".join(parts))
                    labels.append(sorted(tags))
                    parts, tags = [], set()
                    if len(texts) == count:
                        break
        return texts, labels

    return (*joined("train.jsonl.gz", n_train), *joined("test.jsonl.gz", n_test))


def run_worker(spec: dict[str, Any]) -> dict[str, Any]:
    """One fit of one family with one setting of the speed-ups, in this process."""
    import numpy as np
    import torch
    from sklearn.metrics import f1_score
    from sklearn.preprocessing import MultiLabelBinarizer

    if spec["threads"]:
        torch.set_num_threads(spec["threads"])
    family, hook, precision = spec["family"], spec.get("hook", {}), spec.get("precision", "auto")
    if not family.endswith("_010"):
        import sktext.net

        sktext.net._CPU_SPEEDUPS.update(hook)
    X, labels, X_test, labels_test = long_texts(spec["data_dir"], spec["words"], spec["n_train"], spec["n_test"])
    binarizer = MultiLabelBinarizer().fit(labels)
    Y, Y_test = binarizer.transform(labels), binarizer.transform(labels_test)
    kept = Y.sum(axis=0) >= 5  # labels the classifier can learn from these texts
    Y, Y_test = Y[:, kept], Y_test[:, kept]
    common = {"device": "cpu", "random_state": spec["seed"]}
    result: dict[str, Any] = {"n_labels": int(kept.sum())}
    wall, cpu = time.perf_counter(), time.process_time()
    if family == "ulmfit_lm":
        from sktext.language_model import fine_tune_language_model

        model = fine_tune_language_model(X, preset="small", lm_epochs=1, min_freq=3, batch_size=32, **common)
        seconds = sum(record["dur"] for record in model.history)
        tokens = sum(len(ids) for ids in model.vocabulary.encode(X))
    elif family == "transformer":
        from sktext import TransformerMultiLabelClassifier

        X, Y = X[: spec["transformer_texts"]], Y[: spec["transformer_texts"]]
        estimator = TransformerMultiLabelClassifier(
            max_epochs=1, patience=None, lexical=None, precision=precision, **common
        ).fit(X, Y)
        seconds = estimator.fit_seconds_["training"]
        lengths = estimator.tokenizer_(X, truncation=True, max_length=estimator.max_length)["input_ids"]
        tokens = sum(len(ids) for ids in lengths)
    elif family.startswith("ulmfit_default"):  # the whole default fit
        from sktext import ULMFiTClassifier

        estimator = ULMFiTClassifier(**common)
        started = time.perf_counter()
        estimator.fit(X, Y)
        seconds = time.perf_counter() - started
        tokens = sum(len(ids) for ids in estimator.vocabulary_.encode(X))
        Y_pred = estimator.predict(X_test)
        result["micro_f1"] = float(f1_score(Y_test, Y_pred, average="micro", zero_division=0))
        result["macro_f1"] = float(f1_score(Y_test, Y_pred, average="macro", zero_division=0))
        result["epochs"] = len(estimator.history_)
        result["fit_seconds_"] = {key: float(value) for key, value in getattr(estimator, "fit_seconds_", {}).items()}
    else:  # ulmfit_classifier, ulmfit_010: the classifier stage alone
        from sktext import ULMFiTClassifier

        options = {"lm_epochs": 0, "max_epochs": spec["max_epochs"], "patience": None}
        if family == "ulmfit_classifier":
            options.update(lexical=None, precision=precision)
        estimator = ULMFiTClassifier(**options, **common).fit(X, Y)
        seconds = sum(record["dur"] for record in estimator.history_)
        tokens = sum(len(ids) for ids in estimator.vocabulary_.encode(X)) * len(estimator.history_)
        Y_pred = estimator.predict(X_test)
        result["micro_f1"] = float(f1_score(Y_test, Y_pred, average="micro", zero_division=0))
        result["macro_f1"] = float(f1_score(Y_test, Y_pred, average="macro", zero_division=0))
    result.update(
        seconds=seconds,
        process_wall_s=time.perf_counter() - wall,
        process_cpu_s=time.process_time() - cpu,
        tokens=int(tokens),
        s_per_1k_tokens=1000 * seconds / tokens,
        cpu_s_per_1k_tokens=1000 * (time.process_time() - cpu) / tokens,
        torch_threads=torch.get_num_threads(),
        sktext=__import__("sktext").__file__,
        words_per_text=float(np.mean([len(text.split()) for text in X])),
    )
    return result


def variants(family: str, only: list[str] | None = None) -> list[dict[str, Any]]:
    """The fits of a family: its default, then each speed-up (of ``only``, if given) forced on and off."""
    runs = [{"family": family, "variant": "default"}]
    for name in _measured(family, only):
        for state in (True, False):
            if name == "bf16":
                runs.append({"family": family, "variant": f"{name}={state}", "precision": "bf16" if state else "fp32"})
            else:
                runs.append({"family": family, "variant": f"{name}={state}", "hook": {name: state}})
    return runs


def _measured(family: str, only: list[str] | None) -> list[str]:
    return [name for name in SPEEDUPS[family] if only is None or name in only]


def run_fit(spec: dict[str, Any], args: argparse.Namespace, scratch: Path) -> dict[str, Any]:
    out = scratch / "result.json"
    environment = dict(os.environ)
    if spec["family"].endswith("_010"):  # the other checkout's sktext first on the path
        environment["PYTHONPATH"] = os.pathsep.join(filter(None, [args.baseline_tree, environment.get("PYTHONPATH")]))
        command = [sys.executable, "-c", _BASELINE_WORKER, str(BENCHMARKS), json.dumps(spec), str(out)]
    else:
        command = [sys.executable, __file__, "--worker", json.dumps({**spec, "out": str(out)})]
    subprocess.run(command, check=True, env=environment, cwd=scratch)
    return json.loads(out.read_text(encoding="utf-8"))


# The worker for another checkout: this file's run_worker, with that checkout's sktext
# imported first (sys.path[0] is the script's folder otherwise, i.e. this checkout).
_BASELINE_WORKER = """
import json, sys
benchmarks, spec, out = sys.argv[1], json.loads(sys.argv[2]), sys.argv[3]
sys.path.append(benchmarks)
import sktext
import cpu_speedups
open(out, "w").write(json.dumps(cpu_speedups.run_worker(spec)))
"""


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run every fit, print the table and the flags, write the JSON file; exit 1 on a flag."""
    args = parse_args(argv)
    if not args.worker:
        global format_table, machine_info, resolve_data_dir, write_results
        from common import format_table, machine_info, resolve_data_dir, write_results
    if args.worker:
        spec = json.loads(args.worker)
        Path(spec["out"]).write_text(json.dumps(run_worker(spec)), encoding="utf-8")
        return {}
    shared = {
        key: getattr(args, key)
        for key in ("n_train", "n_test", "words", "max_epochs", "transformer_texts", "threads", "seed")
    }
    shared["data_dir"] = str(resolve_data_dir(args.data_dir))
    planned = [spec for family in args.families for spec in variants(family, args.speedups)]
    fits: dict[tuple[str, str], list[dict[str, Any]]] = {}
    with tempfile.TemporaryDirectory() as scratch:
        for repeat in range(args.repeats):
            for spec in planned:
                result = run_fit({**shared, **spec}, args, Path(scratch))
                fits.setdefault((spec["family"], spec["variant"]), []).append(result)
                print(
                    f"  [{repeat + 1}/{args.repeats}] {spec['family']:18s} {spec['variant']:22s} "
                    f"{result['s_per_1k_tokens']:.3f} s / 1k tokens (cpu {result['cpu_s_per_1k_tokens']:.3f})"
                    + (f", micro-F1 {result['micro_f1']:.4f}" if "micro_f1" in result else ""),
                    flush=True,
                )
    best = {key: min(runs, key=lambda run: run["s_per_1k_tokens"]) for key, runs in fits.items()}
    rows, flags = [], []
    for family in args.families:
        for name in _measured(family, args.speedups):
            default = SPEEDUPS[family][name]
            on, off = best[(family, f"{name}=True")], best[(family, f"{name}=False")]
            row = {
                "family": family,
                "speedup": name,
                "default": {True: "on", False: "off", None: "auto"}[default],
                "on_s_per_1k": on["s_per_1k_tokens"],
                "off_s_per_1k": off["s_per_1k_tokens"],
                "ratio": off["s_per_1k_tokens"] / on["s_per_1k_tokens"],
                "on_cpu": on["cpu_s_per_1k_tokens"],
                "off_cpu": off["cpu_s_per_1k_tokens"],
                "cpu_ratio": off["cpu_s_per_1k_tokens"] / on["cpu_s_per_1k_tokens"],
            }
            rows.append(row)
            if row["ratio"] < 1 - args.tolerance and default is not False:
                flags.append(
                    f"FLAG {family}: {name} makes it slower (x{row['ratio']:.2f}) and is "
                    f"{row['default']} by default for it"
                )
    defaults = [{"family": family, **best[(family, "default")]} for family in args.families]
    print(
        f"\n{args.n_train} texts of >= {args.words} words; seconds per 1,000 training tokens, fastest of "
        f"{args.repeats}; ratio = off / on (< 1: the speed-up slows the family)"
    )
    print(format_table(rows, COLUMNS))
    print("\nDefaults:")
    print(
        format_table(
            defaults,
            ["family", "s_per_1k_tokens", "cpu_s_per_1k_tokens", "seconds", "tokens", "micro_f1", "macro_f1"],
        )
    )
    for line in flags or ["no speed-up slows a family that uses it by default"]:
        print(line)
    payload = {
        "benchmark": "cpu_speedups",
        "machine": machine_info("cpu"),
        "config": {key: value for key, value in vars(args).items() if key != "worker"},
        "rows": rows,
        "defaults": defaults,
        "fits": [{"family": key[0], "variant": key[1], "runs": runs} for key, runs in fits.items()],
        "flags": flags,
    }
    path = write_results("cpu_speedups", payload, args.out)
    print(f"\nwrote {path}")
    if flags:
        sys.exit(1)
    return payload


if __name__ == "__main__":
    main()
