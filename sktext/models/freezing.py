"""Freezing a model's ``encoder``: no gradients, no dropout, no stored activations (torch only)."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

__all__ = ["FreezableEncoderMixin"]


class FreezableEncoderMixin:
    """Mixin for an ``nn.Module`` with an ``encoder`` submodule that may be frozen.

    A frozen encoder is a fixed feature extractor: its parameters do not require
    gradients, it stays in eval mode when the module trains (dropout off), and the
    forward pass runs it under :func:`encoder_context`, i.e. ``torch.no_grad()``, so
    no activations are kept for a backward pass through it. Only what follows the
    encoder (pooling and head) trains.
    """

    encoder: nn.Module
    #: Set by :meth:`freeze_encoder`; a class default so modules saved before it exist load.
    encoder_frozen: bool = False

    def freeze_encoder(self, frozen: bool = True):
        """Freeze (or, with ``frozen=False``, unfreeze) the encoder; returns the module."""
        self.encoder_frozen = bool(frozen)
        self.encoder.requires_grad_(not frozen)
        return self.train(self.training)

    def train(self, mode: bool = True):
        """As ``nn.Module.train``, but a frozen encoder stays in eval mode."""
        super().train(mode)
        if self.encoder_frozen:
            self.encoder.eval()
        return self

    def encoder_context(self):
        """``torch.no_grad()`` while the encoder is frozen, else a no-op context."""
        return torch.no_grad() if self.encoder_frozen else contextlib.nullcontext()
