"""Imbalanced labels: what ``pos_weight="balanced"`` and ``loss="focal"`` do on debtags.

Fits ``sktext.TransformerMultiLabelClassifier`` several times in one run, on the
same train records, with the same seed and hyper-parameters, changing only the
loss ("arms"):

- ``bce``: the defaults (binary cross-entropy, no label weights);
- ``balanced``: ``pos_weight="balanced"`` (each label's positives weighted by
  negatives / positives on the train records, clipped to [1, 100]);
- ``focal``: ``loss="focal"`` (``focal_gamma=2.0``);
- ``focal+balanced``: both.

Each arm is scored on the debtags test split twice from the same fitted model:
with its tuned per-label thresholds (``threshold="auto"``, the estimator default,
tuned on its 10 % validation split) and at 0.5 (``predict_proba >= 0.5``), because
label weights shift the probabilities. The TF-IDF + logistic regression baseline
with tuned thresholds (``common.tfidf_lr_thresholds``) is fitted on the same train
records for reference.

Besides micro-, macro- and samples-F1 and LRAP (``common.scores``), every row has
macro-F1 over the *rare* labels (fewer than ``--rare-below`` positives in the FULL
train split, default 50) and over the *frequent* ones, each averaged over the
labels of the group that have at least one positive among the scored test
records (a label without test positives has no meaningful F1).

Prints a table and writes ``benchmarks/results/imbalance.json`` (or ``--out``),
rewritten after every arm so that a run cut short keeps the arms it finished.

Examples
--------
Smoke run::

    OMP_NUM_THREADS=1 python benchmarks/imbalance.py --max-train 200 --max-test 200 \\
        --max-epochs 1 --max-length 64 --out /tmp/imbalance_smoke.json

CPU run of the README::

    OMP_NUM_THREADS=1 python benchmarks/imbalance.py --max-train 3000 --max-test 2000 \\
        --max-epochs 2 --max-length 128 --lr 2e-4 --seed 0 \\
        --out benchmarks/results/imbalance_cpu.json
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
from sklearn.metrics import f1_score

ARMS: dict[str, dict[str, Any]] = {
    "bce": {"pos_weight": None, "loss": "bce"},
    "balanced": {"pos_weight": "balanced", "loss": "bce"},
    "focal": {"pos_weight": None, "loss": "focal"},
    "focal+balanced": {"pos_weight": "balanced", "loss": "focal"},
}

COLUMNS = [
    "model",
    "thresholds",
    "micro_f1",
    "macro_f1",
    "samples_f1",
    "lrap",
    "macro_f1_rare",
    "macro_f1_frequent",
    "predicted_cardinality",
    "fit_s",
    "predict_s",
]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="Debtags test scores of TransformerMultiLabelClassifier with "
        "pos_weight='balanced' and / or loss='focal' against the default loss."
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--arms",
        nargs="+",
        default=list(ARMS),
        choices=list(ARMS),
        help="arms to fit, in this order (default: all four)",
    )
    add_transformer_arguments(parser)
    parser.add_argument("--focal-gamma", type=float, default=2.0)
    parser.add_argument(
        "--rare-below",
        type=int,
        default=50,
        help="a label is rare with fewer positives than this in the FULL train split",
    )
    parser.add_argument("--device", default="auto", help='"auto", "cpu", "cuda", "cuda:1"')
    parser.add_argument(
        "--C", type=float, default=8.0, help="inverse regularization of the TF-IDF logistic regressions"
    )
    parser.add_argument("--n-jobs", type=int, default=1, help="labels the TF-IDF baseline fits in parallel (joblib)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON output (default: benchmarks/results/imbalance.json)")
    return parser.parse_args(argv)


def group_scores(Y_true: np.ndarray, Y_pred: np.ndarray, groups: dict[str, np.ndarray]) -> dict[str, float]:
    """Macro-F1 over each group of labels (boolean masks), test-positive labels only."""
    per_label = f1_score(Y_true, Y_pred, average=None, zero_division=0)
    has_positive = np.asarray(Y_true).sum(axis=0) > 0
    result = {}
    for name, mask in groups.items():
        keep = mask & has_positive
        result[f"macro_f1_{name}"] = float(per_label[keep].mean()) if keep.any() else None
    return result


def score_row(
    model: str,
    thresholds: str,
    Y_test: np.ndarray,
    Y_pred: np.ndarray,
    Y_score: np.ndarray,
    groups: dict[str, np.ndarray],
    **extra: Any,
) -> dict[str, Any]:
    """One table row: the common metrics plus the rare / frequent macro-F1."""
    Y_pred = np.asarray(Y_pred).astype(int)
    return {
        "model": model,
        "thresholds": thresholds,
        **scores(Y_test, Y_pred, Y_score),
        **group_scores(Y_test, Y_pred, groups),
        **extra,
    }


def run_tfidf(
    X_train: list[str],
    Y_train: np.ndarray,
    X_test: list[str],
    Y_test: np.ndarray,
    groups: dict[str, np.ndarray],
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """TF-IDF + LR on all the train records, thresholds tuned as in ``quality.py``."""
    with warnings.catch_warnings():
        # labels without a positive in a small --max-train subset
        warnings.filterwarnings("ignore", message="Label not .* is present", category=UserWarning)
        with Timer() as fit_timer:
            model = make_tfidf_lr(C=args.C, n_jobs=args.n_jobs).fit(X_train, Y_train)
            thresholds, _ = tfidf_lr_thresholds(X_train, Y_train, C=args.C, random_state=args.seed, n_jobs=args.n_jobs)
        with Timer() as predict_timer:
            Y_score = model.predict_proba(X_test)
    timing = {"fit_s": fit_timer.seconds, "predict_s": predict_timer.seconds}
    return [
        score_row("tfidf+lr", "tuned", Y_test, Y_score >= thresholds, Y_score, groups, **timing),
        score_row("tfidf+lr", "0.5", Y_test, Y_score >= 0.5, Y_score, groups, **timing),
    ]


def run_arm(
    arm: str,
    X_train: list[str],
    Y_train: np.ndarray,
    X_test: list[str],
    Y_test: np.ndarray,
    groups: dict[str, np.ndarray],
    args: argparse.Namespace,
    device: str,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Fit one arm; score it with its tuned thresholds and at 0.5."""
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
        focal_gamma=args.focal_gamma,
        device=device,
        random_state=args.seed,
        verbose=1,
        **ARMS[arm],
    )
    with Timer() as fit_timer:
        classifier.fit(X_train, Y_train)
    with Timer() as predict_timer:
        Y_score = classifier.predict_proba(X_test)
    thresholds = np.asarray(classifier.thresholds_, dtype=float)
    timing = {"fit_s": fit_timer.seconds, "predict_s": predict_timer.seconds}
    rows = [
        score_row(arm, "tuned", Y_test, Y_score >= thresholds, Y_score, groups, **timing),
        score_row(arm, "0.5", Y_test, Y_score >= 0.5, Y_score, groups, **timing),
    ]
    rare = groups["rare"]
    details = {
        "params": {key: value for key, value in ARMS[arm].items()},
        "epochs_run": len(classifier.history_),
        "history": [
            {key: value for key, value in epoch.items() if isinstance(value, (int, float, str, bool))}
            for epoch in classifier.history_
        ],
        "thresholds": thresholds,
        "median_threshold": float(np.median(thresholds)),
        "median_threshold_rare": float(np.median(thresholds[rare])),
        "median_threshold_frequent": float(np.median(thresholds[~rare])),
        "mean_test_proba": float(Y_score.mean()),
    }
    return rows, details


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table and write the JSON file."""
    args = parse_args(argv)
    data = load_debtags(args.data_dir)
    full_positives = data.train_Y.sum(axis=0)
    rare = full_positives < args.rare_below
    groups = {"rare": rare, "frequent": ~rare}
    X_train, Y_train = subsample(data.train_texts, data.train_Y, args.max_train, random_state=args.seed)
    X_test, Y_test = subsample(data.test_texts, data.test_Y, args.max_test, random_state=args.seed)
    test_positive = Y_test.sum(axis=0) > 0
    subset_positives = Y_train.sum(axis=0)
    label_groups = {
        "rare_below": args.rare_below,
        "n_rare": int(rare.sum()),
        "n_frequent": int((~rare).sum()),
        "n_rare_scored": int((rare & test_positive).sum()),
        "n_frequent_scored": int((~rare & test_positive).sum()),
        "n_rare_without_train_positive": int((rare & (subset_positives == 0)).sum()),
        "median_train_positives_rare": float(np.median(subset_positives[rare])),
        "median_train_positives_frequent": float(np.median(subset_positives[~rare])),
    }
    print(
        f"debtags: {len(X_train):,} train / {len(X_test):,} test records, "
        f"{len(data.label_names)} labels ({int((subset_positives == 0).sum())} without a "
        f"train positive)"
    )
    print(
        f"rare labels (< {args.rare_below} positives in the full train split): "
        f"{label_groups['n_rare']} ({label_groups['n_rare_scored']} with a test positive, "
        f"{label_groups['n_rare_without_train_positive']} without a train positive here, "
        f"median {label_groups['median_train_positives_rare']:g} train positives here); "
        f"frequent: {label_groups['n_frequent']} ({label_groups['n_frequent_scored']} "
        f"with a test positive)",
        flush=True,
    )

    device = resolve_device(args.device)
    payload: dict[str, Any] = {
        "benchmark": "imbalance",
        "machine": machine_info(device),
        "config": vars(args),
        "data": {
            "data_dir": data.data_dir,
            "n_train": len(X_train),
            "n_test": len(X_test),
            "n_labels": len(data.label_names),
            "label_groups": label_groups,
        },
        "results": [],
        "arms": {},
    }

    rows = run_tfidf(X_train, Y_train, X_test, Y_test, groups, args)
    payload["results"] = rows
    print(format_table(rows, COLUMNS), flush=True)
    path = write_results("imbalance", payload, args.out)
    for arm in args.arms:
        print(f"\n== arm {arm}: {ARMS[arm]}", flush=True)
        arm_rows, details = run_arm(arm, X_train, Y_train, X_test, Y_test, groups, args, device)
        rows += arm_rows
        payload["arms"][arm] = details
        path = write_results("imbalance", payload, args.out)
        print()
        print(format_table(rows, COLUMNS), flush=True)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
