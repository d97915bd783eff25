"""The ``sktext`` command line: fit, predict and evaluate on CSV or JSONL files.

A thin layer over the public API::

    sktext fit train.jsonl --labels-column labels --model ulmfit --param preset=tiny --out model/
    sktext fit train.csv --target-column weather --target-column season --model transformer --out model/
    sktext fit train.csv --task regression --target-column score --model transformer --out model/
    sktext predict model/ test.jsonl --out predictions.jsonl --proba
    sktext evaluate model/ test.jsonl --out report/

Data files are ``.csv`` or ``.jsonl``, optionally gzipped (``.csv.gz``, ``.jsonl.gz``).
Labels come either as several 0/1 columns (``--label-columns a b c``; cells that are
probabilities in [0, 1] make soft targets, detected as the estimators detect them, and
``evaluate`` scores their hard view, p >= 0.5) or as one column
of label lists (``--labels-column labels``): a JSON list in JSONL, a string joined by
``--label-separator`` (default ``|``) in CSV. Categorical targets are columns of class
names (``--target-column weather``, repeatable), read as text (a JSONL ``5`` is the
class ``"5"``), one softmax head each; they may stand beside the labels, as the
classifiers take a DataFrame that mixes 0/1 and categorical columns
(:mod:`sktext.targets`). ``--task regression`` fits a regressor
(:class:`~sktext.TransformerRegressor`, :class:`~sktext.ULMFiTRegressor`) on numeric
target columns instead. ``fit`` stores these settings, the task and the label names in
the model folder (:func:`sktext.save_model`), so ``predict`` and ``evaluate`` need
them only to override.

``predict`` writes ``predicted_labels`` for the labels and ``predicted_<column>`` (the
class, or the number) for each target column; ``--proba`` adds ``proba`` (each label's
probability) and, for a categorical column, ``proba_<column>`` (each class's; in CSV
one column ``proba_<column>_<class>`` per class). ``evaluate`` writes the labels' HTML
report and, for target columns, ``report.txt``: scikit-learn's ``classification_report``
per categorical column, R², MAE and RMSE per numeric one (also in ``metrics.json``).

``predict`` streams: it reads ``--chunk-size`` rows at a time (10,000 by default),
predicts them and appends their predictions to the output, so its memory does not
grow with the input (:mod:`sktext.streaming`). ``fit`` started by ``torchrun``
(``torchrun --nproc_per_node 4 -m sktext fit ...``) trains data-parallel, one shard of
every batch per process, and saves from rank 0 only (:mod:`sktext.distributed`).

``fit`` shows skorch's progress bar and epoch table (the estimators' ``verbose=1``;
``--quiet`` turns them off); ``predict`` and ``evaluate`` print how long each stage
took. Mistakes in the command (a missing file or column, unreadable labels or targets,
an unknown ``--param``) end with a one-line message on stderr and exit status 2; a
Ctrl-C ends with one line and status 130, and leaves no model folder (a model is
written to a temporary folder and renamed into place only once complete).
"""

from __future__ import annotations

import argparse
import difflib
import inspect
import json
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp

from .io import DataFileError, data_format, iter_record_chunks
from .io import read_records as _read_records
from .targets import BINARY
from .thresholds import apply_thresholds_sparse, label_lists, prediction_chunks
from .validation import hard_view, is_soft

__all__ = ["main", "build_parser", "read_records", "parse_params"]

EXIT_USAGE = 2
#: Exit status after Ctrl-C (128 + SIGINT), as shells report it.
EXIT_INTERRUPTED = 130
PREDICTED_COLUMN = "predicted_labels"
#: ``predicted_<column>``: the prediction of a target column.
PREDICTED_PREFIX = "predicted_"
PROBA_PREFIX = "proba_"
CLASSIFICATION = "classification"
REGRESSION = "regression"
DEFAULT_CHUNK_SIZE = 10_000  # rows ``predict`` reads, predicts and writes at a time


class CommandLineError(Exception):
    """A mistake in the command or its files: reported in one line, exit status 2."""


def _models(task: str = CLASSIFICATION) -> dict[str, type]:
    """The estimator of each ``--model`` for ``--task``."""
    if task == REGRESSION:
        from .transformer import TransformerRegressor
        from .ulmfit import ULMFiTRegressor

        return {"transformer": TransformerRegressor, "ulmfit": ULMFiTRegressor}
    from .transformer import TransformerMultiLabelClassifier
    from .ulmfit import ULMFiTClassifier

    return {"transformer": TransformerMultiLabelClassifier, "ulmfit": ULMFiTClassifier}


@contextmanager
def _stage(message: str) -> Iterator[None]:
    """Print ``message``, then how long the block took, on stderr."""
    print(f"{message} ...", file=sys.stderr, flush=True)
    start = time.perf_counter()
    yield
    print(f"  done in {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)


# -- reading data -------------------------------------------------------------------------
@contextmanager
def _data_file_errors() -> Iterator[None]:
    """Report :mod:`sktext.io`'s errors (a missing, misnamed or unreadable file) as mistakes in the command."""
    try:
        yield
    except DataFileError as error:
        raise CommandLineError(str(error)) from None


def _data_format(path: Path) -> str:
    with _data_file_errors():
        return data_format(path)


def read_records(path: str | Path) -> tuple[list[dict], list[str]]:
    """Rows of a CSV or JSONL file (gzipped or not) and its column names.

    :func:`sktext.io.read_records`, whose errors become :class:`CommandLineError`.

    Parameters
    ----------
    path : str or Path
        A ``.csv``, ``.csv.gz``, ``.jsonl`` or ``.jsonl.gz`` file.

    Returns
    -------
    records : list of dict
        One dict per row; CSV values are strings.
    columns : list of str
        The CSV header, or every key met in the JSONL objects, in order of appearance.
    """
    with _data_file_errors():
        return _read_records(path)


def _check_columns(wanted: Sequence[str], columns: Sequence[str], path: Path, role: str) -> None:
    missing = [name for name in wanted if name not in columns]
    if missing:
        suggestions = {name: difflib.get_close_matches(name, columns, n=1) for name in missing}
        hint = "".join(f" Did you mean {close[0]!r} for {name!r}?" for name, close in suggestions.items() if close)
        if role == "label":
            hint += " Say where the labels are with --label-columns or --labels-column."
        elif role == "target":
            hint += " Say which columns hold the targets with --target-column."
        raise CommandLineError(
            f"{path} has no {role} column {', '.join(map(repr, missing))}; its columns are "
            f"{', '.join(map(repr, columns))}.{hint}"
        )


def read_texts(
    records: list[dict], columns: Sequence[str], column: str, path: Path, *, first_row: int = 1
) -> list[str]:
    """The text of each row, checked to be a string (rows counted from ``first_row`` in errors)."""
    _check_columns([column], columns, path, "text")
    texts = [record.get(column) for record in records]
    for row, text in enumerate(texts, start=first_row):
        if not isinstance(text, str):
            raise CommandLineError(
                f"Row {row} of {path} has no text in column {column!r} (found {text!r}); every "
                "row needs a string there."
            )
    return texts


_TRUE = {"1", "1.0", "true", "yes"}
_FALSE = {"0", "0.0", "false", "no"}


def _label_value(value: Any, row: int, column: str, path: Path) -> float:
    """A label cell: 0 or 1 (or true / false), or a probability in [0, 1] (soft targets)."""
    if isinstance(value, bool):
        return float(value)
    number = value
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE | _FALSE:
            return float(text in _TRUE)
        try:
            number = float(text)
        except ValueError:
            number = None
    if isinstance(number, (int, float)) and 0 <= number <= 1:
        return float(number)
    raise CommandLineError(
        f"Unreadable labels: row {row} of {path} holds {value!r} in the label column {column!r}; "
        "label columns must hold 0 or 1 (or true / false), or a probability in [0, 1] (soft targets)."
    )


def read_label_columns(
    records: list[dict], columns: Sequence[str], label_columns: Sequence[str], path: Path
) -> np.ndarray:
    """The matrix of ``label_columns``, of shape (n_rows, len(label_columns)).

    int64 0/1 when every cell is 0 or 1; float64 when any is a fraction: soft targets,
    each cell a label's probability, which the classifiers learn as they are.
    """
    _check_columns(label_columns, columns, path, "label")
    values = np.array(
        [
            [_label_value(record.get(column), row, column, path) for column in label_columns]
            for row, record in enumerate(records, start=1)
        ],
        dtype=np.float64,
    ).reshape(len(records), len(label_columns))
    return values if is_soft(values) else values.astype(np.int64)


def _label_list(value: Any, row: int, column: str, separator: str, path: Path) -> list[str]:
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            raise CommandLineError(
                f"Unreadable labels: row {row} of {path} holds {value[:60]!r} in {column!r}, which "
                "starts like a JSON list but is not one; write a JSON list or labels joined by "
                f"{separator!r}."
            ) from None
    if value is None:
        return []
    if isinstance(value, str):
        return [label.strip() for label in value.split(separator) if label.strip()]
    if isinstance(value, list) and all(
        isinstance(label, (str, int)) and not isinstance(label, bool) for label in value
    ):
        return [str(label) for label in value]
    raise CommandLineError(
        f"Unreadable labels: row {row} of {path} holds {value!r} in {column!r}; expected a list of "
        f"label names (JSONL) or names joined by {separator!r} (CSV)."
    )


def read_label_lists(
    records: list[dict], columns: Sequence[str], column: str, separator: str, path: Path
) -> list[list[str]]:
    """The label names of each row, from one column of lists or joined strings."""
    _check_columns([column], columns, path, "label")
    return [
        _label_list(record.get(column), row, column, separator, path) for row, record in enumerate(records, start=1)
    ]


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def _missing_target(value: Any, row: int, column: str, path: Path) -> CommandLineError:
    return CommandLineError(
        f"Row {row} of {path} has no value in the target column {column!r} (found {value!r}); fill it "
        "in or drop the row."
    )


def _class_name(value: Any, row: int, column: str, path: Path) -> str:
    """A categorical target's class, as text (a JSONL integer 5 is the class '5')."""
    if _is_missing(value):
        raise _missing_target(value, row, column, path)
    if isinstance(value, str):
        return value.strip()
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise CommandLineError(
        f"Unreadable target: row {row} of {path} holds {value!r} in the target column {column!r}; a "
        "categorical target holds class names (strings or integers); numbers to predict need a model fitted "
        "with --task regression."
    )


def _number(value: Any, row: int, column: str, path: Path) -> float:
    """A numeric target's value; anything but a finite number is refused."""
    if _is_missing(value):
        raise _missing_target(value, row, column, path)
    number = None
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        number = float(value)
    if number is None or not np.isfinite(number):
        raise CommandLineError(
            f"Unreadable target: row {row} of {path} holds {value!r} in the target column {column!r}; "
            "a numeric target (--task regression) needs a finite number in every row; fix or drop the row "
            "(class names need a classifier: fit without --task regression)."
        )
    return number


def read_target_columns(
    records: list[dict], columns: Sequence[str], target_columns: Sequence[str], path: Path, task: str
) -> np.ndarray:
    """The values of ``target_columns``, of shape (n_rows, len(target_columns)).

    Class names as str (an object array) for classification, finite floats for
    regression; a missing or unreadable value is a :class:`CommandLineError` naming
    its row and column.
    """
    _check_columns(target_columns, columns, path, "target")
    read, dtype = (_number, np.float64) if task == REGRESSION else (_class_name, object)
    values = np.empty((len(records), len(target_columns)), dtype=dtype)
    for row, record in enumerate(records, start=1):
        values[row - 1] = [read(record.get(column), row, column, path) for column in target_columns]
    return values


# -- labels --------------------------------------------------------------------------------
@dataclass
class LabelSource:
    """Where the labels of a data file are: 0/1 columns, or one column of label lists."""

    label_columns: list[str] | None = None
    labels_column: str | None = None
    separator: str = "|"

    @classmethod
    def from_args(cls, args: argparse.Namespace, saved: dict) -> LabelSource:
        """The command's label options, else those ``fit`` saved with the model."""
        separator = args.label_separator or saved.get("label_separator") or "|"
        if args.label_columns or args.labels_column:
            return cls(args.label_columns, args.labels_column, separator)
        return cls(saved.get("label_columns"), saved.get("labels_column"), separator)

    @property
    def given(self) -> bool:
        """Whether the labels' columns are named."""
        return bool(self.label_columns or self.labels_column)

    def to_dict(self) -> dict[str, Any]:
        return {
            "label_columns": self.label_columns,
            "labels_column": self.labels_column,
            "label_separator": self.separator,
        }

    def read(
        self, records: list[dict], columns: Sequence[str], path: Path, classes: Sequence[str] | None = None
    ) -> tuple[np.ndarray, list[str]]:
        """``(Y, label_names)``; with ``classes``, Y's columns follow them (unknown labels dropped)."""
        from sklearn.preprocessing import MultiLabelBinarizer

        if self.label_columns:
            names = list(self.label_columns) if classes is None else list(classes)
            if classes is not None and set(self.label_columns) != set(classes):
                raise CommandLineError(
                    f"The label columns {self.label_columns} are not the model's labels "
                    f"{list(classes)}; pass --label-columns with exactly those."
                )
            return read_label_columns(records, columns, names, path), names
        if not self.labels_column:
            raise CommandLineError("Say where the labels are: --label-columns A B ... or --labels-column NAME.")
        lists = read_label_lists(records, columns, self.labels_column, self.separator, path)
        if classes is None:
            binarizer = MultiLabelBinarizer().fit(lists)
            return binarizer.transform(lists), [str(name) for name in binarizer.classes_]
        return _binarize_known(lists, list(classes), path), list(classes)


def _binarize_known(lists: list[list[str]], classes: list[str], path: Path):
    """Indicators of the model's ``classes`` as a CSR matrix; other labels are reported on stderr and dropped.

    Sparse because the report takes it so: 5,000 texts of 20,000 labels would be 800 MB
    as a dense int64 matrix.
    """
    from sklearn.preprocessing import MultiLabelBinarizer

    known = set(classes)
    unknown = sorted({label for labels in lists for label in labels} - known)
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        print(
            f"warning: {len(unknown)} label(s) in {path} are not labels of the model and are ignored: {shown}",
            file=sys.stderr,
        )
    kept = [[label for label in labels if label in known] for labels in lists]
    return MultiLabelBinarizer(classes=classes, sparse_output=True).fit_transform(kept).tocsr()


# -- target columns and what a model predicts --------------------------------------------------
def _check_target_options(task: str, source: LabelSource, target_columns: Sequence[str], text_column: str) -> None:
    """Refuse, before any data is read, what ``fit`` was asked to predict if the task cannot take it."""
    if task == REGRESSION and source.given:
        raise CommandLineError(
            "--task regression predicts the numbers of --target-column columns; --label-columns and "
            "--labels-column are for classification. Drop them, or leave out --task regression."
        )
    if task == REGRESSION and not target_columns:
        raise CommandLineError(
            "--task regression needs the columns to predict: --target-column NAME (repeat it for several)."
        )
    if not source.given and not target_columns:
        raise CommandLineError(
            "Say what to predict: --label-columns A B ... or --labels-column NAME (multi-label), and / or "
            "--target-column NAME (a categorical column; repeat it for several)."
        )
    taken = {column: "a --label-columns column" for column in source.label_columns or []}
    if source.labels_column:
        taken[source.labels_column] = "the --labels-column column"
    taken[text_column] = "the text column"
    for index, column in enumerate(target_columns):
        if column in target_columns[:index]:
            raise CommandLineError(f"--target-column {column!r} is given twice; name each target column once.")
        if column in taken:
            raise CommandLineError(
                f"--target-column {column!r} is also {taken[column]}; a column can be one of them only."
            )
        if source.given and PREDICTED_PREFIX + column == PREDICTED_COLUMN:
            raise CommandLineError(
                f"--target-column {column!r} would write its predictions to {PREDICTED_COLUMN!r}, where the "
                "labels' predictions go; rename that column in the data file."
            )


def _target_frame(Y: np.ndarray, names: Sequence[str], values: np.ndarray, target_columns: Sequence[str]):
    """A DataFrame of the 0/1 label columns, then the categorical columns (object dtype: softmax heads)."""
    try:
        import pandas as pd
    except ImportError:
        raise CommandLineError(
            "--target-column hands the classifier its targets as a pandas DataFrame, and pandas is not "
            "installed; install it with: pip install pandas"
        ) from None
    clash = sorted(set(names) & set(target_columns))
    if clash:
        raise CommandLineError(
            f"The label {clash[0]!r} has the name of a --target-column; every output of the model needs its "
            "own name. Rename the label or the column."
        )
    frame = {name: Y[:, j] for j, name in enumerate(names)}
    frame.update({column: pd.Series(values[:, j], dtype=object) for j, column in enumerate(target_columns)})
    return pd.DataFrame(frame)


def _training_targets(
    task: str,
    source: LabelSource,
    target_columns: Sequence[str],
    records: list[dict],
    columns: Sequence[str],
    path: Path,
) -> tuple[Any, list[str]]:
    """``fit``'s y and the label names: a 0/1 matrix, numbers, or labels and classes in a DataFrame."""
    if task == REGRESSION:
        values = read_target_columns(records, columns, target_columns, path, task)
        return (values[:, 0] if values.shape[1] == 1 else values), []
    if source.given:
        Y, names = source.read(records, columns, path)
    else:
        Y, names = np.zeros((len(records), 0), dtype=np.int64), []
    if not target_columns:
        return Y, names
    values = read_target_columns(records, columns, target_columns, path, task)
    return _target_frame(Y, names, values, target_columns), names


def _describe_targets(task: str, has_labels: bool, n_labels: int, target_columns: Sequence[str]) -> str:
    """E.g. "3 labels", "the categorical target columns weather, season"."""
    parts = [f"{n_labels} labels"] if has_labels else []
    if target_columns:
        kind = "numeric" if task == REGRESSION else "categorical"
        plural = "s" if len(target_columns) > 1 else ""
        parts.append(f"the {kind} target column{plural} {', '.join(target_columns)}")
    return " and ".join(parts)


@dataclass(frozen=True)
class ModelTargets:
    """What a fitted model predicts, as the command line reads and writes it.

    ``label_names`` are its 0/1 targets (the multi-label part), in the order of
    ``thresholds_``; ``target_columns`` its categorical (classification) or numeric
    (regression) targets, one prediction each.
    """

    task: str
    label_names: list[str]
    target_columns: list[str]

    @classmethod
    def of(cls, estimator, saved: dict) -> ModelTargets:
        """Read from the fitted ``estimator``; a regressor's column names from the ``fit`` settings ``saved``."""
        from sklearn.base import is_regressor

        if is_regressor(estimator):
            # A folder saved from Python has no column names: target_0, target_1, ...
            names = saved.get("target_columns") or [f"target_{j}" for j in range(estimator.n_outputs_)]
            return cls(REGRESSION, [], list(names))
        layout = estimator.output_layout_
        if layout.is_multilabel:
            return cls(CLASSIFICATION, [str(name) for name in estimator.classes_], [])
        return cls(
            CLASSIFICATION,
            [str(target.name) for target in layout.targets if target.kind == BINARY],
            [str(target.name) for target in layout.targets if target.kind != BINARY],
        )

    def output_keys(self) -> list[str]:
        """The keys a prediction row may hold besides the kept input columns, in order."""
        keys = [PREDICTED_COLUMN] if self.label_names else []
        keys += [PREDICTED_PREFIX + column for column in self.target_columns]
        keys += ["proba"] if self.label_names else []
        if self.task == CLASSIFICATION:
            keys += [PROBA_PREFIX + column for column in self.target_columns]
        return keys


@dataclass
class Predictions:
    """A model's predictions for some texts, by output.

    ``label_proba``: each label's probability, of shape (n_samples, n_labels), or None;
    ``labels``: the 0/1 decisions as a sparse CSR matrix of that shape (a text's
    predicted labels are its row's column indices, found without a pass over every
    label), or None; ``values``: the class (str) or number of each target
    column; ``class_proba``: ``(classes, proba of shape (n_samples, n_classes))`` of each
    categorical column.
    """

    label_proba: np.ndarray | None = None
    labels: np.ndarray | None = None
    values: dict[str, np.ndarray] = field(default_factory=dict)
    class_proba: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)


def predict_targets(estimator, targets: ModelTargets, texts: list[str], keep_label_proba: bool = True) -> Predictions:
    """Every output of ``estimator`` for ``texts``, ``predict_proba`` (or ``predict``) a block of texts at a time.

    The blocks are :func:`sktext.thresholds.prediction_chunks`', so that a model of tens
    of thousands of labels never makes a dense (chunk, n_labels) array of the whole chunk:
    10,000 rows x 20,000 labels were 1.6 GB per array. Without ``keep_label_proba`` the
    labels' probabilities are dropped block by block (only their 0/1 decisions, sparse,
    are kept).
    """
    if targets.task == REGRESSION:
        predicted = np.asarray(estimator.predict(texts), dtype=np.float64).reshape(len(texts), -1)
        return Predictions(values={column: predicted[:, j] for j, column in enumerate(targets.target_columns)})
    n_outputs = getattr(estimator, "n_outputs_", 1)
    blocks = [
        _predict_block(estimator, targets, texts[start:stop], keep_label_proba)
        for start, stop in prediction_chunks(len(texts), n_outputs)
    ]
    if len(blocks) <= 1:
        return blocks[0] if blocks else _predict_block(estimator, targets, texts, keep_label_proba)
    first = blocks[0]
    return Predictions(
        label_proba=None if first.label_proba is None else np.vstack([block.label_proba for block in blocks]),
        labels=None if first.labels is None else sp.vstack([block.labels for block in blocks], format="csr"),
        values={column: np.concatenate([block.values[column] for block in blocks]) for column in first.values},
        class_proba={
            column: (classes, np.vstack([block.class_proba[column][1] for block in blocks]))
            for column, (classes, _) in first.class_proba.items()
        },
    )


def _predict_block(estimator, targets: ModelTargets, texts: list[str], keep_label_proba: bool) -> Predictions:
    """:func:`predict_targets` of one block of texts, from one ``predict_proba`` call."""
    proba = estimator.predict_proba(texts)
    if not targets.target_columns:  # a multi-label model: one matrix
        labels = apply_thresholds_sparse(proba, estimator.thresholds_)
        return Predictions(label_proba=proba if keep_label_proba else None, labels=labels)
    predictions, positive = Predictions(), []
    for target, target_proba in zip(estimator.output_layout_.targets, proba):
        if target.kind == BINARY:
            positive.append(target_proba[:, 1])
        else:
            classes = [str(name) for name in target.classes]
            column = str(target.name)
            predictions.values[column] = np.asarray(classes, dtype=object)[target_proba.argmax(axis=1)]
            predictions.class_proba[column] = (classes, target_proba)
    if positive:
        label_proba = np.column_stack(positive)
        predictions.labels = apply_thresholds_sparse(label_proba, estimator.thresholds_)
        predictions.label_proba = label_proba if keep_label_proba else None
    return predictions


# -- estimator parameters ---------------------------------------------------------------------
_WORDS = {"none": None, "null": None, "true": True, "false": False}


def _parse_value(text: str) -> Any:
    """A JSON value (number, list, dict...), None / True / False, or else the plain string."""
    if text.lower() in _WORDS:
        return _WORDS[text.lower()]
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _check_type(name: str, value: Any, default: Any) -> Any:
    """``value``, checked against a bool or number default (whole floats become ints)."""
    is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if isinstance(default, bool):
        wrong, expected = not isinstance(value, bool), "true or false"
    elif isinstance(default, int):
        wrong, expected = value is not None and not (is_number and float(value).is_integer()), "an integer"
    elif isinstance(default, float):
        wrong, expected = value is not None and not is_number, "a number"
    else:
        return value
    if wrong:
        raise CommandLineError(
            f"--param {name}={value!r}: {name} must be {expected} (default {default!r}); got "
            f"{type(value).__name__} {value!r}."
        )
    return int(value) if expected == "an integer" and value is not None else value


def parse_params(estimator_class: type, items: Sequence[str]) -> dict[str, Any]:
    """Turn ``["key=value", ...]`` into checked keyword arguments of ``estimator_class``.

    Values are read as JSON when they parse (``3``, ``0.5``, ``[1, 2]``, ``{"a": 1}``,
    ``null``), as None / True / False for those words, else as plain strings.

    Parameters
    ----------
    estimator_class : type
    items : sequence of str

    Returns
    -------
    params : dict
    """
    signature = inspect.signature(estimator_class.__init__).parameters
    valid = sorted(name for name in signature if name != "self")
    params = {}
    for item in items:
        name, equals, text = item.partition("=")
        name = name.strip()
        if not equals or not name:
            raise CommandLineError(f"--param expects key=value, got {item!r}.")
        if name not in signature or name == "self":
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            raise CommandLineError(
                f"Unknown --param {name!r} for {estimator_class.__name__}.{hint} Valid keys: {', '.join(valid)}."
            )
        params[name] = _check_type(name, _parse_value(text), signature[name].default)
    return params


# -- commands ---------------------------------------------------------------------------------
def _read_data(path: str) -> tuple[list[dict], list[str], Path]:
    path = Path(path)
    with _stage(f"reading {path}"):
        records, columns = read_records(path)
    print(f"  {len(records)} rows, columns {', '.join(columns)}", file=sys.stderr)
    return records, columns, path


def _check_output_folder(folder: Path, overwrite: bool) -> None:
    """Fail before training if ``save_model`` would refuse the folder."""
    from .persistence import check_output_folder

    try:
        check_output_folder(folder, overwrite)
    except ValueError as error:
        message = str(error).replace("overwrite=True (command line: --overwrite)", "--overwrite")
        raise CommandLineError(f"--out {folder}: {message}") from None


def fit_command(args: argparse.Namespace) -> int:
    """``sktext fit``: read the data, fit the estimator, save the model folder (rank 0 only under torchrun)."""
    from .distributed import init_from_environment, is_main_process, launched_by_torchrun
    from .persistence import save_model

    if launched_by_torchrun():  # data-parallel: one shard of every batch per process
        init_from_environment()
    source = LabelSource(args.label_columns, args.labels_column, args.label_separator or "|")
    target_columns = args.target_column or []
    _check_target_options(args.task, source, target_columns, args.text_column)
    estimator_class = _models(args.task)[args.model]
    params = parse_params(estimator_class, args.param or [])
    params.setdefault("verbose", 0 if args.quiet or not is_main_process() else 1)
    out = Path(args.out)
    _check_output_folder(out, args.overwrite)
    records, columns, path = _read_data(args.data)
    texts = read_texts(records, columns, args.text_column, path)
    y, names = _training_targets(args.task, source, target_columns, records, columns, path)
    estimator = estimator_class(**params)
    start = time.perf_counter()
    print(
        f"fitting {estimator_class.__name__} on {len(texts)} texts with "
        f"{_describe_targets(args.task, source.given, len(names), target_columns)}",
        file=sys.stderr,
        flush=True,
    )
    estimator.fit(texts, y)
    if not target_columns:  # the label names, as fit stores the columns of a DataFrame y
        estimator.classes_ = np.asarray(names, dtype=object)
    metadata = {
        "cli": {
            "model": args.model,
            "task": args.task,
            "text_column": args.text_column,
            **source.to_dict(),
            "target_columns": target_columns,
            "data_file": path.name,
            "n_samples": len(texts),
        }
    }
    if not is_main_process():  # the other processes hold the same model
        return 0
    save_model(estimator, out, metadata=metadata, overwrite=args.overwrite)
    print(f"fitted in {time.perf_counter() - start:.1f} s; saved the model to {out}", file=sys.stderr)
    return 0


def _load(model_dir: str):
    from .persistence import load_model, read_manifest

    with _stage(f"loading the model {model_dir}"):
        saved = read_manifest(model_dir).get("metadata", {}).get("cli", {})
        estimator = load_model(model_dir)
    return estimator, saved


def _flatten_for_csv(row: dict[str, Any], separator: str, output_keys: Sequence[str]) -> dict[str, Any]:
    """The kept columns, then the predictions: label lists joined by ``separator``, one column per probability."""
    flat = {key: value for key, value in row.items() if key not in output_keys}
    for key in output_keys:
        if key not in row:
            continue
        if key == PREDICTED_COLUMN:
            flat[key] = separator.join(row[key])
        elif key == "proba":
            flat.update({PROBA_PREFIX + label: value for label, value in row[key].items()})
        elif isinstance(row[key], dict):  # proba_<column>: one column per class
            flat.update({f"{key}_{name}": value for name, value in row[key].items()})
        else:
            flat[key] = row[key]
    return flat


def _rounded(proba: np.ndarray, names: Sequence[str]) -> list[dict[str, float]]:
    return [{name: round(float(value), 6) for name, value in zip(names, row)} for row in proba]


def _prediction_rows(
    records: list[dict],
    predictions: Predictions,
    label_names: list[str],
    keep_columns: Sequence[str],
    with_proba: bool,
) -> list[dict[str, Any]]:
    """One output row per record: the kept columns, the predictions, maybe the probabilities."""
    outputs: dict[str, list] = {}
    if predictions.labels is not None:
        outputs[PREDICTED_COLUMN] = label_lists(predictions.labels, label_names)
    for column, values in predictions.values.items():
        outputs[PREDICTED_PREFIX + column] = values.tolist()
    if with_proba and predictions.label_proba is not None:
        outputs["proba"] = _rounded(predictions.label_proba, label_names)
    if with_proba:
        for column, (classes, proba) in predictions.class_proba.items():
            outputs[PROBA_PREFIX + column] = _rounded(proba, classes)
    rows = [{column: record.get(column) for column in keep_columns} for record in records]
    for key, values in outputs.items():
        for row, value in zip(rows, values):
            row[key] = value
    return rows


def predict_command(args: argparse.Namespace) -> int:
    """``sktext predict``: write each row's predictions (and probabilities), a chunk at a time.

    Reads ``--chunk-size`` rows (:func:`sktext.io.iter_record_chunks`), predicts them,
    appends their predictions to the output and goes on, so memory stays flat in the
    size of the input; the output appears, complete, only once every row is done
    (:class:`sktext.streaming.PredictionWriter`).
    """
    from .streaming import PredictionWriter

    out = Path(args.out)
    _data_format(out)  # the same suffixes as the inputs
    estimator, saved = _load(args.model_dir)
    targets = ModelTargets.of(estimator, saved)
    if args.proba and targets.task == REGRESSION:
        raise CommandLineError(
            f"--proba writes class probabilities, and {type(estimator).__name__} predicts numbers; leave out --proba."
        )
    path = Path(args.data)
    text_column = args.text_column or saved.get("text_column", "text")
    keep_columns = args.keep_columns or []
    separator = args.label_separator or saved.get("label_separator") or "|"
    output_keys = targets.output_keys()
    print(
        f"predicting {path} with {type(estimator).__name__}, {args.chunk_size} rows at a time ...",
        file=sys.stderr,
        flush=True,
    )
    start = time.perf_counter()
    with (
        _data_file_errors(),
        PredictionWriter(out, flatten=lambda row: _flatten_for_csv(row, separator, output_keys)) as writer,
    ):
        for records, columns in iter_record_chunks(path, args.chunk_size):
            texts = read_texts(records, columns, text_column, path, first_row=writer.n_rows + 1)
            if not writer.n_rows:
                _check_columns(keep_columns, columns, path, "--keep-columns")
            predictions = predict_targets(estimator, targets, texts, keep_label_proba=args.proba)
            writer.write(_prediction_rows(records, predictions, targets.label_names, keep_columns, args.proba))
            print(f"  {writer.n_rows} rows, {time.perf_counter() - start:.1f} s", file=sys.stderr, flush=True)
    print(f"  wrote {writer.n_rows} predictions to {out}", file=sys.stderr)
    return 0


def _evaluation_columns(args: argparse.Namespace, targets: ModelTargets, estimator) -> list[str]:
    """The columns holding the true values of the model's target columns (``--target-column`` overrides, in order)."""
    name = type(estimator).__name__
    if (args.label_columns or args.labels_column) and not targets.label_names:
        raise CommandLineError(
            f"This {name} predicts no labels (it predicts {', '.join(targets.target_columns)}); leave out "
            "--label-columns / --labels-column."
        )
    if not args.target_column:
        return targets.target_columns
    if not targets.target_columns:
        raise CommandLineError(
            f"This {name} predicts labels only; --target-column is for models fitted with target columns. Leave it out."
        )
    if len(args.target_column) != len(targets.target_columns):
        raise CommandLineError(
            f"The model predicts {len(targets.target_columns)} target column(s) "
            f"({', '.join(targets.target_columns)}), but --target-column names {len(args.target_column)}; "
            "give one per target, in that order (by default evaluate reads the columns fit read)."
        )
    return list(args.target_column)


def _warn_unknown_classes(truth: np.ndarray, classes: Sequence[str], column: str, path: Path) -> None:
    unknown = sorted(set(truth) - set(classes))
    if unknown:
        shown = ", ".join(unknown[:10]) + (" ..." if len(unknown) > 10 else "")
        print(
            f"warning: {len(unknown)} class(es) of {column!r} in {path} are not classes of the model, "
            f"which never predicts them: {shown}",
            file=sys.stderr,
        )


def _target_reports(
    targets: ModelTargets, truth: np.ndarray, predictions: Predictions, path: Path
) -> tuple[dict[str, dict], str]:
    """``({column: metrics}, text)``: a classification report per categorical column, or R², MAE, RMSE per numeric one."""
    from .report import categorical_report, regression_metrics, regression_table

    if targets.task == REGRESSION:
        metrics = {
            column: regression_metrics(truth[:, j], predictions.values[column])
            for j, column in enumerate(targets.target_columns)
        }
        return metrics, regression_table(metrics)
    metrics, parts = {}, []
    for j, column in enumerate(targets.target_columns):
        _warn_unknown_classes(truth[:, j], predictions.class_proba[column][0], column, path)
        metrics[column], text = categorical_report(list(truth[:, j]), list(predictions.values[column]))
        parts.append(f"{column} (accuracy {metrics[column]['accuracy']:.3f}):\n{text}")
    return metrics, "\n".join(parts)


def evaluate_command(args: argparse.Namespace) -> int:
    """``sktext evaluate``: score the model on labelled data and write its report.

    Labels get the HTML report (:func:`sktext.report.write_report`); target columns
    ``report.txt`` (:func:`sktext.report.write_target_report`), which is also printed.
    """
    from .report import REPORT_FILE, TARGET_REPORT_FILE, require_matplotlib, write_report, write_target_report

    estimator, saved = _load(args.model_dir)
    targets = ModelTargets.of(estimator, saved)
    if targets.label_names:
        require_matplotlib()
    truth_columns = _evaluation_columns(args, targets, estimator)
    records, columns, path = _read_data(args.data)
    texts = read_texts(records, columns, args.text_column or saved.get("text_column", "text"), path)
    names = targets.label_names
    Y = LabelSource.from_args(args, saved).read(records, columns, path, classes=names)[0] if names else None
    if Y is not None and is_soft(Y):
        Y = hard_view(Y, np.int64)  # soft labels are scored on their hard view, as score() does
    truth = read_target_columns(records, columns, truth_columns, path, targets.task) if truth_columns else None
    with _stage(f"predicting {len(texts)} texts with {type(estimator).__name__}"):
        predictions = predict_targets(estimator, targets, texts)
    metrics = None
    if names:
        context = {"model": f"{type(estimator).__name__} ({Path(args.model_dir).name})", "data": path.name}
        with _stage(f"writing the report to {args.out}"):
            support, n_fit = vars(estimator).get("label_support_"), vars(estimator).get("n_samples_fit_")
            metrics = write_report(
                args.out,
                Y,
                predictions.label_proba,
                estimator.thresholds_,
                names,
                context=context,
                # PSP@k weighs each label by its training frequency; older model folders lack the count
                **({"label_support": support, "n_training_samples": n_fit} if n_fit is not None else {}),
            )
        print(
            f"F1 micro {metrics['f1_micro']:.3f} | macro {metrics['f1_macro']:.3f} | samples "
            f"{metrics['f1_samples']:.3f} on {len(texts)} texts; report: {Path(args.out) / REPORT_FILE}"
        )
    if truth_columns:
        target_metrics, text = _target_reports(targets, truth, predictions, path)
        write_target_report(args.out, target_metrics, text, metrics=metrics)
        print(text, end="")
        print(f"target columns scored on {len(texts)} texts; report: {Path(args.out) / TARGET_REPORT_FILE}")
    return 0


def serve_command(args: argparse.Namespace) -> int:
    """``sktext serve``: the model folder behind HTTP until SIGTERM / Ctrl-C (:mod:`sktext.serve`)."""
    try:
        from .serve import run_server
    except ImportError as error:
        raise CommandLineError(f'sktext serve needs {error.name}: pip install "sktext[serve]"') from None
    return run_server(
        args.model_dir,
        host=args.host,
        port=args.port,
        backend=args.backend,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        max_texts_per_request=args.max_texts_per_request,
        max_text_chars=args.max_text_chars,
        max_body_bytes=args.max_body_bytes,
        queue_size=args.queue_size,
        log_level=args.log_level,
    )


# -- the parser -------------------------------------------------------------------------------
def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _add_label_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--label-columns",
        nargs="+",
        metavar="COLUMN",
        help="several columns of 0/1 label indicators (or probabilities: soft targets), one per label",
    )
    group.add_argument(
        "--labels-column", metavar="COLUMN", help="one column of label lists (JSON list in JSONL, joined string in CSV)"
    )
    parser.add_argument(
        "--label-separator", metavar="SEP", default=None, help="what joins the labels of a CSV cell (default '|')"
    )


def build_parser() -> argparse.ArgumentParser:
    """The ``sktext`` argument parser with its ``fit``, ``predict`` and ``evaluate`` commands."""
    parser = argparse.ArgumentParser(
        prog="sktext",
        description="Text classification (multi-label, categorical) and regression from CSV / JSONL files.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    fit = commands.add_parser("fit", help="fit a classifier or a regressor and save it to a model folder")
    fit.add_argument("data", help="training data: .csv or .jsonl (optionally .gz)")
    fit.add_argument("--text-column", default="text", help="column holding the texts (default 'text')")
    _add_label_options(fit)
    fit.add_argument(
        "--target-column",
        action="append",
        metavar="COLUMN",
        help="a column to predict (repeatable): class names, one softmax head each, beside or instead of the "
        "labels; with --task regression, numbers",
    )
    fit.add_argument(
        "--task",
        choices=[CLASSIFICATION, REGRESSION],
        default=CLASSIFICATION,
        help="classification (default: labels and categorical target columns) or regression (numeric "
        "target columns; TransformerRegressor / ULMFiTRegressor)",
    )
    fit.add_argument("--model", required=True, choices=sorted(_models()), help="which estimator")
    fit.add_argument(
        "--param",
        action="extend",
        nargs="+",
        metavar="KEY=VALUE",
        help="estimator parameter, e.g. max_epochs=3 (repeatable)",
    )
    fit.add_argument("--out", required=True, metavar="MODEL_DIR", help="model folder to write")
    fit.add_argument("--overwrite", action="store_true", help="replace the model in --out")
    fit.add_argument("--quiet", action="store_true", help="no progress bar or epoch table")
    fit.set_defaults(handler=fit_command)

    predict = commands.add_parser("predict", help="write predicted labels for a data file")
    predict.add_argument("model_dir", help="folder written by 'sktext fit'")
    predict.add_argument("data", help=".csv or .jsonl (optionally .gz)")
    predict.add_argument(
        "--out", required=True, metavar="PREDICTIONS", help="predictions file: .csv or .jsonl (optionally .gz)"
    )
    predict.add_argument("--text-column", default=None, help="default: the one used to fit")
    predict.add_argument(
        "--proba", action="store_true", help="also write each label's and each class's probability (classifiers)"
    )
    predict.add_argument(
        "--keep-columns", nargs="+", metavar="COLUMN", help="input columns to copy into the predictions (e.g. an id)"
    )
    predict.add_argument(
        "--label-separator",
        metavar="SEP",
        default=None,
        help="what joins the predicted labels in a CSV (default: as in fit, or '|')",
    )
    predict.add_argument(
        "--chunk-size",
        type=_positive_int,
        default=DEFAULT_CHUNK_SIZE,
        metavar="ROWS",
        help="rows read, predicted and written at a time (default 10000)",
    )
    predict.set_defaults(handler=predict_command)

    evaluate = commands.add_parser(
        "evaluate", help="score a model and write its report (HTML for labels, text for target columns)"
    )
    evaluate.add_argument("model_dir", help="folder written by 'sktext fit'")
    evaluate.add_argument("data", help="labelled data: .csv or .jsonl (optionally .gz)")
    evaluate.add_argument(
        "--out",
        required=True,
        metavar="REPORT_DIR",
        help="folder for report.html, metrics.json and the charts (report.txt for target columns)",
    )
    evaluate.add_argument("--text-column", default=None, help="default: the one used to fit")
    _add_label_options(evaluate)
    evaluate.add_argument(
        "--target-column",
        action="append",
        metavar="COLUMN",
        help="the columns of the true targets, one per target column of the model, in order (default: as in fit)",
    )
    evaluate.set_defaults(handler=evaluate_command)

    serve = commands.add_parser(
        "serve", help="serve a model folder over HTTP (dynamic batching, limits, metrics); needs sktext[serve]"
    )
    serve.add_argument(
        "model_dir", help="folder written by 'sktext fit' (or an export_onnx folder with --backend onnx)"
    )
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1; 0.0.0.0: all)")
    serve.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    serve.add_argument(
        "--backend",
        choices=["torch", "onnx"],
        default="torch",
        help="torch (a model folder) or onnx (an export_onnx folder, served without torch)",
    )
    serve.add_argument(
        "--max-batch-size", type=_positive_int, default=64, metavar="TEXTS", help="texts per model call (default 64)"
    )
    serve.add_argument(
        "--max-wait-ms",
        type=float,
        default=5.0,
        metavar="MS",
        help="how long a request waits for others to join its batch (default 5)",
    )
    serve.add_argument("--max-texts-per-request", type=_positive_int, default=1000, metavar="N", help="default 1000")
    serve.add_argument(
        "--max-text-chars", type=_positive_int, default=100_000, metavar="N", help="characters a text (default 100000)"
    )
    serve.add_argument(
        "--max-body-bytes",
        type=_positive_int,
        default=10 * 2**20,
        metavar="BYTES",
        help="bytes of a request body; beyond it 413 (default 10485760, 10 MiB)",
    )
    serve.add_argument(
        "--queue-size",
        type=_positive_int,
        default=64,
        metavar="REQUESTS",
        help="requests waiting for a batch; beyond it 503 with Retry-After (default 64)",
    )
    serve.add_argument(
        "--log-level",
        choices=["critical", "error", "warning", "info", "debug"],
        default="info",
        help="uvicorn's (default info: one line per request; warning: none)",
    )
    serve.set_defaults(handler=serve_command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status (2 for a mistake in the command).

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after ``sktext``; ``sys.argv[1:]`` when None.

    Returns
    -------
    status : int
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # argparse's usage errors (status 2) and --help (0)
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return args.handler(args)
    except (CommandLineError, ValueError, ImportError, OSError) as error:
        print(f"sktext {args.command}: error: {error}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        # fit saves atomically: an interrupted command leaves no model folder behind.
        print(f"sktext {args.command}: interrupted; nothing was saved.", file=sys.stderr)
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
