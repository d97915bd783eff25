"""Registries that let the core and its leaves meet without importing each other.

- Estimator classes: a family module decorates its estimators with
  :func:`register_estimator`; :mod:`sktext.persistence` maps the class names in a
  model folder to classes through :func:`registered_estimators`, importing no
  estimator module.
- The model-folder format: :mod:`sktext.persistence` installs its ``save_model`` and
  ``load_model`` with :func:`register_model_folder_format`, so that ``estimator.save``
  and ``Class.load`` (in :mod:`sktext.base`) reach them without the core importing a
  leaf.
- Exporters: a leaf that writes a fitted estimator in another format (:mod:`sktext.export`,
  ONNX) installs its function with :func:`register_exporter`; the estimators' methods
  (``export_onnx``) find it with :func:`exporter`.

The package's ``__init__`` imports nothing eagerly (so that :mod:`sktext.deploy` runs
without torch), so a registry may be read before the modules that fill it were
imported: :func:`registered_estimators` and :func:`model_folder_format` then import
them, by name, from :data:`REGISTERING_MODULES`. That is a call-time import, like an
entry point's: the core still imports no leaf when it loads.
"""

from __future__ import annotations

from importlib import import_module
from typing import NamedTuple

__all__ = [
    "EXPORTER_MODULES",
    "REGISTERING_MODULES",
    "exporter",
    "model_folder_format",
    "register_estimator",
    "register_exporter",
    "register_model_folder_format",
    "registered_estimators",
]

#: The modules whose import registers the estimators and the model-folder format.
REGISTERING_MODULES = ("sktext.transformer", "sktext.ulmfit", "sktext.embedders", "sktext.persistence")

_ESTIMATORS: dict[str, type] = {}
_FILLED: list[bool] = []


def _fill() -> None:
    """Import :data:`REGISTERING_MODULES` once (a no-op for those already imported)."""
    if not _FILLED:
        for name in REGISTERING_MODULES:
            import_module(name)
        _FILLED.append(True)


def register_estimator(cls: type) -> type:
    """Class decorator: make ``cls`` known by its name (to model folders, the command line)."""
    _ESTIMATORS[cls.__name__] = cls
    return cls


def registered_estimators() -> dict[str, type]:
    """The registered classes by name (every family's, whichever were imported so far)."""
    _fill()
    return dict(_ESTIMATORS)


class ModelFolderFormat(NamedTuple):
    """The functions that write and read model folders."""

    save: object
    load: object


_FORMAT: list[ModelFolderFormat] = []


def register_model_folder_format(save, load) -> None:
    """Install the model-folder writer and reader (what :mod:`sktext.persistence` does)."""
    _FORMAT[:] = [ModelFolderFormat(save, load)]


def model_folder_format() -> ModelFolderFormat:
    """The installed model-folder functions."""
    if not _FORMAT:
        _fill()
    if not _FORMAT:
        raise RuntimeError("No model-folder format is installed; import sktext first.")
    return _FORMAT[0]


#: Export format -> the module whose import installs its exporter.
EXPORTER_MODULES = {"onnx": "sktext.export"}

_EXPORTERS: dict[str, object] = {}


def register_exporter(format_name: str, function) -> None:
    """Install ``function(estimator, folder, **options)`` as the exporter to ``format_name``."""
    _EXPORTERS[format_name] = function


def exporter(format_name: str):
    """The exporter to ``format_name``, importing its module (:data:`EXPORTER_MODULES`) on first use."""
    if format_name not in _EXPORTERS and format_name in EXPORTER_MODULES:
        import_module(EXPORTER_MODULES[format_name])
    if format_name not in _EXPORTERS:
        raise ValueError(f"No exporter to {format_name!r}; sktext exports to {sorted(EXPORTER_MODULES)}.")
    return _EXPORTERS[format_name]
