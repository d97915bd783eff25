"""Mixed-head benchmark: one transformer for 326 debtags + Debian section + priority.

The real mixed-head task: the targets are a pandas DataFrame with the 326 debtags as
0/1 columns (sigmoid heads, tuned thresholds) and two categorical columns (softmax
heads), the package's Debian ``section`` (57 values) and ``priority`` (5 values,
99.6 % ``optional``), from ``benchmarks/data/debtags_fields.jsonl.gz``
(:func:`common.load_debtags_fields`). One ``sktext.TransformerMultiLabelClassifier``
is fitted once on all 328 columns; it is compared, on the same train records and in
the same run, with separate baselines per target:

- debtags block: TF-IDF + one-vs-rest logistic regression
  (``sktext.baselines.tfidf_logistic_regression``), at threshold 0.5 and with
  per-label thresholds tuned on a stratified 10 % of train (as ``quality.py``);
- ``section`` and ``priority``: the same TF-IDF features + one multinomial
  ``LogisticRegression`` per target;
- ``priority`` (and ``section``): the majority class of train. Accuracy alone says
  nothing for ``priority``; macro-F1 does.

Scores on the debtags test split (or a random subset of it): micro-, macro- and
samples-F1 and LRAP for the debtags block; accuracy, macro-F1 and
``classification_report`` for ``section`` and ``priority``. Prints one table row per
(model, target) and writes ``benchmarks/results/mixed.json`` (or ``--out``).

Examples
--------
CPU smoke run::

    OMP_NUM_THREADS=1 python benchmarks/mixed.py --max-train 200 --max-test 200 \\
        --max-epochs 1 --max-length 128 --out benchmarks/results/mixed_smoke.json
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
    load_debtags_fields,
    machine_info,
    make_tfidf_lr,
    resolve_device,
    scores,
    tfidf_lr_thresholds,
    write_results,
)
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import accuracy_score, classification_report, f1_score
from sklearn.pipeline import make_pipeline

CATEGORICAL = ("section", "priority")
COLUMNS = ["model", "target", "micro_f1", "macro_f1", "samples_f1", "lrap", "accuracy", "fit_s", "predict_s"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(
        description="One TransformerMultiLabelClassifier on debtags (0/1) + section + "
        "priority (categorical), beside separate TF-IDF baselines per target."
    )
    add_data_arguments(parser)
    parser.add_argument(
        "--fields", default=None, help="section/priority file (default: benchmarks/data/debtags_fields.jsonl.gz)"
    )
    add_transformer_arguments(parser)
    parser.add_argument("--device", default="auto", help='"auto", "cpu", "cuda", "cuda:1"')
    parser.add_argument("--C", type=float, default=8.0, help="inverse regularization of the logistic regressions")
    parser.add_argument(
        "--n-jobs", type=int, default=1, help="labels the one-vs-rest baseline fits in parallel (joblib)"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="JSON output (default: benchmarks/results/mixed.json)")
    return parser.parse_args(argv)


def draw_rows(n_total: int, n_samples: int | None, seed: int) -> np.ndarray:
    """Row indices of a random subset, in order (the draw of ``common.subsample``)."""
    if n_samples is None or n_samples >= n_total:
        return np.arange(n_total)
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n_total, size=n_samples, replace=False))


def categorical_scores(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy, macro-F1 (over the classes present in truth or prediction) and the report."""
    y_true = np.asarray(y_true, dtype=object).astype(str)
    y_pred = np.asarray(y_pred, dtype=object).astype(str)
    labels = sorted(set(y_true) | set(y_pred))
    report = classification_report(y_true, y_pred, labels=labels, zero_division=0, output_dict=True)
    text = classification_report(y_true, y_pred, labels=labels, zero_division=0, digits=4)
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(f1_score(y_true, y_pred, labels=labels, average="macro", zero_division=0)),
        "n_classes_true": len(set(y_true)),
        "n_classes_pred": len(set(y_pred)),
        "report": report,
        "report_text": text,
    }


def summary_lines(report_text: str) -> str:
    """The accuracy / macro avg / weighted avg lines of a classification report."""
    keep = [
        line for line in report_text.splitlines() if line.strip().startswith(("accuracy", "macro avg", "weighted avg"))
    ]
    return "\n".join(keep)


def run_baselines(
    X_train: list[str],
    Y_train: np.ndarray,
    cats_train: dict[str, np.ndarray],
    X_test: list[str],
    Y_test: np.ndarray,
    cats_test: dict[str, np.ndarray],
    *,
    C: float,
    seed: int,
    n_jobs: int | None,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Separate baselines: OvR TF-IDF+LR (debtags), multinomial TF-IDF+LR and majority per categorical."""
    rows: list[dict[str, Any]] = []
    reports: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Label not .* is present", category=UserWarning)
        with Timer() as fit_timer:
            model = make_tfidf_lr(C=C, n_jobs=n_jobs).fit(X_train, Y_train)
        with Timer() as predict_timer:
            Y_score = model.predict_proba(X_test)
        with Timer() as threshold_timer:
            thresholds, _ = tfidf_lr_thresholds(X_train, Y_train, C=C, random_state=seed, n_jobs=n_jobs)
    rows.append(
        {
            "model": "tfidf+lr@0.5",
            "target": "debtags",
            **scores(Y_test, Y_score >= 0.5, Y_score),
            "fit_s": fit_timer.seconds,
            "predict_s": predict_timer.seconds,
        }
    )
    rows.append(
        {
            "model": "tfidf+lr tuned",
            "target": "debtags",
            **scores(Y_test, Y_score >= thresholds, Y_score),
            "fit_s": fit_timer.seconds + threshold_timer.seconds,
            "predict_s": predict_timer.seconds,
        }
    )

    for name in CATEGORICAL:
        y_train, y_test = cats_train[name], cats_test[name]
        # same features as the one-vs-rest baseline; lbfgs fits one multinomial model
        vectorizer = make_tfidf_lr(C=C).steps[0][1]
        classifier = make_pipeline(vectorizer, LogisticRegression(C=C, max_iter=2000))
        with Timer() as fit_timer:
            classifier.fit(X_train, y_train)
        with Timer() as predict_timer:
            y_pred = classifier.predict(X_test)
        result = categorical_scores(y_test, y_pred)
        reports[f"tfidf+lr multinomial/{name}"] = result
        rows.append(
            {
                "model": "tfidf+lr multinomial",
                "target": name,
                "accuracy": result["accuracy"],
                "macro_f1": result["macro_f1"],
                "fit_s": fit_timer.seconds,
                "predict_s": predict_timer.seconds,
            }
        )

        values, counts = np.unique(y_train, return_counts=True)
        majority = values[counts.argmax()]
        result = categorical_scores(y_test, np.full(len(y_test), majority, dtype=object))
        result["majority_class"] = majority
        reports[f"majority/{name}"] = result
        rows.append(
            {
                "model": "majority",
                "target": name,
                "accuracy": result["accuracy"],
                "macro_f1": result["macro_f1"],
                "fit_s": 0.0,
                "predict_s": 0.0,
            }
        )
    return rows, reports


def run_transformer(
    X_train: list[str],
    y_train,
    X_test: list[str],
    Y_test: np.ndarray,
    cats_test: dict[str, np.ndarray],
    label_names: list[str],
    args: argparse.Namespace,
    device: str,
) -> tuple[list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
    """Fit one TransformerMultiLabelClassifier on the mixed DataFrame; score every block."""
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
        classifier.fit(X_train, y_train)
    with Timer() as predict_timer:
        proba = classifier.predict_proba(X_test)
    columns = list(y_train.columns)
    layout = classifier.output_layout_
    thresholds = np.asarray(classifier.thresholds_, dtype=float)
    binary = [j for j, target in enumerate(layout.targets) if target.kind == "binary"]
    assert [columns[j] for j in binary] == label_names
    Y_score = np.column_stack([proba[j][:, 1] for j in binary])
    Y_pred = (Y_score >= thresholds).astype(int)

    rows = [
        {
            "model": "transformer (mixed)",
            "target": "debtags",
            **scores(Y_test, Y_pred, Y_score),
            "fit_s": fit_timer.seconds,
            "predict_s": predict_timer.seconds,
        },
        {
            "model": "transformer (mixed)@0.5",
            "target": "debtags",
            **scores(Y_test, Y_score >= 0.5, Y_score),
            "fit_s": fit_timer.seconds,
            "predict_s": predict_timer.seconds,
        },
    ]
    reports: dict[str, Any] = {}
    predicted_cats = {}
    for name in CATEGORICAL:
        j = columns.index(name)
        y_pred = classifier.classes_[j][proba[j].argmax(axis=1)]
        predicted_cats[name] = y_pred
        result = categorical_scores(cats_test[name], y_pred)
        reports[f"transformer (mixed)/{name}"] = result
        rows.append(
            {
                "model": "transformer (mixed)",
                "target": name,
                "accuracy": result["accuracy"],
                "macro_f1": result["macro_f1"],
                "fit_s": fit_timer.seconds,
                "predict_s": predict_timer.seconds,
            }
        )

    # predict() must agree with predict_proba() + thresholds_; check on a few texts
    n_check = min(32, len(X_test))
    predicted = classifier.predict(X_test[:n_check])
    mismatch = int((predicted[:, binary].astype(int) != Y_pred[:n_check]).sum())
    for name in CATEGORICAL:
        j = columns.index(name)
        mismatch += int((predicted[:, j] != predicted_cats[name][:n_check]).sum())
    details = {
        "epochs_run": len(classifier.history_),
        "history": [
            {key: value for key, value in epoch.items() if isinstance(value, (int, float, str, bool))}
            for epoch in classifier.history_
        ],
        "thresholds": thresholds,
        "classes": {name: classifier.classes_[columns.index(name)] for name in CATEGORICAL},
        "predict_mismatch_on_first_32": mismatch,
    }
    return rows, reports, details


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table and write the JSON file."""
    import pandas as pd

    args = parse_args(argv)
    data = load_debtags(args.data_dir)
    fields = load_debtags_fields(args.fields)
    train_rows = draw_rows(len(data.train_texts), args.max_train, args.seed)
    test_rows = draw_rows(len(data.test_texts), args.max_test, args.seed)
    X_train = [data.train_texts[row] for row in train_rows]
    X_test = [data.test_texts[row] for row in test_rows]
    Y_train, Y_test = data.train_Y[train_rows], data.test_Y[test_rows]
    cats_train = {
        name: np.array([fields[data.train_ids[row]][name] for row in train_rows], dtype=object) for name in CATEGORICAL
    }
    cats_test = {
        name: np.array([fields[data.test_ids[row]][name] for row in test_rows], dtype=object) for name in CATEGORICAL
    }

    y_train = pd.DataFrame(Y_train, columns=data.label_names)
    for name in CATEGORICAL:
        y_train[name] = pd.Series(cats_train[name], dtype=object)
    print(
        f"debtags: {len(X_train):,} train / {len(X_test):,} test records; y = "
        f"{y_train.shape[1]} columns ({len(data.label_names)} 0/1 debtags, "
        f"{int((Y_train.sum(axis=0) == 0).sum())} without a train positive, + "
        + ", ".join(
            f"{name} ({len(set(cats_train[name]))} train / {len(set(cats_test[name]))} test classes)"
            for name in CATEGORICAL
        )
        + ")",
        flush=True,
    )

    rows, reports = run_baselines(
        X_train, Y_train, cats_train, X_test, Y_test, cats_test, C=args.C, seed=args.seed, n_jobs=args.n_jobs
    )
    print(format_table(rows, COLUMNS), flush=True)
    device = resolve_device(args.device)
    transformer_rows, transformer_reports, details = run_transformer(
        X_train, y_train, X_test, Y_test, cats_test, data.label_names, args, device
    )
    rows += transformer_rows
    reports.update(transformer_reports)
    order = {"debtags": 0, "section": 1, "priority": 2}
    rows.sort(key=lambda row: order[row["target"]])

    print()
    print(format_table(rows, COLUMNS))
    for key, result in reports.items():
        model, name = key.split("/")
        if model == "majority":
            continue
        print(f"\n{model}: {name} classification_report" + (" (summary lines)" if name == "section" else ""))
        print(summary_lines(result["report_text"]) if name == "section" else result["report_text"])

    payload = {
        "benchmark": "mixed",
        "machine": machine_info(device),
        "config": vars(args),
        "data": {
            "data_dir": data.data_dir,
            "n_train": len(X_train),
            "n_test": len(X_test),
            "n_debtags": len(data.label_names),
            "categorical": {
                name: {
                    "train_counts": dict(zip(*np.unique(cats_train[name], return_counts=True))),
                    "test_counts": dict(zip(*np.unique(cats_test[name], return_counts=True))),
                }
                for name in CATEGORICAL
            },
        },
        "results": rows,
        "reports": {key: {k: v for k, v in result.items() if k != "report_text"} for key, result in reports.items()},
        "transformer": details,
    }
    path = write_results("mixed", payload, args.out)
    print(f"\nwrote {path}")
    return payload


if __name__ == "__main__":
    main()
