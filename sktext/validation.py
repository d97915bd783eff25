"""Every input and parameter check of sktext, with one vocabulary of messages.

Each check says what was expected, what arrived and how to fix it, so that bad input
fails here, in ``fit`` or ``predict``, and never deep inside torch.

- Texts and targets: :func:`check_texts`, :func:`check_label_matrix`,
  :func:`check_regression_targets`, :func:`check_n_labels`, :func:`check_sample_weight`.
- Parameters: each estimator class declares ``_parameter_constraints``, a dict from
  parameter name to a list of allowed kinds (:class:`Interval`, :class:`Options`,
  :class:`Types`, ``None``, ``"boolean"``, ``"array-like"``, ``"random_state"``,
  ``"device"``, ``"callbacks"``); :func:`validate_parameters` checks them all at once, at the start of
  ``fit`` and when a model folder is loaded, and fails with one message shape:
  ``The 'lr' parameter of TransformerMultiLabelClassifier must be a finite float > 0.
  Got inf instead.``
- Devices and seeds: :func:`resolve_device` and the :func:`seeded` context, the one
  place where a ``random_state`` becomes torch's seed.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import math
import numbers
import os
import warnings
from collections.abc import Iterator, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils import check_random_state
from sklearn.utils.multiclass import type_of_target


def check_texts(X, *, name: str = "X", allow_empty: bool = False) -> list[str]:
    """Return ``X`` as a list of str, or raise a ValueError that names the fix.

    Parameters
    ----------
    X : list, tuple, numpy array or pandas Series of str
        The texts.
    name : str, default="X"
        The argument's name, used in error messages.
    allow_empty : bool, default=False
        Whether an empty sequence is accepted.

    Returns
    -------
    texts : list of str
    """
    if isinstance(X, (str, bytes)):
        raise ValueError(
            f"{name} must be a sequence of texts (a list, tuple, numpy array or pandas "
            f"Series of str), got a single {type(X).__name__}. Wrap it in a list: [text]."
        )
    if hasattr(X, "iloc") and hasattr(X, "columns"):
        if X.shape[1] != 1:
            raise ValueError(
                f"{name} is a DataFrame with {X.shape[1]} columns; pass the one text column, e.g. df['text']."
            )
        X = X.iloc[:, 0]
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas Series
        X = X.to_numpy(dtype=object)
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(f"{name} must be 1-D: one text per sample, got an array of shape {X.shape}.")
        X = X.tolist()
    elif isinstance(X, (set, frozenset, Mapping)) or not hasattr(X, "__iter__"):
        raise ValueError(f"{name} must be a list, tuple, numpy array or pandas Series of str, got {type(X).__name__}.")
    texts = list(X)
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        first = bad[0]
        raise ValueError(
            f"{name} must hold only str; {len(bad)} item(s) are not, the first at index "
            f"{first} is {texts[first]!r} ({type(texts[first]).__name__}). Replace missing "
            f"texts with '' (e.g. series.fillna('')) or convert them with str()."
        )
    _check_encodable(texts, name)
    if not texts and not allow_empty:
        raise ValueError(f"{name} is empty: at least one text is needed.")
    return texts


def _check_encodable(texts: list[str], name: str) -> None:
    """Refuse texts that are not valid Unicode (lone surrogates), naming the first one's index."""
    try:
        "".join(texts).encode("utf-8")
    except UnicodeEncodeError:
        pass
    else:
        return
    for index, text in enumerate(texts):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raise ValueError(
                f"{name}[{index}] is not valid Unicode: it holds a lone surrogate "
                f"({text[error.start]!r} at position {error.start}), as text decoded with "
                "errors='surrogateescape' does. Clean it first, e.g. "
                "text.encode('utf-8', errors='replace').decode('utf-8')."
            ) from None


def check_label_matrix(
    y, n_samples: int, *, allow_soft: bool = False, keep_sparse: bool = False
) -> tuple[np.ndarray | sp.csr_matrix, np.ndarray]:
    """Validate a multi-label indicator target and return it with its label names.

    Parameters
    ----------
    y : array-like or sparse matrix of shape (n_samples, n_labels), or DataFrame
        0/1 indicators, as ``MultiLabelBinarizer`` returns. A DataFrame's column
        names become the label names.
    n_samples : int
        The number of texts, which ``y`` must match.
    allow_soft : bool, default=False
        Also take *soft targets*: a float matrix whose values all lie in [0, 1], each
        a label's probability (see :func:`is_soft`). NaN and values outside [0, 1]
        are refused with the fix.
    keep_sparse : bool, default=False
        Return a sparse ``y`` of 0/1 indicators as a CSR matrix (float32, indices
        sorted), not dense: a fit of tens of thousands of labels then densifies its
        targets a batch at a time (20,000 texts x 20,000 labels are 1.6 GB dense).
        Soft targets are returned dense either way.

    Returns
    -------
    Y : ndarray or scipy.sparse.csr_matrix of shape (n_samples, n_labels), dtype float32
    classes : ndarray of shape (n_labels,)
        Column names for a DataFrame, else ``arange(n_labels)``.
    """
    if y is None:
        raise ValueError(
            "y is required: a 2-D binary indicator matrix of shape (n_samples, n_labels), "
            "as MultiLabelBinarizer().fit_transform(label_lists) returns."
        )
    classes = None
    if hasattr(y, "columns") and hasattr(y, "to_numpy"):
        classes = np.asarray(y.columns, dtype=object)
        y = y.to_numpy()
    sparse = sp.issparse(y)
    if sparse:  # checked on its stored values and made dense once, as float32
        Y = sp.csr_matrix(y)
        Y.sum_duplicates()
    else:
        if isinstance(y, (list, tuple)) and y and isinstance(y[0], (list, tuple, set)):
            lengths = {len(row) for row in y}
            if len(lengths) != 1 or any(not isinstance(v, numbers.Number) for row in y for v in row):
                raise ValueError(
                    "y looks like lists of labels; binarize it first: "
                    "mlb = MultiLabelBinarizer(); Y = mlb.fit_transform(y)."
                )
        Y = np.asarray(y)
    if Y.ndim != 2:
        kind = type_of_target(Y) if Y.ndim == 1 and Y.size else f"{Y.ndim}-D"
        raise ValueError(
            "y must be a 2-D binary indicator matrix of shape (n_samples, n_labels) "
            f"(what MultiLabelBinarizer returns); got a {Y.ndim}-D target of type "
            f"'{kind}'. Did you mean MultiLabelBinarizer().fit_transform(y)? For one "
            "categorical target (a softmax head), pass it as one column: np.reshape(y, (-1, 1))."
        )
    if Y.shape[0] != n_samples:
        raise ValueError(
            f"X and y have different numbers of samples: {n_samples} texts but {Y.shape[0]} rows of labels."
        )
    if Y.shape[1] == 0:
        raise ValueError("y has no label columns; at least one label is needed.")
    if (
        not sparse
        and Y.dtype == object
        and Y.size
        and all(isinstance(value, (numbers.Real, np.bool_)) and not isinstance(value, str) for value in Y.ravel())
    ):
        Y = Y.astype(np.float64)  # an object array of numbers reads as the numeric array it holds
    if Y.dtype == object or not np.issubdtype(Y.dtype, np.number) and Y.dtype != bool:
        raise ValueError(
            f"y must hold 0/1 numbers, got dtype {Y.dtype}. For label lists use MultiLabelBinarizer().fit_transform(y)."
        )
    values = np.unique(Y.data) if sparse else _distinct_values(Y)
    if sparse and Y.nnz < Y.shape[0] * Y.shape[1]:
        values = np.union1d(values, [0])  # the entries not stored
    soft = allow_soft and Y.dtype.kind == "f" and bool((values != np.round(values)).any())  # fractions (or NaN)
    if soft:
        _check_probabilities(Y.toarray() if sparse else Y)
        values = np.array([0.0, 1.0])  # probabilities: taken as they are
    if not np.isin(values, (0, 1)).all():
        shown = ", ".join(map(str, values[~np.isin(values, (0, 1))][:5]))
        raise ValueError(
            f"y must be a binary indicator matrix holding only 0 and 1; found {shown}. "
            "For label lists use MultiLabelBinarizer().fit_transform(y); categorical "
            "targets are taken as dense int or str columns (or a DataFrame); for continuous "
            "targets use TransformerRegressor or ULMFiTRegressor."
        )
    if classes is None:
        classes = np.arange(Y.shape[1])
    if sparse and keep_sparse and not soft:
        Y = Y.astype(np.float32)
        Y.eliminate_zeros()
        Y.sort_indices()
        return Y, classes
    return (Y.astype(np.float32).toarray() if sparse else Y.astype(np.float32, copy=False)), classes


class SoftTargetError(ValueError):
    """A float target matrix meant as probabilities (it holds fractions) that is not one."""


def _check_probabilities(Y: np.ndarray) -> None:
    """Refuse NaN and values outside [0, 1] in a float target matrix that holds fractions."""
    missing = np.argwhere(np.isnan(Y))
    if len(missing):
        row, column = missing[0]
        raise SoftTargetError(
            f"y holds {len(missing)} NaN value(s) (the first at row {row}, column {column}). Soft targets "
            "(per-label probabilities) must be numbers in [0, 1]: fill the gaps (e.g. with 0) or drop those texts."
        )
    outside = (Y < 0) | (Y > 1)
    if outside.any():
        shown = float(Y[outside][0])
        raise SoftTargetError(
            f"y holds {shown!r}: a target matrix with fractions is taken as soft targets (per-label "
            "probabilities), which must lie in [0, 1]. Rescale them (e.g. percentages / 100) or clip "
            "them with np.clip(y, 0, 1); for continuous targets use TransformerRegressor or ULMFiTRegressor."
        )


#: Entries of a target matrix looked at a block of rows at a time (by :func:`is_soft` and
#: :func:`check_label_matrix`), so that a check makes no temporary array of the whole
#: matrix's size: 400 million entries at 20,000 texts x 20,000 labels.
CHECK_BLOCK_ENTRIES = 1 << 23


def row_blocks(Y):
    """``Y`` a block of rows at a time (about :data:`CHECK_BLOCK_ENTRIES` entries each); a small or 1-D ``Y`` whole.

    Dense or sparse: the entries counted are the matrix's, stored or not.
    """
    if Y.ndim < 2 or Y.shape[0] * Y.shape[1] <= CHECK_BLOCK_ENTRIES:
        yield Y
        return
    step = max(1, CHECK_BLOCK_ENTRIES // max(Y.shape[1], 1))
    for start in range(0, Y.shape[0], step):
        yield Y[start : start + step]


def _distinct_values(Y: np.ndarray) -> np.ndarray:
    """``np.unique(Y)``, without sorting a copy of a large matrix: its entries other than 0 and 1 are few."""
    if Y.size <= CHECK_BLOCK_ENTRIES:
        return np.unique(Y)
    seen, others = set(), []
    for block in row_blocks(Y):
        zero, one = block == 0, block == 1
        seen.update(value for value, found in ((0, zero.any()), (1, one.any())) if found)
        other = block[~(zero | one)]
        if other.size:
            others.append(np.unique(other))
    return np.unique(np.concatenate([np.array(sorted(seen), dtype=Y.dtype), *others]))


def is_soft(Y: np.ndarray) -> bool:
    """Whether a checked target matrix holds soft targets: any value strictly between 0 and 1.

    A 0/1 matrix (of any dtype) is hard; a float matrix in [0, 1] with at least one
    fraction holds per-label probabilities, whose *hard view* is ``Y >= 0.5``.
    """
    if sp.issparse(Y):  # its stored values (the others are 0)
        return Y.dtype.kind == "f" and bool(((Y.data > 0) & (Y.data < 1)).any())
    Y = np.asarray(Y)
    return Y.dtype.kind == "f" and any(bool(((block > 0) & (block < 1)).any()) for block in row_blocks(Y))


def dense_rows(Y, rows=None) -> np.ndarray:
    """Rows of a target matrix (all where ``rows`` is None) as a dense array: a sparse one densified there.

    For what needs a dense block of targets (a batch, the validation part's blend and
    thresholds) from targets kept sparse (``check_label_matrix(..., keep_sparse=True)``).
    """
    block = Y if rows is None else Y[rows]
    return block.toarray() if sp.issparse(block) else np.asarray(block)


def column_sums(Y, sample_weight=None) -> np.ndarray:
    """Each column's (weighted) sum, in float64, a block of rows at a time: the labels' positives.

    Dense or sparse ``Y``; no temporary of the whole matrix's size.
    """
    weights = None if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    if sp.issparse(Y):
        Y = sp.csr_matrix(Y)
        if weights is None:
            return np.asarray(Y.sum(axis=0, dtype=np.float64)).ravel()
        return np.asarray(weights @ Y, dtype=np.float64).ravel()
    totals, start = np.zeros(Y.shape[1]), 0
    for block in row_blocks(np.asarray(Y)):
        block = block.astype(np.float64)
        totals += block.sum(axis=0) if weights is None else weights[start : start + len(block)] @ block
        start += len(block)
    return totals


def hard_view(Y, dtype=np.float32) -> np.ndarray:
    """The yes-or-no view of targets, ``Y >= 0.5``: soft targets' positives; 0/1 targets themselves.

    Whatever needs a decision (a stratified split, thresholds, scores, label counts)
    reads soft targets through this one rule.
    """
    if sp.issparse(Y):
        hard = sp.csr_matrix(Y, copy=True)
        hard.data = (hard.data >= 0.5).astype(dtype)
        hard.eliminate_zeros()
        return hard
    return (np.asarray(Y) >= 0.5).astype(dtype)


def check_regression_targets(y, n_samples: int) -> tuple[np.ndarray, bool]:
    """Validate continuous targets and return them as a float matrix.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_targets), or pandas Series / DataFrame
        Finite numbers.
    n_samples : int
        The number of texts, which ``y`` must match.

    Returns
    -------
    Y : ndarray of shape (n_samples, n_targets), dtype float64
    one_dimensional : bool
        Whether ``y`` was 1-D (so predictions are returned 1-D too).
    """
    if y is None:
        raise ValueError(
            "y is required: the continuous targets, an array of shape (n_samples,) or (n_samples, n_targets)."
        )
    if sp.issparse(y):
        y = y.toarray()
    if hasattr(y, "to_numpy"):  # pandas Series or DataFrame
        y = y.to_numpy()
    Y = np.asarray(y, dtype=object) if not isinstance(y, np.ndarray) else y
    if Y.ndim not in (1, 2) or (Y.ndim == 2 and Y.shape[1] == 0):
        raise ValueError(
            f"y must be 1-D (one target) or 2-D (one column per target) with at least one "
            f"column; got an array of shape {Y.shape}."
        )
    try:
        numeric = Y.astype(np.float64) if Y.dtype.kind in "biuf" else _to_float(Y)
    except (TypeError, ValueError):
        flat = Y.ravel()
        bad = next(
            value
            for value in flat
            if isinstance(value, (str, bytes, bool, np.bool_)) or not isinstance(value, numbers.Real)
        )
        raise ValueError(
            f"y must hold numbers for regression; it holds {bad!r} "
            f"({type(bad).__name__}). Convert the column to float (e.g. "
            "pd.to_numeric(column)); for categorical targets use a classifier."
        ) from None
    if Y.shape[0] != n_samples:
        raise ValueError(f"X and y have different numbers of samples: {n_samples} texts but {Y.shape[0]} target rows.")
    if not np.isfinite(numeric).all():
        rows = np.flatnonzero(~np.isfinite(numeric.reshape(len(numeric), -1)).all(axis=1))
        raise ValueError(
            f"y holds NaN or infinite values in {len(rows)} row(s) (the first at index "
            f"{rows[0]}); drop those samples or impute the targets first."
        )
    one_dimensional = numeric.ndim == 1
    return numeric.reshape(len(numeric), -1), one_dimensional


def _to_float(Y: np.ndarray) -> np.ndarray:
    """Object or string arrays as floats; strings and booleans are refused (TypeError)."""
    if Y.dtype.kind in "USb":
        raise TypeError
    for value in Y.ravel():
        if isinstance(value, (str, bytes, bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError
    return Y.astype(np.float64)


def check_n_labels(y, n_labels: int, *, what: str = "labels") -> None:
    """Raise if ``y`` has another number of columns than the fitted labels (or targets)."""
    shape = getattr(y, "shape", None) or np.shape(y)
    n_columns = shape[1] if len(shape) == 2 else 1
    if n_columns != n_labels:
        raise ValueError(f"y has {n_columns} columns but the estimator was fitted on {n_labels} {what}.")


def check_sample_weight(sample_weight, n_samples: int) -> np.ndarray | None:
    """``sample_weight`` of ``fit`` as a float64 array of shape (n_samples,), or None.

    Weights must be finite and non-negative, with at least one above zero.
    """
    if sample_weight is None:
        return None
    try:
        weights = np.asarray(sample_weight, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(
            f"sample_weight must be numbers, one per text; got {type(sample_weight).__name__} holding something else."
        ) from None
    if weights.ndim == 0:
        weights = np.full(n_samples, float(weights))
    if weights.shape != (n_samples,):
        raise ValueError(
            f"sample_weight must hold one weight per text, i.e. shape ({n_samples},); got shape {weights.shape}."
        )
    invalid = np.flatnonzero(~np.isfinite(weights) | (weights < 0))
    if len(invalid):
        raise ValueError(
            f"sample_weight must be finite and >= 0; got {float(weights[invalid[0]])!r} at position {int(invalid[0])}."
        )
    if not weights.any():
        raise ValueError("sample_weight is zero everywhere; at least one text needs a weight above 0.")
    return weights


def resolve_device(device, *, cuda_fallback: bool = False) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a torch.device into a device.

    Parameters
    ----------
    device : str or torch.device
        ``"auto"`` is CUDA where available (under ``torchrun``, the process's
        ``LOCAL_RANK`` GPU), else the CPU.
    cuda_fallback : bool, default=False
        Return the CPU, instead of raising, when CUDA is asked for and absent (what
        loading a model fitted on a GPU on a CPU-only machine needs).
    """
    if device is None or (isinstance(device, str) and device == "auto"):
        if not torch.cuda.is_available():
            return torch.device("cpu")
        from .distributed import local_cuda_index

        index = local_cuda_index()  # data-parallel: the process's own GPU
        return torch.device("cuda") if index is None else torch.device("cuda", index)
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}.") from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        if cuda_fallback:
            return torch.device("cpu")
        raise ValueError(
            f"device={device!r} was asked for but CUDA is not available on this machine; use device='auto' or 'cpu'."
        )
    return resolved


def seed_from(random_state) -> int:
    """An int seed from a scikit-learn ``random_state`` (None, int, RandomState or Generator)."""
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int32).max))
    return int(check_random_state(random_state).randint(np.iinfo(np.int32).max))


@contextlib.contextmanager
def seeded(seed: int, device: torch.device | None = None) -> Iterator[int]:
    """Run a block with torch's generators seeded by ``seed``, restoring them afterwards.

    The CPU generator and, on CUDA, the generator of ``device`` are forked, so the
    caller's global torch state is left as it was. Yields ``seed``.
    """
    cuda = [device.index or 0] if device is not None and device.type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        yield seed


# -- parameter constraints ------------------------------------------------------------------
class Constraint:
    """One kind of value a parameter may take; ``hint`` is appended to the error message."""

    hint: str | None = None

    def is_satisfied_by(self, value) -> bool:
        raise NotImplementedError

    def with_hint(self, hint: str) -> Constraint:
        """A copy of the constraint whose error message ends with ``hint``."""
        constraint = copy.copy(self)
        constraint.hint = hint
        return constraint

    def __str__(self) -> str:
        raise NotImplementedError


class Interval(Constraint):
    """Numbers of a kind (``numbers.Integral`` or ``numbers.Real``) in an interval.

    Real intervals only take finite values. ``closed`` is ``"left"``, ``"right"``,
    ``"both"`` or ``"neither"``; a bound of None is unbounded.

    Examples
    --------
    >>> str(Interval(numbers.Real, 0, None, closed="neither"))
    'a finite float > 0'
    >>> str(Interval(numbers.Integral, 1, None, closed="left"))
    'an int >= 1'
    """

    def __init__(self, kind, low, high, *, closed: str, hint: str | None = None) -> None:
        self.kind = kind
        self.low = low
        self.high = high
        self.closed = closed
        self.hint = hint

    def is_satisfied_by(self, value) -> bool:
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, self.kind):
            return False
        if self.kind is numbers.Real and not math.isfinite(value):
            return False
        if self.low is not None:
            if value < self.low or (value == self.low and self.closed in ("right", "neither")):
                return False
        if self.high is not None:
            if value > self.high or (value == self.high and self.closed in ("left", "neither")):
                return False
        return True

    def __str__(self) -> str:
        noun = "an int" if self.kind is numbers.Integral else "a float"
        if self.low is not None and self.high is not None:
            left = "[" if self.closed in ("left", "both") else "("
            right = "]" if self.closed in ("right", "both") else ")"
            return f"{noun} in {left}{self.low}, {self.high}{right}"
        finite = "a finite float" if self.kind is numbers.Real else noun
        if self.low is not None:
            return f"{finite} {'>=' if self.closed in ('left', 'both') else '>'} {self.low}"
        if self.high is not None:
            return f"{finite} {'<=' if self.closed in ('right', 'both') else '<'} {self.high}"
        return finite


class Options(Constraint):
    """One of a few strings."""

    def __init__(self, options, *, hint: str | None = None) -> None:
        self.options = tuple(options)
        self.hint = hint

    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, str) and value in self.options

    def __str__(self) -> str:
        shown = [repr(option) for option in self.options]
        return shown[0] if len(shown) == 1 else f"one of {{{', '.join(shown)}}}"


class Types(Constraint):
    """An instance of one of ``types``, described as ``description``."""

    def __init__(self, *types: type, description: str, hint: str | None = None) -> None:
        self.types = types
        self.description = description
        self.hint = hint

    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, self.types)

    def __str__(self) -> str:
        return self.description


class _NoneConstraint(Constraint):
    def is_satisfied_by(self, value) -> bool:
        return value is None

    def __str__(self) -> str:
        return "None"


class _Boolean(Constraint):
    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, (bool, np.bool_))

    def __str__(self) -> str:
        return "True or False"


class _ArrayLike(Constraint):
    def is_satisfied_by(self, value) -> bool:
        return isinstance(value, np.ndarray) or (isinstance(value, Sequence) and not isinstance(value, (str, bytes)))

    def __str__(self) -> str:
        return "an array-like"


class _RandomState(Constraint):
    def is_satisfied_by(self, value) -> bool:
        return (
            value is None
            or isinstance(value, (numbers.Integral, np.random.RandomState, np.random.Generator))
            and not isinstance(value, bool)
        )

    def __str__(self) -> str:
        return "None, an int, a numpy RandomState or a numpy Generator"


class _Device(Constraint):
    #: Devices a model can train and predict on ("meta" holds no data).
    TYPES = ("cpu", "cuda", "mps", "xpu")

    def is_satisfied_by(self, value) -> bool:
        if isinstance(value, str) and value == "auto":
            return True
        if not isinstance(value, (str, torch.device)):
            return False
        try:
            return torch.device(value).type in self.TYPES
        except (RuntimeError, TypeError, ValueError):
            return False

    def __str__(self) -> str:
        return "'auto', 'cpu', 'cuda', 'cuda:N' or a torch.device"


class _Callbacks(Constraint):
    """A list of skorch callbacks, each alone or as a ``(name, callback)`` pair."""

    def is_satisfied_by(self, value) -> bool:
        from skorch.callbacks import Callback

        if not isinstance(value, (list, tuple)):
            return False
        for entry in value:
            if isinstance(entry, tuple) and len(entry) == 2 and isinstance(entry[0], str):
                entry = entry[1]
            if not isinstance(entry, Callback):
                return False
        return True

    def __str__(self) -> str:
        return "a list of skorch callbacks or (name, callback) pairs"


_NAMED = {
    None: _NoneConstraint(),
    "callbacks": _Callbacks(),
    "boolean": _Boolean(),
    "array-like": _ArrayLike(),
    "random_state": _RandomState(),
    "device": _Device(),
}


def _as_constraint(entry) -> Constraint:
    if isinstance(entry, Constraint):
        return entry
    if entry is None or entry in _NAMED:
        return _NAMED[entry]
    raise TypeError(f"Unknown parameter constraint {entry!r}.")


def _join(descriptions: list[str]) -> str:
    return descriptions[0] if len(descriptions) == 1 else f"{', '.join(descriptions[:-1])} or {descriptions[-1]}"


def parameter_constraints(cls: type) -> dict[str, list]:
    """The constraints of ``cls``: its ``_parameter_constraints`` merged over the MRO.

    A class's own dict overrides the entries its bases give for the same parameter.
    """
    merged: dict[str, list] = {}
    for klass in reversed(cls.__mro__):
        merged.update(klass.__dict__.get("_parameter_constraints", {}))
    return merged


def check_parameter(owner: str, name: str, value, constraints: list) -> None:
    """Raise the one-vocabulary ValueError unless ``value`` meets one of ``constraints``.

    Parameters
    ----------
    owner : str
        Who takes the parameter (a class or function name), for the message.
    name : str
    value : object
    constraints : list
        As in ``_parameter_constraints``.
    """
    constraints = [_as_constraint(entry) for entry in constraints]
    if any(constraint.is_satisfied_by(value) for constraint in constraints):
        return
    hints = [constraint.hint for constraint in constraints if constraint.hint]
    hint = f" ({'; '.join(hints)})" if hints else ""
    raise ValueError(
        f"The {name!r} parameter of {owner} must be "
        f"{_join([str(constraint) for constraint in constraints])}{hint}. Got {value!r} instead."
    )


def validate_parameters(estimator) -> None:
    """Check every parameter of ``estimator`` against its class's declared constraints.

    Raises
    ------
    ValueError
        For the first parameter that meets none of its constraints.
    TypeError
        If a parameter has no declared constraint (a mistake in sktext itself).
    """
    cls = type(estimator)
    constraints = parameter_constraints(cls)
    for name, value in estimator.get_params(deep=False).items():
        if name not in constraints:
            raise TypeError(f"{cls.__name__} declares no constraint for its parameter {name!r}.")
        check_parameter(cls.__name__, name, value, constraints[name])


def renamed_keywords(**renames: str):
    """Decorator: keep a function's old keyword names working, with a DeprecationWarning.

    ``@renamed_keywords(epochs="lm_epochs")`` passes ``epochs=3`` on as ``lm_epochs=3``;
    giving both names is an error.
    """

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            for old, new in renames.items():
                if old not in kwargs:
                    continue
                if new in kwargs:
                    raise ValueError(
                        f"{function.__name__} got both {old!r} and its new name {new!r}; pass {new!r} only."
                    )
                warnings.warn(
                    f"The {old!r} parameter of {function.__name__} is now called {new!r}, as in the "
                    f"estimators; {old!r} will be removed in a future sktext.",
                    DeprecationWarning,
                    stacklevel=2,
                )
                kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper

    return decorate


#: Constraints shared by many parameters, named once.
POSITIVE_INT = Interval(numbers.Integral, 1, None, closed="left")
NON_NEGATIVE_INT = Interval(numbers.Integral, 0, None, closed="left")
POSITIVE_FLOAT = Interval(numbers.Real, 0, None, closed="neither")
NON_NEGATIVE_FLOAT = Interval(numbers.Real, 0, None, closed="left")
FRACTION = Interval(numbers.Real, 0, 1, closed="neither")
PROBABILITY = Interval(numbers.Real, 0, 1, closed="left")
PATH = Types(str, os.PathLike, description="a path")
