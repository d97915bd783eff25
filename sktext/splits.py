"""The validation splits: skorch ``train_split`` callables holding out part of a fit's data.

:class:`ShuffleValidSplit` holds out a random share (the regressors);
:class:`MultilabelValidSplit` a multi-label stratified one (the classifiers), made with
iterative stratification so that rare labels keep positives on both sides
(:func:`stratified_shuffle_split`: iterative-stratification's split, computed in time
that grows with the positives instead of with rows x labels x labels). The
validation part comes sorted by length, for fast, padding-light evaluation. A split
computes its indices once per target array, so threshold tuning after training sees
the very validation texts early stopping watched.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse as sp
from sklearn.model_selection import ShuffleSplit

from .batching import TokenizedTexts
from .targets import OutputLayout
from .validation import hard_view, row_blocks

__all__ = ["MultilabelValidSplit", "ShuffleValidSplit", "stratified_indices", "stratified_shuffle_split"]


class ShuffleValidSplit:
    """skorch ``train_split`` holding out a random validation set (for regression).

    Parameters
    ----------
    fraction : float
        Share of the samples held out.
    seed : int
    """

    def __init__(self, fraction: float, seed: int) -> None:
        self.fraction = fraction
        self.seed = seed
        self._cache = None

    def _stratify_on(self, y: np.ndarray) -> np.ndarray:
        return y

    def _draw(self, y) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation rows of ``y`` (what is stratified on, from :meth:`_stratify_on`)."""
        splitter = ShuffleSplit(n_splits=1, test_size=self.fraction, random_state=self.seed)
        return next(splitter.split(np.zeros(y.shape[0]), y))

    def indices(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation indices for the targets ``y`` (computed once per array)."""
        if self._cache is not None and self._cache[0] is y:
            return self._cache[1]
        n_samples = y.shape[0]
        n_valid = int(np.ceil(self.fraction * n_samples))
        if n_valid < 1 or n_samples - n_valid < 1:
            raise ValueError(
                f"validation_fraction={self.fraction} leaves no validation or no training "
                f"sample out of {n_samples}; pass more texts, another fraction, or "
                "validation_fraction=None (for a classifier, with a float threshold)."
            )
        train, valid = self._draw(self._stratify_on(y))
        if len(train) == 0 or len(valid) == 0:
            raise ValueError(
                f"validation_fraction={self.fraction} leaves {len(valid)} validation and "
                f"{len(train)} training samples out of {n_samples} (the stratified split could not "
                "balance the labels); pass more texts, a larger fraction, or "
                "validation_fraction=None (for a classifier, with a float threshold such as 0.5)."
            )
        self._cache = (y, (train, valid))
        return train, valid

    def n_train(self, dataset: TokenizedTexts) -> int:
        """Texts left for training once the validation part is held out."""
        return len(self.indices(dataset.y)[0])

    def validation_order(self, dataset: TokenizedTexts) -> np.ndarray:
        """The validation indices in the order the validation part holds them (longest first)."""
        valid = self.indices(dataset.y)[1]
        return valid[np.argsort(-dataset.lengths[valid], kind="stable")]

    def __call__(self, dataset: TokenizedTexts, y=None, **fit_params):
        train, _ = self.indices(dataset.y)
        return dataset.subset(train), dataset.subset(self.validation_order(dataset))


class MultilabelValidSplit(ShuffleValidSplit):
    """skorch ``train_split`` holding out a multi-label stratified validation set.

    The split of iterative-stratification's ``MultilabelStratifiedShuffleSplit``
    (:func:`stratified_shuffle_split`); ``y`` may be a sparse matrix. Categorical
    targets are one-hot encoded next to the 0/1 columns (``layout.indicator_matrix``),
    so every class is stratified too.

    Parameters
    ----------
    fraction : float
        Share of the samples held out.
    seed : int
    layout : OutputLayout or None
        The classifier's targets; None for a plain 0/1 matrix.
    """

    def __init__(self, fraction: float, seed: int, layout: OutputLayout | None) -> None:
        super().__init__(fraction, seed)
        self.layout = layout

    def _draw(self, y) -> tuple[np.ndarray, np.ndarray]:
        return stratified_shuffle_split(y, self.fraction, self.seed)

    def _stratify_on(self, y):
        if self.layout is None or self.layout.is_multilabel:
            return _positives(y)
        indicators = y if self.layout is None else self.layout.indicator_matrix(y)
        indicators = hard_view(indicators)  # soft targets: their hard view
        if indicators.shape[1] == 1:  # one label: stratify on it and its complement
            indicators = np.column_stack([indicators, 1 - indicators])
        return indicators


def stratified_indices(Y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and validation rows of a 0/1 matrix, split as :class:`MultilabelValidSplit` does."""
    train, valid = MultilabelValidSplit(fraction, seed, None).indices(Y)
    return np.sort(train), np.sort(valid)


def _positives(Y) -> sp.csr_matrix:
    """The hard view ``Y >= 0.5`` as a sparse bool matrix, made a block of rows at a time.

    One label is stratified on beside its complement (iterative stratification needs
    two columns).
    """
    if sp.issparse(Y):
        positives = hard_view(Y, bool)  # on the stored entries
    else:
        blocks = row_blocks(np.asarray(Y))
        positives = sp.vstack([sp.csr_matrix(hard_view(block, bool)) for block in blocks], format="csr")
    if positives.shape[1] == 1:
        positives = sp.hstack([positives, sp.csr_matrix(~positives.toarray())], format="csr")
    return positives


def stratified_shuffle_split(Y, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Train and validation rows of a 0/1 matrix, as ``MultilabelStratifiedShuffleSplit`` splits it.

    The split iterative-stratification makes with ``n_splits=1, test_size=fraction,
    random_state=seed`` (the same rows, from the same random draws in the same order:
    tested against the library), in time that grows with the positives. The library
    recounts every label's remaining positives over all unprocessed rows once per label
    it processes, which grows with rows x labels x labels: at debtags' 24,607 texts and
    326 labels that was 1.5 s of every fit, at 20,000 texts and 20,000 labels hours.

    Parameters
    ----------
    Y : {ndarray, sparse matrix} of shape (n_samples, n_labels)
        0/1 indicators (non-zero: positive).
    fraction : float
        Share of the rows held out, rounded up.
    seed : int

    Returns
    -------
    train, valid : ndarray of int
        Sorted row indices.
    """
    labels = sp.csr_matrix(Y, dtype=bool)
    labels.sum_duplicates()
    labels.eliminate_zeros()
    n_samples = labels.shape[0]
    n_valid = math.ceil(fraction * n_samples)
    ratios = np.array([n_samples - n_valid, n_valid]) / n_samples
    random_state = np.random.RandomState(seed)
    order = np.arange(n_samples)
    random_state.shuffle(order)
    folds = _iterative_stratification(labels[order], ratios, random_state)
    in_valid = folds[np.argsort(order)] == 1
    return np.flatnonzero(~in_valid), np.flatnonzero(in_valid)


def _iterative_stratification(labels: sp.csr_matrix, ratios: np.ndarray, random_state) -> np.ndarray:
    """The fold of each row: Sechidis et al. (2011) as iterative-stratification implements it.

    Label by label, the one with the fewest unprocessed positives first (ties drawn at
    random), each of its unprocessed rows goes to the fold that most wants that label
    (ties: the fold that wants the most rows, then a draw); rows without any positive
    left go, one by one, to the fold that wants the most rows. The remaining positives
    are kept as counts, decreased row by row, where the library sums the unprocessed
    rows again for every label.
    """
    n_samples = labels.shape[0]
    by_label = labels.tocsc()
    by_label.sort_indices()
    folds = np.zeros(n_samples, dtype=int)
    wanted = ratios * n_samples  # rows each fold still wants
    remaining = np.diff(by_label.indptr).astype(np.int64)  # unprocessed positives of each label
    wanted_per_label = np.outer(ratios, remaining)
    unprocessed = np.ones(n_samples, dtype=bool)
    n_left = n_samples
    while n_left:
        if not remaining.any():  # only rows without a positive left
            for row in np.flatnonzero(unprocessed):
                candidates = np.flatnonzero(wanted == wanted.max())
                fold = candidates[random_state.choice(len(candidates))] if len(candidates) > 1 else candidates[0]
                folds[row] = fold
                wanted[fold] -= 1
            break
        rarest = np.flatnonzero(remaining == remaining[remaining > 0].min())
        label = rarest[random_state.choice(len(rarest))] if len(rarest) > 1 else rarest[0]
        rows = by_label.indices[by_label.indptr[label] : by_label.indptr[label + 1]]
        for row in rows[unprocessed[rows]]:
            label_wants = wanted_per_label[:, label]
            candidates = np.flatnonzero(label_wants == label_wants.max())
            if len(candidates) > 1:
                most = np.flatnonzero(wanted[candidates] == wanted[candidates].max())
                fold = candidates[most[random_state.choice(len(most))]] if len(most) > 1 else candidates[most[0]]
            else:
                fold = candidates[0]
            folds[row] = fold
            unprocessed[row] = False
            n_left -= 1
            row_labels = labels.indices[labels.indptr[row] : labels.indptr[row + 1]]
            wanted_per_label[fold, row_labels] -= 1
            wanted[fold] -= 1
            remaining[row_labels] -= 1
    return folds
