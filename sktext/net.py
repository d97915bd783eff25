"""The skorch net every sktext estimator trains with, and the inference loop.

``TextNet`` is a :class:`skorch.NeuralNet` with the criterion the estimator passes
(BCE-with-logits, :class:`sktext.losses.FocalLoss`, :class:`sktext.losses.MultiHeadLoss`
or :class:`sktext.losses.RegressionLoss`) over float32 targets, frozen parameters kept
out of the optimizer, length-bucketed training batches, bf16 autocast on CUDA, and
``torch.inference_mode`` for evaluation. Schedules, clipping, early stopping and
progress bars are skorch callbacks, assembled by :func:`make_callbacks`.
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import (
    GradientNormClipping,
    LRScheduler,
    ProgressBar,
)
from skorch.dataset import unpack_data
from torch.utils.data import DataLoader

from .batching import (
    LengthBucketSampler,
    SequentialBatchSampler,
    TokenizedTexts,
    collate_prebatched,
    sort_by_length,
)
from .callbacks import EarlyStopping, FiniteLossGuard, TrainingCheckpoint, one_cycle
from .reliability import InterruptPropagatingNetMixin


def autocast(device: torch.device | str):
    """bf16 autocast on CUDA; a no-op context elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def data_loader(dataset: TokenizedTexts, batch_size: int, *, training: bool, seed: int, device) -> DataLoader:
    """A loader of padded batches: length-bucketed and shuffled for training, in order otherwise.

    Collation is vectorised in the dataset, so worker processes do not pay; pinned
    memory does on CUDA.
    """
    if training:
        sampler = LengthBucketSampler(dataset.lengths, batch_size, seed=seed)
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
    """

    def __init__(self, *args, seed: int = 0, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seed = seed

    def get_iterator(self, dataset, training=False):
        loader = data_loader(dataset, self.batch_size, training=training, seed=self.seed, device=self.device)
        if training:  # its generator's state is part of a checkpoint
            self.train_batch_sampler_ = loader.batch_sampler
        return loader

    def train_step_single(self, batch, **fit_params):
        self._set_training(True)
        inputs, targets = unpack_data(batch)
        with autocast(self.device):
            logits = self.infer(inputs, **fit_params)
        loss = self.get_loss(logits, targets, X=inputs, training=True)
        loss.backward()
        return {"loss": loss, "y_pred": logits}

    def validation_step(self, batch, **fit_params):
        self._set_training(False)
        inputs, targets = unpack_data(batch)
        with torch.inference_mode(), autocast(self.device):
            logits = self.infer(inputs, **fit_params)
            loss = self.get_loss(logits, targets, X=inputs, training=False)
        return {"loss": loss, "y_pred": logits}

    def get_all_learnable_params(self):
        """The module's parameters that require gradients: frozen ones stay out of the optimizer."""
        for name, parameter in super().get_all_learnable_params():
            if parameter.requires_grad:
                yield name, parameter

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y_true = y_true.to(self.device, dtype=torch.float32, non_blocking=True)
        return self.criterion_(y_pred.float(), y_true)


def make_callbacks(
    *,
    total_steps: int,
    warmup_fraction: float,
    anneal_strategy: str = "linear",
    cycle_momentum: bool = False,
    gradient_clip_norm: float | None = 1.0,
    patience: int | None = None,
    has_validation: bool = False,
    verbose: int = 0,
    lr_parameter: tuple[str, float] | None = None,
    checkpoint=None,
) -> list:
    """The callbacks of one training run: schedule, clipping, early stopping, progress.

    Every run also stops with a clear error when its loss is no longer finite
    (``lr_parameter``, ``(name, value)`` of the estimator's learning rate, is named in
    that message); with ``checkpoint`` (a file path) it saves its state each epoch and
    resumes from that file (:class:`~sktext.callbacks.TrainingCheckpoint`).
    """
    callbacks = [
        (
            "schedule",
            LRScheduler(
                policy=one_cycle,
                step_every="batch",
                total_steps=total_steps,
                warmup_fraction=warmup_fraction,
                anneal_strategy=anneal_strategy,
                cycle_momentum=cycle_momentum,
            ),
        )
    ]
    if gradient_clip_norm:
        callbacks.append(("clip", GradientNormClipping(gradient_clip_value=gradient_clip_norm)))
    if has_validation and patience:
        callbacks.append(("early_stopping", EarlyStopping(monitor="valid_loss", patience=patience, load_best=True)))
    if verbose:
        callbacks.append(("progress", ProgressBar()))
    callbacks.append(("finite_loss", FiniteLossGuard(*(lr_parameter or ("lr",)))))
    if checkpoint is not None:  # last: it restores what the others reset at the start
        callbacks.append(("checkpoint", TrainingCheckpoint(checkpoint)))
    return callbacks


def predict_batched(module: torch.nn.Module, dataset: TokenizedTexts, *, batch_size: int, device) -> np.ndarray:
    """``module(input_ids, attention_mask)`` for every text, in dataset order, as float32.

    Texts run in length-sorted batches (little padding) under ``inference_mode`` and,
    on CUDA, bf16 autocast; the module is put in eval mode and the rows of the result
    (logits, or vectors for the embedders) are put back in the original order.
    """
    ordered, order = sort_by_length(dataset)
    loader = data_loader(ordered, batch_size, training=False, seed=0, device=device)
    module.eval()
    outputs = []
    with torch.inference_mode(), autocast(device):
        for inputs, _ in loader:
            inputs = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
            outputs.append(module(**inputs).float().cpu())
    stacked = torch.cat(outputs).numpy()
    result = np.empty_like(stacked)
    result[order] = stacked
    return result


__all__ = ["TextNet", "autocast", "data_loader", "make_callbacks", "predict_batched"]
