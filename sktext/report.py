"""An evaluation report of a multi-label classifier: metrics, charts and one HTML page.

:func:`evaluation_metrics`, :func:`ranking_metrics` and :func:`threshold_curves` are
pure functions of the true labels and the predicted probabilities; :func:`write_report`
adds the charts (drawn with matplotlib's Agg canvas, imported only there:
``pip install "sktext[report]"``) and writes ``report.html``, ``metrics.json``,
``f1_by_label.png`` and ``threshold_curves.png`` to a folder.

The scores are counted in blocks of rows, so that a large label space (5,000 texts x
20,000 labels: 400 MB of float32 probabilities) costs a few seconds and no dense copy
of the whole matrix. Above :data:`MANY_LABELS` labels the page shows the ranking
metrics, the most frequent and the worst labels, and folds the table of every label.

Target columns (categorical or numeric, one prediction per column) get a plain-text
report instead: :func:`categorical_report` (scikit-learn's ``classification_report``
of one column) and :func:`regression_metrics` (R², MAE, RMSE of one column), which
:func:`write_target_report` writes to ``report.txt`` and ``metrics.json``.
"""

from __future__ import annotations

import html
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import scipy.sparse as sp
from sklearn.metrics import (
    accuracy_score,
    classification_report,
    mean_absolute_error,
    r2_score,
    root_mean_squared_error,
)

from .thresholds import positive_mask

__all__ = [
    "evaluation_metrics",
    "ranking_metrics",
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
#: Above this many labels the page shows the ranking metrics, the most frequent and the
#: worst labels, and folds the table of every label (at or below it, every label is listed).
MANY_LABELS = 50
#: Rows of the page's tables of the most frequent and of the worst labels.
N_LISTED_LABELS = 20
#: The worst-labels table ranks only labels with at least this many positives in the data
#: (the F1 of a label with one or two positives says little).
MIN_LISTED_SUPPORT = 5
#: The ranks k of precision@k, nDCG@k and PSP@k.
RANKS = (1, 3, 5)
#: The propensity model's A and B: Jain, Prabhu and Varma's values for most data sets.
PROPENSITY_A = 0.55
PROPENSITY_B = 1.5
#: About how many probabilities are scored at a time (a block of rows): bounds the
#: temporary arrays to some tens of MB whatever the size of the label space.
_BLOCK_VALUES = 1 << 22


# -- counting, one block of rows at a time --------------------------------------------------
def _row_blocks(Y: Any, proba: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """``(true, proba)`` of consecutive blocks of rows: the labels as bool, dense."""
    n_samples, n_labels = proba.shape
    step = max(1, _BLOCK_VALUES // max(n_labels, 1))
    for start in range(0, n_samples, step):
        block = Y[start : start + step]
        block = block.toarray() if sp.issparse(block) else np.asarray(block)
        yield block.astype(bool, copy=False), proba[start : start + step]


def _ratio(numerator: Any, denominator: Any, empty: float = 0.0) -> np.ndarray:
    """``numerator / denominator``, ``empty`` where the denominator is 0."""
    numerator, denominator = np.asarray(numerator, float), np.asarray(denominator, float)
    shape = np.broadcast(numerator, denominator).shape
    return np.divide(numerator, denominator, out=np.full(shape, empty), where=denominator > 0)


class _Counts(NamedTuple):
    """True positives, predictions and positives of each label (``by_label``) and each sample."""

    by_label: tuple[np.ndarray, np.ndarray, np.ndarray]
    by_sample: tuple[np.ndarray, np.ndarray, np.ndarray]


def _confusion_counts(Y: Any, proba: np.ndarray, thresholds: np.ndarray) -> _Counts:
    """One pass over the rows: the counts every score of thresholded predictions derives from."""
    by_label = np.zeros((3, proba.shape[1]), dtype=np.int64)
    by_sample = []
    for true, scores in _row_blocks(Y, proba):
        predicted = positive_mask(scores, thresholds)
        hits = predicted & true
        counts = [np.count_nonzero(part, axis=0) for part in (hits, predicted, true)]
        by_label += np.stack(counts)
        by_sample.append(np.stack([np.count_nonzero(part, axis=1) for part in (hits, predicted, true)]))
    samples = np.concatenate(by_sample, axis=1) if by_sample else np.zeros((3, 0), dtype=np.int64)
    return _Counts(tuple(by_label), tuple(samples))


def _scores(true_positives: Any, predicted: Any, positives: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Precision, recall and F1 from counts; 0 where undefined (scikit-learn's ``zero_division=0``)."""
    return (
        _ratio(true_positives, predicted),
        _ratio(true_positives, positives),
        _ratio(2 * np.asarray(true_positives), np.asarray(positives) + np.asarray(predicted)),
    )


def _classification_report(counts: _Counts, label_names: Sequence[str]) -> dict[str, dict[str, float]]:
    """scikit-learn's ``classification_report(..., output_dict=True, zero_division=0)``, from counts.

    The same keys, rows and numbers (supports as floats, as scikit-learn gives them),
    without scikit-learn's per-label confusion matrices, which cost seconds at
    thousands of labels.
    """
    true_positives, predicted, positives = counts.by_label
    precision, recall, f1 = _scores(true_positives, predicted, positives)
    report = {
        name: {"precision": p, "recall": r, "f1-score": f, "support": s}
        for name, p, r, f, s in zip(
            label_names, precision.tolist(), recall.tolist(), f1.tolist(), positives.astype(float).tolist()
        )
    }
    weights = positives if positives.sum() > 0 else None  # scikit-learn: all weights 0, a plain mean
    averages = {
        "micro avg": _scores(true_positives.sum(), predicted.sum(), positives.sum()),
        "macro avg": [np.mean(score) for score in (precision, recall, f1)],
        "weighted avg": [np.average(score, weights=weights) for score in (precision, recall, f1)],
        "samples avg": [np.mean(score) for score in _scores(*counts.by_sample)],
    }
    for name, (p, r, f) in averages.items():
        report[name] = {
            "precision": float(p),
            "recall": float(r),
            "f1-score": float(f),
            "support": float(positives.sum()),
        }
    return report


# -- ranking metrics ---------------------------------------------------------------------------
def _top_labels(scores: np.ndarray, depth: int) -> np.ndarray:
    """The ``depth`` best-scored labels of each row, best first, without sorting whole rows."""
    n_labels = scores.shape[1]
    top = np.argpartition(scores, n_labels - depth, axis=1)[:, n_labels - depth :]
    order = np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind="stable")
    return np.take_along_axis(top, order, axis=1)


def _best_gains(true: np.ndarray, gains: np.ndarray, depth: int) -> np.ndarray:
    """Summed over the rows, the largest, second largest... ``gains`` among each row's true labels."""
    rows, labels = np.nonzero(true)
    values = gains[labels]
    order = np.lexsort((-values, rows))
    rows, values = rows[order], values[order]
    rank = np.arange(len(rows)) - np.searchsorted(rows, rows)  # position within the row, best first
    keep = rank < depth
    return np.bincount(rank[keep], weights=values[keep], minlength=depth)


def _inverse_propensities(label_support: np.ndarray, n_training_samples: int) -> np.ndarray:
    """``1 / p_l`` of Jain, Prabhu and Varma (2016): ``1 + C (N_l + B) ** -A``, ``C = (log N - 1)(B + 1) ** A``."""
    c = (np.log(n_training_samples) - 1) * (PROPENSITY_B + 1) ** PROPENSITY_A
    return 1 + c * (np.asarray(label_support, float) + PROPENSITY_B) ** -PROPENSITY_A


def _check_label_support(label_support: Any, n_training_samples: Any, n_labels: int) -> np.ndarray | None:
    if label_support is None and n_training_samples is None:
        return None
    if label_support is None or n_training_samples is None:
        raise ValueError(
            "PSP@k needs both label_support (the training positives of each label, the "
            "estimator's label_support_) and n_training_samples (the number of texts given to "
            f"fit); got label_support={'None' if label_support is None else 'an array'} and "
            f"n_training_samples={n_training_samples!r}. Pass both, or neither to leave PSP@k out."
        )
    support = np.asarray(label_support).ravel()
    if support.shape != (n_labels,):
        raise ValueError(
            f"label_support must hold one count per label ({n_labels}); got shape {np.shape(label_support)}."
        )
    if int(n_training_samples) < max(int(support.max(initial=0)), 1):
        raise ValueError(
            f"n_training_samples must be at least every label's training positives "
            f"({int(support.max(initial=0))}); got {n_training_samples!r}."
        )
    return support


def ranking_metrics(
    Y: Any,
    proba: np.ndarray,
    *,
    ranks: Sequence[int] = RANKS,
    label_support: Any = None,
    n_training_samples: int | None = None,
) -> dict[str, Any]:
    """Precision@k, nDCG@k and propensity-scored precision@k of each text's label ranking.

    Threshold-free: each text's labels are ranked by probability (ties in an arbitrary
    order), and only the ``max(ranks)`` best of each text are found (a partition, not a
    sort of the whole row). A text without a true label counts 0 in each average.

    - precision@k: the share of the k best-ranked labels that are true, averaged over texts;
    - nDCG@k: the DCG of the top k (gain 1 for a true label at rank i, discount
      ``1 / log2(i + 1)``) over the best DCG the text's true labels allow, averaged over
      texts; equal to scikit-learn's ``ndcg_score(Y, proba, k=k)`` where no scores tie;
    - PSP@k (with ``label_support``): precision@k where a true label counts its inverse
      propensity ``1 / p_l``, ``p_l = 1 / (1 + C exp(-A log(N_l + B)))``,
      ``C = (log N - 1) (B + 1) ** A``, A = 0.55, B = 1.5 (Jain, Prabhu and Varma, KDD
      2016; N the training texts, N_l the training positives of label l). In the
      normalised form that napkinXC's ``psprecision_at_k(normalize=True)`` reports: the
      sum over texts divided by the same sum for the best possible ranking (each text's
      true labels of the largest ``1 / p_l`` first), so 1 is perfect. It rewards getting
      rare labels right, which precision@k barely sees.

    Parameters
    ----------
    Y : array-like or sparse matrix of shape (n_samples, n_labels)
        True 0/1 labels.
    proba : ndarray of shape (n_samples, n_labels)
        Predicted probabilities.
    ranks : sequence of int, default=(1, 3, 5)
        The k to score at; those larger than n_labels are left out.
    label_support : array-like of shape (n_labels,), default=None
        Training positives of each label (a fitted estimator's ``label_support_``).
        Without it PSP@k is left out.
    n_training_samples : int, default=None
        The number of training texts (N); required with ``label_support``.

    Returns
    -------
    metrics : dict
        ``precision_at_k`` and ``ndcg_at_k``, and with ``label_support`` ``psp_at_k``:
        each a ``{k: score}`` dict.

    Raises
    ------
    ValueError
        If only one of ``label_support`` and ``n_training_samples`` is given, or
        ``label_support`` has not one count per label.
    """
    proba = np.asarray(proba)
    n_samples, n_labels = proba.shape
    support = _check_label_support(label_support, n_training_samples, n_labels)
    ks = sorted({int(k) for k in ranks if 1 <= k <= n_labels})
    depth = max(ks)
    discounts = 1 / np.log2(np.arange(2, depth + 2))
    ideal = np.concatenate([[0.0], np.cumsum(discounts)])  # best DCG with m true labels: ideal[m]
    weights = None if support is None else _inverse_propensities(support, n_training_samples)
    hits_by_rank = np.zeros(depth)
    ndcg_sums = dict.fromkeys(ks, 0.0)
    scored_by_rank, best_by_rank = np.zeros(depth), np.zeros(depth)
    for true, scores in _row_blocks(Y, proba):
        top = _top_labels(scores, depth)
        hits = np.take_along_axis(true, top, axis=1)
        hits_by_rank += hits.sum(axis=0)
        dcg = np.cumsum(hits * discounts, axis=1)
        n_true = np.count_nonzero(true, axis=1)
        for k in ks:
            ndcg_sums[k] += _ratio(dcg[:, k - 1], ideal[np.minimum(n_true, k)]).sum()
        if weights is not None:
            scored_by_rank += (hits * weights[top]).sum(axis=0)
            best_by_rank += _best_gains(true, weights, depth)
    metrics: dict[str, Any] = {
        "precision_at_k": {k: float(hits_by_rank[:k].sum() / (k * max(n_samples, 1))) for k in ks},
        "ndcg_at_k": {k: float(ndcg_sums[k] / max(n_samples, 1)) for k in ks},
    }
    if weights is not None:
        metrics["psp_at_k"] = {k: float(_ratio(scored_by_rank[:k].sum(), best_by_rank[:k].sum())) for k in ks}
    return metrics


# -- the metrics -------------------------------------------------------------------------------
def evaluation_metrics(
    Y: Any,
    proba: np.ndarray,
    thresholds: np.ndarray,
    label_names: Sequence[str],
    *,
    label_support: Any = None,
    n_training_samples: int | None = None,
) -> dict[str, Any]:
    """Scores of thresholded predictions and of the label ranking, as a JSON-serialisable dict.

    Everything is counted in one pass over blocks of rows (the predictions as bool, a
    block at a time), then a second for the ranking: 5,000 texts x 20,000 labels take
    seconds.

    Parameters
    ----------
    Y : array-like or sparse matrix of shape (n_samples, n_labels)
        True 0/1 labels.
    proba : ndarray of shape (n_samples, n_labels)
        Predicted probabilities.
    thresholds : ndarray of shape (n_labels,)
        Decision threshold of each label (``thresholds_``).
    label_names : sequence of str of length n_labels
    label_support : array-like of shape (n_labels,), default=None
        Training positives of each label (the estimator's ``label_support_``), for PSP@k.
    n_training_samples : int, default=None
        The number of texts given to ``fit``, for PSP@k; required with ``label_support``.

    Returns
    -------
    metrics : dict
        ``f1_micro``, ``f1_macro``, ``f1_samples``, ``f1_weighted``, ``precision_micro``,
        ``recall_micro``, ``subset_accuracy``, ``n_samples``, ``n_labels``, ``thresholds``
        (by label), ``classification_report`` (scikit-learn's, as a dict, the same keys
        and numbers), and the ranking metrics of :func:`ranking_metrics`:
        ``precision_at_k``, ``ndcg_at_k`` and, with ``label_support``, ``psp_at_k`` with
        its ``propensity`` parameters (``{k: score}`` dicts; in ``metrics.json`` the k
        are strings). They are always computed (they cost a second at 20,000 labels);
        the page shows them above :data:`MANY_LABELS` labels, where F1 at thresholds
        is hard to read label by label and precision@k is the usual summary.
    """
    proba = np.asarray(proba)
    counts = _confusion_counts(Y, proba, np.asarray(thresholds))
    report = _classification_report(counts, list(label_names))
    hits, predicted, positives = counts.by_sample
    metrics = {
        "n_samples": int(proba.shape[0]),
        "n_labels": int(proba.shape[1]),
        "f1_micro": report["micro avg"]["f1-score"],
        "f1_macro": report["macro avg"]["f1-score"],
        "f1_samples": report["samples avg"]["f1-score"],
        "f1_weighted": report["weighted avg"]["f1-score"],
        "precision_micro": report["micro avg"]["precision"],
        "recall_micro": report["micro avg"]["recall"],
        # a text is exactly right when it has neither a false positive nor a false negative
        "subset_accuracy": float(np.mean((hits == predicted) & (hits == positives))),
        "thresholds": {name: float(value) for name, value in zip(label_names, np.ravel(thresholds).tolist())},
        "classification_report": report,
    }
    metrics.update(ranking_metrics(Y, proba, label_support=label_support, n_training_samples=n_training_samples))
    if "psp_at_k" in metrics:
        metrics["propensity"] = {"a": PROPENSITY_A, "b": PROPENSITY_B, "n_training_samples": int(n_training_samples)}
    return metrics


def _plain(value: Any) -> Any:
    """Numpy scalars inside nested dicts as Python numbers."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _grid_bins(grid: np.ndarray, values: np.ndarray) -> np.ndarray:
    """How many points of the increasing ``grid`` are <= each value (``np.searchsorted(grid, values, "right")``).

    On an evenly spaced grid (``np.linspace``, as the report's) the bin is computed by
    arithmetic, then corrected by one exact comparison each way: the same answer,
    several times faster than a binary search.
    """
    n_points = len(grid)
    step = (grid[-1] - grid[0]) / (n_points - 1) if n_points > 1 else 0.0
    even = step > 0 and np.allclose(grid, grid[0] + step * np.arange(n_points), rtol=0, atol=step * 1e-6)
    if not even:
        return np.searchsorted(grid, values, side="right")
    guess = np.floor((values - grid[0]) / step)  # off by at most one either way
    np.clip(guess, -1, n_points - 1, out=guess)
    bins = guess.astype(np.intp) + 1
    edges = np.concatenate([[-np.inf], grid, [np.inf]])  # edges[b] is grid[b - 1]
    bins -= values < edges[bins]
    bins += values >= edges[bins + 1]
    return bins


def _at_least(histograms: np.ndarray, order: np.ndarray) -> np.ndarray:
    """From counts by bin (last axis) to counts at or above each threshold, in the grid's own order."""
    counts = np.cumsum(histograms[..., ::-1], axis=-1)[..., ::-1][..., 1:]
    ordered = np.empty_like(counts)
    ordered[..., order] = counts
    return ordered


def threshold_curves(
    Y: Any, proba: np.ndarray, grid: np.ndarray, *, labels: Sequence[int] | None = None
) -> dict[str, np.ndarray]:
    """Precision and recall of each label, and micro-averaged, at each threshold of ``grid``.

    A sample is predicted positive when its probability is >= the threshold, as in
    ``predict``. Recall never rises with the threshold; precision may go either way.
    Counted by histogram, a block of rows at a time (no sort of the probabilities).

    Parameters
    ----------
    Y : array-like or sparse matrix of shape (n_samples, n_labels)
    proba : ndarray of shape (n_samples, n_labels)
    grid : ndarray of shape (n_thresholds,)
    labels : sequence of int, default=None
        The column indices of the labels whose own curves are returned (default: all).
        The micro-averaged curves always cover every label.

    Returns
    -------
    curves : dict
        ``precision`` and ``recall`` of shape (n_chosen_labels, n_thresholds), and
        ``micro_precision`` and ``micro_recall`` of shape (n_thresholds,). Precision is
        NaN where nothing is predicted, recall where a label has no positive.
    """
    proba = np.asarray(proba)
    grid = np.asarray(grid, dtype=float)
    order = np.argsort(grid, kind="stable")
    chosen = np.arange(proba.shape[1]) if labels is None else np.asarray(labels, dtype=np.intp)
    width = len(grid) + 1  # bin b holds the probabilities with b grid points at or below them
    offsets = np.arange(len(chosen)) * width
    micro = np.zeros((2, width), dtype=np.int64)  # predictions, true positives
    by_label = np.zeros((2, len(chosen) * width), dtype=np.int64)
    for true, scores in _row_blocks(Y, proba):
        bins = _grid_bins(grid[order], scores)
        micro[0] += np.bincount(bins.ravel(), minlength=width)
        micro[1] += np.bincount(bins[true], minlength=width)
        own = (bins if labels is None else bins[:, chosen]) + offsets
        by_label[0] += np.bincount(own.ravel(), minlength=by_label.shape[1])
        by_label[1] += np.bincount(own[true if labels is None else true[:, chosen]], minlength=by_label.shape[1])
    by_label = by_label.reshape(2, len(chosen), width)
    predicted, true_positives = _at_least(by_label, order)
    micro_predicted, micro_true_positives = _at_least(micro, order)
    positives = by_label[1].sum(axis=1)[:, None]
    return {
        "precision": _ratio(true_positives, predicted, np.nan),
        "recall": _ratio(true_positives, np.broadcast_to(positives, true_positives.shape), np.nan),
        "micro_precision": _ratio(micro_true_positives, micro_predicted, np.nan),
        "micro_recall": _ratio(micro_true_positives, micro[1].sum(), np.nan),
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


def plot_threshold_curves(Y: Any, proba: np.ndarray, metrics: Mapping[str, Any], path: str | os.PathLike) -> None:
    """Precision, recall and F1 against the threshold: micro-averaged, then frequent labels.

    The micro panel applies one threshold to every label; it marks each label's
    tuned threshold as a tick on the x axis and, as dashed horizontal lines, the
    micro precision and recall those per-label thresholds give. Each label's panel
    marks its threshold with a dashed vertical line.

    Parameters
    ----------
    Y : array-like or sparse matrix of shape (n_samples, n_labels)
    proba : ndarray of shape (n_samples, n_labels)
    metrics : dict
        What :func:`evaluation_metrics` returns.
    path : str or path-like
        The PNG to write.
    """
    from matplotlib.lines import Line2D

    grid = np.linspace(0, 1, 201)
    names = list(metrics["thresholds"])
    thresholds = np.array([metrics["thresholds"][name] for name in names])
    support = np.asarray(Y.sum(axis=0)).ravel() if sp.issparse(Y) else np.asarray(Y).sum(axis=0)
    frequent = np.argsort(-support, kind="stable")[:N_CURVE_LABELS]
    curves = threshold_curves(Y, proba, grid, labels=frequent)  # the micro curves still cover every label
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
    for position, (axes, label) in enumerate(zip(panels[1:], frequent)):
        _plot_curve(
            axes,
            grid,
            curves["precision"][position],
            curves["recall"][position],
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
def _table(header: Sequence[str], rows: Sequence[Sequence[Any]], css_class: str = "", table_id: str = "") -> str:
    def cell(value: Any, tag: str) -> str:
        text = f"{value:.3f}" if isinstance(value, float) else str(value)
        return f"<{tag}>{html.escape(text)}</{tag}>"

    head = "".join(cell(name, "th") for name in header)
    body = "\n".join("<tr>" + "".join(cell(value, "td") for value in row) + "</tr>" for row in rows)
    identifier = f' id="{table_id}"' if table_id else ""
    return f'<table class="{css_class}"{identifier}>\n<tr>{head}</tr>\n{body}\n</table>'


def _classification_table(
    metrics: Mapping[str, Any], names: Sequence[str] | None = None, css_class: str = "report", table_id: str = ""
) -> str:
    """Rows of the classification report (all of them, or those of ``names``) with each label's threshold."""
    report = metrics["classification_report"]
    rows = [
        [
            name,
            report[name]["precision"],
            report[name]["recall"],
            report[name]["f1-score"],
            int(report[name]["support"]),
            metrics["thresholds"].get(name, ""),
        ]
        for name in (report if names is None else names)
    ]
    return _table(["label", "precision", "recall", "f1-score", "support", "threshold"], rows, css_class, table_id)


def _ranking_section(metrics: Mapping[str, Any]) -> str:
    """The table of precision@k, nDCG@k and PSP@k, and what they mean."""
    has_psp = "psp_at_k" in metrics
    header = ["k", "precision@k", "nDCG@k"] + (["PSP@k"] if has_psp else [])
    rows = [
        [k, metrics["precision_at_k"][k], metrics["ndcg_at_k"][k], *([metrics["psp_at_k"][k]] if has_psp else [])]
        for k in metrics["precision_at_k"]
    ]
    if has_psp:
        propensity = metrics["propensity"]
        psp = (
            "PSP@k counts each true label by its inverse propensity (Jain, Prabhu and Varma, 2016; "
            f"A={propensity['a']}, B={propensity['b']}, from the label's positives among the "
            f"{propensity['n_training_samples']} training texts), so rare labels weigh more; it is "
            "divided by the best ranking's, so 1 is perfect."
        )
    else:
        psp = (
            "PSP@k (propensity-scored precision) is not shown: it needs each label's training "
            "positives and the number of training texts (<code>write_report</code>'s "
            "<code>label_support</code> and <code>n_training_samples</code>), which were not given."
        )
    return f"""<h2>Ranking metrics</h2>
<p>Threshold-free: each text's labels ranked by probability. precision@k is the share of the
k best-ranked labels that are true; nDCG@k also rewards true labels ranked higher. {psp}</p>
{_table(header, rows)}
"""


_FILTER_SCRIPT = """<script>
document.getElementById("label-filter").addEventListener("input", function () {
  var text = this.value.toLowerCase(), rows = document.getElementById("all-labels").rows;
  for (var i = 1; i < rows.length; i++) {
    rows[i].hidden = rows[i].cells[0].textContent.toLowerCase().indexOf(text) < 0;
  }
});
</script>"""


def _label_sections(metrics: Mapping[str, Any]) -> str:
    """The report of many labels: averages, the most frequent and worst labels, every label folded."""
    report = metrics["classification_report"]
    names = [name for name in report if name not in AVERAGES]
    support = np.array([report[name]["support"] for name in names])
    f1 = np.array([report[name]["f1-score"] for name in names])
    frequent = np.argsort(-support, kind="stable")[:N_LISTED_LABELS]
    ranked = np.flatnonzero(support >= MIN_LISTED_SUPPORT)
    worst = ranked[np.lexsort((-support[ranked], f1[ranked]))][:N_LISTED_LABELS]  # lowest F1, then most positives
    absent = int(np.sum(support == 0))
    worst_table = (
        _classification_table(metrics, [names[j] for j in worst], css_class="")
        if len(worst)
        else f"<p>No label has {MIN_LISTED_SUPPORT} positives in these texts.</p>"
    )
    return f"""<h2>Averages</h2>
{_classification_table(metrics, AVERAGES, css_class="")}
<h2>The {len(frequent)} most frequent labels</h2>
<p>Support: the number of texts with the label in this data.</p>
{_classification_table(metrics, [names[j] for j in frequent], css_class="")}
<h2>The {len(worst)} worst labels</h2>
<p>The lowest F1 among the {len(ranked)} labels with at least {MIN_LISTED_SUPPORT} positives in
these texts (the F1 of rarer labels rests on too few texts to rank them); {absent} of the
{len(names)} labels have no positive here.</p>
{worst_table}
<h2>Every label</h2>
<details>
<summary>All {len(names)} labels, in the model's order</summary>
<p><input type="search" id="label-filter" placeholder="filter by label name" aria-label="filter the labels by name"></p>
{_classification_table(metrics, names, css_class="", table_id="all-labels")}
</details>
{_FILTER_SCRIPT}
"""


_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1100px; color: #222; }
table { border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f0f0; }
table.report tr:nth-last-child(-n+4) { font-weight: bold; background: #fafafa; }
img { max-width: 100%; border: 1px solid #eee; }
summary { cursor: pointer; }
"""


def render_html(metrics: Mapping[str, Any], context: Mapping[str, Any], files: Mapping[str, str]) -> str:
    """The report page; images are referenced by their file names, beside it.

    Up to :data:`MANY_LABELS` labels the page lists scikit-learn's classification report
    of every label. Above, it shows the ranking metrics, the averages, the
    :data:`N_LISTED_LABELS` most frequent labels and the as many worst (lowest F1 among
    those with at least :data:`MIN_LISTED_SUPPORT` positives), and folds the table of
    every label under a ``<details>`` with a name filter (inline script, no external
    asset): about 95 bytes a label, 2 MB at 20,000 labels.
    """
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
    many = metrics["n_labels"] > MANY_LABELS
    if many:
        labels = _label_sections(metrics)
    else:
        labels = f"""<h2>Classification report</h2>
<p>scikit-learn's <code>classification_report</code> at the model's thresholds
(<code>thresholds_</code>); support is the number of samples with the label.</p>
{_classification_table(metrics)}
"""
    return f"""<!DOCTYPE html>
<html lang="en">
<head><meta charset="utf-8"><title>sktext evaluation report</title><style>{_STYLE}</style></head>
<body>
<h1>sktext evaluation report</h1>
{_table(["", "value"], summary)}
{_ranking_section(metrics) if many else ""}<h2>F1 by label</h2>
<img src="{html.escape(files["f1_by_label"])}" alt="F1 by label, sorted by support">
<h2>Precision and recall against the threshold</h2>
<img src="{html.escape(files["threshold_curves"])}" alt="precision and recall against the threshold">
{labels}</body>
</html>
"""


def write_report(
    folder: str | os.PathLike,
    Y: Any,
    proba: np.ndarray,
    thresholds: np.ndarray,
    label_names: Sequence[str],
    *,
    context: Mapping[str, Any] | None = None,
    label_support: Any = None,
    n_training_samples: int | None = None,
) -> dict[str, Any]:
    """Write ``report.html``, ``metrics.json`` and the two PNG charts to ``folder``.

    Seconds at 5,000 texts x 20,000 labels; the page stays a few MB (see :func:`render_html`).

    Parameters
    ----------
    folder : str or path-like
        Created if missing; the four files are overwritten.
    Y : array-like or sparse matrix of shape (n_samples, n_labels)
        True 0/1 labels.
    proba : ndarray of shape (n_samples, n_labels)
        Predicted probabilities.
    thresholds : ndarray of shape (n_labels,)
    label_names : sequence of str of length n_labels
    context : mapping, optional
        Extra ``name: value`` rows for the page's summary (model, data file...).
    label_support : array-like of shape (n_labels,), default=None
        Training positives of each label (the estimator's ``label_support_``), for PSP@k;
        without it the report says why PSP@k is missing.
    n_training_samples : int, default=None
        The number of texts given to ``fit``; required with ``label_support``.

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
    metrics = evaluation_metrics(
        Y,
        proba,
        np.asarray(thresholds),
        label_names,
        label_support=label_support,
        n_training_samples=n_training_samples,
    )
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
