"""Training criteria on multi-label logits (torch only).

The estimators train with ``torch.nn.BCEWithLogitsLoss`` by default (``loss="bce"``);
``loss="focal"`` swaps in :class:`FocalLoss`. Both take one ``pos_weight`` per label.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["FocalLoss", "LOSSES", "criterion_for"]

#: The values of the estimators' ``loss`` parameter.
LOSSES = ("bce", "focal")


class FocalLoss(nn.Module):
    """Binary focal loss on logits, one independent sigmoid per label (Lin et al., 2017).

    For a logit ``z`` and a 0/1 target ``t``, with ``p = sigmoid(z)`` and ``p_t`` the
    probability given to the true value (``p`` if ``t = 1``, else ``1 - p``)::

        loss = (1 - p_t) ** gamma * bce(z, t)

    where ``bce`` is binary cross-entropy with the positive term multiplied by
    ``pos_weight``. Easy examples (``p_t`` near 1) are down-weighted, so the many
    confidently-absent labels of a many-label problem stop dominating the loss.
    ``gamma=0`` gives binary cross-entropy exactly.

    ``pos_weight`` plays the part of the paper's alpha: alpha-balanced focal loss
    weighs positives by ``alpha`` and negatives by ``1 - alpha``, which is this loss
    with ``pos_weight = alpha / (1 - alpha)`` times the constant ``1 - alpha``.

    Computed stably for any logits: the cross-entropy comes from
    ``binary_cross_entropy_with_logits(reduction="none")`` and the modulating factor
    from ``exp(gamma * logsigmoid(±z))``, so neither overflows nor gives an infinite
    gradient where ``p_t`` reaches 1 (also for ``0 < gamma < 1``).

    Parameters
    ----------
    gamma : float, default=2.0
        Focusing parameter, >= 0.
    pos_weight : Tensor of shape (n_labels,), optional
        Weight of the positive term of each label.
    reduction : {"mean", "sum", "none"}, default="mean"
        As in ``BCEWithLogitsLoss``: the mean over samples and labels by default.

    Examples
    --------
    >>> loss = FocalLoss(gamma=2.0)
    >>> round(float(loss(torch.tensor([[0.0]]), torch.tensor([[1.0]]))), 4)  # 0.5**2 * log(2)
    0.1733
    """

    def __init__(
        self, gamma: float = 2.0, pos_weight: torch.Tensor | None = None, reduction: str = "mean"
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")
        self.gamma = float(gamma)
        self.reduction = reduction
        self.register_buffer("pos_weight", None if pos_weight is None else torch.as_tensor(pos_weight))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` against 0/1 ``targets`` of the same shape."""
        targets = targets.to(logits.dtype)
        cross_entropy = F.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=self.pos_weight, reduction="none"
        )
        if self.gamma:
            # 1 - p_t = sigmoid(-z) for a positive, sigmoid(z) for a negative.
            signed = torch.where(targets > 0.5, -logits, logits)
            cross_entropy = torch.exp(self.gamma * F.logsigmoid(signed)) * cross_entropy
        if self.reduction == "mean":
            return cross_entropy.mean()
        if self.reduction == "sum":
            return cross_entropy.sum()
        return cross_entropy

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"


def criterion_for(loss: str, *, focal_gamma: float) -> tuple[type[nn.Module], dict]:
    """The criterion class and its extra keyword arguments for an estimator's ``loss``.

    Parameters
    ----------
    loss : {"bce", "focal"}
    focal_gamma : float
        Used with ``"focal"`` only.

    Returns
    -------
    criterion : type
        ``torch.nn.BCEWithLogitsLoss`` or :class:`FocalLoss`.
    kwargs : dict
        ``{"gamma": focal_gamma}`` for the focal loss, else empty; ``pos_weight`` is
        added by the caller.
    """
    if loss == "focal":
        return FocalLoss, {"gamma": float(focal_gamma)}
    return nn.BCEWithLogitsLoss, {}
