"""What the server predicts with: a model folder on torch, or an ONNX export without torch.

A backend is read in two steps. Constructing it reads the folder's description only
(``sktext.json``, or ``predictor.json`` for an ONNX export), so a wrong folder fails
before the server starts, and :meth:`ModelBackend.describe` (``GET /v1/model``) never
needs the model itself. :meth:`ModelBackend.load` then builds the model; the server
calls it in its inference thread, after it has started listening, and sends one
warm-up batch before ``/ready`` says yes.

:meth:`ModelBackend.run` turns the texts of one batch into one float array, one row per
text, from a single ``predict_proba`` (``predict`` for a regressor) call;
:meth:`ModelBackend.answer` turns the rows of one request into its JSON answers. The
answers' shapes, by task:

multi-label classifier
    ``{"labels": [...], "scores": {label: probability}}``: the labels whose probability
    reaches their threshold (``thresholds_``), most probable first; ``scores`` (when
    asked) every label's probability, in the model's label order.
classifier of categorical targets (``output_layout_`` with softmax groups)
    ``{"labels": [...], "scores": {...}, "targets": {column: {"class": c, "scores":
    {class: probability}}}}``: the 0/1 targets as the labels above, and each
    categorical target's most probable class.
regressor
    ``{"values": {column: number}}``: the column names the command line saved
    (``target_0``, ``target_1``... for a model saved from Python).

``top_k`` keeps the ``k`` most probable labels (and, with ``scores``, the ``k`` most
probable scores of the labels and of each target's classes); a regressor ignores it.
Label and class names are strings in the answers (JSON object keys are strings).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["BACKENDS", "ModelBackend", "OnnxBackend", "OutputSchema", "TorchBackend", "make_backend"]

BACKENDS = ("torch", "onnx")
MULTILABEL = "multilabel"
CLASSIFICATION = "classification"
REGRESSION = "regression"
_BINARY = "binary"  # sktext.targets.BINARY, kept here so that the ONNX backend imports no torch


@dataclass(frozen=True)
class OutputSchema:
    """What a model predicts: its task, its 0/1 labels and thresholds, its other targets.

    Attributes
    ----------
    task : {"multilabel", "classification", "regression"}
    labels : list of str
        The 0/1 outputs (labels, or 0/1 targets), in the order of ``thresholds``.
    thresholds : list of float
    targets : list of tuple (str, list of str)
        ``(column, classes)`` of each categorical target (classification), or
        ``(column, [])`` of each numeric one (regression).
    columns : list of tuple (str, int, int)
        ``(kind, start, stop)`` of each block of :meth:`ModelBackend.run`'s columns:
        a label's probability, a categorical target's class probabilities, a number.
    """

    task: str
    labels: list[str] = field(default_factory=list)
    thresholds: list[float] = field(default_factory=list)
    targets: list[tuple[str, list[str]]] = field(default_factory=list)
    columns: list[tuple[str, int, int]] = field(default_factory=list)


def _names(classes: Any) -> list[str]:
    """Label or class names as str, from the manifests' ``{"type": ..., "values": [...]}``."""
    return [str(value) for value in classes["values"]]


def _numbers(value: Any) -> list[float]:
    """Thresholds as floats, whether a list or the manifest's tagged array."""
    if isinstance(value, dict):
        value = value.get("__ndarray__", [])
    return [float(number) for number in np.asarray(value, dtype=np.float64).reshape(-1)]


def schema_of_manifest(manifest: dict[str, Any]) -> OutputSchema:
    """The :class:`OutputSchema` of an estimator's ``sktext.json``."""
    layout = manifest.get("output_layout")
    if manifest.get("classes") is None and layout is None:  # a regressor
        n_outputs = int(manifest["n_outputs"])
        saved = (manifest.get("metadata") or {}).get("target_columns")
        columns = [str(name) for name in saved] if saved else [f"target_{j}" for j in range(n_outputs)]
        return OutputSchema(
            REGRESSION,
            targets=[(column, []) for column in columns],
            columns=[(REGRESSION, j, j + 1) for j in range(n_outputs)],
        )
    thresholds = _numbers(manifest.get("thresholds") or [])
    if layout is None:
        labels = _names(manifest["classes"])
        return OutputSchema(MULTILABEL, labels, thresholds, columns=[(_BINARY, j, j + 1) for j in range(len(labels))])
    labels, targets, columns, start = [], [], [], 0
    # predict_proba gives [P(0), P(1)] for a 0/1 target and one column per class for a
    # categorical one; run() keeps P(1) of the first and every column of the second.
    for entry in layout:
        name = _names(entry["name"])[0]
        if entry["kind"] == _BINARY:
            labels.append(name)
            columns.append((_BINARY, start, start + 1))
            start += 1
        else:
            classes = _names(entry["classes"])
            targets.append((name, classes))
            columns.append(("categorical", start, start + len(classes)))
            start += len(classes)
    return OutputSchema(CLASSIFICATION, labels, thresholds, targets, columns)


def _ranked(names: Sequence[str], values: np.ndarray, top_k: int | None) -> list[int]:
    """Indices of ``values``, most probable first (ties in name order), at most ``top_k``."""
    order = np.argsort(-values, kind="stable")
    return [int(index) for index in (order if top_k is None else order[:top_k])]


class ModelBackend:
    """A model the server predicts with (see the module docstring).

    Subclasses set :attr:`schema` and :attr:`description` when constructed (from the
    folder's description alone) and implement :meth:`load` and :meth:`predict_rows`.

    Attributes
    ----------
    folder : pathlib.Path
    schema : OutputSchema
    description : dict
        What ``GET /v1/model`` returns.
    """

    name = "base"
    folder: Path
    schema: OutputSchema
    description: dict[str, Any]

    def load(self) -> None:
        """Build the model (in the server's inference thread)."""
        raise NotImplementedError

    def predict_rows(self, texts: list[str]) -> np.ndarray:
        """The raw outputs of ``texts`` from one call into the model: shape (n_texts, n_columns)."""
        raise NotImplementedError

    def run(self, texts: list[str]) -> np.ndarray:
        """One batch: :meth:`predict_rows`, checked to give one finite row per text.

        Parameters
        ----------
        texts : list of str

        Returns
        -------
        rows : ndarray of shape (n_texts, n_columns), dtype float64
        """
        rows = np.asarray(self.predict_rows(texts), dtype=np.float64)
        if rows.ndim != 2 or len(rows) != len(texts):
            raise RuntimeError(f"The model returned outputs of shape {rows.shape} for {len(texts)} texts.")
        return rows

    def answer(self, rows: np.ndarray, *, top_k: int | None = None, return_scores: bool = True) -> list[dict]:
        """The JSON answer of each row of :meth:`run` (see the module docstring for the shapes).

        Parameters
        ----------
        rows : ndarray of shape (n_texts, n_columns)
        top_k : int, optional
            Keep the ``top_k`` most probable labels (and scores of each kind).
        return_scores : bool, default=True
            Add the probabilities.

        Returns
        -------
        answers : list of dict
        """
        schema = self.schema
        if schema.task == REGRESSION:
            return [{"values": {column: float(row[j]) for j, (column, _) in enumerate(schema.targets)}} for row in rows]
        label_columns = [start for kind, start, _ in schema.columns if kind == _BINARY]
        blocks = [(start, stop) for kind, start, stop in schema.columns if kind != _BINARY]
        thresholds = np.asarray(schema.thresholds, dtype=np.float64)
        answers = []
        for row in rows:
            proba = row[label_columns]
            chosen = [j for j in _ranked(schema.labels, proba, None) if proba[j] >= thresholds[j]]
            answer: dict[str, Any] = {"labels": [schema.labels[j] for j in chosen[:top_k]]}
            if return_scores:
                shown = range(len(proba)) if top_k is None else _ranked(schema.labels, proba, top_k)
                answer["scores"] = {schema.labels[j]: float(proba[j]) for j in shown}
            if blocks:
                answer["targets"] = {}
                for (column, classes), (start, stop) in zip(schema.targets, blocks):
                    class_proba = row[start:stop]
                    target: dict[str, Any] = {"class": classes[int(np.argmax(class_proba))]}
                    if return_scores:
                        ranked = _ranked(classes, class_proba, top_k) if top_k else range(len(classes))
                        target["scores"] = {classes[j]: float(class_proba[j]) for j in ranked}
                    answer["targets"][column] = target
            answers.append(answer)
        return answers


class TorchBackend(ModelBackend):
    """A model folder written by ``estimator.save`` / ``sktext fit``, predicted with torch.

    Parameters
    ----------
    folder : str or path-like
        The model folder (``sktext.json``, ``model.safetensors`` and the encoding files).

    Attributes
    ----------
    estimator_ : sktext estimator
        The loaded estimator, after :meth:`load`.
    """

    name = "torch"

    def __init__(self, folder: str | os.PathLike) -> None:
        from ..persistence import read_manifest

        self.folder = Path(folder)
        if (self.folder / "predictor.json").is_file() and not (self.folder / "sktext.json").is_file():
            raise ValueError(
                f"{str(self.folder)!r} is an ONNX export (it holds predictor.json); serve it with the ONNX "
                "backend: --backend onnx (create_app(folder, backend='onnx'))."
            )
        manifest = read_manifest(self.folder)
        if manifest.get("kind") or manifest.get("n_outputs") is None:
            what = manifest.get("kind") or manifest.get("estimator")
            raise ValueError(
                f"{str(self.folder)!r} holds a {what}, which predicts no labels or targets; sktext serve "
                "serves classifiers and regressors."
            )
        self.schema = schema_of_manifest(manifest)
        params = manifest.get("params") or {}
        self.description = {
            "task": self.schema.task,
            "estimator": manifest.get("estimator"),
            "base_encoder": params.get("model_name_or_path")
            or params.get("language_model")
            or manifest["module"]["class"],
            "labels": self.schema.labels,
            "thresholds": self.schema.thresholds,
            "targets": {column: classes for column, classes in self.schema.targets},
            "sktext_version": manifest.get("sktext_version"),
            "backend": self.name,
        }

    def load(self) -> None:
        from ..persistence import load_model

        self.estimator_ = load_model(self.folder)

    def predict_rows(self, texts: list[str]) -> np.ndarray:
        if self.schema.task == REGRESSION:
            return np.asarray(self.estimator_.predict(texts), dtype=np.float64).reshape(len(texts), -1)
        proba = self.estimator_.predict_proba(texts)
        if self.schema.task == MULTILABEL:
            return proba
        # One block per target, in the layout's order: P(1) of a 0/1 target, every class's of a categorical one.
        return np.column_stack(
            [block[:, 1] if kind == _BINARY else block for (kind, *_), block in zip(self.schema.columns, proba)]
        )


class OnnxBackend(ModelBackend):
    """A folder written by ``export_onnx``, predicted by :class:`sktext.deploy.OnnxPredictor` (no torch).

    Parameters
    ----------
    folder : str or path-like
        The exported folder (``model.onnx``, ``tokenizer.json``, ``predictor.json``).

    Attributes
    ----------
    predictor_ : sktext.deploy.OnnxPredictor
        After :meth:`load`.
    """

    name = "onnx"

    def __init__(self, folder: str | os.PathLike) -> None:
        from ..deploy import _read_config

        self.folder = Path(folder)
        if (self.folder / "sktext.json").is_file() and not (self.folder / "predictor.json").is_file():
            raise ValueError(
                f"{str(self.folder)!r} is a model folder (it holds sktext.json), not an ONNX export; serve it "
                "with --backend torch, or export it first with estimator.export_onnx(folder)."
            )
        config = _read_config(self.folder)
        labels = _names(config["classes"])
        self.schema = OutputSchema(
            MULTILABEL,
            labels,
            _numbers(config["thresholds"]),
            columns=[(_BINARY, j, j + 1) for j in range(len(labels))],
        )
        self.description = {
            "task": MULTILABEL,
            "estimator": config.get("estimator"),
            "base_encoder": config.get("model_name_or_path"),
            "labels": labels,
            "thresholds": self.schema.thresholds,
            "targets": {},
            "sktext_version": config.get("sktext_version"),
            "backend": self.name,
            "quantize": config.get("quantize"),
        }

    def load(self) -> None:
        from ..deploy import OnnxPredictor

        self.predictor_ = OnnxPredictor(self.folder)

    def predict_rows(self, texts: list[str]) -> np.ndarray:
        return self.predictor_.predict_proba(texts)


def make_backend(folder: str | os.PathLike, backend: str = "torch") -> ModelBackend:
    """The backend named ``backend`` for ``folder`` (its description read, the model not yet loaded).

    Parameters
    ----------
    folder : str or path-like
    backend : {"torch", "onnx"}, default="torch"

    Returns
    -------
    backend : ModelBackend

    Raises
    ------
    ValueError
        For an unknown backend, or a folder the backend cannot serve.
    """
    if backend == "torch":
        return TorchBackend(folder)
    if backend == "onnx":
        return OnnxBackend(folder)
    raise ValueError(f"backend must be one of {', '.join(BACKENDS)}; got {backend!r}.")
