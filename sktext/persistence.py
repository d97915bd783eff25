"""Model folders that are safe to share: JSON and safetensors, no pickle.

:func:`save_model` writes a fitted sktext estimator to a folder and :func:`load_model`
rebuilds it from there, executing no pickled code: every file is JSON, a safetensors
weight file, or a Hugging Face tokenizer / config folder (JSON and text files).

The folder holds

``sktext.json``
    Format version, sktext version, estimator class, its parameters, its fitted
    attributes (``classes_`` with their type, ``thresholds_``, ``n_outputs_``, the
    training histories, ULMFiT's ``architecture_``; for the regressors, which have no
    classes or thresholds (null there), ``target_mean_``, ``target_scale_`` and
    ``one_dimensional_``), what the module is rebuilt from,
    and the caller's ``metadata``.
``model.safetensors``
    The module's state dict, written by ``safetensors.torch.save_model``, which stores
    a tensor shared by several names (tied weights) once; ``load_model`` ties it back.
the text encoding, written and read by the model family's own hooks
    (``_save_encoding`` / ``_load_encoding``): ULMFiT's ``vocabulary.json`` (the token
    list), or the transformer's ``tokenizer/`` and ``encoder/config.json`` (the
    encoder is rebuilt with ``AutoModel.from_config`` and gets its weights from
    ``model.safetensors``: no network, no weights from anywhere else).

The same format holds the other things sktext saves. A language model
(:class:`sktext.language_model.LanguageModel`) gets an ``sktext.json`` of kind
``"language_model"`` (its :class:`~sktext.models.awd_lstm.AWDLSTMConfig` and training
history), ``vocabulary.json`` and ``model.safetensors``; the embedders
(``TransformerEmbedder``, ``ULMFiTEmbedder``) are saved as the estimators are (no
classes, thresholds or outputs). :func:`load_model` returns whichever the folder
holds; the language-model folders of sktext 0.1.0 (``config.json``, ``vocab.json``,
weights) load too (see :func:`_load_0_1_0_language_model`).

This module is a leaf: the estimators never import it. It knows the estimator
classes through :mod:`sktext.registry`, where the families register them, and
installs :func:`save_model` / :func:`load_model` there for ``estimator.save`` and
``Class.load``. A loaded estimator's parameters pass the same declared checks as
at the start of ``fit``.

Parameters are kept when they are JSON values (numbers, strings, lists, dicts of
them; tuples become lists, paths strings, arrays are stored with their dtype). A
parameter holding an object (a ``LanguageModel``, a ``RandomState``) or training data
(``unlabeled_texts`` given as a list of texts) is *dropped*: ``sktext.json`` names it
under ``dropped_params`` and the loaded estimator has the constructor's default there
(None for all of these). Dropped parameters only matter for fitting again; predictions
come from the saved weights.
"""

from __future__ import annotations

import inspect
import json
import math
import numbers
import os
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ._version import __version__
from .fastai_weights import load_untied_state
from .language_model import LanguageModel
from .models.awd_lstm import AWDLSTMConfig, AWDLSTMLanguageModel
from .registry import register_model_folder_format, registered_estimators
from .targets import OutputLayout, Target
from .text import Vocabulary
from .validation import resolve_device, validate_parameters

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "check_output_folder",
    "load_model",
    "read_manifest",
    "save_model",
]

FORMAT_NAME = "sktext.model"
#: The model-folder format this sktext writes and reads.
FORMAT_VERSION = 1
MANIFEST_FILE = "sktext.json"
WEIGHTS_FILE = "model.safetensors"
LEXICAL_CONFIG_FILE = "lexical.json"
LEXICAL_WEIGHTS_FILE = "lexical.safetensors"
VOCABULARY_FILE = "vocabulary.json"
#: ``sktext.json``'s ``kind`` for a language model; estimators' manifests have none.
LANGUAGE_MODEL_KIND = "language_model"
# What sktext 0.1.0 wrote for a language model.
_LEGACY_LANGUAGE_MODEL_FORMAT = "sktext.language_model"
_LEGACY_LANGUAGE_MODEL_CONFIG = "config.json"

# Parameters that may hold training data rather than a setting: kept only as a path.
_DATA_PARAMETERS = frozenset({"unlabeled_texts"})
# Fitted attributes saved as files or rebuilt, not stored as JSON values.
_SPECIAL_ATTRIBUTES = frozenset(
    {
        "module_",
        "classes_",
        "thresholds_",
        "n_outputs_",
        "device_",
        "tokenizer_",
        "vocabulary_",
        "output_layout_",
        "lexical_",
    }
)
_ARRAY_TAG = "__ndarray__"


# -- JSON values -------------------------------------------------------------------------
class _NotJSON(TypeError):
    """A value with no faithful JSON form."""


def _to_json(value: Any) -> Any:
    """``value`` as JSON data; arrays become ``{"__ndarray__": [...], "dtype": ...}``.

    Raises
    ------
    _NotJSON
        For objects, non-finite floats, and arrays of objects.
    """
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        if not math.isfinite(value):
            raise _NotJSON(f"non-finite float {value!r}")
        return float(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.ndarray):
        if value.dtype.kind not in "biufU":
            raise _NotJSON(f"array of dtype {value.dtype}")
        return {_ARRAY_TAG: _to_json(value.tolist()), "dtype": value.dtype.str}
    if isinstance(value, (list, tuple)):
        return [_to_json(item) for item in value]
    if isinstance(value, Mapping) and all(isinstance(key, str) for key in value):
        if _ARRAY_TAG in value:
            raise _NotJSON(f"mapping with the reserved key {_ARRAY_TAG!r}")
        return {key: _to_json(item) for key, item in value.items()}
    raise _NotJSON(type(value).__name__)


def _from_json(value: Any) -> Any:
    """Invert :func:`_to_json` (lists stay lists)."""
    if isinstance(value, list):
        return [_from_json(item) for item in value]
    if not isinstance(value, dict):
        return value
    if _ARRAY_TAG in value:
        dtype = np.dtype(value["dtype"])
        if dtype.kind not in "biufU":
            raise ValueError(f"{MANIFEST_FILE} holds an array of dtype {dtype}; only numbers and strings are read.")
        return np.asarray(value[_ARRAY_TAG], dtype=dtype)
    return {key: _from_json(item) for key, item in value.items()}


# -- saving ---------------------------------------------------------------------------------
def _encode_params(estimator) -> tuple[dict[str, Any], dict[str, str]]:
    """``(kept, dropped)``: JSON forms of the parameters, and why each other one was left out."""
    kept, dropped = {}, {}
    for name, value in estimator.get_params(deep=False).items():
        if name in _DATA_PARAMETERS and not isinstance(value, (str, os.PathLike, type(None))):
            dropped[name] = "training data (a sequence of texts), not a setting; pass a path to keep it"
            continue
        try:
            kept[name] = _to_json(value)
        except _NotJSON as reason:
            dropped[name] = f"not a JSON value ({reason})"
    return kept, dropped


def _encode_classes(classes: np.ndarray) -> dict[str, Any]:
    values = list(classes)
    if all(isinstance(value, numbers.Integral) and not isinstance(value, (bool, np.bool_)) for value in values):
        return {"type": "int", "values": [int(value) for value in values]}
    if all(isinstance(value, str) for value in values):
        return {"type": "str", "values": [str(value) for value in values]}
    kinds = sorted({type(value).__name__ for value in values})
    raise ValueError(
        f"classes_ must all be int or all be str to be saved; got {', '.join(kinds)}. "
        "Rename the labels first, e.g. estimator.classes_ = estimator.classes_.astype(str)."
    )


def _encode_layout(layout) -> list[dict[str, Any]]:
    """JSON form of an :class:`~sktext.targets.OutputLayout`."""
    return [
        {
            "name": _encode_classes(np.asarray([target.name], dtype=object)),
            "kind": target.kind,
            "classes": _encode_classes(target.classes),
            "start": int(target.start),
            "stop": int(target.stop),
        }
        for target in layout.targets
    ]


def _decode_layout(entries: list[Mapping[str, Any]]):
    """The :class:`~sktext.targets.OutputLayout` that :func:`_encode_layout` wrote."""
    targets = []
    for entry in entries:
        name = _decode_classes(entry["name"])[0]
        classes = _decode_classes(entry["classes"])
        targets.append(Target(name, entry["kind"], classes, int(entry["start"]), int(entry["stop"])))
    return OutputLayout(tuple(targets))


def _encode_attributes(estimator) -> tuple[dict[str, Any], list[str]]:
    """JSON forms of the fitted attributes not saved otherwise, and the names left out."""
    saved, unsaved = {}, []
    for name, value in vars(estimator).items():
        if not name.endswith("_") or name.startswith("_") or name in _SPECIAL_ATTRIBUTES:
            continue
        try:
            saved[name] = _to_json(list(value) if name == "history_" else value)
        except _NotJSON:
            unsaved.append(name)
    return saved, unsaved


def _module_settings(module: torch.nn.Module) -> dict[str, Any]:
    """The module's own plain settings (``bptt``, ``pooling``...), restored after rebuilding."""
    return {
        name: value
        for name, value in vars(module).items()
        if not name.startswith("_") and name != "training" and isinstance(value, (bool, int, float, str))
    }


def check_output_folder(folder: str | os.PathLike, overwrite: bool) -> None:
    """Raise a ValueError unless ``folder`` may receive a model folder.

    It may be missing or empty, or, with ``overwrite``, hold a model folder (an
    ``sktext.json``); anything else is refused before any training or writing.
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ValueError(f"save_model needs a folder path; {str(folder)!r} is a file.")
    if folder.is_dir() and any(folder.iterdir()):
        if not overwrite:
            raise ValueError(
                f"The folder {str(folder)!r} is not empty; choose a new folder or pass "
                "overwrite=True (command line: --overwrite) to replace a saved model."
            )
        if not (folder / MANIFEST_FILE).is_file():
            raise ValueError(
                f"overwrite=True replaces a model folder, but {str(folder)!r} holds other "
                f"files and no {MANIFEST_FILE}; choose a new or empty folder."
            )


def _prepare_folder(folder: Path, overwrite: bool) -> None:
    """Check ``folder``, then empty it of a previous model (the files its manifest lists)."""
    check_output_folder(folder, overwrite)
    if (folder / MANIFEST_FILE).is_file():
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        files = [
            MANIFEST_FILE,
            *manifest.get("module", {}).get("files", {}).values(),
            *(manifest.get("lexical") or {}).values(),
        ]
        for name in files:
            path = folder / name
            if path.is_dir():
                shutil.rmtree(path)
            elif path.exists():
                path.unlink()
    folder.mkdir(parents=True, exist_ok=True)


def _parameter_dtype(module: torch.nn.Module) -> str:
    dtypes = {parameter.dtype for parameter in module.parameters()}
    if len(dtypes) != 1:
        raise ValueError(f"The module's parameters mix dtypes {sorted(map(str, dtypes))}; cast it to one first.")
    return str(dtypes.pop()).removeprefix("torch.")


def save_model(
    estimator, folder: str | os.PathLike, *, metadata: Mapping | None = None, overwrite: bool = False
) -> Path:
    """Write a fitted sktext estimator to a folder that is safe to share.

    The folder holds only JSON, safetensors and tokenizer files (see the module
    docstring), so :func:`load_model` runs no pickled code.

    Parameters
    ----------
    estimator : fitted sktext estimator, embedder or LanguageModel
        A fitted classifier, regressor or embedder, or a language model.
    folder : str or path-like
        Where to write; created if missing. It must be empty unless ``overwrite``.
    metadata : mapping, optional
        JSON-serialisable data stored with the model (the command line keeps its
        label and column settings here); :func:`read_manifest` returns it.
    overwrite : bool, default=False
        Replace the model in a folder that already holds one.

    Returns
    -------
    folder : pathlib.Path

    Examples
    --------
    >>> from sktext.persistence import load_model, save_model
    >>> save_model(fitted, "my-model")  # doctest: +SKIP
    >>> load_model("my-model").predict(["a text editor"])  # doctest: +SKIP
    """
    from safetensors.torch import save_model as save_weights
    from sklearn.utils.validation import check_is_fitted

    if isinstance(estimator, LanguageModel):
        return _save_language_model(estimator, Path(folder), metadata=metadata, overwrite=overwrite)
    name = type(estimator).__name__
    if registered_estimators().get(name) is not type(estimator):
        raise ValueError(
            f"save_model saves sktext's estimators ({', '.join(sorted(registered_estimators()))}); "
            f"got {name}. Use joblib.dump for other objects."
        )
    check_is_fitted(estimator, "module_")
    layout = vars(estimator).get("output_layout_")
    if layout is not None and layout.is_multilabel:
        layout = None  # a multi-label matrix: its labels are "classes", as in format 1
    try:
        metadata = _to_json(dict(metadata or {}))
    except _NotJSON as reason:
        raise ValueError(f"metadata must be JSON-serialisable; it holds a {reason}.") from None
    params, dropped = _encode_params(estimator)
    attributes, unsaved = _encode_attributes(estimator)
    folder = Path(folder)
    _prepare_folder(folder, overwrite)

    module = estimator.module_
    save_weights(module, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
    encoding = estimator._save_encoding(folder)
    lexical = _save_lexical(estimator, folder)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sktext_version": __version__,
        "estimator": name,
        "params": params,
        "dropped_params": dropped,
        # A regressor has neither (its target_mean_ / target_scale_ are in "attributes").
        "classes": (_encode_classes(estimator.classes_) if hasattr(estimator, "classes_") and layout is None else None),
        # Several targets (softmax and sigmoid heads): each with its name, kind, classes
        # and logit columns; classes_ is rebuilt from it.
        "output_layout": None if layout is None else _encode_layout(layout),
        "thresholds": _to_json(np.asarray(estimator.thresholds_)) if hasattr(estimator, "thresholds_") else None,
        # An embedder has none.
        "n_outputs": int(estimator.n_outputs_) if hasattr(estimator, "n_outputs_") else None,
        "attributes": attributes,
        "unsaved_attributes": unsaved,
        "module": {
            "class": type(module).__name__,
            "dtype": _parameter_dtype(module),
            "settings": _module_settings(module),
            **encoding,
            "files": {"weights": WEIGHTS_FILE, **encoding["files"]},
        },
        "lexical": lexical,
        "metadata": metadata,
    }
    # Written last: a folder without it is an unfinished save.
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return folder


def _save_lexical(estimator, folder: Path) -> dict[str, str] | None:
    """Write a classifier's lexical model: vocabulary and settings as JSON, arrays as safetensors."""
    lexical = vars(estimator).get("lexical_")
    if lexical is None:
        return None
    from safetensors.numpy import save_file

    config, arrays = lexical.to_state()
    (folder / LEXICAL_CONFIG_FILE).write_text(json.dumps(config, ensure_ascii=False), encoding="utf-8")
    save_file(arrays, str(folder / LEXICAL_WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
    return {"config": LEXICAL_CONFIG_FILE, "weights": LEXICAL_WEIGHTS_FILE}


def _load_lexical(folder: Path, files: Mapping[str, str]):
    from safetensors.numpy import load_file

    from .lexical import TfidfLinearClassifier

    config = json.loads((folder / files["config"]).read_text(encoding="utf-8"))
    return TfidfLinearClassifier.from_state(config, load_file(str(folder / files["weights"])))


def _save_language_model(language_model, folder: Path, *, metadata: Mapping | None, overwrite: bool) -> Path:
    """Write a :class:`~sktext.language_model.LanguageModel`: config, history, vocabulary, weights."""
    from safetensors.torch import save_model as save_weights

    try:
        metadata = _to_json(dict(metadata or {}))
        # A diverged epoch's NaN loss is kept as null.
        history = _to_json(
            [
                {
                    key: None if isinstance(value, float) and not math.isfinite(value) else value
                    for key, value in r.items()
                }
                for r in language_model.history
            ]
        )
    except _NotJSON as reason:
        raise ValueError(f"metadata and history must be JSON-serialisable; they hold a {reason}.") from None
    _prepare_folder(folder, overwrite)
    model = language_model.model
    # safetensors stores the decoder weight tied to the embedding once, and ties it back.
    save_weights(model, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
    language_model.vocabulary.save(folder / VOCABULARY_FILE)
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sktext_version": __version__,
        "kind": LANGUAGE_MODEL_KIND,
        "class": type(language_model).__name__,
        "config": model.config.to_dict(),
        "history": history,
        "module": {
            "class": type(model).__name__,
            "dtype": _parameter_dtype(model),
            "files": {"weights": WEIGHTS_FILE, "vocabulary": VOCABULARY_FILE},
        },
        "metadata": metadata,
    }
    (folder / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
    return folder


def _load_language_model(folder: Path, manifest: Mapping):
    from safetensors.torch import load_model as load_weights

    description = manifest["module"]
    try:
        config = AWDLSTMConfig.from_dict(manifest["config"])
    except (TypeError, ValueError) as error:
        raise ValueError(f"{folder / MANIFEST_FILE} holds an AWD-LSTM config this sktext refuses: {error}") from None
    model = AWDLSTMLanguageModel(config).to(getattr(torch, description["dtype"]))
    load_weights(model, str(folder / description["files"]["weights"]), strict=True)
    vocabulary = Vocabulary.load(folder / description["files"]["vocabulary"])
    return LanguageModel(model.eval(), vocabulary, history=manifest.get("history"))


def _is_0_1_0_language_model(folder: Path) -> bool:
    path = folder / _LEGACY_LANGUAGE_MODEL_CONFIG
    if (folder / MANIFEST_FILE).exists() or not path.is_file():
        return False
    try:
        return json.loads(path.read_text(encoding="utf-8")).get("format") == _LEGACY_LANGUAGE_MODEL_FORMAT
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return False


def _load_0_1_0_language_model(folder: Path):
    """Read the language-model folder of sktext 0.1.0 (the migration to this format).

    It held ``config.json`` (format ``sktext.language_model`` 1: sizes, a ``dropouts``
    dict, the weights file's name, the history), ``vocab.json`` and either
    ``model.safetensors`` or, where safetensors was missing, ``model.pt`` (a plain
    state dict, read with ``weights_only=True``); the tied decoder weight was left
    out. ``LanguageModel.save`` rewrites it in this format.
    """
    config_path = folder / _LEGACY_LANGUAGE_MODEL_CONFIG
    legacy = json.loads(config_path.read_text(encoding="utf-8"))
    if legacy.get("format_version", 0) > 1:
        raise ValueError(
            f"{folder} was saved by a newer sktext (language-model format version "
            f"{legacy['format_version']}, this one reads 1); upgrade sktext."
        )
    sizes = {key: legacy[key] for key in ("vocab_size", "embedding_dim", "hidden_dim", "n_layers", "pad_id")}
    model = AWDLSTMLanguageModel(AWDLSTMConfig(**sizes, **legacy["dropouts"]))
    weights = folder / legacy["weights"]
    if not weights.is_file():
        raise ValueError(f"The weights file {str(weights)!r} named in {config_path} is missing.")
    if weights.suffix == ".safetensors":
        from safetensors.torch import load_file

        state = load_file(str(weights))
    else:
        state = torch.load(weights, map_location="cpu", weights_only=True)
    load_untied_state(model, state, source=str(folder))
    vocabulary = Vocabulary.load(folder / "vocab.json")
    return LanguageModel(model.eval(), vocabulary, history=legacy.get("history"))


# -- loading --------------------------------------------------------------------------------
def _check_format(manifest: Mapping, folder: Path) -> None:
    if manifest.get("format") != FORMAT_NAME:
        raise ValueError(
            f"{folder / MANIFEST_FILE} is not an sktext model manifest (format "
            f"{manifest.get('format')!r}, expected {FORMAT_NAME!r})."
        )
    found, saved_by = manifest.get("format_version"), manifest.get("sktext_version", "unknown")
    if found == FORMAT_VERSION:
        return
    message = (
        f"The model folder {str(folder)!r} was saved by sktext format {found} (sktext {saved_by}); "
        f"this sktext ({__version__}) reads format {FORMAT_VERSION}. "
    )
    if isinstance(found, int) and found > FORMAT_VERSION:
        message += f"Upgrade sktext (pip install -U 'sktext>={saved_by}') to load it."
    else:
        message += (
            f"To convert it, load it with sktext {saved_by} (pip install sktext=={saved_by}), "
            "joblib.dump the estimator, upgrade sktext, joblib.load it and re-save it with "
            "sktext.save_model(estimator, folder)."
        )
    raise ValueError(message)


def read_manifest(folder: str | os.PathLike) -> dict[str, Any]:
    """Read and check the ``sktext.json`` of a model folder written by :func:`save_model`.

    Parameters
    ----------
    folder : str or path-like

    Returns
    -------
    manifest : dict
        The parsed ``sktext.json``; ``manifest["metadata"]`` is what ``save_model``
        was given as ``metadata``.

    Raises
    ------
    ValueError
        If the folder does not exist, has no ``sktext.json``, or was written in
        another format version.
    """
    folder = Path(folder)
    if not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise ValueError(
            f"No sktext model at {str(folder)!r}: the path {what}. Pass the folder written by "
            "save_model (or `sktext fit --out FOLDER`)."
        )
    path = folder / MANIFEST_FILE
    if not path.is_file():
        present = sorted(entry.name for entry in folder.iterdir())[:8]
        raise ValueError(
            f"The folder {str(folder)!r} has no {MANIFEST_FILE}, so it is not a model folder "
            f"written by sktext's save_model, and no {_LEGACY_LANGUAGE_MODEL_CONFIG} of a language "
            f"model saved by sktext 0.1.0 (it holds {present or 'nothing'}). A pickled estimator "
            "loads with joblib.load, for files you trust only; fastai's .pth/.pkl files load "
            "with sktext.language_model.load_fastai_weights."
        )
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not valid JSON ({error}); the model folder is damaged.") from None
    if not isinstance(manifest, dict):
        raise ValueError(f"{path} must hold a JSON object; got {type(manifest).__name__}.")
    _check_format(manifest, folder)
    return manifest


def _decode_params(cls: type, manifest: Mapping) -> dict[str, Any]:
    signature = inspect.signature(cls.__init__).parameters
    params = {name: _from_json(value) for name, value in manifest["params"].items()}
    unknown = sorted(set(params) - set(signature))
    if unknown:
        raise ValueError(
            f"{MANIFEST_FILE} sets parameters {unknown} that this sktext's {cls.__name__} does "
            f"not have (the folder was saved by sktext {manifest.get('sktext_version')}); "
            "load it with that version."
        )
    for name in manifest.get("dropped_params", {}):
        if name in signature:
            params[name] = signature[name].default
    return params


def _decode_classes(classes: Mapping) -> np.ndarray:
    if classes.get("type") == "int":
        return np.asarray(classes["values"], dtype=np.int64)
    if classes.get("type") == "str":
        # What fit stores for the columns of a DataFrame y.
        return np.asarray(classes["values"], dtype=object)
    raise ValueError(f"{MANIFEST_FILE} gives classes of type {classes.get('type')!r}; expected 'int' or 'str'.")


def _restore_attributes(estimator, manifest: Mapping) -> None:
    from skorch.history import History

    if manifest.get("classes") is not None:
        estimator.classes_ = _decode_classes(manifest["classes"])
        estimator.output_layout_ = OutputLayout.multilabel(estimator.classes_)
    if manifest.get("output_layout") is not None:
        estimator.output_layout_ = _decode_layout(manifest["output_layout"])
        estimator.classes_ = [target.classes for target in estimator.output_layout_.targets]
    if manifest.get("n_outputs") is not None:
        estimator.n_outputs_ = int(manifest["n_outputs"])
    if manifest.get("thresholds") is not None:
        estimator.thresholds_ = _from_json(manifest["thresholds"])
    for name, value in manifest.get("attributes", {}).items():
        value = _from_json(value)
        setattr(estimator, name, History(value) if name == "history_" else value)


def _rebuild_module(estimator, folder: Path, description: Mapping) -> torch.nn.Module:
    from safetensors.torch import load_model as load_weights

    pretrained = estimator._load_encoding(folder, description)
    layout = vars(estimator).get("output_layout_")
    n_outputs = vars(estimator).get("n_outputs_") if layout is None else layout.n_logits
    module = estimator._build_module(n_outputs, pretrained)
    if type(module).__name__ != description["class"]:
        raise ValueError(
            f"The saved module is a {description['class']} but this sktext builds a "
            f"{type(module).__name__} for {type(estimator).__name__}; load it with the sktext "
            "version that saved it."
        )
    for name, value in description.get("settings", {}).items():
        setattr(module, name, value)
    module.to(getattr(torch, description["dtype"]))
    load_weights(module, str(folder / description["files"]["weights"]), strict=True)
    return module.to(estimator.device_).eval()


def _expect(loaded, expected_class: type | None, folder: Path):
    if expected_class is not None and not isinstance(loaded, expected_class):
        raise ValueError(
            f"The folder {str(folder)!r} holds a {type(loaded).__name__}, not a "
            f"{expected_class.__name__}; load it with {type(loaded).__name__}.load or sktext.load_model."
        )
    return loaded


def load_model(folder: str | os.PathLike, *, expected_class: type | None = None):
    """Load an estimator written by :func:`save_model`, running no pickled code.

    Parameters
    ----------
    folder : str or path-like
        The model folder.
    expected_class : type, optional
        Raise unless the folder holds an instance of this class (what
        ``ULMFiTClassifier.load`` and ``TransformerMultiLabelClassifier.load`` pass).

    Returns
    -------
    estimator : fitted sktext estimator or embedder, or LanguageModel
        Fitted, in eval mode, on the device its ``device`` parameter names (CPU
        when that asks for CUDA and none is available); ``predict_proba`` gives
        what the saved estimator gave. A language model comes on the CPU.

    Raises
    ------
    ValueError
        If the folder is missing or is not a model folder, was written in another
        format version, or names an unknown estimator class.
    """
    folder = Path(folder)
    if _is_0_1_0_language_model(folder):
        return _expect(_load_0_1_0_language_model(folder), expected_class, folder)
    manifest = read_manifest(folder)
    if manifest.get("kind") == LANGUAGE_MODEL_KIND:
        return _expect(_load_language_model(folder, manifest), expected_class, folder)
    if expected_class is LanguageModel:
        raise ValueError(
            f"The folder {str(folder)!r} holds a {manifest.get('estimator')}, not a LanguageModel; "
            "load it with sktext.load_model."
        )
    classes = registered_estimators()
    name = manifest.get("estimator")
    if name not in classes:
        raise ValueError(
            f"{folder / MANIFEST_FILE} names the estimator class {name!r}, which this sktext does "
            f"not know; it knows {', '.join(sorted(classes))}."
        )
    cls = classes[name]
    if expected_class is not None and not issubclass(cls, expected_class):
        raise ValueError(
            f"The folder {str(folder)!r} holds a {name}, not a {expected_class.__name__}; load it "
            f"with {name}.load or sktext.load_model."
        )
    estimator = cls(**_decode_params(cls, manifest))
    try:
        validate_parameters(estimator)
    except ValueError as error:
        raise ValueError(f"The model folder {str(folder)!r} holds a parameter this sktext refuses: {error}") from None
    _restore_attributes(estimator, manifest)
    estimator.device_ = resolve_device(estimator.device, cuda_fallback=True)
    estimator.module_ = _rebuild_module(estimator, folder, manifest["module"])
    if manifest.get("lexical") is not None:
        estimator.lexical_ = _load_lexical(folder, manifest["lexical"])
    return estimator


register_model_folder_format(save_model, load_model)
