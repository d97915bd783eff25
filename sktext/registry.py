"""Registries that let the core and its leaves meet without importing each other.

- Estimator classes: a family module decorates its estimators with
  :func:`register_estimator`; :mod:`sktext.persistence` maps the class names in a
  model folder to classes through :func:`registered_estimators`, importing no
  estimator module.
- The model-folder format: :mod:`sktext.persistence` installs its ``save_model`` and
  ``load_model`` with :func:`register_model_folder_format`, so that ``estimator.save``
  and ``Class.load`` (in :mod:`sktext.base`) reach them without the core importing a
  leaf.

Importing :mod:`sktext` imports every family and :mod:`sktext.persistence`, so both
registries are full whenever a submodule of the package is in use.
"""

from __future__ import annotations

from typing import NamedTuple

__all__ = [
    "model_folder_format",
    "register_estimator",
    "register_model_folder_format",
    "registered_estimators",
]

_ESTIMATORS: dict[str, type] = {}


def register_estimator(cls: type) -> type:
    """Class decorator: make ``cls`` known by its name (to model folders, the command line)."""
    _ESTIMATORS[cls.__name__] = cls
    return cls


def registered_estimators() -> dict[str, type]:
    """The registered classes by name."""
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
        raise RuntimeError("No model-folder format is installed; import sktext first.")
    return _FORMAT[0]
