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
``README.md``
    The model card (:mod:`sktext.card`), generated from the manifest; loading never
    reads it. ``sktext.json`` also records the versions of the libraries that saved
    the folder (``versions``).
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

import importlib.metadata
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
from sklearn.base import TransformerMixin

from ._version import __version__
from .card import CARD_FILE, model_card
from .fastai_weights import load_untied_state
from .language_model import LanguageModel
from .models.awd_lstm import AWDLSTMConfig, AWDLSTMLanguageModel
from .registry import register_model_folder_format, registered_estimators
from .reliability import atomic_folder, check_finite_parameters
from .targets import BINARY, CATEGORICAL, OutputLayout, Target
from .text import Vocabulary
from .validation import resolve_device

__all__ = [
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "check_output_folder",
    "load_model",
    "read_manifest",
    "save_model",
]

FORMAT_NAME = "sktext.model"
#: The model-folder format this sktext writes. 2: the lexical part's weights as CSR arrays
#: (``coef_data``, ``coef_indices``, ``coef_indptr``) and ``max_length="auto"``, which an
#: sktext reading format 1 only would misread.
FORMAT_VERSION = 2
#: The formats it reads (format 1's dense lexical ``coef`` included).
READ_FORMAT_VERSIONS = (1, 2)
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
# Parameters naming files of the machine that fitted the model: an absolute path is
# kept as its last part only (a model name or relative reference), never the author's path.
_PATH_PARAMETERS = frozenset({"model_name_or_path", "language_model", "unlabeled_texts"})
# Settings of the fitting machine only, never saved.
_LOCAL_PARAMETERS = frozenset({"checkpoint_dir"})
#: A safetensors header larger than this is refused unread (real ones are kilobytes).
MAX_HEADER_BYTES = 100 * 2**20
_SAFETENSORS_ITEM_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8,
}  # fmt: skip
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
# The libraries whose versions a manifest records (``versions``), beside sktext's own.
_VERSIONED_LIBRARIES = ("torch", "transformers", "tokenizers", "scikit-learn", "skorch", "safetensors")


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
        if name in _LOCAL_PARAMETERS:
            if value is not None:
                dropped[name] = "a folder of the machine that fitted the model, not saved"
            continue
        if name == "callbacks" and value is not None:
            dropped[name] = "skorch callbacks observe a fit and hold live objects; not saved"
            continue
        if name in _DATA_PARAMETERS and not isinstance(value, (str, os.PathLike, type(None))):
            dropped[name] = "training data (a sequence of texts), not a setting; pass a path to keep it"
            continue
        if name in _PATH_PARAMETERS:
            value = _without_local_root(value)
        try:
            kept[name] = _to_json(value)
        except _NotJSON as reason:
            dropped[name] = f"not a JSON value ({reason})"
    return kept, dropped


def _without_local_root(value: Any) -> Any:
    """An absolute (or ``~``) path as its last part; other values (names, relative paths) as they are."""
    if isinstance(value, (list, tuple)):
        return type(value)(_without_local_root(item) for item in value)
    if isinstance(value, (str, os.PathLike)):
        text = os.fspath(value)
        if os.path.isabs(text) or text.startswith("~") or Path(text).is_absolute():
            return Path(text).name
        return text
    return value


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


def _model_files(manifest: Mapping) -> set[str]:
    """The top-level entries of a model folder that its manifest lists."""
    names = [
        MANIFEST_FILE,
        *(manifest.get("module", {}).get("files", {}) or {}).values(),
        *(manifest.get("lexical") or {}).values(),
    ]
    return {Path(str(name)).parts[0] for name in names if str(name).strip()}


def _carry_other_files(folder: Path, staging: Path) -> None:
    """Copy the entries of an old model folder that are not part of its model into ``staging``."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        ours = _model_files(manifest) if isinstance(manifest, dict) else {MANIFEST_FILE}
    except (OSError, ValueError):
        ours = {MANIFEST_FILE}
    for entry in folder.iterdir():
        if entry.name in ours or (staging / entry.name).exists():
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.copytree(entry, staging / entry.name, symlinks=True)
        else:
            shutil.copy2(entry, staging / entry.name, follow_symlinks=False)


def _library_versions() -> dict[str, str | None]:
    """The installed versions of the libraries a model folder depends on (None: not installed)."""
    versions = {}
    for name in _VERSIONED_LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def _write_card(manifest: Mapping, staging: Path, folder: Path) -> None:
    """The model card (:mod:`sktext.card`), ``README.md``, generated from the manifest."""
    card = model_card(manifest, name=folder.resolve().name, folder=staging)
    (staging / CARD_FILE).write_text(card, encoding="utf-8")


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
    check_output_folder(folder, overwrite)
    # Everything is written into a temporary sibling folder, flushed, then renamed into
    # place: a full disk or a Ctrl-C mid-save leaves the old model as it was.
    with atomic_folder(folder) as staging:
        manifest = _write_model(estimator, staging, layout, params, dropped, attributes, unsaved, metadata)
        _write_card(manifest, staging, folder)
        # Written last: a folder without it is an unfinished save.
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        if (folder / MANIFEST_FILE).is_file():
            _carry_other_files(folder, staging)
    return folder


def _write_model(estimator, folder: Path, layout, params, dropped, attributes, unsaved, metadata) -> dict:
    """Write the weights, the encoding and the lexical part into ``folder``; return the manifest."""
    from safetensors.torch import save_model as save_weights

    module = estimator.module_
    save_weights(module, str(folder / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
    encoding = estimator._save_encoding(folder)
    lexical = _save_lexical(estimator, folder)
    return {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sktext_version": __version__,
        "versions": _library_versions(),
        "estimator": type(estimator).__name__,
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


def _load_lexical(folder: Path, files: Mapping[str, str], n_binary: int):
    """The lexical model of ``lexical.json`` + ``lexical.safetensors``; errors name the damaged file."""
    from safetensors.numpy import load_file

    from .lexical import TfidfLinearClassifier

    if not isinstance(files, Mapping) or not {"config", "weights"} <= set(files):
        raise ValueError(f"{folder / MANIFEST_FILE}: 'lexical' must name a 'config' and a 'weights' file.")
    config_path = _member(folder, files["config"], "the lexical config")
    weights_path = _member(folder, files["weights"], "the lexical weights")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{config_path} is not valid JSON ({error}); the model folder is damaged.") from None
    _check_weights_header(weights_path)
    try:
        arrays = load_file(str(weights_path))
        lexical = TfidfLinearClassifier.from_state(config, arrays)
    except Exception as error:  # noqa: BLE001 - any failure here is a damaged file
        raise ValueError(
            f"The lexical part of the model folder is damaged ({config_path.name} and "
            f"{weights_path.name} in {folder}): {type(error).__name__}: {error}"
        ) from None
    if lexical.n_outputs_ != n_binary:
        raise ValueError(
            f"{config_path} and {weights_path.name} hold a lexical model of {lexical.n_outputs_} "
            f"labels, but the model has {n_binary}; the model folder is damaged."
        )
    return lexical


# -- checks of a folder before anything is built ----------------------------------------------
def _member(folder: Path, name: Any, what: str) -> Path:
    """``folder / name``, refused unless it is a relative path that stays inside ``folder``."""
    if not isinstance(name, str) or not name.strip():
        raise ValueError(f"{folder / MANIFEST_FILE} names {what} as {name!r}; expected a file name inside the folder.")
    path = folder / name
    root = folder.resolve()
    if Path(name).is_absolute() or ".." in Path(name).parts or not path.resolve().is_relative_to(root):
        raise ValueError(
            f"{folder / MANIFEST_FILE} names {what} {name!r}, a path outside the model folder; "
            "a model folder only reads its own files. The manifest is damaged or was tampered with."
        )
    if not path.exists():
        raise ValueError(f"The model folder {str(folder)!r} lacks {what} ({name}) that {MANIFEST_FILE} names.")
    return path


def read_safetensors_header(path: str | os.PathLike) -> dict[str, dict]:
    """The tensor entries of a safetensors file's header, checked against the file's size.

    Reads only the header (its first 8 bytes give the length of the JSON that follows),
    so a file that claims more than it holds is refused before any tensor is read.

    Returns
    -------
    entries : dict
        ``{name: {"dtype": str, "shape": [int, ...], "data_offsets": [begin, end]}}``.
    """
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as handle:
        prefix = handle.read(8)
        length = int.from_bytes(prefix, "little") if len(prefix) == 8 else -1
        if length < 2 or length > min(MAX_HEADER_BYTES, size - 8):
            raise ValueError(f"{path} is not a safetensors file or is truncated (its header is unreadable).")
        try:
            header = json.loads(handle.read(length).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is damaged: its safetensors header is not JSON ({error}).") from None
    if not isinstance(header, dict):
        raise ValueError(f"{path} is damaged: its safetensors header is not a JSON object.")
    data_size = size - 8 - length
    entries = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            count = math.prod(int(dim) for dim in shape)
            valid = (
                dtype in _SAFETENSORS_ITEM_SIZES
                and all(isinstance(dim, int) and dim >= 0 for dim in shape)
                and 0 <= begin <= end <= data_size
                and end - begin == count * _SAFETENSORS_ITEM_SIZES[dtype]
            )
        except (KeyError, TypeError, ValueError):
            valid = False
        if not valid:
            raise ValueError(
                f"{path} is damaged or truncated: the tensor {name!r} ({entry!r:.120}) does not fit "
                f"the {data_size} bytes of data the file holds."
            )
        entries[name] = entry
    return entries


def _check_weights_header(path: Path) -> dict[str, dict]:
    try:
        return read_safetensors_header(path)
    except OSError as error:
        raise ValueError(f"{path} cannot be read ({error}).") from None


def _check_manifest_outputs(manifest: Mapping, path: Path, *, has_outputs: bool = True) -> None:
    """Outputs, classes, layout and thresholds of a manifest agree (nothing is built yet).

    An embedder (``has_outputs=False``) has none of them: all must be null.
    """
    n_outputs = manifest.get("n_outputs")
    if not has_outputs:
        present = [
            key for key in ("n_outputs", "classes", "output_layout", "thresholds", "lexical") if manifest.get(key)
        ]
        if present:
            raise ValueError(f"{path} describes an embedder but sets {', '.join(present)}; the manifest is damaged.")
        return
    if not isinstance(n_outputs, int) or isinstance(n_outputs, bool) or n_outputs < 1:
        raise ValueError(f"{path}: n_outputs must be an int >= 1; got {n_outputs!r}.")
    classes, layout, thresholds = manifest.get("classes"), manifest.get("output_layout"), manifest.get("thresholds")
    n_binary = None
    if classes is not None:
        values = classes.get("values") if isinstance(classes, Mapping) else None
        if not isinstance(values, list) or len(values) != n_outputs:
            shown = len(values) if isinstance(values, list) else values
            raise ValueError(f"{path} lists {shown} classes for n_outputs={n_outputs}; they must match.")
        n_binary = n_outputs
    if layout is not None:
        if not isinstance(layout, list) or len(layout) != n_outputs:
            raise ValueError(f"{path}: output_layout must list one target per output (n_outputs={n_outputs}).")
        start = 0
        for entry in layout:
            try:
                kind, width = entry["kind"], int(entry["stop"]) - int(entry["start"])
                n_classes = len(entry["classes"]["values"])
                valid = int(entry["start"]) == start and (
                    (kind == BINARY and width == 1 and n_classes == 2)
                    or (kind == CATEGORICAL and width == n_classes >= 1)
                )
            except (KeyError, TypeError, ValueError):
                valid = False
            if not valid:
                raise ValueError(
                    f"{path}: the output_layout entry {entry!r:.160} is inconsistent; the manifest is damaged."
                )
            start += width
        n_binary = sum(entry["kind"] == BINARY for entry in layout)
    if thresholds is not None:
        try:
            values = np.asarray(_from_json(thresholds), dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise ValueError(f"{path}: thresholds must be an array of numbers.") from None
        if n_binary is not None and len(values) != n_binary:
            raise ValueError(f"{path} holds {len(values)} thresholds for {n_binary} 0/1 outputs; they must match.")
        if not (np.isfinite(values) & (values >= 0) & (values <= 1)).all():
            raise ValueError(f"{path}: every threshold must lie in [0, 1]; got {values.tolist()[:10]}.")


def _save_language_model(language_model, folder: Path, *, metadata: Mapping | None, overwrite: bool) -> Path:
    """Write a :class:`~sktext.language_model.LanguageModel`: config, history, vocabulary, weights.

    Written as the estimators are: into a temporary sibling folder renamed into place
    (:func:`~sktext.reliability.atomic_folder`), the manifest last.
    """
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
    check_output_folder(folder, overwrite)
    model = language_model.model
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "sktext_version": __version__,
        "versions": _library_versions(),
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
    with atomic_folder(folder) as staging:
        # safetensors stores the decoder weight tied to the embedding once, and ties it back.
        save_weights(model, str(staging / WEIGHTS_FILE), metadata={"format": FORMAT_NAME})
        language_model.vocabulary.save(staging / VOCABULARY_FILE)
        _write_card(manifest, staging, folder)
        # Written last: a folder without it is an unfinished save.
        (staging / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, ensure_ascii=False), encoding="utf-8")
        if (folder / MANIFEST_FILE).is_file():
            _carry_other_files(folder, staging)
    return folder


def _load_language_model(folder: Path, manifest: Mapping):
    """The language model of a folder of kind ``language_model``, checked before it is built."""
    from safetensors.torch import load_model as load_weights

    path = folder / MANIFEST_FILE
    description = manifest.get("module")
    files = description.get("files") if isinstance(description, Mapping) else None
    if not isinstance(files, Mapping) or not {"weights", "vocabulary"} <= set(files):
        raise ValueError(f"{path}: 'module' must name a 'weights' and a 'vocabulary' file.")
    weights = _member(folder, files["weights"], "the language model's weights")
    vocabulary_path = _member(folder, files["vocabulary"], "the language model's vocabulary")
    entries = _check_weights_header(weights)
    dtype = description.get("dtype")
    if not isinstance(dtype, str) or not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise ValueError(f"{path} gives the module dtype {dtype!r}, which is not a torch dtype.")
    try:
        config = AWDLSTMConfig.from_dict(manifest["config"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(f"{path} holds an AWD-LSTM config this sktext refuses: {error}") from None
    with torch.device("meta"):  # shapes checked before any memory is allocated
        skeleton = AWDLSTMLanguageModel(config)
    if type(skeleton).__name__ != description.get("class"):
        raise ValueError(
            f"The saved module is a {description.get('class')} but this sktext builds a "
            f"{type(skeleton).__name__} for a language model; load it with the sktext version that saved it."
        )
    _check_weights_fit(skeleton, entries, weights, dtype)
    del skeleton
    try:
        vocabulary = Vocabulary.load(vocabulary_path)
    except Exception as error:  # noqa: BLE001 - a vocabulary file that does not load
        raise ValueError(f"{vocabulary_path} is damaged: {type(error).__name__}: {str(error)[:300]}") from None
    if len(vocabulary) != config.vocab_size:
        raise ValueError(
            f"{vocabulary_path} holds {len(vocabulary)} tokens but {MANIFEST_FILE} describes a "
            f"language model of {config.vocab_size}; the model folder is damaged."
        )
    model = AWDLSTMLanguageModel(config).to(getattr(torch, dtype))
    try:
        load_weights(model, str(weights), strict=True)
    except Exception as error:  # noqa: BLE001 - whatever safetensors or torch says, name the file
        raise ValueError(f"{weights} cannot be loaded into the model ({type(error).__name__}: {error}).") from None
    check_finite_parameters(model, source=str(weights))
    history = manifest.get("history")
    if history is not None and not isinstance(history, list):
        raise ValueError(f"{path}: 'history' must be a list of epochs.")
    return LanguageModel(model.eval(), vocabulary, history=history)


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
    if found in READ_FORMAT_VERSIONS:
        return
    message = (
        f"The model folder {str(folder)!r} was saved by sktext format {found} (sktext {saved_by}); "
        f"this sktext ({__version__}) reads format {FORMAT_VERSION} and older (from {min(READ_FORMAT_VERSIONS)}). "
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


def _build(estimator, folder: Path, description: Mapping, n_outputs: int) -> torch.nn.Module:
    """The module the estimator's hooks build from the folder's encoding files (weights not loaded)."""
    try:
        pretrained = estimator._load_encoding(folder, description)
    except Exception as error:  # noqa: BLE001 - a tokenizer or vocabulary file that does not load
        files = ", ".join(str(name) for key, name in description["files"].items() if key != "weights")
        raise ValueError(
            f"The model folder {str(folder)!r} has a damaged or refused encoding file ({files}): "
            f"{type(error).__name__}: {str(error)[:300]}"
        ) from None
    return estimator._build_module(n_outputs, pretrained)


def _check_weights_fit(module: torch.nn.Module, entries: Mapping[str, dict], path: Path, dtype: str) -> None:
    """Every tensor the module needs is in the header with its shape (tied weights stored once)."""
    state = module.state_dict(keep_vars=True)
    tied: dict[int, list[str]] = {}
    for name, tensor in state.items():
        tied.setdefault(id(tensor), []).append(name)
    for names in tied.values():
        present = [name for name in names if name in entries]
        if not present:  # a tied weight may be stored under any one of its names
            raise ValueError(
                f"{path} lacks the tensor {names[0]!r} the model needs; the file is damaged or of another model."
            )
        for name in present:
            entry, tensor = entries[name], state[name]
            if list(entry["shape"]) != list(tensor.shape):
                raise ValueError(
                    f"{path} holds {name!r} with shape {tuple(entry['shape'])} but the model that "
                    f"{MANIFEST_FILE} describes needs {tuple(tensor.shape)} (outputs, classes and "
                    "weights must agree); the model folder is damaged or was tampered with."
                )
    unexpected = sorted(set(entries) - set(state))
    if unexpected:
        raise ValueError(f"{path} holds tensors the model does not have ({unexpected[:5]}); it is of another model.")


def _rebuild_module(estimator, folder: Path, description: Mapping) -> torch.nn.Module:
    from safetensors.torch import load_model as load_weights

    if not isinstance(description, Mapping) or not isinstance(description.get("files"), Mapping):
        raise ValueError(f"{folder / MANIFEST_FILE}: 'module' must describe its files.")
    for key, name in description["files"].items():
        _member(folder, name, f"the module's {key} file")
    weights = folder / description["files"]["weights"]
    entries = _check_weights_header(weights)
    dtype = description.get("dtype")
    if not isinstance(dtype, str) or not isinstance(getattr(torch, dtype, None), torch.dtype):
        raise ValueError(f"{folder / MANIFEST_FILE} gives the module dtype {dtype!r}, which is not a torch dtype.")
    layout = vars(estimator).get("output_layout_")
    n_outputs = vars(estimator).get("n_outputs_") if layout is None else layout.n_logits  # None: an embedder
    # The model the manifest describes, built first on the meta device (no memory), so
    # that weights of another shape (or an absurd size) are refused before allocating.
    with torch.device("meta"):
        skeleton = _build(estimator, folder, description, n_outputs)
    if type(skeleton).__name__ != description["class"]:
        raise ValueError(
            f"The saved module is a {description['class']} but this sktext builds a "
            f"{type(skeleton).__name__} for {type(estimator).__name__}; load it with the sktext "
            "version that saved it."
        )
    _check_weights_fit(skeleton, entries, weights, dtype)
    del skeleton
    module = _build(estimator, folder, description, n_outputs)
    for name, value in description.get("settings", {}).items():
        setattr(module, name, value)
    module.to(getattr(torch, dtype))
    try:
        load_weights(module, str(weights), strict=True)
    except Exception as error:  # noqa: BLE001 - whatever safetensors or torch says, name the file
        raise ValueError(f"{weights} cannot be loaded into the model ({type(error).__name__}: {error}).") from None
    check_finite_parameters(module, source=str(weights))
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
    path = folder / MANIFEST_FILE
    try:
        estimator = cls(**_decode_params(cls, manifest))
        estimator._validate_params()
    except (ValueError, TypeError) as error:
        raise ValueError(f"The model folder {str(folder)!r} holds a parameter this sktext refuses: {error}") from None
    _check_manifest_outputs(manifest, path, has_outputs=not issubclass(cls, TransformerMixin))  # embedders: none
    try:
        _restore_attributes(estimator, manifest)
    except (KeyError, TypeError, ValueError, IndexError) as error:
        raise ValueError(f"{path} is damaged: {type(error).__name__}: {error}") from None
    estimator.device_ = resolve_device(estimator.device, cuda_fallback=True)
    estimator.module_ = _rebuild_module(estimator, folder, manifest.get("module"))
    if manifest.get("lexical") is not None:
        layout = vars(estimator).get("output_layout_")
        n_binary = estimator.n_outputs_ if layout is None else len(layout.binary_targets)
        estimator.lexical_ = _load_lexical(folder, manifest["lexical"], n_binary)
    return estimator


register_model_folder_format(save_model, load_model)
