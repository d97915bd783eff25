"""An evaluation report of a multi-label classifier: metrics, charts and one HTML page.

:func:`evaluation_metrics` and :func:`threshold_curves` are pure functions of the true
labels and the predicted probabilities; :func:`write_report` adds the charts (drawn
with matplotlib's Agg canvas, imported only there: ``pip install "sktext[report]"``)
and writes ``report.html``, ``metrics.json``, ``f1_by_label.png`` and
``threshold_curves.png`` to a folder.

Target columns (categorical or numeric, one prediction per column) get a plain-text
report instead: :func:`categorical_report` (scikit-learn's ``classification_report``
of one column) and :func:`regression_metrics` (R², MAE, RMSE of one column), which
:func:`write_target_report` writes to ``report.txt`` and ``metrics.json``.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    mean_absolute_error,
    r2_score,
    root_mean_squared_error,
)

from .thresholds import apply_thresholds

__all__ = [
    "evaluation_metrics",
    "threshold_curves",
    "require_matplotlib",
    "write_report",
    "categorical_report",
    "regression_metrics",
    "regression_table",
    "write_target_report",
]

REPORT_FILE = "report.html"
METRICS_FILE = "metrics.json"
TARGET_REPORT_FILE = "report.txt"
F1_CHART_FILE = "f1_by_label.png"
CURVES_CHART_FILE = "threshold_curves.png"
#: Labels drawn in the per-label F1 chart (the most frequent ones).
MAX_CHART_LABELS = 60
#: Labels given their own precision / recall panel besides the micro average.
N_CURVE_LABELS = 5
AVERAGES = ("micro avg", "macro avg", "weighted avg", "samples avg")


def evaluation_metrics(
    Y: np.ndarray, proba: np.ndarray, thresholds: np.ndarray, label_names: Sequence[str]
) -> dict[str, Any]:
    """Scores of thresholded predictions, as a JSON-serialisable dict.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_labels)
        True 0/1 labels.
    proba : ndarray of shape (n_samples, n_labels)
        Predicted probabilities.
    thresholds : ndarray of shape (n_labels,)
        Decision threshold of each label (``thresholds_``).
    label_names : sequence of str of length n_labels

    Returns
    -------
    metrics : dict
        ``f1_micro``, ``f1_macro``, ``f1_samples``, ``f1_weighted``, ``precision_micro``,
        ``recall_micro``, ``subset_accuracy``, ``n_samples``, ``n_labels``, ``thresholds``
        (by label) and ``classification_report`` (scikit-learn's, as a dict).
    """
    predicted = apply_thresholds(proba, thresholds)
    if Y.shape[1] == 1:
        report = _one_label_report(np.asarray(Y)[:, 0], predicted[:, 0], str(label_names[0]))
    else:
        report = classification_report(Y, predicted, target_names=list(label_names), output_dict=True, zero_division=0)
    return {
        "n_samples": int(Y.shape[0]),
        "n_labels": int(Y.shape[1]),
        "f1_micro": report["micro avg"]["f1-score"],
        "f1_macro": report["macro avg"]["f1-score"],
        "f1_samples": report["samples avg"]["f1-score"],
        "f1_weighted": report["weighted avg"]["f1-score"],
        "precision_micro": report["micro avg"]["precision"],
        "recall_micro": report["micro avg"]["recall"],
        "subset_accuracy": float(accuracy_score(Y, predicted)),
        "thresholds": {name: float(value) for name, value in zip(label_names, thresholds)},
        "classification_report": _plain(report),
    }


def _one_label_report(y_true: np.ndarray, y_pred: np.ndarray, name: str) -> dict[str, Any]:
    """``classification_report`` of a single label, with the rows it has for several.

    scikit-learn reads one 0/1 column as the binary classes 0 and 1, so the label is
    reported as its positive class; per sample, precision, recall and F1 are then 1
    where the label is both true and predicted and 0 elsewhere (``zero_division=0``),
    which is what the samples average of a multi-label report would hold.
    """
    report = classification_report(y_true, y_pred, labels=[1], target_names=[name], output_dict=True, zero_division=0)
    both = float(np.mean((y_true == 1) & (y_pred == 1)))
    report["samples avg"] = {"precision": both, "recall": both, "f1-score": both, "support": report[name]["support"]}
    return report


def _plain(value: Any) -> Any:
    """Numpy scalars inside nested dicts as Python numbers."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _counts_at_least(values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """How many ``values`` are >= each grid point."""
    return len(values) - np.searchsorted(np.sort(values), grid, side="left")


def threshold_curves(Y: np.ndarray, proba: np.ndarray, grid: np.ndarray) -> dict[str, np.ndarray]:
    """Precision and recall of each label, and micro-averaged, at each threshold of ``grid``.

    A sample is predicted positive when its probability is >= the threshold, as in
    ``predict``. Recall never rises with the threshold; precision may go either way.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_labels)
    proba : ndarray of shape (n_samples, n_labels)
    grid : ndarray of shape (n_thresholds,)

    Returns
    -------
    curves : dict
        ``precision`` and ``recall`` of shape (n_labels, n_thresholds), and
        ``micro_precision`` and ``micro_recall`` of shape (n_thresholds,). Precision is
        NaN where nothing is predicted, recall where a label has no positive.
    """
    Y = np.asarray(Y).astype(bool)
    true_positives = np.stack([_counts_at_least(proba[Y[:, j], j], grid) for j in range(Y.shape[1])])
    predicted = np.stack([_counts_at_least(proba[:, j], grid) for j in range(Y.shape[1])])
    positives = Y.sum(axis=0)[:, None]

    def ratio(numerator, denominator):
        numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
        return np.divide(
            numerator,
            denominator,
            out=np.full(np.broadcast(numerator, denominator).shape, np.nan),
            where=denominator > 0,
        )

    return {
        "precision": ratio(true_positives, predicted),
        "recall": ratio(true_positives, np.broadcast_to(positives, true_positives.shape)),
        "micro_precision": ratio(true_positives.sum(axis=0), predicted.sum(axis=0)),
        "micro_recall": ratio(true_positives.sum(axis=0), positives.sum()),
    }


def _f1(precision: np.ndarray, recall: np.ndarray) -> np.ndarray:
    with np.errstate(invalid="ignore", divide="ignore"):
        return 2 * precision * recall / (precision + recall)


# -- charts ------------------------------------------------------------------------------
def require_matplotlib() -> None:
    """Raise an ImportError that says how to install matplotlib, if it is missing."""
    try:
        import matplotlib  # noqa: F401  (availability check)
    except ImportError as error:
        raise ImportError(
            "The evaluation report draws its charts with matplotlib, which is not installed; "
            'install it with: pip install "sktext[report]"'
        ) from error


def _figure(width: float, height: float):
    """A matplotlib figure on the Agg canvas (no pyplot, no global backend change)."""
    require_matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=100, layout="constrained")
    FigureCanvasAgg(figure)
    return figure


def plot_f1_by_label(metrics: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Horizontal bars of each label's F1, the most frequent label on top.

    Parameters
    ----------
    metrics : dict
        What :func:`evaluation_metrics` returns.
    path : str or path-like
        The PNG to write.
    """
    report = metrics["classification_report"]
    labels = [name for name in report if name not in AVERAGES]
    labels.sort(key=lambda name: -report[name]["support"])
    shown = labels[:MAX_CHART_LABELS]
    figure = _figure(9, 1.4 + 0.27 * len(shown))
    axes = figure.add_subplot()
    positions = np.arange(len(shown))
    scores = [report[name]["f1-score"] for name in shown]
    axes.barh(positions, scores, color="#4878a8")
    axes.set_yticks(positions, [f"{name}  (n={report[name]['support']:.0f})" for name in shown], fontsize=8)
    axes.set_ylim(len(shown) - 0.5, -0.5)  # most frequent on top, no empty margins
    for position, score in zip(positions, scores):
        axes.text(score + 0.01, position, f"{score:.2f}", va="center", fontsize=7)
    for key, style in (("f1_micro", "--"), ("f1_macro", ":")):
        axes.axvline(metrics[key], color="#c44e52", linestyle=style, label=f"{key} = {metrics[key]:.3f}")
    axes.set_xlim(0, 1.08)
    axes.set_xlabel("F1 at the model's thresholds")
    more = f" ({len(shown)} most frequent of {len(labels)})" if len(shown) < len(labels) else ""
    axes.set_title(f"F1 by label, most frequent first (n = samples with the label){more}")
    axes.legend(loc="lower right", fontsize=8)
    figure.savefig(path)


def _plot_curve(axes, grid, precision, recall, title) -> None:
    axes.plot(grid, precision, label="precision", color="#4878a8")
    axes.plot(grid, recall, label="recall", color="#55a868")
    axes.plot(grid, _f1(precision, recall), label="F1", color="#8c8c8c", linestyle=":")
    axes.set_title(title, fontsize=9)
    axes.set_xlim(0, 1)
    axes.set_ylim(0, 1.02)
    axes.set_xlabel("threshold", fontsize=8)
    axes.tick_params(labelsize=7)
    axes.grid(alpha=0.3)


def plot_threshold_curves(
    Y: np.ndarray, proba: np.ndarray, metrics: Mapping[str, Any], path: str | os.PathLike
) -> None:
    """Precision, recall and F1 against the threshold: micro-averaged, then frequent labels.

    The micro panel applies one threshold to every label; it marks each label's
    tuned threshold as a tick on the x axis and, as dashed horizontal lines, the
    micro precision and recall those per-label thresholds give. Each label's panel
    marks its threshold with a dashed vertical line.

    Parameters
    ----------
    Y : ndarray of shape (n_samples, n_labels)
    proba : ndarray of shape (n_samples, n_labels)
    metrics : dict
        What :func:`evaluation_metrics` returns.
    path : str or path-like
        The PNG to write.
    """
    from matplotlib.lines import Line2D

    grid = np.linspace(0, 1, 201)
    curves = threshold_curves(Y, proba, grid)
    names = list(metrics["thresholds"])
    thresholds = np.array([metrics["thresholds"][name] for name in names])
    support = np.asarray(Y).sum(axis=0)
    frequent = np.argsort(-support, kind="stable")[:N_CURVE_LABELS]
    n_panels = 1 + len(frequent)
    columns = min(3, n_panels)
    figure = _figure(4 * columns, 3.1 * -(-n_panels // columns) + 0.6)
    panels = figure.subplots(-(-n_panels // columns), columns, squeeze=False).ravel()

    micro = panels[0]
    _plot_curve(
        micro, grid, curves["micro_precision"], curves["micro_recall"], "micro average, one threshold for all labels"
    )
    micro.plot(thresholds, np.zeros_like(thresholds), "|", color="#c44e52", markersize=12)
    micro.axhline(metrics["precision_micro"], color="#4878a8", linestyle="--", linewidth=0.9)
    micro.axhline(metrics["recall_micro"], color="#55a868", linestyle="--", linewidth=0.9)
    for axes, label in zip(panels[1:], frequent):
        _plot_curve(
            axes,
            grid,
            curves["precision"][label],
            curves["recall"][label],
            f"{names[label]}  (n={support[label]}, threshold {thresholds[label]:.2f})",
        )
        axes.axvline(thresholds[label], color="#c44e52", linestyle="--")
    for axes in panels[n_panels:]:
        axes.set_visible(False)
    handles = [
        Line2D([], [], color="#4878a8", label="precision"),
        Line2D([], [], color="#55a868", label="recall"),
        Line2D([], [], color="#8c8c8c", linestyle=":", label="F1"),
        Line2D([], [], color="#c44e52", linestyle="--", label="the label's threshold"),
        Line2D(
            [],
            [],
            color="#c44e52",
            marker="|",
            linestyle="",
            markersize=12,
            label="micro panel: every label's threshold",
        ),
        Line2D([], [], color="#4878a8", linestyle="--", label="micro precision at the labels' thresholds"),
        Line2D([], [], color="#55a868", linestyle="--", label="micro recall at the labels' thresholds"),
    ]
    figure.legend(handles=handles, loc="outside lower center", ncols=4, fontsize=8, frameon=False)
    figure.suptitle(
        "Precision and recall against the decision threshold "
        "(micro average, then the most frequent labels; n = samples with the label)",
        fontsize=10,
    )
    figure.savefig(path)


# -- the page ---------------------------------------------------------------------------
def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], css_class: str = "") -> str:
    def cell(value: Any, tag: str) -> str:
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        return f"<{tag}>{html.escape(text)}</{tag}>"

    head = "".join(cell(name, "th") for name in header)
    body = "\n".join("<tr>" + "".join(cell(value, "td") for value in row) + "</tr>" for row in rows)
    return f'<table class="{css_class}">\n<tr>{head}</tr>\n{body}\n</table>'


def _classification_table(metrics: Mapping[str, Any]) -> str:
    report = metrics["classification_report"]
    rows = [
        [
            name,
            values["precision"],
            values["recall"],
            values["f1-score"],
            int(values["support"]),
            metrics["thresholds"].get(name, ""),
        ]
        for name, values in report.items()
    ]
    return _table(["label", "precision", "recall", "f1-score", "support", "threshold"], rows, "report")


_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
table.report tr:nth-last-child(-n+4) { font-weight: bold; background: #fafafa; }
img { max-width: 100%; border: 1px solid #eee; }
"""


def render_html(metrics: Mapping[str, Any], context: Mapping[str, Any], files: Mapping[str, str]) -> str:
    """The report page; images are referenced by their file names, beside it."""
    summary = [[key, value] for key, value in context.items()] + [
        ["samples", metrics["n_samples"]],
        ["labels", metrics["n_labels"]],
        ["micro F1", metrics["f1_micro"]],
        ["macro F1", metrics["f1_macro"]],
        ["samples F1", metrics["f1_samples"]],
        ["micro precision", metrics["precision_micro"]],
        ["micro recall", metrics["recall_micro"]],
        ["subset accuracy", metrics["subset_accuracy"]],
    ]
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>sktext evaluation report</title><style>{_STYLE}</style></head>
<body>
<h1>sktext evaluation report</h1>
{_table(["", "value"], summary)}
<h2>F1 by label</h2>
<img src="{html.escape(files["f1_by_label"])}" alt="F1 by label, sorted by support">
<h2>Precision and recall against the threshold</h2>
<img src="{html.escape(files["threshold_curves"])}" alt="precision and recall against the threshold">
<h2>Classification report</h2>
<p>scikit-learn's <code>classification_report</code> at the model's thresholds
(<code>thresholds_</code>); support is the number of samples with the label.</p>
{_classification_table(metrics)}
</body>
</html>
"""


def write_report(
    folder: str | os.PathLike,
    Y: np.ndarray,
    proba: np.ndarray,
    thresholds: np.ndarray,
    label_names: Sequence[str],
    *,
    context: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write ``report.html``, ``metrics.json`` and the two PNG charts to ``folder``.

    Parameters
    ----------
    folder : str or path-like
        Created if missing; the four files are overwritten.
    Y : ndarray of shape (n_samples, n_labels)
        True 0/1 labels.
    proba : ndarray of shape (n_samples, n_labels)
        Predicted probabilities.
    thresholds : ndarray of shape (n_labels,)
    label_names : sequence of str of length n_labels
    context : mapping, optional
        Extra ``name: value`` rows for the page's summary (model, data file...).

    Returns
    -------
    metrics : dict
        What ``metrics.json`` holds: :func:`evaluation_metrics` plus ``files``.

    Raises
    ------
    ImportError
        If matplotlib is not installed (``pip install "sktext[report]"``).
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    label_names = [str(name) for name in label_names]
    metrics = evaluation_metrics(Y, proba, np.asarray(thresholds), label_names)
    files = {"f1_by_label": F1_CHART_FILE, "threshold_curves": CURVES_CHART_FILE}
    plot_f1_by_label(metrics, folder / F1_CHART_FILE)
    plot_threshold_curves(Y, proba, metrics, folder / CURVES_CHART_FILE)
    metrics["files"] = {**files, "report": REPORT_FILE}
    (folder / REPORT_FILE).write_text(render_html(metrics, dict(context or {}), files), encoding="utf-8")
    (folder / METRICS_FILE).write_text(json.dumps(metrics, indent=2), encoding="utf-8")
    return metrics


# -- target columns ----------------------------------------------------------------------
def categorical_report(y_true: Sequence[str], y_pred: Sequence[str]) -> tuple[dict[str, Any], str]:
    """Scores of one categorical target column, as a dict and as scikit-learn's text.

    Parameters
    ----------
    y_true, y_pred : sequence of str of length n_samples
        True and predicted classes.

    Returns
    -------
    metrics : dict
        ``kind`` ("categorical"), ``n_samples``, ``accuracy`` and
        ``classification_report`` (scikit-learn's, as a dict).
    text : str
        ``classification_report`` as scikit-learn prints it.
    """
    report = classification_report(y_true, y_pred, output_dict=True, zero_division=0)
    metrics = {
        "kind": "categorical",
        "n_samples": len(y_true),
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "classification_report": _plain(report),
    }
    return metrics, classification_report(y_true, y_pred, zero_division=0)


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """R², mean absolute error and root mean squared error of one numeric target column.

    Parameters
    ----------
    y_true, y_pred : ndarray of shape (n_samples,)

    Returns
    -------
    metrics : dict
        ``kind`` ("regression"), ``n_samples``, ``r2``, ``mae`` and ``rmse``.
    """
    return {
        "kind": "regression",
        "n_samples": len(y_true),
        "r2": float(r2_score(y_true, y_pred)),
        "mae": float(mean_absolute_error(y_true, y_pred)),
        "rmse": float(root_mean_squared_error(y_true, y_pred)),
    }


def regression_table(metrics: Mapping[str, Mapping[str, Any]]) -> str:
    """One line of R², MAE and RMSE per column (``{column: regression_metrics(...)}``)."""
    width = max(len("column"), *(len(str(column)) for column in metrics))
    lines = [f"{'column':<{width}}  {'R2':>9}  {'MAE':>9}  {'RMSE':>9}"]
    lines += [
        f"{column:<{width}}  {values['r2']:>9.3f}  {values['mae']:>9.4g}  {values['rmse']:>9.4g}"
        for column, values in metrics.items()
    ]
    return "\n".join(lines) + "\n"


def write_target_report(
    folder: str | os.PathLike,
    targets: Mapping[str, Mapping[str, Any]],
    text: str,
    *,
    metrics: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the target columns' ``report.txt`` and ``metrics.json`` to ``folder``.

    Parameters
    ----------
    folder : str or path-like
        Created if missing.
    targets : mapping
        ``{column: metrics}`` of :func:`categorical_report` or :func:`regression_metrics`.
    text : str
        The report as printed, written to ``report.txt``.
    metrics : mapping, optional
        Other metrics of the same evaluation (those :func:`write_report` returned, for
        a model that also predicts labels); ``metrics.json`` holds them too.

    Returns
    -------
    metrics : dict
        What ``metrics.json`` holds: ``metrics``, the targets under ``"targets"``.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    combined = dict(metrics or {})
    combined.setdefault("n_samples", next(iter(targets.values()))["n_samples"])
    combined["targets"] = {str(column): _plain(values) for column, values in targets.items()}
    combined["files"] = {**combined.get("files", {}), "target_report": TARGET_REPORT_FILE}
    (folder / TARGET_REPORT_FILE).write_text(text, encoding="utf-8")
    (folder / METRICS_FILE).write_text(json.dumps(combined, indent=2), encoding="utf-8")
    return combined
