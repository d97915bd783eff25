"""Threshold-rule benchmark: which per-label threshold rule generalises on debtags?

Uses the debtags TRAIN split only (the test split is never read): a TF-IDF + logistic
regression model is fitted on one random part, thresholds are tuned on a second part
(the "validation split" an estimator would hold out), and every rule is scored on a
third part of 4,000 texts. Rules: 0.5, one global threshold (best micro-F1), per-label
F1 optima without shrinkage (labels with >= 5 validation positives, as
``min_positives``), with ``min_positives`` 10 / 20, and per-label optima shrunk towards
the global threshold with pseudo-counts 1, 2, 5, 10 (``sktext.thresholds``' rule).

``--model default`` asks the same of the fitted default classifier instead: for each
seed it fits ``TransformerMultiLabelClassifier()`` on ``--n-fit`` texts drawn from train
less a dev part that holds out whole source packages (2,000 texts, as the test split is
made), takes the probabilities its fit tuned its thresholds on (its own validation part,
a tenth of the texts, the lexical part blended in) and scores every rule on the dev
part. A last row, "best global on the evaluation texts", is not a rule: it is the one
threshold that would have been best there, an upper bound on what any global rule
could gain.

Example::

    python benchmarks/thresholds.py --n-fit 3000 --n-valid 300 --seeds 0 1
    python benchmarks/thresholds.py --model default --n-fit 500 --seeds 0 1 2 3
"""

from __future__ import annotations

import argparse

import numpy as np
from common import (
    add_data_arguments,
    format_table,
    grouped_dev_split,
    load_debtags,
    machine_info,
    subsample,
    write_results,
)
from sklearn.metrics import f1_score

from sktext.baselines import tfidf_logistic_regression
from sktext.thresholds import DEFAULT_CANDIDATES, tune_thresholds

N_EVAL = 4000
#: ``--model default``: texts of the dev part (whole source packages held out).
N_DEV = 2000
#: The rules' row that is an upper bound, not a rule.
BEST_ON_EVALUATION = "best global on the evaluation texts"


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


def _calibration(y_valid, proba_valid, y_eval, proba_eval) -> dict[str, float]:
    """Labels per text, summed probability per text and mean probability of a true label, on both parts."""
    found = {}
    for part, y, proba in (("valid", y_valid, proba_valid), ("eval", y_eval, proba_eval)):
        positive = np.asarray(y) > 0.5
        found[f"{part}_labels_per_text"] = float(positive.sum(axis=1).mean())
        found[f"{part}_proba_per_text"] = float(np.asarray(proba).sum(axis=1).mean())
        found[f"{part}_mean_proba_of_true"] = float(np.asarray(proba)[positive].mean())
    return found


def _tfidf_parts(data, args):
    """Per seed: TF-IDF + LR's validation labels and probabilities, and the evaluation part's."""
    texts = np.array(data.train_texts, dtype=object)
    Y = data.train_Y
    for seed in args.seeds:
        order = np.random.default_rng(seed).permutation(len(texts))
        fit = order[: args.n_fit]
        valid = order[args.n_fit : args.n_fit + args.n_valid]
        evaluation = order[-N_EVAL:]
        model = tfidf_logistic_regression().fit(list(texts[fit]), Y[fit])
        yield (
            Y[valid],
            model.predict_proba(list(texts[valid])),
            Y[evaluation],
            model.predict_proba(list(texts[evaluation])),
        )


def _default_model_parts(data, args):
    """Per seed: the default classifier's validation part (labels, blended probabilities), and the dev part's.

    The validation part's probabilities are the ones the fit tuned its thresholds on:
    they are taken from the fit's call of ``sktext.classification._tuned_thresholds``
    (private; a benchmark may look inside).
    """
    import sktext.classification as classification
    from sktext import TransformerMultiLabelClassifier

    (pool_texts, pool_Y), (dev_texts, dev_Y) = grouped_dev_split(data, N_DEV)
    tune = classification._tuned_thresholds
    seen: dict[str, np.ndarray] = {}

    def keep(hard, proba, weights):
        seen["hard"], seen["proba"] = np.array(hard), np.array(proba)
        return tune(hard, proba, weights)

    classification._tuned_thresholds = keep
    try:
        for seed in args.seeds:
            texts, Y = subsample(pool_texts, pool_Y, args.n_fit, random_state=seed)
            model = TransformerMultiLabelClassifier(random_state=seed).fit(texts, Y)
            yield seen["hard"], seen["proba"], np.asarray(dev_Y), model.predict_proba(dev_texts)
    finally:
        classification._tuned_thresholds = tune


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-fit", type=int, default=3000)
    parser.add_argument("--n-valid", type=int, default=300)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument(
        "--model",
        choices=["tfidf-lr", "default"],
        default="tfidf-lr",
        help="whose probabilities: TF-IDF + LR, or the default TransformerMultiLabelClassifier (--n-valid unused)",
    )
    add_data_arguments(parser, subsets=False)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    data = load_debtags(args.data_dir)
    parts = _default_model_parts(data, args) if args.model == "default" else _tfidf_parts(data, args)
    scores: dict[str, list[tuple[float, float, float]]] = {}
    parts_seen = []
    for y_valid, proba_valid, y_eval, proba_eval in parts:
        parts_seen.append(_calibration(y_valid, proba_valid, y_eval, proba_eval))
        found = rules(y_valid, proba_valid)
        micro_by_threshold = [
            f1_score(y_eval, proba_eval >= t, average="micro", zero_division=0) for t in DEFAULT_CANDIDATES
        ]
        found[BEST_ON_EVALUATION] = np.full(y_eval.shape[1], DEFAULT_CANDIDATES[int(np.argmax(micro_by_threshold))])
        for name, thresholds in found.items():
            predicted = proba_eval >= thresholds
            scores.setdefault(name, []).append(
                (
                    f1_score(y_eval, predicted, average="micro", zero_division=0),
                    f1_score(y_eval, predicted, average="macro", zero_division=0),
                    float(predicted.sum(axis=1).mean()),
                )
            )
    rows = [
        {
            "rule": name,
            "micro_f1": float(np.mean([m for m, _, _ in values])),
            "macro_f1": float(np.mean([m for _, m, _ in values])),
            "predicted_cardinality": float(np.mean([c for _, _, c in values])),
            "micro_f1_by_seed": [m for m, _, _ in values],
        }
        for name, values in scores.items()
    ]
    if args.model == "default":
        print(
            f"the default fitted on {args.n_fit} texts (its validation part a tenth), evaluation "
            f"{N_DEV} texts of whole held-out source packages (all from train), mean over seeds {args.seeds}"
        )
    else:
        print(
            f"fit {args.n_fit}, validation {args.n_valid}, evaluation {N_EVAL} (all from train), "
            f"mean over seeds {args.seeds}"
        )
    print(format_table(rows, ["rule", "micro_f1", "macro_f1", "predicted_cardinality"]))
    print("\nper seed: labels per text and mean probability of a true label, validation part against evaluation texts")
    print(
        format_table([{"seed": seed, **part} for seed, part in zip(args.seeds, parts_seen)], ["seed", *parts_seen[0]])
    )
    name = f"thresholds_default_{args.n_fit}" if args.model == "default" else f"thresholds_{args.n_fit}_{args.n_valid}"
    path = write_results(
        name,
        {
            "config": vars(args),
            "rows": rows,
            "by_seed": [{"seed": seed, **part} for seed, part in zip(args.seeds, parts_seen)],
            "machine": machine_info(),
        },
        out=args.out,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
