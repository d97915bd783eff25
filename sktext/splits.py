"""The validation splits: skorch ``train_split`` callables holding out part of a fit's data.

:class:`ShuffleValidSplit` holds out a random share (the regressors);
:class:`MultilabelValidSplit` a multi-label stratified one (the classifiers), made with
iterative stratification so that rare labels keep positives on both sides. The
validation part comes sorted by length, for fast, padding-light evaluation. A split
computes its indices once per target array, so threshold tuning after training sees
the very validation texts early stopping watched.
"""

from __future__ import annotations

import numpy as np
from iterstrat.ml_stratifiers import MultilabelStratifiedShuffleSplit
from sklearn.model_selection import ShuffleSplit

from .batching import TokenizedTexts
from .targets import OutputLayout
from .validation import hard_view

__all__ = ["MultilabelValidSplit", "ShuffleValidSplit", "stratified_indices"]


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

    def _splitter(self):
        return ShuffleSplit(n_splits=1, test_size=self.fraction, random_state=self.seed)

    def indices(self, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Train and validation indices for the targets ``y`` (computed once per array)."""
        if self._cache is not None and self._cache[0] is y:
            return self._cache[1]
        n_valid = int(np.ceil(self.fraction * len(y)))
        if n_valid < 1 or len(y) - n_valid < 1:
            raise ValueError(
                f"validation_fraction={self.fraction} leaves no validation or no training "
                f"sample out of {len(y)}; pass more texts, another fraction, or "
                "validation_fraction=None (for a classifier, with a float threshold)."
            )
        train, valid = next(self._splitter().split(np.zeros(len(y)), self._stratify_on(y)))
        if len(train) == 0 or len(valid) == 0:
            raise ValueError(
                f"validation_fraction={self.fraction} leaves {len(valid)} validation and "
                f"{len(train)} training samples out of {len(y)} (the stratified split could not "
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

    Uses ``MultilabelStratifiedShuffleSplit`` from iterative-stratification. Categorical
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

    def _splitter(self):
        return MultilabelStratifiedShuffleSplit(n_splits=1, test_size=self.fraction, random_state=self.seed)

    def _stratify_on(self, y: np.ndarray) -> np.ndarray:
        indicators = y if self.layout is None else self.layout.indicator_matrix(y)
        indicators = hard_view(indicators)  # soft targets: their hard view
        if indicators.shape[1] == 1:  # one label: stratify on it and its complement
            indicators = np.column_stack([indicators, 1 - indicators])
        return indicators


def stratified_indices(Y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and validation rows of a 0/1 matrix, split as :class:`MultilabelValidSplit` does."""
    train, valid = MultilabelValidSplit(fraction, seed, None).indices(Y)
    return np.sort(train), np.sort(valid)
