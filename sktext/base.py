"""The fit skeleton every sktext classifier and regressor shares.

:class:`TextEstimatorBase` owns what depends neither on the model nor on the task:
the parameter check, seeding, the order of the steps of a fit, building the skorch
net, the inference loop, pickling, ``save``/``load`` and the text-input tags. A fit
reads top-down::

    fit(X, y)                                   task base (classification.py, regression.py)
      check X, y; validate_parameters(self)     validation.py, the class's _parameter_constraints
      _fit_module(texts, Y, criterion_kwargs, sample_weight)   here: seed, then
        _fit_encoding(texts) -> dataset, pretrained      model family
        _build_module(n_outputs, pretrained) -> module   model family
        _init_output_bias(module, Y, sample_weight)      task base
        _train(module, dataset, split, ...) -> history   here (one skorch run) or the family
      post-processing (thresholds_)             task base

The task bases (:class:`~sktext.classification.MultiLabelTextClassifierBase`,
:class:`~sktext.regression.TextRegressorBase`) supply ``_criterion()``,
``_valid_split(seed)``, ``_init_output_bias(module, Y, sample_weight)`` and ``_n_logits(Y)``. A model
family (:mod:`sktext.transformer`, :mod:`sktext.ulmfit`) supplies, through a mixin:

- ``_fit_encoding(texts)``: fit the tokenizer (or vocabulary, or language model) and
  return the texts as :class:`~sktext.batching.TokenizedTexts` with what the module
  starts from (a pretrained encoder, an encoder state dict, or None);
- ``_encode(texts)``: encode new texts with what ``_fit_encoding`` fitted;
- ``_build_module(n_outputs, pretrained)``: a torch module mapping ``(input_ids,
  attention_mask)`` to ``n_outputs`` logits, exposing its final ``nn.Linear`` as
  ``output_layer`` and a ``freeze_encoder()`` method
  (:class:`~sktext.models.freezing.FreezableEncoderMixin`);
- ``_save_encoding(folder)`` / ``_load_encoding(folder, description)``: write and read
  the tokenizer or vocabulary (and encoder config) of a model folder;
- optionally ``_parameter_groups()`` and ``_train(...)`` (ULMFiT's stages).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import io
import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.base import BaseEstimator

from .batching import TokenizedTexts
from .distributed import broadcast_seed, is_main_process
from .net import TextNet, fused_adamw_available, make_callbacks, predict_batched
from .precision import PrecisionMixin
from .registry import model_folder_format
from .reliability import check_finite_outputs, check_finite_parameters
from .splits import ShuffleValidSplit
from .validation import (
    FRACTION,
    NON_NEGATIVE_FLOAT,
    NON_NEGATIVE_INT,
    PATH,
    POSITIVE_FLOAT,
    POSITIVE_INT,
    Options,
    dense_rows,
    resolve_device,
    row_blocks,
    seed_from,
    seeded,
    validate_parameters,
)

__all__ = ["ModelFolderMixin", "TextEstimatorBase", "TorchModulePicklingMixin"]

#: ``max_epochs="auto"``: at least this many epochs, and enough for MIN_TRAINING_STEPS steps...
MIN_AUTO_EPOCHS = 10
MIN_TRAINING_STEPS = 300
#: ... but no more than this many epochs.
MAX_AUTO_EPOCHS = 40


class TorchModulePicklingMixin:
    """Pickles the fitted ``module_`` with ``torch.save``, so a CUDA model loads on a CPU machine."""

    def __getstate__(self):
        state = dict(super().__getstate__())
        if "module_" in state:
            buffer = io.BytesIO()
            torch.save(state["module_"], buffer)
            state["module_"] = buffer.getvalue()
        return state

    def __setstate__(self, state):
        if isinstance(state.get("module_"), bytes):
            device = resolve_device(state.get("device_", "cpu"), cuda_fallback=True)
            state["device_"] = device
            state["module_"] = torch.load(io.BytesIO(state["module_"]), map_location=device, weights_only=False).eval()
        super().__setstate__(state)


class ModelFolderMixin:
    """``save`` / ``load`` through the installed model-folder format (:mod:`sktext.persistence`).

    A class using it supplies the hooks the format reads: ``_save_encoding(folder)``,
    ``_load_encoding(folder, description)`` and ``_build_module(n_outputs, pretrained)``.
    """

    def save(self, folder, *, metadata=None, overwrite: bool = False):
        """Write the fitted estimator to a folder safe to share (JSON and safetensors, no pickle).

        See :func:`sktext.persistence.save_model`, which this calls.

        Parameters
        ----------
        folder : str or path-like
        metadata : mapping, optional
            JSON-serialisable data kept with the model.
        overwrite : bool, default=False
            Replace the model in a folder that already holds one.

        Returns
        -------
        folder : pathlib.Path
        """
        return model_folder_format().save(self, folder, metadata=metadata, overwrite=overwrite)

    @classmethod
    def load(cls, folder):
        """Load an estimator of this class written by :meth:`save`, running no pickled code.

        See :func:`sktext.persistence.load_model`, which this calls.

        Parameters
        ----------
        folder : str or path-like

        Returns
        -------
        estimator : instance of this class, fitted
        """
        return model_folder_format().load(folder, expected_class=cls)


class TextEstimatorBase(PrecisionMixin, ModelFolderMixin, TorchModulePicklingMixin, BaseEstimator):
    """What every sktext estimator that trains a model on texts shares (not for direct use).

    Subclasses for a task (:class:`MultiLabelTextClassifierBase`,
    :class:`~sktext.regression.TextRegressorBase`) supply ``_criterion()``,
    ``_valid_split(seed)``, ``_init_output_bias(module, Y, sample_weight)`` and their ``fit`` /
    ``predict``; model mixins supply ``_fit_encoding``, ``_encode``, ``_build_module``
    and optionally ``_parameter_groups`` and ``_train``.
    """

    #: What every subclass reads (see :mod:`sktext.validation`); subclasses add theirs.
    #: ``precision`` is declared by :class:`~sktext.precision.PrecisionMixin`.
    _parameter_constraints: dict = {
        "batch_size": [POSITIVE_INT],
        "max_epochs": [POSITIVE_INT, Options(["auto"])],
        "lr": [POSITIVE_FLOAT],
        "weight_decay": [NON_NEGATIVE_FLOAT],
        "warmup_fraction": [FRACTION],
        "validation_fraction": [FRACTION, None],
        "patience": [POSITIVE_INT, None],
        "gradient_clip_norm": [POSITIVE_FLOAT, None],
        "freeze_encoder": ["boolean"],
        "device": ["device"],
        "random_state": ["random_state"],
        "verbose": [NON_NEGATIVE_INT, "boolean"],
        "checkpoint_dir": [None, PATH],
        "callbacks": [None, "callbacks"],
    }

    #: Parameters that do not change what a fit computes, left out of a checkpoint's key
    #: (the user's callbacks are taken to observe a run, e.g. to log it).
    _checkpoint_ignores = frozenset({"verbose", "checkpoint_dir", "device", "callbacks"})

    # -- hooks of the model family ---------------------------------------------------
    def _fit_encoding(self, texts: list[str]) -> tuple[TokenizedTexts, object]:
        """Fit the text encoding; return the encoded texts and what the module starts from."""
        raise NotImplementedError

    def _encode(self, texts: list[str]) -> TokenizedTexts:
        raise NotImplementedError

    def _build_module(self, n_outputs: int, pretrained: object) -> torch.nn.Module:
        raise NotImplementedError

    def _save_encoding(self, folder) -> dict:
        """Write the fitted encoding into a model folder; return its manifest description."""
        raise NotImplementedError

    def _load_encoding(self, folder, description: dict) -> object:
        """Read what :meth:`_save_encoding` wrote; return ``pretrained`` for ``_build_module``."""
        raise NotImplementedError

    def _parameter_groups(self) -> list:
        """skorch ``optimizer__param_groups``: (pattern, options) pairs, first match wins."""
        return []

    def _criterion(self) -> tuple[type[torch.nn.Module], dict]:
        """The criterion class and its keyword arguments, from the estimator's parameters."""
        raise NotImplementedError

    def _valid_split(self, seed: int) -> ShuffleValidSplit:
        """The skorch ``train_split`` used when ``validation_fraction`` is set."""
        raise NotImplementedError

    def _init_output_bias(self, module: torch.nn.Module, Y: np.ndarray, sample_weight: np.ndarray | None) -> None:
        """Set the output layer's bias from the (weighted) training targets (default: leave it)."""

    def _check_related_params(self) -> None:
        """Checks that involve several parameters at once (each alone is declared)."""

    def _validate_params(self) -> None:
        """Check every parameter against the declared constraints, then the related ones."""
        validate_parameters(self)
        self._check_related_params()

    # -- fit ------------------------------------------------------------------------
    def _fit_module(
        self,
        texts: list[str],
        Y: np.ndarray,
        criterion_kwargs: dict,
        sample_weight: np.ndarray | None = None,
        before_training: Callable[[ShuffleValidSplit | None, TokenizedTexts], None] | None = None,
    ):
        """Seed, encode, build, train; set ``device_``, ``history_``, ``module_`` and ``fit_seconds_``.

        ``sample_weight`` (checked, or None) weighs each text's loss, in training and
        in the validation loss. ``before_training(split, dataset)``, if given, is called
        once the validation split is known, just before the network trains (the task
        starts work there that needs the split but not the network). Returns the
        training dataset and the validation split (None without one), for the task's
        post-processing (e.g. threshold tuning).
        """
        for attribute in ("module_", "history_", "_bf16_module"):
            self.__dict__.pop(attribute, None)
        self.fit_seconds_ = {}
        self.device_ = resolve_device(self.device)
        self.precision_ = "bf16" if self._compute_dtype() == torch.bfloat16 else "fp32"
        self._checkpoint_run = self._checkpoint_folder(texts, Y, sample_weight)
        try:
            return self._fit_seeded(texts, Y, criterion_kwargs, sample_weight, self._checkpoint_seed(), before_training)
        finally:
            del self._checkpoint_run

    def _fit_seeded(
        self, texts: list[str], Y: np.ndarray, criterion_kwargs: dict, sample_weight, seed: int, before_training=None
    ):
        with seeded(seed, self.device_) as seed:
            with self._fit_stage("encoding"):
                dataset, pretrained = self._fit_encoding(texts)
            dataset = dataset.with_targets(Y, sample_weight)
            module = self._build_module(self._n_logits(Y), pretrained)
            if self.freeze_encoder:
                module.freeze_encoder()
            self._init_output_bias(module, Y, sample_weight)
            module.to(self.device_)
            split = self._valid_split(seed) if self.validation_fraction is not None else None
            self.n_epochs_ = self._resolve_epochs(self._n_train(dataset, split))
            if self.verbose:
                print(self._plan(dataset, split), flush=True)
            if before_training is not None:
                before_training(split, dataset)
            with self._fit_stage("training"):
                self.history_ = self._train(module, dataset, split, criterion_kwargs, seed)
        check_finite_parameters(module, source="training")
        self.module_ = module.eval()
        return dataset, split

    def _plan(self, dataset: TokenizedTexts, split: ShuffleValidSplit | None) -> str:
        """What the fit is about to do, for ``verbose >= 1``: texts, tokens, truncation, steps, device."""
        lengths = dataset.lengths
        n_train = self._n_train(dataset, split)
        steps_per_epoch = self._epoch_steps(n_train)
        limit = int(lengths.max(initial=0))
        kept = getattr(self, "max_length_", None) or getattr(self, "max_length", np.inf)
        truncated = int((lengths >= limit).sum()) if limit >= kept else 0
        lines = [
            f"{type(self).__name__} fit plan: {len(dataset)} texts ({n_train} to train on, "
            f"{len(dataset) - n_train} held out for validation) on {self.device_} at {self.precision_}.",
            f"Tokens per text: median {int(np.median(lengths)) if len(lengths) else 0}, "
            f"95th percentile {int(np.percentile(lengths, 95)) if len(lengths) else 0}, longest {limit}"
            + (f"; {truncated} texts ({truncated / max(len(lengths), 1):.0%}) cut at {limit}." if truncated else "."),
            f"Training: {self.n_epochs_} epochs of {steps_per_epoch} steps of {self.batch_size} texts = "
            f"{self.n_epochs_ * steps_per_epoch} steps"
            + (f", early stopping on {self._stopping_on()}." if split is not None and self.patience else "."),
        ]
        return "\n".join(lines)

    @contextlib.contextmanager
    def _fit_stage(self, name: str):
        """Add the seconds the block takes to ``fit_seconds_[name]`` (where a fit's time goes)."""
        start = time.perf_counter()
        try:
            yield
        finally:
            seconds = self.__dict__.setdefault("fit_seconds_", {})
            seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start

    # -- checkpoints ------------------------------------------------------------------
    def _checkpoint_folder(self, texts: list[str], Y: np.ndarray, sample_weight: np.ndarray | None) -> Path | None:
        """``checkpoint_dir/<key>``: one folder per (class, parameters, data), or None.

        The key hashes what decides the result of the fit, so that a checkpoint is only
        ever resumed by the same call.
        """
        if self.checkpoint_dir is None:
            return None
        digest = hashlib.sha256(type(self).__name__.encode())
        params = self.get_params(deep=False)
        for name in sorted(set(params) - self._checkpoint_ignores):
            digest.update(f"\0{name}={params[name]!r}".encode("utf-8", "backslashreplace"))
        for text in texts:
            digest.update(b"\0" + text.encode("utf-8"))
        for block in row_blocks(Y):  # the dense bytes, a block of rows at a time
            digest.update(np.ascontiguousarray(dense_rows(block), dtype=np.float32).tobytes())
        if sample_weight is not None:
            digest.update(b"\0weights" + np.ascontiguousarray(sample_weight, dtype=np.float64).tobytes())
        return Path(self.checkpoint_dir) / f"{type(self).__name__}-{digest.hexdigest()[:16]}"

    def _checkpoint_seed(self) -> int:
        """The seed of this fit; with ``random_state=None``, the one a checkpoint was made with.

        Data-parallel, every process gets rank 0's seed, and only rank 0 writes ``run.json``.
        """
        folder = self.__dict__.get("_checkpoint_run")
        run_file = None if folder is None else folder / "run.json"
        seed = None
        if self.random_state is None and run_file is not None and run_file.is_file():
            try:
                seed = int(json.loads(run_file.read_text(encoding="utf-8"))["seed"])
            except (ValueError, KeyError, TypeError):
                seed = None
        resumed = seed is not None
        seed = broadcast_seed(seed_from(self.random_state) if seed is None else seed)
        if run_file is not None and not resumed and is_main_process():
            folder.mkdir(parents=True, exist_ok=True)
            run_file.write_text(json.dumps({"estimator": type(self).__name__, "seed": seed}), encoding="utf-8")
        return seed

    def _checkpoint_path(self, name: str) -> Path | None:
        """The checkpoint file of the training run ``name`` of this fit, or None."""
        folder = self.__dict__.get("_checkpoint_run")
        return None if folder is None else folder / f"{name}.pt"

    def _resolve_epochs(self, n_train: int) -> int:
        """``max_epochs``, or for ``"auto"`` enough epochs for a few hundred optimizer steps.

        A fixed number of epochs gives small data few updates (10 epochs of 250 texts in
        batches of 32 are 80 steps): ``"auto"`` trains for at least ``MIN_AUTO_EPOCHS``
        epochs and at least ``MIN_TRAINING_STEPS`` steps, at most ``MAX_AUTO_EPOCHS``
        epochs; early stopping still ends a run that stops improving. Those are passes
        over the data: where a family fixes the steps of an epoch (``steps_per_epoch``),
        ``"auto"`` is the number of such epochs the passes take.
        """
        if not isinstance(self.max_epochs, str):
            return int(self.max_epochs)
        steps_per_pass = self._pass_steps(n_train)
        wanted = -(-MIN_TRAINING_STEPS // steps_per_pass)
        passes = int(min(MAX_AUTO_EPOCHS, max(MIN_AUTO_EPOCHS, wanted)))
        # Epochs of a fixed number of steps: as many as those passes take.
        return -(-passes * steps_per_pass // self._epoch_steps(n_train))

    def _fixed_epoch_steps(self) -> int | None:
        """Training steps per epoch where a family fixes them (``steps_per_epoch``); None: one pass."""
        return None

    def _pass_steps(self, n_train: int) -> int:
        """Training steps of one pass over ``n_train`` texts."""
        return -(-n_train // self.batch_size)

    def _epoch_steps(self, n_train: int) -> int:
        """Training steps per epoch: the fixed number, or one pass over ``n_train`` texts."""
        fixed = self._fixed_epoch_steps()
        return int(fixed) if fixed is not None else self._pass_steps(n_train)

    def _learning_rate(self) -> float:
        """The peak learning rate ``lr`` stands for in this fit (a family may resolve an ``"auto"``)."""
        return float(self.lr)

    def _n_logits(self, Y: np.ndarray) -> int:
        """Width of the output layer for the training targets ``Y`` (one per column by default)."""
        return Y.shape[1]

    def _release_cuda_cache(self) -> None:
        """Hand the fit's freed GPU memory back, so the next fit on this GPU starts clean.

        Optimizer state, early stopping's best weights and cached activations die with
        the skorch net; ``gc.collect`` frees what reference cycles still hold, then
        ``empty_cache`` returns the cached blocks. What stays is the fitted module.
        """
        if self.device_.type == "cuda":
            gc.collect()
            torch.cuda.empty_cache()

    def _train(self, module, dataset, split, criterion_kwargs, seed):
        """One skorch run over all epochs; subclasses with stages override it."""
        net = self._make_net(
            module,
            split=split,
            criterion_kwargs=criterion_kwargs,
            seed=seed,
            max_epochs=self.n_epochs_,
            parameter_groups=self._parameter_groups(),
            n_train=self._n_train(dataset, split),
        )
        net.fit(dataset, None)
        return net.history

    def _stopping_on(self) -> str:
        """What early stopping watches, in words (for the fit plan)."""
        return "the validation loss"

    def _validation_score(self):
        """``score(validation_logits) -> float`` that early stopping monitors, or None for the validation loss."""
        return None

    @staticmethod
    def _n_train(dataset: TokenizedTexts, split: ShuffleValidSplit | None) -> int:
        """Texts left for training once ``split`` holds out the validation part."""
        return len(dataset) if split is None else split.n_train(dataset)

    def _make_net(
        self,
        module,
        *,
        split,
        criterion_kwargs,
        seed,
        max_epochs,
        parameter_groups,
        n_train,
        lr=None,
        anneal_strategy="linear",
        cycle_momentum=False,
        callback_options=None,
        optimizer=torch.optim.AdamW,
        optimizer_kwargs=None,
        checkpoint_name: str = "train",
    ) -> TextNet:
        """A skorch net for one training run of ``module`` (already on the device).

        ``callback_options`` go to :func:`~sktext.net.make_callbacks` (e.g. ULMFiT's
        ``layer_groups`` and ``n_trainable_groups``).
        """
        steps_per_epoch = self._epoch_steps(n_train)
        base_lr = self._learning_rate()
        criterion, loss_kwargs = self._criterion()
        criterion_kwargs = {**loss_kwargs, **criterion_kwargs}
        optimizer_kwargs = dict(optimizer_kwargs or {})
        if optimizer is torch.optim.AdamW and fused_adamw_available(self.device_):
            optimizer_kwargs.setdefault("fused", True)
        net = TextNet(
            module,
            criterion=criterion,
            optimizer=optimizer,
            lr=base_lr if lr is None else lr,
            max_epochs=max_epochs,
            batch_size=self.batch_size,
            train_split=split,
            device=self.device_,
            precision=self._compute_dtype(),
            callbacks=make_callbacks(
                total_steps=steps_per_epoch * max_epochs,
                warmup_fraction=self.warmup_fraction,
                anneal_strategy=anneal_strategy,
                cycle_momentum=cycle_momentum,
                gradient_clip_norm=self.gradient_clip_norm,
                patience=self.patience,
                has_validation=split is not None,
                verbose=self.verbose,
                lr_parameter=("lr", base_lr),
                checkpoint=self._checkpoint_path(checkpoint_name),
                extra=self.callbacks,
                validation_score=self._validation_score(),
                **(callback_options or {}),
            ),
            verbose=int(bool(self.verbose)),
            seed=seed,
            steps_per_epoch=self._fixed_epoch_steps(),
            optimizer__weight_decay=self.weight_decay,
            optimizer__param_groups=parameter_groups,
            **{f"optimizer__{k}": v for k, v in optimizer_kwargs.items()},
            criterion__reduction="none",  # the net reduces, weighing samples (TextNet.get_loss)
            **{f"criterion__{k}": v for k, v in criterion_kwargs.items()},
        )
        return net

    # -- predict --------------------------------------------------------------------
    def _logits(self, dataset: TokenizedTexts, *, by_tokens: bool = True) -> np.ndarray:
        """The module's outputs for ``dataset``, in length-sorted batches.

        A batch holds as many texts as ``2 * batch_size`` texts of the longest one
        would take (``by_tokens``): the longest texts run ``2 * batch_size`` to a batch as
        before, so no batch is larger than that, and short texts run many to a batch
        (fewer calls of the module: on 5,693 debtags test texts, a random 2-layer encoder
        on 2 CPU cores took 0.96 s against 1.01 s in batches of 64; ``by_tokens=False`` is
        the old way, for the benchmarks).
        """
        dtype = self._compute_dtype()
        longest = int(dataset.lengths.max(initial=1))
        logits = predict_batched(
            self._inference_module(dtype),
            dataset,
            batch_size=2 * self.batch_size,
            device=self.device_,
            precision=dtype,
            max_tokens=2 * self.batch_size * longest if by_tokens else None,
        )
        return check_finite_outputs(logits)

    # -- tags ------------------------------------------------------------------------------
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.two_d_array = False
        tags.non_deterministic = True
        return tags
