"""What a classifier's targets are and how its logits are laid out: the one place for that.

A multi-label indicator matrix (only 0 and 1) is the classic case: one sigmoid logit
per label. Several *categorical* targets at once (``multiclass-multioutput``: integer
or string columns, e.g. weather ``clear``/``cloudy``/``rain`` in one column and the
season in another) get one softmax group of logits per column. A pandas DataFrame may
mix both: its 0/1 numeric (or bool) columns are binary targets with a sigmoid logit,
its other columns (object, category or string dtype, or integers beyond 0/1) are
categorical targets with a softmax group. :class:`OutputLayout` records, for every
target, its kind, its classes and which logit columns are its own; the loss
(:class:`~sktext.losses.MultiHeadLoss`), the output-bias prior, the stratified
validation split and ``predict`` all read it.

*Soft targets* are a multi-label matrix of probabilities: floats in [0, 1], at least one
strictly between (annotator agreement, another model's scores). They are detected from
the values, as Hugging Face's ``multi_label_classification`` and fastai take float
targets: a 0/1 matrix stays the classic case, byte for byte. The loss learns the
probabilities as they are; whatever needs a yes or no (the stratified split, thresholds,
``score``, label support) uses their *hard view*, ``p >= 0.5``
(:func:`~sktext.validation.is_soft`). Soft columns beside categorical ones are not taken.

A single 1-D multiclass ``y`` is not taken (the error says so): pass it as one column,
``np.reshape(y, (-1, 1))`` or a one-column DataFrame, to get one softmax head.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import numpy as np

from .validation import SoftTargetError, check_label_matrix, column_sums

__all__ = ["BINARY", "CATEGORICAL", "OutputLayout", "Target", "check_targets"]

BINARY = "binary"
CATEGORICAL = "categorical"


@dataclass(frozen=True)
class Target:
    """One target column: its name, kind, classes and logit columns ``[start, stop)``."""

    name: object
    kind: str
    classes: np.ndarray
    start: int
    stop: int


@dataclass(frozen=True)
class OutputLayout:
    """The targets of a classifier and the logit columns each one owns.

    Training targets are a float matrix with one column per target: 0/1 for a binary
    target, the class index for a categorical one.
    """

    targets: tuple[Target, ...]

    @classmethod
    def from_columns(cls, columns: list[tuple[object, str, np.ndarray]]) -> OutputLayout:
        """A layout from ``(name, kind, classes)`` per target, logits in that order."""
        targets, start = [], 0
        for name, kind, classes in columns:
            width = 1 if kind == BINARY else len(classes)
            targets.append(Target(name, kind, np.asarray(classes), start, start + width))
            start += width
        return cls(tuple(targets))

    @classmethod
    def multilabel(cls, names) -> OutputLayout:
        """The layout of a multi-label matrix: one binary target (one logit) per label."""
        return cls.from_columns([(name, BINARY, np.array([0, 1])) for name in names])

    @property
    def n_logits(self) -> int:
        """Width of the model's output layer."""
        return self.targets[-1].stop

    @property
    def is_multilabel(self) -> bool:
        """Whether every target is binary (the plain multi-label case)."""
        return all(target.kind == BINARY for target in self.targets)

    @property
    def binary_targets(self) -> np.ndarray:
        """Indices (into the target columns) of the binary targets."""
        return np.array([i for i, t in enumerate(self.targets) if t.kind == BINARY], dtype=np.int64)

    @property
    def binary_logits(self) -> np.ndarray:
        """Logit columns of the binary targets, in the same order."""
        return np.array([t.start for t in self.targets if t.kind == BINARY], dtype=np.int64)

    @property
    def binary_columns(self) -> slice | np.ndarray:
        """:attr:`binary_targets` as an index that copies nothing where every target is binary.

        ``Y[:, layout.binary_columns]`` is then ``Y`` itself (a view), not a copy of the
        whole (n_samples, n_labels) matrix: at 20,000 labels, gigabytes.
        """
        return slice(None) if self.is_multilabel else self.binary_targets

    @property
    def binary_logit_columns(self) -> slice | np.ndarray:
        """:attr:`binary_logits` as an index that copies nothing where every target is binary."""
        return slice(None) if self.is_multilabel else self.binary_logits

    @property
    def softmax_groups(self) -> list[tuple[int, int, int]]:
        """``(target index, start, stop)`` of every categorical target's logit group."""
        return [(i, t.start, t.stop) for i, t in enumerate(self.targets) if t.kind == CATEGORICAL]

    def indicator_matrix(self, Y: np.ndarray) -> np.ndarray:
        """The targets as one 0/1 column per logit (categorical ones one-hot), for stratifying.

        A multi-label ``Y`` is that already, and comes back as it is (no copy).
        """
        if self.is_multilabel:
            return Y
        indicators = np.zeros((len(Y), self.n_logits), dtype=np.float32)
        for index, target in enumerate(self.targets):
            if target.kind == BINARY:
                indicators[:, target.start] = Y[:, index]
            else:
                indicators[np.arange(len(Y)), target.start + Y[:, index].astype(np.int64)] = 1.0
        return indicators

    def bias_prior(self, Y: np.ndarray, sample_weight: np.ndarray | None = None) -> np.ndarray:
        """Output-layer bias at the (weighted) training priors: log-odds (binary), log-priors (softmax)."""
        bias = np.zeros(self.n_logits)
        indicators = self.indicator_matrix(Y)
        weights = np.ones(Y.shape[0]) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
        total = weights.sum()
        if self.is_multilabel:  # every label at once (a block of rows at a time, or sparse), in float64
            prior = (column_sums(indicators, weights) + 0.5) / (total + 1.0)
            return np.log(prior / (1 - prior))
        for target in self.targets:
            counts = weights @ indicators[:, target.start : target.stop]
            if target.kind == BINARY:
                prior = (counts + 0.5) / (total + 1.0)
                bias[target.start] = np.log(prior / (1 - prior))[0]
            else:
                prior = (counts + 0.5) / (total + 0.5 * len(counts))
                bias[target.start : target.stop] = np.log(prior)
        return bias


def _is_missing(value) -> bool:
    return value is None or (isinstance(value, numbers.Real) and not np.isfinite(value))


def _column_kind(name, values: np.ndarray, *, declared_categorical: bool, allow_binary: bool):
    """``(kind, classes, codes)`` of one target column, or raise with the fix."""
    missing = [i for i, v in enumerate(values) if _is_missing(v)]
    if missing:
        raise ValueError(
            f"y column {name!r} has {len(missing)} missing value(s) (None or NaN; the first "
            f"at row {missing[0]}); drop those samples or fill the column first."
        )
    numeric = values.dtype.kind in "biuf" or all(isinstance(v, numbers.Real) and not isinstance(v, str) for v in values)
    if numeric and not declared_categorical:
        as_float = values.astype(np.float64)
        if not np.all(as_float == np.round(as_float)):
            shown = as_float[as_float != np.round(as_float)][0]
            raise ValueError(
                f"y column {name!r} holds {float(shown)!r}, which is neither a 0/1 indicator (a "
                "multi-label matrix holds only 0 and 1) nor a class label (an int or str). "
                "Soft targets (per-label probabilities) are taken for a multi-label matrix whose "
                "values all lie in [0, 1]; for continuous targets use TransformerRegressor or ULMFiTRegressor."
            )
        if allow_binary and np.isin(as_float, (0, 1)).all():
            return BINARY, np.array([0, 1]), as_float
        values = as_float.astype(np.int64)
    try:
        classes, codes = np.unique(values, return_inverse=True)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in values})
        raise ValueError(
            f"y column {name!r} mixes label types ({', '.join(kinds)}); a categorical "
            "column must hold all ints or all strings, e.g. column.astype(str)."
        ) from None
    return CATEGORICAL, classes, codes.reshape(-1).astype(np.float64)


def _multioutput_columns(y, n_samples: int):
    """``[(name, values, declared_categorical)]`` if ``y`` may be a multi-output target, else None."""
    if hasattr(y, "columns") and hasattr(y, "iloc"):
        if y.shape[0] != n_samples or y.shape[1] == 0:
            return None, True
        columns = []
        for name in y.columns:
            series = y[name]
            dtype = series.dtype
            declared = str(dtype) in ("category", "string") or dtype.kind in "OSU"
            columns.append((name, series.to_numpy(dtype=object if declared else None), declared))
        return columns, True
    if hasattr(y, "shape") and not isinstance(y, np.ndarray) and not hasattr(y, "to_numpy"):
        return None, False  # sparse matrices are indicator matrices only
    try:
        array = np.asarray(y)
    except ValueError:
        return None, False
    if array.ndim != 2 or array.shape[0] != n_samples or array.shape[1] == 0:
        return None, False
    if array.dtype.kind not in "biufOSU":
        return None, False
    return [(j, array[:, j], False) for j in range(array.shape[1])], False


def _refuse_label_lists(y) -> None:
    """Raise the MultiLabelBinarizer fix for Python lists of label names (or of label sets)."""
    if not isinstance(y, (list, tuple)) or not y:
        return
    rows = list(y)
    if not all(isinstance(row, (list, tuple, set, frozenset)) for row in rows):
        return
    if any(isinstance(row, (set, frozenset)) for row in rows) or any(
        isinstance(value, (str, bytes)) for row in rows for value in row
    ):
        raise ValueError(
            "y looks like lists of label names (e.g. "
            f"{list(rows[0])[:3]!r}); binarize it first: mlb = MultiLabelBinarizer(); "
            "Y = mlb.fit_transform(y), and keep mlb.classes_ for the label names. If each "
            "column is instead one categorical target, pass a 2-D numpy array or a DataFrame."
        )


def check_targets(y, n_samples: int) -> tuple[np.ndarray, np.ndarray | list, OutputLayout]:
    """Validate a classifier's ``y``: a multi-label matrix, or categorical (and 0/1) columns.

    Parameters
    ----------
    y : array-like of shape (n_samples, n_targets), sparse matrix or DataFrame
        A 0/1 indicator matrix (multi-label), a float matrix of per-label
        probabilities in [0, 1] (soft targets: multi-label, taken as they are), a 2-D array of class labels
        (``multiclass-multioutput``: each column one categorical target, ints or
        strings), or a DataFrame mixing 0/1 columns (binary targets) and categorical
        columns.
    n_samples : int
        The number of texts.

    Returns
    -------
    Y : ndarray or scipy.sparse.csr_matrix of shape (n_samples, n_targets), dtype float32
        0/1 per binary target (or its probability, for soft targets), the class
        index per categorical target. A sparse multi-label ``y`` of 0/1 stays sparse
        (CSR): the fit densifies a batch at a time.
    classes : ndarray of shape (n_labels,) or list of ndarray
        The label names for a multi-label y; else one array of classes per column.
    layout : OutputLayout
        For a multi-label y, every target binary (:meth:`OutputLayout.multilabel`).
    """
    _refuse_label_lists(y)
    try:
        Y, classes = check_label_matrix(y, n_samples, allow_soft=True, keep_sparse=True)
        return Y, classes, OutputLayout.multilabel(classes)
    except SoftTargetError:
        raise
    except ValueError:
        columns, is_frame = _multioutput_columns(y, n_samples)
        if columns is None:
            raise
        if not is_frame and not any(c[1].dtype.kind in "OSU" or not np.isin(c[1], (0, 1)).all() for c in columns):
            raise
    parsed = [
        (name, *_column_kind(name, values, declared_categorical=declared, allow_binary=is_frame))
        for name, values, declared in columns
    ]
    layout = OutputLayout.from_columns([(name, kind, classes) for name, kind, classes, _ in parsed])
    Y = np.column_stack([codes for *_, codes in parsed]).astype(np.float32)
    if layout.is_multilabel:  # e.g. a DataFrame of int and bool 0/1 columns
        return Y, np.asarray([name for name, *_ in parsed], dtype=object), layout
    return Y, [target.classes for target in layout.targets], layout
