"""Dropout masks drawn four to a random word: training on a CPU without torch's slow Bernoulli.

On a CPU, ``torch.nn.functional.dropout`` draws one Mersenne-Twister number per
element (``bernoulli_``). Fine-tuning all-MiniLM-L6-v2 on two cores, that drawing was
a fifth to a quarter of the whole step (profiled in fp32 and bf16: more than the
attention), the same in both precisions. :func:`dropout` draws 64-bit words instead
and reads each as four 16-bit numbers, so a mask costs a quarter of the draws: an
element is kept when its number is at least ``p * 65536`` (``p`` rounded to 1/65,536).
It is the same Bernoulli(1 - p) mask, from torch's own seeded generator.

:class:`FastDropout` is the context that routes a model's dropout calls to it
(``nn.Dropout`` modules and the functional calls of Hugging Face's attention code
alike: a :class:`~torch.overrides.TorchFunctionMode` sees every
``torch.nn.functional.dropout`` call); :class:`~sktext.net.TextNet` trains on a CPU
inside it, with Hugging Face encoders switched from SDPA to eager attention for the
time (:func:`eager_attention`: SDPA draws its attention dropout inside torch, where
no mode sees it). Anything it does not take (in-place dropout, ``p`` of 0 or 1, a
tensor not on the CPU, evaluation mode) goes to torch unchanged.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["FastDropout", "dropout", "eager_attention"]

_WORD_MIN, _WORD_END = -(2**63), 2**63 - 1  # random_(from, to) draws from [from, to)
_LEVELS = 2**16


def dropout(x: torch.Tensor, p: float) -> torch.Tensor:
    """``x`` with each element zeroed with probability ``p`` and the rest scaled by ``1 / (1 - p)``.

    Parameters
    ----------
    x : torch.Tensor
    p : float
        In (0, 1); used rounded to a multiple of 1/65,536.

    Returns
    -------
    torch.Tensor
        Differentiable in ``x``: the gradient is masked and scaled alike.
    """
    n = x.numel()
    words = torch.empty(-(-n // 4), dtype=torch.int64, device=x.device).random_(_WORD_MIN, _WORD_END)
    numbers = words.view(torch.int16)[:n].view(x.shape)  # uniform over [-32768, 32767]
    keep = numbers >= round(p * _LEVELS) - _LEVELS // 2
    scale = keep.to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * scale


def _arguments(args: tuple, kwargs: dict) -> tuple[torch.Tensor, float, bool, bool]:
    """``(input, p, training, inplace)`` of a ``F.dropout`` call, with its defaults."""
    names = ("input", "p", "training", "inplace")
    defaults = {"p": 0.5, "training": True, "inplace": False}
    values = {**defaults, **dict(zip(names, args)), **kwargs}
    return values["input"], values["p"], values["training"], values["inplace"]


class FastDropout(TorchFunctionMode):
    """Within this context, ``torch.nn.functional.dropout`` on CPU tensors runs :func:`dropout`.

    Examples
    --------
    >>> import torch
    >>> from sktext.dropout import FastDropout
    >>> layer = torch.nn.Dropout(0.1).train()
    >>> with FastDropout():
    ...     out = layer(torch.ones(1000))
    >>> bool(((out == 0) | torch.isclose(out, torch.tensor(1 / 0.9))).all())
    True
    """

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.dropout:
            x, p, training, inplace = _arguments(args, kwargs)
            if training and not inplace and 0.0 < p < 1.0 and x.device.type == "cpu" and x.is_floating_point():
                return dropout(x, float(p))
        return func(*args, **kwargs)


@contextlib.contextmanager
def eager_attention(module: torch.nn.Module):
    """Within this context, the Hugging Face models in ``module`` that use SDPA attention use eager attention.

    Both compute the same attention. Eager attention applies its dropout through
    ``torch.nn.functional.dropout`` (which :class:`FastDropout` takes), SDPA inside its
    kernel. Models that cannot switch (transformers without
    ``set_attn_implementation``, or a model that has no eager attention) stay as they
    are. On exit every switched model is back on SDPA, exception or not.
    """
    switched = []
    try:
        for model in module.modules():
            config = getattr(model, "config", None)
            if getattr(config, "_attn_implementation", None) != "sdpa" or not hasattr(model, "set_attn_implementation"):
                continue
            try:
                model.set_attn_implementation("eager")
            except (ValueError, ImportError, NotImplementedError):
                continue
            switched.append(model)
        yield module
    finally:
        for model in switched:
            model.set_attn_implementation("sdpa")
