"""Input checks shared by every sktext estimator.

Each check says what was expected, what arrived and how to fix it, so that bad input
fails here, in ``fit`` or ``predict``, and never deep inside torch.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
import torch
from sklearn.utils.multiclass import type_of_target


def check_texts(X, *, name: str = "X") -> list[str]:
    """Return ``X`` as a list of str, or raise a ValueError that names the fix.

    Parameters
    ----------
    X : list, tuple, numpy array or pandas Series of str
        The texts.
    name : str, default="X"
        The argument's name, used in error messages.

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
                f"{name} is a DataFrame with {X.shape[1]} columns; pass the one text "
                f"column, e.g. df['text']."
            )
        X = X.iloc[:, 0]
    if hasattr(X, "to_numpy") and not isinstance(X, np.ndarray):  # pandas Series
        X = X.to_numpy(dtype=object)
    if isinstance(X, np.ndarray):
        if X.ndim == 2 and X.shape[1] == 1:
            X = X[:, 0]
        if X.ndim != 1:
            raise ValueError(
                f"{name} must be 1-D: one text per sample, got an array of shape {X.shape}."
            )
        X = X.tolist()
    elif not isinstance(X, Sequence):
        raise ValueError(
            f"{name} must be a list, tuple, numpy array or pandas Series of str, "
            f"got {type(X).__name__}."
        )
    texts = list(X)
    bad = [i for i, text in enumerate(texts) if not isinstance(text, str)]
    if bad:
        first = bad[0]
        raise ValueError(
            f"{name} must hold only str; {len(bad)} item(s) are not, the first at index "
            f"{first} is {texts[first]!r} ({type(texts[first]).__name__}). Replace missing "
            f"texts with '' (e.g. series.fillna('')) or convert them with str()."
        )
    if not texts:
        raise ValueError(f"{name} is empty: at least one text is needed.")
    return texts


def check_label_matrix(y, n_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Validate a multi-label indicator target and return it with its label names.

    Parameters
    ----------
    y : array-like or sparse matrix of shape (n_samples, n_labels), or DataFrame
        0/1 indicators, as ``MultiLabelBinarizer`` returns. A DataFrame's column
        names become the label names.
    n_samples : int
        The number of texts, which ``y`` must match.

    Returns
    -------
    Y : ndarray of shape (n_samples, n_labels), dtype float32
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
    if sp.issparse(y):
        Y = y.toarray()
    else:
        if isinstance(y, (list, tuple)) and y and isinstance(y[0], (list, tuple, set)):
            lengths = {len(row) for row in y}
            if len(lengths) != 1 or any(
                not isinstance(v, numbers.Number) for row in y for v in row
            ):
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
            f"X and y have different numbers of samples: {n_samples} texts but "
            f"{Y.shape[0]} rows of labels."
        )
    if Y.shape[1] == 0:
        raise ValueError("y has no label columns; at least one label is needed.")
    if Y.dtype == object or not np.issubdtype(Y.dtype, np.number) and Y.dtype != bool:
        raise ValueError(
            f"y must hold 0/1 numbers, got dtype {Y.dtype}. For label lists use "
            "MultiLabelBinarizer().fit_transform(y)."
        )
    values = np.unique(Y)
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
    return Y.astype(np.float32), classes


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
            "y is required: the continuous targets, an array of shape (n_samples,) or "
            "(n_samples, n_targets)."
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
            value for value in flat
            if isinstance(value, (str, bytes, bool, np.bool_)) or not isinstance(value, numbers.Real)
        )
        raise ValueError(
            f"y must hold numbers for regression; it holds {bad!r} "
            f"({type(bad).__name__}). Convert the column to float (e.g. "
            "pd.to_numeric(column)); for categorical targets use a classifier."
        ) from None
    if Y.shape[0] != n_samples:
        raise ValueError(
            f"X and y have different numbers of samples: {n_samples} texts but "
            f"{Y.shape[0]} target rows."
        )
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
        raise ValueError(
            f"y has {n_columns} columns but the estimator was fitted on {n_labels} {what}."
        )


def resolve_device(device) -> torch.device:
    """Turn ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or a torch.device into a device."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(
            f"device must be 'auto', 'cpu', 'cuda' or 'cuda:N', got {device!r}."
        ) from error
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was asked for but CUDA is not available on this machine; "
            "use device='auto' or 'cpu'."
        )
    return resolved


def check_fraction(value, name: str, *, allow_none: bool = True) -> None:
    """Raise unless ``value`` is a float strictly between 0 and 1 (or None if allowed)."""
    if value is None and allow_none:
        return
    if not isinstance(value, numbers.Real) or not 0 < value < 1:
        raise ValueError(
            f"{name} must be a float in (0, 1){' or None' if allow_none else ''}, "
            f"got {value!r}."
        )


def check_positive_int(value, name: str, *, allow_none: bool = False) -> None:
    """Raise unless ``value`` is an int >= 1 (or None if allowed)."""
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(
            f"{name} must be a positive int{' or None' if allow_none else ''}, got {value!r}."
        )


def check_positive_float(value, name: str, *, allow_zero: bool = False) -> None:
    """Raise unless ``value`` is a positive (or, if allowed, zero) real number."""
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        bound = ">= 0" if allow_zero else "> 0"
        raise ValueError(f"{name} must be a number {bound}, got {value!r}.")
