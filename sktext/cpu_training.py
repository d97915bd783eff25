"""Training on a CPU: dropout masks four to a random word, and an attention that stays in bf16.

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
``torch.nn.functional.dropout`` call). Anything it does not take (in-place dropout,
``p`` of 0 or 1, a tensor not on the CPU, evaluation mode) goes to torch unchanged.

SDPA, the encoders' default attention, draws its dropout inside torch, where no mode
sees it, so while training on a CPU (:func:`training_attention`) the encoders switch
to an attention of their own family's eager arithmetic: :func:`plain_attention` for
the BERT family, whose eager attention is exactly scores, mask, softmax, dropout and
values. It also keeps the scores in the compute dtype: transformers' eager attention
adds an fp32 mask and autocast then runs the softmax in fp32, so under bf16 every
layer turned its largest tensors (batch x heads x length x length) into fp32 and back.
Other encoders use transformers' eager attention for the time.
:class:`~sktext.net.TextNet` trains on a CPU inside both contexts.
"""

from __future__ import annotations

import contextlib
import functools

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

__all__ = ["PLAIN_ATTENTION", "FastDropout", "dropout", "plain_attention", "training_attention"]

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


#: The name :func:`plain_attention` is registered under in transformers' attention interfaces.
PLAIN_ATTENTION = "sktext_plain"

#: Model types whose eager attention in transformers is exactly :func:`plain_attention`'s
#: arithmetic (the same ``eager_attention_forward``, read in transformers 5.24).
PLAIN_ATTENTION_MODEL_TYPES = frozenset(
    {
        "albert",
        "bert",
        "camembert",
        "data2vec-text",
        "distilbert",
        "electra",
        "ernie",
        "roberta",
        "roberta-prelayernorm",
        "xlm-roberta",
        "xlm-roberta-xl",
    }
)


def plain_attention(
    module: torch.nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **kwargs,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Scaled dot-product attention in the dtype of ``query``, for transformers' attention interface.

    ``attention_mask`` is the boolean mask transformers builds for SDPA (True where a
    query may attend to a key; None when nothing is masked). The softmax runs outside
    autocast, on the scores' own dtype (torch's CPU kernel accumulates bf16 in fp32),
    and its dropout goes through ``torch.nn.functional.dropout``.

    Returns
    -------
    output : torch.Tensor of shape (batch, length, heads, head_dim)
    weights : torch.Tensor of shape (batch, heads, length, length)
    """
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    scores = torch.matmul(query, key.transpose(2, 3)) * scaling
    if attention_mask is not None:
        scores = scores.masked_fill(~attention_mask, torch.finfo(scores.dtype).min)
    with torch.autocast(query.device.type, enabled=False):
        weights = torch.softmax(scores, dim=-1)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value).transpose(1, 2).contiguous()
    return output, weights


@functools.cache
def _plain_attention_registered() -> bool:
    """Register :func:`plain_attention` and its mask (SDPA's) with transformers, where it has the interfaces."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, AttentionMaskInterface
    except ImportError:
        return False
    AttentionInterface.register(PLAIN_ATTENTION, plain_attention)
    AttentionMaskInterface.register(PLAIN_ATTENTION, ALL_MASK_ATTENTION_FUNCTIONS["sdpa"])
    return True


def _training_implementation(model: torch.nn.Module) -> str:
    if getattr(model.config, "model_type", None) in PLAIN_ATTENTION_MODEL_TYPES and _plain_attention_registered():
        return PLAIN_ATTENTION
    return "eager"


@contextlib.contextmanager
def training_attention(module: torch.nn.Module):
    """Within this context, the Hugging Face models in ``module`` that use SDPA attention use one whose dropout is seen.

    BERT-family models switch to :func:`plain_attention`, others to transformers'
    eager attention: both compute the attention SDPA computes, and apply its dropout
    through ``torch.nn.functional.dropout`` (which :class:`FastDropout` takes). Models
    that cannot switch (transformers without ``set_attn_implementation``, a model with
    no eager attention) stay as they are. On exit every switched model is back on
    SDPA, exception or not.
    """
    switched = []
    try:
        for model in module.modules():
            config = getattr(model, "config", None)
            if getattr(config, "_attn_implementation", None) != "sdpa" or not hasattr(model, "set_attn_implementation"):
                continue
            try:
                model.set_attn_implementation(_training_implementation(model))
            except (ValueError, ImportError, NotImplementedError):
                continue
            switched.append(model)
        yield module
    finally:
        for model in switched:
            model.set_attn_implementation("sdpa")
