"""The lexical part's design: F1 on a dev split of debtags train (never the test split).

The deep classifiers blend a lexical part (TF-IDF + a linear SVM per label) with the
network. Two of its choices cost most of a large fit's seconds outside the network:

- ``lexical_refit``: fitted on the network's training part (whose margins on the
  validation part fit the blend weights and thresholds) and then once more on all
  texts (True), or only once (False); the default, ``"auto"``, refits below 20,000 texts;
- the SVMs' ``class_weight``: ``"balanced"`` (cost-sensitive: each label's positives
  weighed by ``n_negative / n_positive``) makes liblinear's dual solver take hundreds
  to thousands of passes; ``None`` converges in tens.

This benchmark measures what each arm costs in F1 against the default, paired (same
network seed, same texts), at several training sizes, with the frozen default encoder
as the network (its blend leans most on the lexical part, so any loss shows there
first) and, with ``--fine-tune``, the fine-tuned default. An arm is
``CLASS_WEIGHT:REFIT``, e.g. ``none:refit`` or ``balanced:once``, optionally with the SVMs'
stopping tolerance, ``balanced:refit:tol=0.1`` (liblinear's own default for its dual solver;
scikit-learn's is 1e-4).

The dev texts are a fixed 2,000-text stratified part of debtags train, or with
``--grouped-dev`` whole source packages held out until 2,000 texts (as the test split is
made: a random part shares sibling packages with the training texts); each size draws
its training texts from the rest.

Examples
--------
::

    python benchmarks/lexical_refit.py                      # 250 / 1,000 / 3,000 texts, seeds 0 1
    python benchmarks/lexical_refit.py --arms default none:refit none:once --sizes 1000 3000
    python benchmarks/lexical_refit.py --sizes 250 --fine-tune --seeds 0
    python benchmarks/lexical_refit.py --arms default balanced:refit:tol=0.1 --sizes 1000 3000
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    dev_split,
    format_table,
    grouped_dev_split,
    load_debtags,
    machine_info,
    scores,
    subsample,
    write_results,
)


def arm_params(arm: str) -> dict:
    """Estimator parameters of an arm: ``default`` (no parameter set) or ``CLASS_WEIGHT:REFIT[:tol=TOL]``."""
    if arm == "default":
        return {}
    class_weight, refit, *rest = arm.split(":")
    tol = rest[0].removeprefix("tol=") if rest else None
    if (
        class_weight not in ("balanced", "none")
        or refit not in ("refit", "once")
        or len(rest) > 1
        or (rest and not rest[0].startswith("tol="))
    ):
        raise SystemExit(
            f"arm {arm!r}: expected 'default' or CLASS_WEIGHT:REFIT[:tol=TOL], e.g. none:refit or balanced:once:tol=0.1"
        )
    from sktext.lexical import TfidfLinearClassifier

    return {
        "lexical": TfidfLinearClassifier(
            class_weight=None if class_weight == "none" else "balanced",
            random_state=0,
            n_jobs=-1,
            **({} if tol is None else {"tol": float(tol)}),
        ),
        "lexical_refit": refit == "refit",
    }


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 1000, 3000])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--n-dev", type=int, default=2000)
    parser.add_argument(
        "--arms",
        nargs="+",
        default=["default", "balanced:once"],
        help="'default' first (the reference), then CLASS_WEIGHT:REFIT arms, e.g. none:refit none:once",
    )
    parser.add_argument("--fine-tune", action="store_true", help="the fine-tuned default instead of the frozen encoder")
    parser.add_argument(
        "--grouped-dev", action="store_true", help="hold out whole source packages (as the test split is made)"
    )
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    arms = {arm: arm_params(arm) for arm in args.arms}
    reference = args.arms[0]

    from sktext import TransformerMultiLabelClassifier

    data = load_debtags(args.data_dir)
    (pool_texts, pool_Y), (dev_texts, dev_Y) = (grouped_dev_split if args.grouped_dev else dev_split)(data, args.n_dev)
    rows = []
    for size in args.sizes:
        for seed in args.seeds:
            texts, Y = subsample(pool_texts, pool_Y, size, random_state=seed)
            for arm, params in arms.items():
                clf = TransformerMultiLabelClassifier(freeze_encoder=not args.fine_tune, random_state=seed, **params)
                start = time.perf_counter()
                clf.fit(texts, Y)
                fit_s = time.perf_counter() - start
                proba = clf.predict_proba(dev_texts)
                metrics = scores(dev_Y, clf.predict(dev_texts), proba)
                rows.append(
                    {
                        "n_train": size,
                        "seed": seed,
                        "arm": arm,
                        "fit_s": fit_s,
                        "lexical_s": clf.fit_seconds_.get("lexical", 0.0),
                        "micro_f1": metrics["micro_f1"],
                        "macro_f1": metrics["macro_f1"],
                    }
                )
                print(
                    f"  {size} texts, seed {seed}, {arm}: micro {metrics['micro_f1']:.4f} "
                    f"macro {metrics['macro_f1']:.4f}, fit {fit_s:.1f} s, lexical {rows[-1]['lexical_s']:.1f} s",
                    flush=True,
                )
    summary = []
    for size in args.sizes:
        for arm in args.arms[1:]:
            paired = [
                (
                    next(r for r in rows if r["n_train"] == size and r["seed"] == s and r["arm"] == arm),
                    next(r for r in rows if r["n_train"] == size and r["seed"] == s and r["arm"] == reference),
                )
                for s in args.seeds
            ]
            summary.append(
                {
                    "n_train": size,
                    "arm": arm,
                    "d_micro_f1": float(np.mean([a["micro_f1"] - ref["micro_f1"] for a, ref in paired])),
                    "d_macro_f1": float(np.mean([a["macro_f1"] - ref["macro_f1"] for a, ref in paired])),
                    "lexical_s": float(np.mean([a["lexical_s"] for a, _ in paired])),
                    "lexical_s_reference": float(np.mean([ref["lexical_s"] for _, ref in paired])),
                }
            )
    network = "fine-tuned default" if args.fine_tune else "frozen default encoder"
    print(f"\n{network}; dev F1 on {len(dev_texts)} debtags train texts held out; each arm minus {reference}")
    print(format_table(summary, ["n_train", "arm", "d_micro_f1", "d_macro_f1", "lexical_s", "lexical_s_reference"]))
    payload = {
        "benchmark": "lexical_refit",
        "machine": machine_info("cpu"),
        "config": vars(args),
        "network": network,
        "rows": rows,
        "summary": summary,
    }
    path = write_results("lexical_refit_dev" + ("_fine_tuned" if args.fine_tune else ""), payload, args.out)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
