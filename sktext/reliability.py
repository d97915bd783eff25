"""What keeps a fit, a save and a load from failing quietly: the one place for it.

- :func:`fit_transaction`: a ``fit`` either completes or leaves the estimator exactly
  as it was (an interrupt or an error restores its ``__dict__``), and the caller's
  global torch and numpy random states are the same afterwards.
- :class:`InterruptPropagatingNetMixin`: skorch's ``partial_fit`` swallows
  ``KeyboardInterrupt`` (a Ctrl-C ends training early and the run goes on as if it
  had finished); nets built with this mixin let it propagate.
- :func:`check_finite_outputs` / :func:`check_finite_parameters`: no NaN reaches
  ``predict``, and a model whose weights are not finite is refused.
- :func:`atomic_folder`: a folder is written beside its target and renamed into
  place, so the old one survives any failure.
- :func:`refuse_custom_code`: a Hugging Face folder that asks for its own Python code
  (``auto_map``) is refused; sktext passes ``trust_remote_code=False`` everywhere.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "InterruptPropagatingNetMixin",
    "StopTraining",
    "TrainingDivergedError",
    "atomic_folder",
    "check_finite_outputs",
    "check_finite_parameters",
    "fit_transaction",
    "preserved_random_state",
    "refuse_custom_code",
]

#: Hugging Face files whose ``auto_map`` entry asks for a folder's own Python code.
CUSTOM_CODE_FILES = ("config.json", "tokenizer_config.json", "preprocessor_config.json")


class TrainingDivergedError(FloatingPointError, ValueError):
    """The loss of a training run became NaN or infinite (the message says what to try)."""


class StopTraining(Exception):  # noqa: N818 (a signal, not an error)
    """Raised by a callback to end a training run early (early stopping): not an interrupt."""


# -- fit: all or nothing -------------------------------------------------------------------------
@contextlib.contextmanager
def preserved_random_state() -> Iterator[None]:
    """Run a block and put the global torch (CPU and CUDA) and numpy random states back."""
    numpy_state = np.random.get_state()
    cuda = list(range(torch.cuda.device_count())) if torch.cuda.is_available() and torch.cuda.is_initialized() else []
    try:
        with torch.random.fork_rng(devices=cuda):
            yield
    finally:
        np.random.set_state(numpy_state)


def fit_transaction(fit):
    """Decorate a ``fit`` method: it completes, or leaves the estimator as it found it.

    Any exception — a ``KeyboardInterrupt`` (Ctrl-C), a diverging loss, a full disk —
    restores every attribute the estimator had before the call (fitted ones included:
    a refit that fails keeps the previous model, never a half-fitted one) and
    propagates. Either way the global torch and numpy random states are left as they
    were.
    """

    @functools.wraps(fit)
    def wrapper(self, *args, **kwargs):
        before = dict(self.__dict__)
        with preserved_random_state():
            try:
                return fit(self, *args, **kwargs)
            except BaseException:
                self.__dict__.clear()
                self.__dict__.update(before)
                raise

    return wrapper


class InterruptPropagatingNetMixin:
    """skorch net mixin: a ``KeyboardInterrupt`` during training propagates.

    skorch's ``NeuralNet.partial_fit`` catches ``KeyboardInterrupt`` and returns as if
    training had ended, so a Ctrl-C would give a half-trained model that then gets
    tuned thresholds and saved. Here the callbacks' ``on_train_end`` is skipped and
    the interrupt reaches the estimator's ``fit``, which restores its previous state.
    A callback that ends training on purpose raises :class:`StopTraining` (see
    :class:`sktext.callbacks.EarlyStopping`).
    """

    def partial_fit(self, X, y=None, classes=None, **fit_params):
        if not self.initialized_:
            self.initialize()
        routing_method = fit_params.pop("_routing_method", "partial_fit")
        self.notify("on_train_begin", X=X, y=y)
        try:
            self.fit_loop(X, y, _routing_method=routing_method, **fit_params)
        except StopTraining:
            pass
        self.notify("on_train_end", X=X, y=y)
        return self


# -- finite numbers -----------------------------------------------------------------------------
def check_finite_outputs(outputs: np.ndarray, *, what: str = "outputs") -> np.ndarray:
    """Return ``outputs`` unchanged, or raise a ValueError if any row is not finite.

    Parameters
    ----------
    outputs : ndarray of shape (n_samples, n_columns)
    what : str, default="outputs"
        What the numbers are, for the message.
    """
    finite = np.isfinite(outputs)
    if finite.all():
        return outputs
    rows = np.flatnonzero(~finite.reshape(len(outputs), -1).all(axis=1))
    raise ValueError(
        f"The model gave non-finite {what} (NaN or infinity) for {len(rows)} of "
        f"{len(outputs)} texts (the first at index {rows[0]}); its weights are damaged or "
        "its training diverged. Refit it (with a lower lr), or load an intact copy."
    )


def check_finite_parameters(module: torch.nn.Module, *, source: str) -> None:
    """Raise a ValueError naming the first parameter or buffer of ``module`` that is not finite.

    Parameters
    ----------
    module : torch.nn.Module
    source : str
        Where the weights come from (a file, or "training"), for the message.
    """
    for name, tensor in [*module.named_parameters(), *module.named_buffers()]:
        if tensor.is_floating_point() and not bool(torch.isfinite(tensor).all()):
            raise ValueError(
                f"The weights from {source} are not finite: {name!r} holds NaN or infinity. "
                "A diverged training gives such weights; refit with a lower lr, or use an "
                "intact model folder."
            )


# -- atomic folders ------------------------------------------------------------------------------
def _fsync_tree(folder: Path) -> None:
    """Flush every file under ``folder`` and the folders themselves to disk."""
    for root, _, files in os.walk(folder):
        for name in files:
            with open(os.path.join(root, name), "rb") as handle:
                os.fsync(handle.fileno())
        _fsync_directory(Path(root))


def _fsync_directory(folder: Path) -> None:
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:  # e.g. Windows cannot open a directory
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_folder(target: str | os.PathLike) -> Iterator[Path]:
    """Write a folder beside ``target`` and swap it into place only once it is complete.

    Yields an empty temporary sibling folder (``.<name>.tmp-<random>``, on the same
    filesystem). When the block ends normally its files are flushed to disk and it is
    renamed to ``target``; an existing ``target`` is first renamed aside and deleted
    only after the swap, and is renamed back if the swap fails. When the block raises
    (a full disk, a Ctrl-C) the temporary folder is deleted and ``target`` is
    untouched. A leftover temporary folder (a killed process) never blocks a later
    write: each write makes its own.
    """
    target = Path(target)
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    temporary = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o777 & ~umask)  # mkdtemp's 0700 would make the folder private
    try:
        yield temporary
        _fsync_tree(temporary)
        aside = None
        if target.exists():
            aside = parent / f".{target.name}.old-{uuid.uuid4().hex[:8]}"
            os.replace(target, aside)
        try:
            os.replace(temporary, target)
        except BaseException:
            if aside is not None:
                os.replace(aside, target)
            raise
        _fsync_directory(parent)
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)
    finally:
        if temporary.exists():
            shutil.rmtree(temporary, ignore_errors=True)


# -- no code from files ---------------------------------------------------------------------------
def refuse_custom_code(folder: str | os.PathLike, *, what: str = "model folder") -> None:
    """Raise a ValueError if a Hugging Face folder asks to run its own Python code.

    A folder whose ``config.json`` or ``tokenizer_config.json`` has an ``auto_map``
    entry wants transformers to import ``.py`` files shipped with it. sktext never
    runs such code (it loads with ``trust_remote_code=False``) and refuses the folder
    with a message instead of letting a prompt ask for permission.
    """
    folder = Path(folder)
    for name in CUSTOM_CODE_FILES:
        path = folder / name
        if not path.is_file():
            continue
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not valid JSON ({error}); the {what} is damaged.") from None
        if isinstance(data, dict) and data.get("auto_map"):
            shown = ", ".join(sorted(map(str, data["auto_map"])))[:200]
            raise ValueError(
                f"{path} asks for custom code (auto_map: {shown}): the {what} wants to run "
                "Python files of its own, which sktext never does (it loads with "
                "trust_remote_code=False). Use a model whose architecture transformers "
                "ships, or, for a standard architecture, delete the auto_map entry."
            )
