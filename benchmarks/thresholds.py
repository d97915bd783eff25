"""Threshold-rule benchmark: which per-label threshold rule generalises on debtags?

Uses the debtags TRAIN split only (the test split is never read): a TF-IDF + logistic
regression model is fitted on one random part, thresholds are tuned on a second part
(the "validation split" an estimator would hold out), and every rule is scored on a
third part of 4,000 texts. Rules: 0.5, one global threshold (best micro-F1), per-label
F1 optima without shrinkage (labels with >= 5 validation positives, as
``min_positives``), with ``min_positives`` 10 / 20, and per-label optima shrunk towards
the global threshold with pseudo-counts 1, 2, 5, 10 (``sktext.thresholds``' rule).

Example::

    python benchmarks/thresholds.py --n-fit 3000 --n-valid 300 --seeds 0 1
"""

from __future__ import annotations

import argparse

import numpy as np
from common import (
    add_data_arguments,
    format_table,
    load_debtags,
    machine_info,
    write_results,
)
from sklearn.metrics import f1_score

from sktext.baselines import tfidf_logistic_regression
from sktext.thresholds import tune_thresholds

N_EVAL = 4000


def rules(y_valid: np.ndarray, proba_valid: np.ndarray) -> dict[str, np.ndarray]:
    """Thresholds of every rule, tuned on the validation part."""
    n_labels = y_valid.shape[1]
    _, global_threshold = tune_thresholds(y_valid, proba_valid)
    found = {"0.5": np.full(n_labels, 0.5), "global": np.full(n_labels, global_threshold)}
    for min_positives in (5, 10, 20):
        found[f"per-label, min {min_positives}"] = tune_thresholds(
            y_valid, proba_valid, min_positives=min_positives, shrinkage=0
        )[0]
    for shrinkage in (1, 2, 5, 10):
        found[f"shrunk, k={shrinkage}"] = tune_thresholds(y_valid, proba_valid, shrinkage=shrinkage)[0]
    return found


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-fit", type=int, default=3000)
    parser.add_argument("--n-valid", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    add_data_arguments(parser, subsets=False)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    data = load_debtags(args.data_dir)
    texts = np.array(data.train_texts, dtype=object)
    Y = data.train_Y
    scores: dict[str, list[tuple[float, float]]] = {}
    for seed in args.seeds:
        order = np.random.default_rng(seed).permutation(len(texts))
        fit = order[: args.n_fit]
        valid = order[args.n_fit : args.n_fit + args.n_valid]
        evaluation = order[-N_EVAL:]
        model = tfidf_logistic_regression().fit(list(texts[fit]), Y[fit])
        proba_valid = model.predict_proba(list(texts[valid]))
        proba_eval = model.predict_proba(list(texts[evaluation]))
        for name, thresholds in rules(Y[valid], proba_valid).items():
            predicted = proba_eval >= thresholds
            scores.setdefault(name, []).append(
                (
                    f1_score(Y[evaluation], predicted, average="micro", zero_division=0),
                    f1_score(Y[evaluation], predicted, average="macro", zero_division=0),
                )
            )
    rows = [
        {
            "rule": name,
            "micro_f1": float(np.mean([m for m, _ in values])),
            "macro_f1": float(np.mean([m for _, m in values])),
        }
        for name, values in scores.items()
    ]
    print(
        f"fit {args.n_fit}, validation {args.n_valid}, evaluation {N_EVAL} (all from train), "
        f"mean over seeds {args.seeds}"
    )
    print(format_table(rows, ["rule", "micro_f1", "macro_f1"]))
    path = write_results(
        f"thresholds_{args.n_fit}_{args.n_valid}",
        {
            "config": vars(args),
            "rows": rows,
            "machine": machine_info(),
        },
        out=args.out,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
