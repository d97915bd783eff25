"""The evaluation report and the model card at 1,000 to 20,000 labels (issue 21).

For each ``--labels`` count, on ``--texts`` texts of random Zipf-like labels (label j
on a text with probability proportional to ``1 / (j + 1)``, about 4 labels a text) and
probabilities that lean towards the true labels (float32, as estimators return them):

- **metrics s**: :func:`sktext.report.evaluation_metrics` alone (the classification
  report, precision@k, nDCG@k and PSP@k);
- **report s**: :func:`sktext.report.write_report`, which computes the metrics again and
  draws the two charts, writes ``report.html`` and ``metrics.json``: the cost of
  ``sktext evaluate`` after prediction;
- **html bytes** and **json bytes**: the sizes of ``report.html`` and ``metrics.json``;
- **card s** and **card bytes**: :func:`sktext.card.model_card` of a classifier's
  manifest with these labels, thresholds and training positives (made up here: the
  card reads only the manifest, so no model is fitted).

The labels are a dense bool matrix; the probabilities are scored in blocks of rows,
so the report adds some tens of MB to the 400 MB of float32 probabilities at 20,000.

Example::

    OMP_NUM_THREADS=1 python benchmarks/report_scale.py --labels 1000 5000 20000 --texts 5000
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from common import Timer, format_table, machine_info, write_results

import sktext
from sktext.card import model_card
from sktext.report import METRICS_FILE, REPORT_FILE, evaluation_metrics, write_report

#: Training texts the made-up training positives (and PSP@k's propensities) are counted on.
N_TRAINING = 20_000
COLUMNS = ["labels", "metrics_s", "report_s", "html_bytes", "json_bytes", "card_s", "card_bytes"]


def zipf_case(
    n_texts: int, n_labels: int, seed: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """``(Y, proba, thresholds, training positives, names)`` of one random draw."""
    rng = np.random.default_rng(seed)
    frequency = (4 / np.sum(1 / np.arange(1, n_labels + 1)) / np.arange(1, n_labels + 1)).astype(np.float32)
    Y = np.empty((n_texts, n_labels), dtype=bool)
    for start in range(0, n_texts, 500):  # no float64 matrix of the whole draw
        Y[start : start + 500] = rng.random((min(500, n_texts - start), n_labels), dtype=np.float32) < frequency
    proba = rng.random((n_texts, n_labels), dtype=np.float32)
    proba *= 0.6
    proba[Y] += 0.4
    thresholds = rng.uniform(0.3, 0.7, n_labels)
    support = rng.binomial(N_TRAINING, np.minimum(frequency.astype(float), 1.0))
    return Y, proba, thresholds, support, [f"label-{j:05d}" for j in range(n_labels)]


def classifier_manifest(names: list[str], thresholds: np.ndarray, support: np.ndarray) -> dict:
    """The parts of a saved classifier's ``sktext.json`` that its card reads."""
    return {
        "sktext_version": sktext.__version__,
        "estimator": "TransformerMultiLabelClassifier",
        "params": {"model_name_or_path": "prajjwal1/bert-tiny", "threshold": "auto", "validation_fraction": 0.1},
        "classes": {"type": "str", "values": names},
        "output_layout": None,
        "n_outputs": len(names),
        "thresholds": {"__ndarray__": thresholds.tolist(), "dtype": "<f8"},
        "attributes": {"label_support_": {"__ndarray__": support.tolist(), "dtype": "<i8"}},
    }


def measure(n_texts: int, n_labels: int, seed: int, folder: Path) -> dict:
    Y, proba, thresholds, support, names = zipf_case(n_texts, n_labels, seed)
    counts = {"label_support": support, "n_training_samples": N_TRAINING}
    with Timer() as metrics_timer:
        evaluation_metrics(Y, proba, thresholds, names, **counts)
    with Timer() as report_timer:
        metrics = write_report(folder, Y, proba, thresholds, names, context={"data": "zipf"}, **counts)
    manifest = classifier_manifest(names, thresholds, support)
    with Timer() as card_timer:
        card = model_card(manifest, name="report-scale")
    return {
        "labels": n_labels,
        "texts": n_texts,
        "mean_labels_per_text": float(Y.sum() / n_texts),
        "metrics_s": metrics_timer.seconds,
        "report_s": report_timer.seconds,
        "html_bytes": (folder / REPORT_FILE).stat().st_size,
        "json_bytes": (folder / METRICS_FILE).stat().st_size,
        "card_s": card_timer.seconds,
        "card_bytes": len(card.encode("utf-8")),
        "f1_micro": metrics["f1_micro"],
        "precision_at_k": metrics["precision_at_k"],
        "psp_at_k": metrics["psp_at_k"],
    }


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--labels", type=int, nargs="+", default=[1000, 5000, 20000])
    parser.add_argument("--texts", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=None, help="results JSON (default benchmarks/results/report_scale.json)")
    args = parser.parse_args(argv)
    import matplotlib.backends.backend_agg  # noqa: F401  (imported once before timing, as the charts need it)
    import matplotlib.figure  # noqa: F401

    rows = []
    for n_labels in args.labels:
        with tempfile.TemporaryDirectory() as folder:
            rows.append(measure(args.texts, n_labels, args.seed, Path(folder)))
        print(format_table(rows[-1:], COLUMNS), flush=True)
    print(format_table(rows, COLUMNS))
    path = write_results(
        "report_scale",
        {"texts": args.texts, "seed": args.seed, "rows": rows, "machine": machine_info("cpu")},
        args.out,
    )
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
