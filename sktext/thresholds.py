"""Decision thresholds for multi-label probabilities: pure functions of (y_true, y_proba)."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import scipy.sparse as sp

DEFAULT_CANDIDATES = np.round(np.arange(0.01, 1.0, 0.01), 2)


#: Fewest held-out positives for a label to get a threshold of its own.
MIN_THRESHOLD_POSITIVES = 5
#: Texts predicted at a time by a sparse ``predict`` and by ``predict_top_k``: their
#: dense probabilities are the only (chunk, n_labels) array made...
PREDICT_CHUNK_TEXTS = 4096
#: ... and fewer where that array would hold more probabilities than this: at 20,000
#: labels 209 texts a chunk (a 32 MB float64 array; the logits, margins and blend of a
#: chunk are as many), where 4,096 texts made a 2.4 GB peak of such arrays. Tokenizing
#: and the network's batches are as efficient from a few hundred texts on.
PREDICT_CHUNK_ENTRIES = 1 << 22


def prediction_chunks(n_texts: int, n_outputs: int):
    """``(start, stop)`` of each chunk of texts to predict at once (see :data:`PREDICT_CHUNK_ENTRIES`)."""
    step = max(1, min(PREDICT_CHUNK_TEXTS, PREDICT_CHUNK_ENTRIES // max(n_outputs, 1)))
    for start in range(0, n_texts, step):
        yield start, min(start + step, n_texts)


def positive_mask(y_proba: np.ndarray, thresholds) -> np.ndarray:
    """The decision rule of every sktext classifier, as bool: positive where ``proba >= threshold``.

    What counting code should call: :func:`apply_thresholds` is this as int64, eight
    times the bytes.

    Parameters
    ----------
    y_proba : ndarray of shape (n_samples, n_labels)
    thresholds : float or array-like of shape (n_labels,)

    Returns
    -------
    mask : ndarray of shape (n_samples, n_labels), dtype bool
    """
    return np.asarray(y_proba) >= np.asarray(thresholds)


def apply_thresholds(y_proba: np.ndarray, thresholds) -> np.ndarray:
    """The decision rule of every sktext classifier: positive where ``proba >= threshold``.

    Parameters
    ----------
    y_proba : ndarray of shape (n_samples, n_labels)
    thresholds : float or array-like of shape (n_labels,)

    Returns
    -------
    y_pred : ndarray of shape (n_samples, n_labels), dtype int64
    """
    return positive_mask(y_proba, thresholds).astype(np.int64)


def apply_thresholds_sparse(y_proba: np.ndarray, thresholds) -> sp.csr_matrix:
    """:func:`apply_thresholds` as a CSR matrix of int8 0/1, made without a dense integer copy."""
    return sp.csr_matrix(positive_mask(y_proba, thresholds), dtype=np.int8)


def label_lists(decisions: sp.csr_matrix, names) -> list[list]:
    """Each row's positive labels, by name: the column indices of a CSR matrix of 0/1 decisions (sorted), read off ``names``."""
    names = np.asarray(names, dtype=object)
    indptr = decisions.indptr
    return [names[decisions.indices[start:stop]].tolist() for start, stop in zip(indptr[:-1], indptr[1:])]


def apply_thresholds_in_chunks(chunks: Iterable[np.ndarray], thresholds, n_labels: int) -> sp.csr_matrix:
    """:func:`apply_thresholds_sparse` of each chunk of probabilities, stacked into one CSR matrix.

    ``n_labels`` gives the width of the empty matrix when there is no chunk.
    """
    parts = [apply_thresholds_sparse(proba, thresholds) for proba in chunks]
    return sp.vstack(parts, format="csr") if parts else sp.csr_matrix((0, n_labels), dtype=np.int8)


def _confusion_counts(y_true: np.ndarray, y_proba: np.ndarray, threshold, weights: np.ndarray | None = None) -> tuple:
    """(Weighted) true positives, false positives and false negatives of each label at ``threshold``."""
    predicted = positive_mask(y_proba, threshold)
    if weights is None:
        return (predicted & y_true).sum(axis=0), (predicted & ~y_true).sum(axis=0), (~predicted & y_true).sum(axis=0)
    return weights @ (predicted & y_true), weights @ (predicted & ~y_true), weights @ (~predicted & y_true)


#: Entries of a (texts, labels) block that :func:`_counts_at_candidates` bins at a time.
COUNT_BLOCK_ENTRIES = 1 << 22


def _counts_at_candidates(
    y_true, y_proba: np.ndarray, candidates: np.ndarray, weights: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(Weighted) true positives and predicted positives of each label at each candidate, and its positives.

    The counts :func:`_confusion_counts` gives at each candidate in turn, from one pass
    over the probabilities: each one's bin among the sorted candidates (the number of
    them it reaches, compared as ``proba >= candidate`` compares), a histogram of the
    bins per label, summed from the top. A block of labels at a time, so that ``y_true``
    may be a sparse matrix (CSC) that is never made dense whole. At 326 labels and
    2,461 texts, 99 candidates: 0.02-0.03 s against 0.16 s for a comparison per candidate
    (the threshold stage of the CPU proxy in ``benchmarks/fit_cost.py``).

    Returns
    -------
    tp, predicted : ndarray of shape (n_candidates, n_labels)
    positives : ndarray of shape (n_labels,)
    """
    n_samples, n_labels = y_proba.shape
    order = np.argsort(candidates, kind="stable")
    # The dtype ``proba >= candidate`` compares in (float64 under NumPy 2, float32 before).
    compared = np.result_type(y_proba, np.asarray(candidates[0])) if len(candidates) else y_proba.dtype
    edges = candidates[order].astype(compared)
    n_bins = len(candidates) + 1
    dtype = np.int64 if weights is None else np.float64
    tp_hist = np.zeros((n_labels, n_bins), dtype=dtype)
    all_hist = np.zeros((n_labels, n_bins), dtype=dtype)
    positives = np.zeros(n_labels, dtype=dtype)
    step = max(1, COUNT_BLOCK_ENTRIES // max(n_samples, 1))
    for start in range(0, n_labels, step):
        stop = min(start + step, n_labels)
        block = y_true[:, start:stop]
        truth = block.toarray() > 0.5 if sp.issparse(block) else block
        bins = np.searchsorted(edges, y_proba[:, start:stop].astype(compared), side="right")
        bins += np.arange(stop - start) * n_bins  # one histogram per label
        size = (stop - start) * n_bins
        if weights is None:
            all_hist[start:stop] = np.bincount(bins.ravel(), minlength=size).reshape(-1, n_bins)
            tp_hist[start:stop] = np.bincount(bins[truth], minlength=size).reshape(-1, n_bins)
            positives[start:stop] = truth.sum(axis=0)
        else:
            row_weight = np.broadcast_to(weights[:, None], bins.shape)
            all_hist[start:stop] = np.bincount(bins.ravel(), row_weight.ravel(), minlength=size).reshape(-1, n_bins)
            tp_hist[start:stop] = np.bincount(bins[truth], row_weight[truth], minlength=size).reshape(-1, n_bins)
            positives[start:stop] = weights @ truth
    tp, predicted = np.empty((len(candidates), n_labels), dtype), np.empty((len(candidates), n_labels), dtype)
    tp[order], predicted[order] = _reaching(tp_hist).T, _reaching(all_hist).T
    return tp, predicted, positives


def _reaching(histogram: np.ndarray) -> np.ndarray:
    """Per label, the count in the bins above each sorted candidate: those that reach it."""
    return np.cumsum(histogram[:, ::-1], axis=1)[:, ::-1][:, 1:]


def _middle_of_best(scores: np.ndarray, candidates: np.ndarray) -> float:
    """The candidate in the middle of the best-scoring ones (robust to plateaus)."""
    best = np.flatnonzero(scores >= scores.max() - 1e-12)
    return float(candidates[best[len(best) // 2]])


def tune_thresholds(
    y_true: np.ndarray,
    y_proba: np.ndarray,
    *,
    min_positives: int = MIN_THRESHOLD_POSITIVES,
    shrinkage: float = 2.0,
    candidates: np.ndarray | None = None,
    sample_weight: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """Per-label thresholds that maximise F1 on held-out predictions.

    The global threshold is the one that maximises micro-F1 over all labels. A label
    with at least ``min_positives`` positives in ``y_true`` gets its own F1-best
    threshold, pulled towards the global one by its evidence:
    ``w * own + (1 - w) * global`` with ``w = positives / (positives + shrinkage)``;
    rarer labels get the global threshold (an optimum found on two or three examples
    does not generalise).

    Why shrink: on debtags, per-label optima tuned on a small validation split chase
    noise and cost micro-F1. Measured with TF-IDF + logistic regression, thresholds
    tuned on one part of the train split and scored on another (never on test;
    ``benchmarks/thresholds.py``), ``shrinkage=2`` kept most of the macro-F1 gain of
    unshrunk per-label thresholds and had the best micro-F1 of all variants.

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        0/1 indicators.
    y_proba : array-like of shape (n_samples, n_labels)
        Predicted probabilities.
    min_positives : int, default=5
        Fewest positives for a label to get a threshold of its own.
    shrinkage : float, default=2.0
        Pseudo-count of the pull towards the global threshold; 0 keeps each label's
        own optimum.
    candidates : array-like, default=None
        Thresholds to try; ``0.01, 0.02, ..., 0.99`` by default.
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each sample in the F1 counts. Whether a label has ``min_positives``
        and how much its own optimum weighs still count positives unweighted: they
        measure how much evidence there is, which weights do not add.

    Returns
    -------
    thresholds : ndarray of shape (n_labels,)
    global_threshold : float
    """
    sparse_truth = sp.issparse(y_true)
    y_true = sp.csc_matrix(y_true) if sparse_truth else np.asarray(y_true) > 0.5
    y_proba = np.asarray(y_proba, dtype=np.float32)
    if y_true.shape != y_proba.shape or y_true.ndim != 2:
        raise ValueError(
            f"y_true and y_proba must both have shape (n_samples, n_labels); got {y_true.shape} and {y_proba.shape}."
        )
    candidates = DEFAULT_CANDIDATES if candidates is None else np.asarray(candidates, float)
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    tp, predicted, positives = _counts_at_candidates(y_true, y_proba, candidates, weights)
    denominator = predicted + positives  # 2 tp + fp + fn
    label_f1 = np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0)
    totals = denominator.sum(axis=1)
    micro_f1 = np.divide(2 * tp.sum(axis=1), totals, out=np.zeros(len(candidates)), where=totals > 0)
    global_threshold = _middle_of_best(micro_f1, candidates)
    thresholds = np.full(y_true.shape[1], global_threshold)
    positives = np.asarray((y_true > 0.5).sum(axis=0) if sparse_truth else y_true.sum(axis=0)).ravel()
    for label in np.flatnonzero(positives >= min_positives):
        own = _middle_of_best(label_f1[:, label], candidates)
        weight = positives[label] / (positives[label] + shrinkage)
        thresholds[label] = weight * own + (1 - weight) * global_threshold
    return thresholds, global_threshold


def floor_at_rates(thresholds, y_proba: np.ndarray, rates) -> np.ndarray:
    """Thresholds lowered, where needed, so that each label is predicted at least at its rate.

    Label ``j``'s threshold becomes at most the ``k``-th largest of ``y_proba[:, j]``,
    ``k = round(rates[j] * n_samples)``: at it, at least ``k`` texts are predicted
    positive. A label whose ``k`` is 0 keeps its threshold.

    Parameters
    ----------
    thresholds : float or array-like of shape (n_labels,)
    y_proba : array-like of shape (n_samples, n_labels)
        Predicted probabilities of the texts the thresholds were tuned on.
    rates : array-like of shape (n_labels,)
        The share of texts each label is expected to hold (e.g. its mean over training
        labels).

    Returns
    -------
    thresholds : ndarray of shape (n_labels,)
    """
    y_proba = np.asarray(y_proba)
    n_samples, n_labels = y_proba.shape
    floored = np.array(np.broadcast_to(np.asarray(thresholds, dtype=np.float64), (n_labels,)))
    wanted = np.rint(np.asarray(rates, dtype=np.float64) * n_samples).astype(np.int64).clip(0, n_samples)
    for label in np.flatnonzero(wanted > 0):
        kth_largest = np.partition(y_proba[:, label], n_samples - wanted[label])[n_samples - wanted[label]]
        floored[label] = min(floored[label], float(kth_largest))
    return floored


def f1_at_thresholds(y_true: np.ndarray, y_proba: np.ndarray, thresholds) -> dict:
    """Micro and macro F1 of the decisions ``proba >= thresholds``, with each label's support.

    What a classifier keeps as ``validation_scores_``: scikit-learn's
    ``f1_score(average="micro" / "macro", zero_division=0)`` of
    :func:`apply_thresholds`'s decisions (a label with neither a positive nor a
    prediction scores 0 in the macro average).

    Parameters
    ----------
    y_true : array-like of shape (n_samples, n_labels)
        0/1 indicators.
    y_proba : array-like of shape (n_samples, n_labels)
    thresholds : float or array-like of shape (n_labels,)

    Returns
    -------
    scores : dict
        ``f1_micro`` and ``f1_macro`` (floats), ``n_samples`` and ``support`` (the
        positives of each label, a list of ints).
    """
    y_true = np.asarray(y_true) > 0.5
    tp, fp, fn = _confusion_counts(y_true, np.asarray(y_proba), thresholds)
    denominator = 2 * tp + fp + fn
    label_f1 = np.divide(2 * tp, denominator, out=np.zeros(len(tp)), where=denominator > 0)
    total = denominator.sum()
    return {
        "f1_micro": float(2 * tp.sum() / total) if total else 0.0,
        "f1_macro": float(label_f1.mean()) if len(label_f1) else 0.0,
        "n_samples": int(y_true.shape[0]),
        "support": [int(count) for count in y_true.sum(axis=0)],
    }
