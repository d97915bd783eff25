"""The skorch nets every sktext training run uses, their callbacks, and the inference loop.

``TextNet`` is a :class:`skorch.NeuralNet` with the criterion the estimator passes
(BCE-with-logits, :class:`sktext.losses.FocalLoss`, :class:`sktext.losses.MultiHeadLoss`
or :class:`sktext.losses.RegressionLoss`) over float32 targets, frozen parameters kept
out of the optimizer, length-bucketed training batches, bf16 autocast where the
estimator's ``precision`` resolves to bf16 (:mod:`sktext.precision`), and
``torch.inference_mode`` for evaluation. :class:`LanguageModelNet` is the same net for
the ULMFiT language model's BPTT stream: next-token cross-entropy with AR/TAR, the LSTM
state carried across batches. Schedules, clipping, layer-group freezing, early stopping
and progress bars are skorch callbacks (:mod:`sktext.callbacks`), assembled for both by
:func:`make_callbacks`. Both run data-parallel over the processes of a
``torch.distributed`` group when one is initialized (:mod:`sktext.distributed`).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Callable

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import (
    GradientNormClipping,
    LRScheduler,
    PassthroughScoring,
    ProgressBar,
)
from skorch.dataset import unpack_data
from skorch.utils import to_tensor
from torch.utils.data import DataLoader

from .batching import (
    LanguageModelBatches,
    LengthBucketSampler,
    SequentialBatchSampler,
    StepsPerEpochSampler,
    TokenBudgetBatchSampler,
    TokenizedTexts,
    collate_prebatched,
    sort_by_length,
)
from .callbacks import (
    EarlyStopping,
    FiniteLossGuard,
    StopWhenRequested,
    TrainableLayerGroups,
    TrainingCheckpoint,
    TrainingTimeEstimate,
    ValidationScore,
    one_cycle,
)
from .distributed import all_reduce_gradients, broadcast_module, shard_slice, sum_across_processes, world
from .dropout import FastDropout, eager_attention
from .models.awd_lstm import Hidden, LanguageModelOutput, detach_hidden
from .precision import autocast
from .reliability import InterruptPropagatingNetMixin

#: Benchmark and test hook: each CPU training speed-up by name, None where every model
#: family decides for itself (the default), True / False to force it on / off for all;
#: ``benchmarks/cpu_speedups.py`` measures each family with each one on and off.
_CPU_SPEEDUPS: dict[str, bool | None] = {"fast_dropout": None, "eager_attention": None, "fused_adamw": None}


def _cpu_speedup(name: str, default: bool) -> bool:
    """Whether the speed-up ``name`` is on: ``default`` unless :data:`_CPU_SPEEDUPS` forces it."""
    forced = _CPU_SPEEDUPS[name]
    return default if forced is None else forced


def data_loader(
    dataset: TokenizedTexts,
    batch_size: int,
    *,
    training: bool,
    seed: int,
    device,
    max_tokens: int | None = None,
    steps_per_epoch: int | None = None,
) -> DataLoader:
    """A loader of padded batches: length-bucketed and shuffled for training, in order otherwise.

    In training, ``steps_per_epoch`` makes each iteration over the loader (an epoch)
    ``steps_per_epoch`` batches long, continuing the passes over the data from one
    epoch to the next (:class:`~sktext.batching.StepsPerEpochSampler`). Out of
    training, ``max_tokens`` sizes the batches by padded tokens instead of
    ``batch_size`` (for a dataset sorted by decreasing length). Collation is
    vectorised in the dataset, so worker processes do not pay; pinned memory does
    on CUDA.
    """
    if training:
        sampler = LengthBucketSampler(dataset.lengths, batch_size, seed=seed)
        if steps_per_epoch is not None:
            sampler = StepsPerEpochSampler(sampler, steps_per_epoch)
    elif max_tokens is not None:
        sampler = TokenBudgetBatchSampler(dataset.lengths, max_tokens)
    else:
        sampler = SequentialBatchSampler(len(dataset), batch_size)
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate_prebatched,
        pin_memory=torch.device(device).type == "cuda",
        # Its own generator: a loader draws a seed, which would advance torch's global one.
        generator=torch.Generator(),
    )


class TextNet(InterruptPropagatingNetMixin, NeuralNet):
    """skorch net over :class:`~sktext.batching.TokenizedTexts`.

    A ``KeyboardInterrupt`` during training propagates (skorch's own ``partial_fit``
    would swallow it; see :class:`~sktext.reliability.InterruptPropagatingNetMixin`).

    Parameters beyond :class:`skorch.NeuralNet`'s
    ----------------------------------------------
    seed : int, default=0
        Seed of the training batch order.
    precision : torch.dtype or None, default=None
        Compute dtype of the forward passes: ``torch.bfloat16`` runs them under
        autocast, ``torch.float32`` plainly; None is bf16 on CUDA, fp32 elsewhere.
    steps_per_epoch : int or None, default=None
        Training batches per epoch (validation and early stopping then come every
        ``steps_per_epoch`` steps); None is one pass over the training data.
    """

    #: Whether training and validation steps run under autocast at ``precision``.
    autocast_on_cuda = True
    #: Whether CPU training steps run under :class:`~sktext.dropout.FastDropout`. It pays
    #: where dropout is a large share of the step (the transformers); the AWD-LSTM draws
    #: its masks with ``bernoulli_`` and has no use for it (``benchmarks/cpu_speedups.py``).
    fast_dropout = True

    def __init__(
        self,
        *args,
        seed: int = 0,
        precision: torch.dtype | None = None,
        steps_per_epoch: int | None = None,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.seed = seed
        self.precision = precision
        self.steps_per_epoch = steps_per_epoch

    def _autocast(self):
        return autocast(self.device, self.precision) if self.autocast_on_cuda else contextlib.nullcontext()

    def _on_cpu(self) -> bool:
        return torch.device(self.device).type == "cpu"

    def _dropout(self, training: bool):
        """:class:`~sktext.dropout.FastDropout` for a training step on a CPU (where ``fast_dropout``), else nothing."""
        wanted = _cpu_speedup("fast_dropout", self.fast_dropout)
        return FastDropout() if wanted and training and self._on_cpu() else contextlib.nullcontext()

    def get_iterator(self, dataset, training=False):
        loader = data_loader(
            dataset,
            self.batch_size,
            training=training,
            seed=self.seed,
            device=self.device,
            steps_per_epoch=self.steps_per_epoch,  # the loader reads it in training only
        )
        if training:  # its generator's state is part of a checkpoint
            self.train_batch_sampler_ = loader.batch_sampler
        return loader

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        inputs, targets = unpack_data(batch)
        logits, loss = self._shard_loss(inputs, targets, training=True, **fit_params)
        if logits is not None:
            loss.backward()
        all_reduce_gradients(param for _, param in self.get_all_learnable_params())
        return {"loss": sum_across_processes(loss), "y_pred": logits}

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        inputs, targets = unpack_data(batch)
        with torch.inference_mode():
            logits, loss = self._shard_loss(inputs, targets, training=False, **fit_params)
        return {"loss": sum_across_processes(loss), "y_pred": logits}

    def _shard_loss(self, inputs, targets, *, training: bool, **fit_params):
        """Logits and loss of the batch, or, data-parallel, of this process's shard of it.

        Data-parallel (:mod:`sktext.distributed`) each process takes a contiguous slice
        and weighs its loss by the slice's share of the batch, so that the sum over the
        processes is the loss of the whole batch (and the summed gradients its gradient).
        A process whose slice is empty (a batch smaller than the number of processes)
        gets ``(None, 0)``.
        """
        inputs = dict(inputs)
        weights = inputs.pop("sample_weight", None)
        n_rows, share = len(targets), 1.0
        if world()[1] > 1:
            rows = shard_slice(n_rows)
            inputs = {name: value[rows] for name, value in inputs.items()}
            targets = targets[rows]
            share = len(targets) / n_rows
            if weights is not None:  # the shard's share of the batch's weight
                total = float(weights.sum())
                weights = weights[rows]
                share = float(weights.sum()) / total if total > 0 else 0.0
            if not len(targets):
                return None, torch.zeros((), device=self.device)
        with self._autocast(), self._dropout(training):
            logits = self.infer(inputs, **fit_params)
        loss = self.get_loss(logits, targets, X=inputs, training=training, sample_weight=weights)
        return logits, loss if share == 1.0 else loss * share

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        """Data-parallel: start from rank 0's weights, and draw dropout masks per process."""
        super().on_train_begin(net, X=X, y=y, **kwargs)
        rank, world_size = world()
        if world_size > 1:
            broadcast_module(self.module_)
            torch.manual_seed(self.seed * world_size + rank)

    def fit(self, X, y=None, **fit_params):
        """skorch's ``fit``; data-parallel, every process then holds rank 0's module.

        On a CPU, Hugging Face encoders train with eager attention, whose dropout
        :class:`~sktext.dropout.FastDropout` draws (:func:`~sktext.dropout.eager_attention`).
        """
        module = self.module if isinstance(self.module, torch.nn.Module) else None
        switching = module is not None and self._on_cpu() and _cpu_speedup("eager_attention", True)
        with eager_attention(module) if switching else contextlib.nullcontext():
            super().fit(X, y, **fit_params)
        broadcast_module(self.module_)
        return self

    def get_all_learnable_params(self):
        """The module's parameters that require gradients: frozen ones stay out of the optimizer."""
        for name, parameter in super().get_all_learnable_params():
            if parameter.requires_grad:
                yield name, parameter

    def get_loss(self, y_pred, y_true, X=None, training=False, sample_weight=None):
        """The criterion's loss, as a (weighted) mean over the samples of the batch.

        A criterion built with ``reduction="none"`` (as the estimators build theirs)
        returns per-sample or per-element losses: each sample's is the mean over its
        elements, and the batch's the mean over samples, weighted by ``sample_weight``
        when given (a weight of 2 counts a text as twice in the batch). A criterion
        that reduces by itself is taken as it is.
        """
        y_true = y_true.to(self.device, dtype=torch.float32, non_blocking=True)
        loss = self.criterion_(y_pred.float(), y_true)
        if loss.ndim == 0:
            return loss
        per_sample = loss.reshape(len(y_true), -1).mean(dim=1)
        if sample_weight is None:
            return per_sample.mean()
        weights = sample_weight.to(self.device, dtype=torch.float32, non_blocking=True)
        return (per_sample * weights).sum() / weights.sum().clamp_min(torch.finfo(torch.float32).tiny)


class LanguageModelNet(TextNet):
    """:class:`TextNet` for BPTT language-model training with AR/TAR.

    Fed a :class:`~sktext.batching.LanguageModelBatches`, it iterates it directly (the
    windows are already cut), keeps the LSTM state between consecutive batches of an
    epoch (detached), adds activation regularisation ``alpha * mean(dropped_last ** 2)``
    and temporal activation regularisation ``beta * mean((raw_t - raw_{t-1}) ** 2)`` to
    the training loss, and records the plain cross-entropy of each batch as
    ``train_cross_entropy`` (an epoch mean in the history). It runs in float32 (no
    autocast), as the language model always has.

    Parameters beyond :class:`TextNet`'s
    ------------------------------------
    alpha : float, default=2.0
        Activation regularisation weight.
    beta : float, default=1.0
        Temporal activation regularisation weight.
    """

    autocast_on_cuda = False

    def __init__(self, *args, alpha: float = 2.0, beta: float = 1.0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.alpha = alpha
        self.beta = beta

    @property
    def _default_callbacks(self):
        return [
            *super()._default_callbacks,
            ("train_cross_entropy", PassthroughScoring("train_cross_entropy", on_train=True)),
        ]

    # The BPTT stream carries the LSTM state from batch to batch, so it is not sharded:
    # under torchrun every process trains the same language model from the same seed,
    # and the classifier stage then starts from rank 0's weights (TextNet broadcasts them).
    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        inputs, targets = unpack_data(batch)
        output = self.infer(inputs, **fit_params)
        loss = self.get_loss(output, targets, X=inputs, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": output}

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        inputs, targets = unpack_data(batch)
        with torch.inference_mode():
            output = self.infer(inputs, **fit_params)
            loss = self.get_loss(output, targets, X=inputs, training=False)
        return {"loss": loss, "y_pred": output}

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        NeuralNet.on_train_begin(self, net, X=X, y=y, **kwargs)

    def fit(self, X, y=None, **fit_params):
        return NeuralNet.fit(self, X, y, **fit_params)

    def get_iterator(self, dataset, training=False):
        if isinstance(dataset, LanguageModelBatches):
            return dataset
        return super().get_iterator(dataset, training=training)

    def on_epoch_begin(self, net, **kwargs) -> None:
        super().on_epoch_begin(net, **kwargs)
        self.hidden_state_: Hidden | None = None

    def infer(self, x, **fit_params) -> LanguageModelOutput:
        x = to_tensor(x, device=self.device)
        output = self.module_(x, getattr(self, "hidden_state_", None))
        self.hidden_state_ = detach_hidden(output.hidden)
        return output

    def get_loss(self, y_pred: LanguageModelOutput, y_true, X=None, training=False) -> torch.Tensor:
        targets = to_tensor(y_true, device=self.device)
        logits = y_pred.logits
        cross_entropy = self.criterion_(logits.reshape(-1, logits.size(-1)).float(), targets.reshape(-1))
        if not training:
            return cross_entropy
        self.history.record_batch("train_cross_entropy", cross_entropy.item())
        loss = cross_entropy
        if self.alpha:
            loss = loss + self.alpha * y_pred.dropped_outputs[-1].float().pow(2).mean()
        raw = y_pred.raw_outputs[-1]
        if self.beta and raw.size(1) > 1:
            loss = loss + self.beta * (raw[:, 1:] - raw[:, :-1]).float().pow(2).mean()
        return loss


#: Names of the callbacks :func:`make_callbacks` builds.
BUILT_IN_CALLBACKS = (
    "trainable_groups",
    "time_estimate",
    "schedule",
    "clip",
    "early_stopping",
    "progress",
    "finite_loss",
    "stop",
    "checkpoint",
)


def make_callbacks(
    *,
    total_steps: int,
    warmup_fraction: float,
    anneal_strategy: str = "linear",
    cycle_momentum: bool = False,
    momentum_range: tuple[float, float] = (0.7, 0.8),
    final_div_factor: float = 1e4,
    gradient_clip_norm: float | None = 1.0,
    patience: int | None = None,
    has_validation: bool = False,
    verbose: int = 0,
    progress_bar: bool | None = None,
    layer_groups: Callable | None = None,
    n_trainable_groups: int | None = None,
    lr_parameter: tuple[str, float | None] | None = None,
    checkpoint=None,
    extra=None,
    validation_score=None,
) -> list:
    """The callbacks of one training run: schedule, clipping, early stopping, progress.

    Parameters
    ----------
    total_steps : int
        Optimizer steps of the one-cycle schedule (``callbacks__schedule__total_steps``
        resets it between runs of one net).
    warmup_fraction : float
        Share of the steps spent raising the learning rate.
    anneal_strategy : {"linear", "cos"}, default="linear"
    cycle_momentum : bool, default=False
        Cycle Adam's beta1 within ``momentum_range`` (lowest at the peak rate).
    momentum_range : (float, float), default=(0.7, 0.8)
    final_div_factor : float, default=1e4
        The final rate is the starting rate divided by this.
    gradient_clip_norm : float or None, default=1.0
        Largest gradient norm; None or 0 clips nothing.
    patience : int or None, default=None
        Epochs without a lower validation loss before the run stops, best weights
        restored; only with ``has_validation``.
    has_validation : bool, default=False
    verbose : int, default=0
    progress_bar : bool or None, default=None
        Show a progress bar; None means ``bool(verbose)``.
    layer_groups : callable or None, default=None
        Splits the module into layer groups; when given, only the last
        ``n_trainable_groups`` of them train during the run
        (:class:`~sktext.callbacks.TrainableLayerGroups`).
    n_trainable_groups : int or None, default=None
        None trains every group.
    lr_parameter : (str, float or None) or None, default=None
        The estimator's learning-rate parameter and its value (None: the net's ``lr``),
        named in the error of :class:`~sktext.callbacks.FiniteLossGuard`: every run
        stops with a clear error when its loss is no longer finite.
    checkpoint : path-like or None, default=None
        A file: the run saves its state there each epoch and resumes from it
        (:class:`~sktext.callbacks.TrainingCheckpoint`).
    extra : list of skorch callbacks or (name, callback) pairs, optional
        The user's own (an estimator's ``callbacks`` parameter), run after sktext's and
        before the checkpoint; an unnamed one is named after its class.
    validation_score : callable or None, default=None
        ``score(validation_logits) -> float``, higher is better: recorded after each
        epoch as ``valid_f1`` (:class:`~sktext.callbacks.ValidationScore`), which early
        stopping then monitors instead of the validation loss; only with
        ``has_validation``.

    Returns
    -------
    list of (str, skorch.callbacks.Callback)
        Named ``trainable_groups``, ``schedule``, ``clip``, ``valid_f1`` (with
        ``validation_score``), ``early_stopping``, ``progress``,
        ``time_estimate`` (with ``verbose``), ``finite_loss``, then the ``extra`` ones, then ``stop`` (which ends the run when
        early stopping asks) and ``checkpoint``.

    Raises
    ------
    ValueError
        An ``extra`` callback's name is taken by one of sktext's or by another one.
    """
    callbacks = []
    if layer_groups is not None:
        callbacks.append(("trainable_groups", TrainableLayerGroups(n_trainable_groups, layer_groups)))
    callbacks += [
        (
            "schedule",
            LRScheduler(
                policy=one_cycle,
                step_every="batch",
                total_steps=total_steps,
                warmup_fraction=warmup_fraction,
                anneal_strategy=anneal_strategy,
                cycle_momentum=cycle_momentum,
                momentum_range=momentum_range,
                final_div_factor=final_div_factor,
            ),
        )
    ]
    if gradient_clip_norm:
        callbacks.append(("clip", GradientNormClipping(gradient_clip_value=gradient_clip_norm)))
    scored = has_validation and validation_score is not None
    if scored:
        callbacks.append(("valid_f1", ValidationScore(validation_score, "valid_f1")))
    if has_validation and patience:
        stopping = (
            EarlyStopping(monitor="valid_f1", lower_is_better=False, patience=patience, load_best=True)
            if scored
            else EarlyStopping(monitor="valid_loss", patience=patience, load_best=True)
        )
        callbacks.append(("early_stopping", stopping))
    if bool(verbose) if progress_bar is None else progress_bar:
        callbacks.append(("progress", ProgressBar()))
    if verbose:
        callbacks.append(("time_estimate", TrainingTimeEstimate(total_steps)))
    callbacks.append(("finite_loss", FiniteLossGuard(*(lr_parameter or ("lr",)))))
    # "valid_f1" is the name (and the history key) of sktext's score only where it watches one.
    callbacks += _named_extra_callbacks(
        extra or [], taken=set(BUILT_IN_CALLBACKS) | ({"valid_f1"} if scored else set())
    )
    if has_validation and patience:  # after the user's: they see the epoch early stopping ends on
        callbacks.append(("stop", StopWhenRequested()))
    if checkpoint is not None:  # last: it restores what the others reset at the start
        callbacks.append(("checkpoint", TrainingCheckpoint(checkpoint)))
    return callbacks


def _named_extra_callbacks(extra, taken: set[str]) -> list:
    """``extra`` as (name, callback) pairs; a name sktext or another callback has is refused."""
    named, own = [], set(taken)
    for entry in extra:
        name, callback = entry if isinstance(entry, tuple) else (type(entry).__name__, entry)
        if name in taken:
            raise ValueError(
                f"callbacks: the name {name!r} is taken"
                + (" by one of sktext's own callbacks" if name in own else " by another callback")
                + "; pass the callback as a (name, callback) pair with another name."
            )
        taken.add(name)
        named.append((name, callback))
    return named


@functools.cache
def _fused_adamw_runs_on(device_type: str) -> bool:
    try:  # one step on a one-element parameter: this torch either has the kernel or raises
        parameter = torch.zeros(1, device=device_type, requires_grad=True)
        parameter.grad = torch.zeros_like(parameter)
        torch.optim.AdamW([parameter], fused=True).step()
    except (RuntimeError, TypeError, ValueError, NotImplementedError):
        return False
    return True


def fused_adamw_available(device) -> bool:
    """Whether this torch has a fused AdamW kernel for ``device`` (CUDA; CPU from torch 2.4).

    Found by trying it once per device type, not read from a version number. The
    fused kernel updates all parameters in one pass instead of a dozen per tensor;
    on a 2-core CPU the for-loop update was 5-8 % of a fine-tuning fit of
    all-MiniLM-L6-v2 (profiled in fp32 and bf16).
    """
    device = torch.device(device)
    if device.type not in ("cpu", "cuda") or (device.type == "cuda" and not torch.cuda.is_available()):
        return False
    return _cpu_speedup("fused_adamw", True) and _fused_adamw_runs_on(device.type)


#: Output elements (float32) ``predict_batched`` keeps on the device before copying them
#: to the host in one transfer: 64 M, 256 MB.
_OUTPUTS_KEPT_ON_DEVICE = 64 * 2**20


def predict_batched(
    module: torch.nn.Module,
    dataset: TokenizedTexts,
    *,
    batch_size: int,
    device,
    precision: torch.dtype | None = None,
    max_tokens: int | None = None,
) -> np.ndarray:
    """``module(input_ids, attention_mask)`` for every text, in dataset order, as float32.

    Texts run in length-sorted batches (little padding) under ``inference_mode`` and,
    when ``precision`` is bf16 (None: on CUDA), bf16 autocast, unless the module's
    weights are bf16 already; the module is put in eval mode and the rows of the
    result (logits, or vectors for the embedders) are put back in the original order.
    A batch holds ``batch_size`` texts or, with ``max_tokens``, as many as fit in
    that many padded tokens (:class:`~sktext.batching.TokenBudgetBatchSampler`).
    Outputs stay on the device and come to the host in one transfer per 256 MB (once,
    for most calls), not one per batch.
    """
    ordered, order = sort_by_length(dataset.with_targets(None))  # no targets, no weights
    loader = data_loader(ordered, batch_size, training=False, seed=0, device=device, max_tokens=max_tokens)
    module.eval()
    if next(module.parameters()).dtype == torch.bfloat16:
        precision = torch.float32  # weights already bf16: nothing left for autocast to do
    on_host, pending, pending_elements = [], [], 0
    with torch.inference_mode(), autocast(device, precision):
        for inputs, _ in loader:
            inputs = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
            pending.append(module(**inputs).float())
            pending_elements += pending[-1].numel()
            if pending_elements >= _OUTPUTS_KEPT_ON_DEVICE:  # bounds the device memory they take
                on_host.append(torch.cat(pending).cpu())
                pending, pending_elements = [], 0
    if pending:
        on_host.append(torch.cat(pending).cpu())
    stacked = torch.cat(on_host).numpy() if on_host else np.zeros((0, 0), np.float32)
    result = np.empty_like(stacked)
    result[order] = stacked
    return result


__all__ = [
    "LanguageModelNet",
    "TextNet",
    "autocast",
    "data_loader",
    "fused_adamw_available",
    "make_callbacks",
    "predict_batched",
]
