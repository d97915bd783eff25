"""Quality benchmark: TransformerMultiLabelClassifier vs TF-IDF + logistic regression.

Fits, in one run and on the same data (the full debtags train split, or a random
subset of it), three models and scores them on the debtags test split:

- ``tfidf+lr@0.5``: TF-IDF word 1-2 grams + one-vs-rest logistic regression,
  threshold 0.5;
- ``tfidf+lr tuned``: the same model with one threshold per label, tuned for F1
  by a second model fitted on 90 % of train and scored on the other (stratified)
  10 %;
- ``transformer``: ``sktext.TransformerMultiLabelClassifier`` with its defaults
  (early stopping and per-label thresholds on a 10 % validation split), and
  ``transformer@0.5``: the same fitted model thresholded at 0.5.

Reports micro-, macro- and samples-F1, label ranking average precision (LRAP) and
fit / predict wall times; prints a table and writes ``benchmarks/results/quality.json``.

Examples
--------
Full run (GPU advised)::

    python benchmarks/quality.py --device cuda

Short CPU smoke run::

    python benchmarks/quality.py --max-train 500 --max-test 300 --max-epochs 1 \\
        --max-length 64 --out benchmarks/results/quality_smoke.json
"""

from __future__ import annotations

import argparse
import warnings
from typing import Any

import numpy as np
from common import (
    Timer,
    add_data_arguments,
    add_transformer_arguments,
    format_table,
    load_debtags,
    machine_info,
    make_tfidf_lr,
    resolve_device,
    scores,
    subsample,
    tfidf_lr_thresholds,
    write_results,
)

COLUMNS = ["model", "micro_f1", "macro_f1", "samples_f1", "lrap", "predicted_cardinality", "fit_s", "predict_s"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Debtags test scores of TransformerMultiLabelClassifier beside TF-IDF + logistic regression."
    )
    add_data_arguments(parser)
    add_transformer_arguments(parser)
    parser.add_argument("--device", default="auto", help='"auto", "cpu", "cuda", "cuda:1"')
    parser.add_argument("--C", type=float, default=8.0, help="inverse regularization of the logistic regressions")
    parser.add_argument("--n-jobs", type=int, default=-1, help="labels the baselines fit in parallel (joblib)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--baselines-only", action="store_true", help="skip the transformer (no sktext estimator needed)"
    )
    parser.add_argument("--out", default=None, help="JSON output (default: benchmarks/results/quality.json)")
    return parser.parse_args(argv)


def run_baselines(
    X_train: list[str],
    Y_train: np.ndarray,
    X_test: list[str],
    Y_test: np.ndarray,
    *,
    C: float,
    seed: int,
    n_jobs: int | None,
) -> list[dict[str, Any]]:
    """Fit and score the plain and the thresholded TF-IDF + LR baselines.

    Two fits: the plain model on all of train, and a model on 90 % of train that
    tunes the thresholds on the other 10 %; the thresholded row applies those
    thresholds to the plain model's test probabilities.
    """
    with warnings.catch_warnings():
        # labels without a positive in a small --max-train subset
        warnings.filterwarnings("ignore", message="Label not .* is present", category=UserWarning)
        with Timer() as fit_timer:
            model = make_tfidf_lr(C=C, n_jobs=n_jobs).fit(X_train, Y_train)
        with Timer() as predict_timer:
            Y_score = model.predict_proba(X_test)
        with Timer() as threshold_timer:
            thresholds, _ = tfidf_lr_thresholds(X_train, Y_train, C=C, random_state=seed, n_jobs=n_jobs)
    return [
        {
            "model": "tfidf+lr@0.5",
            **scores(Y_test, Y_score >= 0.5, Y_score),
            "fit_s": fit_timer.seconds,
            "predict_s": predict_timer.seconds,
        },
        {
            "model": "tfidf+lr tuned",
            **scores(Y_test, Y_score >= thresholds, Y_score),
            "fit_s": fit_timer.seconds + threshold_timer.seconds,
            "predict_s": predict_timer.seconds,
        },
    ]


def run_transformer(
    X_train: list[str],
    Y_train: np.ndarray,
    X_test: list[str],
    Y_test: np.ndarray,
    args: argparse.Namespace,
    device: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fit TransformerMultiLabelClassifier; score it with its tuned thresholds and at 0.5."""
    from sktext import TransformerMultiLabelClassifier

    classifier = TransformerMultiLabelClassifier(
        model_name_or_path=args.model,
        max_length=args.max_length,
        batch_size=args.batch_size,
        max_epochs=args.max_epochs,
        lr=args.lr,
        threshold="auto",
        validation_fraction=0.1,
        patience=args.patience,
        device=device,
        random_state=args.seed,
        verbose=1,
    )
    with Timer() as fit_timer:
        classifier.fit(X_train, Y_train)
    with Timer() as predict_timer:
        Y_score = classifier.predict_proba(X_test)
    thresholds = np.asarray(classifier.thresholds_, dtype=float)
    Y_pred = (Y_score >= thresholds).astype(int)
    # predict() must agree with predict_proba() + thresholds_; check on a few texts
    n_check = min(64, len(X_test))
    mismatch = int((np.asarray(classifier.predict(X_test[:n_check])) != Y_pred[:n_check]).sum())
    rows = [
        {
            "model": "transformer",
            **scores(Y_test, Y_pred, Y_score),
            "fit_s": fit_timer.seconds,
            "predict_s": predict_timer.seconds,
        },
        {
            "model": "transformer@0.5",
            **scores(Y_test, Y_score >= 0.5, Y_score),
            "fit_s": fit_timer.seconds,
            "predict_s": predict_timer.seconds,
        },
    ]
    details = {
        "epochs_run": len(classifier.history_),
        "history": [
            {key: value for key, value in epoch.items() if isinstance(value, (int, float, str, bool))}
            for epoch in classifier.history_
        ],
        "thresholds": thresholds,
        "predict_mismatch_on_first_64": mismatch,
    }
    return rows, details


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table and write the JSON file."""
    args = parse_args(argv)
    data = load_debtags(args.data_dir)
    X_train, Y_train = subsample(data.train_texts, data.train_Y, args.max_train, random_state=args.seed)
    X_test, Y_test = subsample(data.test_texts, data.test_Y, args.max_test, random_state=args.seed)
    print(
        f"debtags: {len(X_train):,} train / {len(X_test):,} test records, "
        f"{len(data.label_names)} labels "
        f"({int((Y_train.sum(axis=0) == 0).sum())} without a train positive)"
    )

    rows = run_baselines(X_train, Y_train, X_test, Y_test, C=args.C, seed=args.seed, n_jobs=args.n_jobs)
    print(format_table(rows, COLUMNS), flush=True)
    device = resolve_device(args.device)
    details: dict[str, Any] = {}
    if not args.baselines_only:
        transformer_rows, details = run_transformer(X_train, Y_train, X_test, Y_test, args, device)
        rows += transformer_rows
        print()
        print(format_table(rows, COLUMNS))

    payload = {
        "benchmark": "quality",
        "machine": machine_info(device),
        "config": vars(args),
        "data": {
            "data_dir": data.data_dir,
            "n_train": len(X_train),
            "n_test": len(X_test),
            "n_labels": len(data.label_names),
        },
        "results": rows,
        "transformer": details,
    }
    path = write_results("quality", payload, args.out)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
