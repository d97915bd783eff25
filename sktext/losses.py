"""Training criteria on multi-label logits and regression outputs (torch only).

The estimators train with ``torch.nn.BCEWithLogitsLoss`` by default (``loss="bce"``);
``loss="focal"`` swaps in :class:`FocalLoss`, ``loss="asymmetric"`` :class:`AsymmetricLoss`.
All take one ``pos_weight`` per label.
The regressors train with :class:`RegressionLoss` (``loss="mse"`` or ``"huber"``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "LOSSES",
    "AsymmetricLoss",
    "criterion_for_layout",
    "REGRESSION_LOSSES",
    "FocalLoss",
    "MultiHeadLoss",
    "RegressionLoss",
    "bounded_output",
    "criterion_for",
]

#: The values of the estimators' ``loss`` parameter.
LOSSES = ("bce", "focal", "asymmetric")


class FocalLoss(nn.Module):
    """Binary focal loss on logits, one independent sigmoid per label (Lin et al., 2017).

    For a logit ``z`` and a 0/1 target ``t``, with ``p = sigmoid(z)`` and ``p_t`` the
    probability given to the true value (``p`` if ``t = 1``, else ``1 - p``)::

        loss = (1 - p_t) ** gamma * bce(z, t)

    where ``bce`` is binary cross-entropy with the positive term multiplied by
    ``pos_weight``. Easy examples (``p_t`` near 1) are down-weighted, so the many
    confidently-absent labels of a many-label problem stop dominating the loss.
    ``gamma=0`` gives binary cross-entropy exactly. A soft target ``t`` in (0, 1) (a
    probability) takes ``1 - p_t = t * (1 - p) + (1 - t) * p``, the expected miss, which is
    the formula above at ``t = 0`` and ``t = 1``.

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

    def __init__(self, gamma: float = 2.0, pos_weight: torch.Tensor | None = None, reduction: str = "mean") -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")
        self.gamma = float(gamma)
        self.reduction = reduction
        self.register_buffer("pos_weight", None if pos_weight is None else torch.as_tensor(pos_weight))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` against 0/1 (or soft, in [0, 1]) ``targets`` of the same shape."""
        targets = targets.to(logits.dtype)
        cross_entropy = F.binary_cross_entropy_with_logits(
            logits, targets, pos_weight=self.pos_weight, reduction="none"
        )
        if self.gamma:
            # 1 - p_t = sigmoid(-z) for a positive, sigmoid(z) for a negative; for a soft
            # target y, 1 - p_t = y * sigmoid(-z) + (1 - y) * sigmoid(z), the same at 0 and 1.
            signed = torch.where(targets > 0.5, -logits, logits)
            modulating = torch.exp(self.gamma * F.logsigmoid(signed))
            soft = (targets > 0) & (targets < 1)
            miss = targets * torch.sigmoid(-logits) + (1 - targets) * torch.sigmoid(logits)
            miss = torch.where(soft, miss, torch.ones_like(miss))  # no 0 ** gamma (gamma < 1) off the soft entries
            modulating = torch.where(soft, miss**self.gamma, modulating)
            cross_entropy = modulating * cross_entropy
        if self.reduction == "mean":
            return cross_entropy.mean()
        if self.reduction == "sum":
            return cross_entropy.sum()
        return cross_entropy

    def extra_repr(self) -> str:
        return f"gamma={self.gamma}, reduction={self.reduction!r}"


class AsymmetricLoss(nn.Module):
    """Asymmetric loss for multi-label logits (Ridnik et al., 2021, "ASL").

    Positives and negatives are focused differently, and easy negatives are shifted
    away altogether. With ``p = sigmoid(z)`` and the shifted probability
    ``p_m = max(p - clip, 0)`` of a negative::

        positive:  -(1 - p) ** gamma_pos * log(p)
        negative:  -p_m ** gamma_neg * log(1 - p_m)

    A negative the model already puts below ``clip`` costs nothing, and the many
    confidently-absent labels of a many-label problem stop swamping the few present
    ones. ``gamma_neg=gamma_pos=clip=0`` is binary cross-entropy. The defaults are the
    paper's for multi-label data.

    Parameters
    ----------
    gamma_neg : float, default=4.0
    gamma_pos : float, default=0.0
    clip : float, default=0.05
        Probability margin below which a negative is discarded, in [0, 1).
    pos_weight : Tensor of shape (n_labels,), optional
        Weight of the positive term of each label.
    reduction : {"mean", "sum", "none"}, default="mean"

    Examples
    --------
    >>> loss = AsymmetricLoss(gamma_neg=0.0, gamma_pos=0.0, clip=0.0)
    >>> round(float(loss(torch.tensor([[0.0]]), torch.tensor([[1.0]]))), 4)  # log(2)
    0.6931
    """

    def __init__(
        self,
        gamma_neg: float = 4.0,
        gamma_pos: float = 0.0,
        clip: float = 0.05,
        pos_weight: torch.Tensor | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "sum", "none"):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}.")
        if not 0.0 <= clip < 1.0:
            raise ValueError(f"clip must be in [0, 1), got {clip!r}.")
        self.gamma_neg = float(gamma_neg)
        self.gamma_pos = float(gamma_pos)
        self.clip = float(clip)
        self.reduction = reduction
        self.register_buffer("pos_weight", None if pos_weight is None else torch.as_tensor(pos_weight))

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The loss of ``logits`` against 0/1 ``targets`` of the same shape."""
        targets = targets.to(logits.dtype)
        # Positive term from logsigmoid (stable for any logit); (1 - p) = sigmoid(-z).
        positive = -F.logsigmoid(logits)
        if self.gamma_pos:
            positive = torch.exp(self.gamma_pos * F.logsigmoid(-logits)) * positive
        if self.pos_weight is not None:
            positive = positive * self.pos_weight
        # Negative term on the shifted probability; log(1 - p_m) >= log(clip) stays finite.
        shifted = (torch.sigmoid(logits) - self.clip).clamp(min=0.0) if self.clip else torch.sigmoid(logits)
        if self.clip:
            negative = -torch.log1p(-shifted)
        else:
            negative = -F.logsigmoid(-logits)
        if self.gamma_neg:
            negative = shifted.pow(self.gamma_neg) * negative
        loss = targets * positive + (1.0 - targets) * negative
        if self.reduction == "mean":
            return loss.mean()
        if self.reduction == "sum":
            return loss.sum()
        return loss

    def extra_repr(self) -> str:
        return f"gamma_neg={self.gamma_neg}, gamma_pos={self.gamma_pos}, clip={self.clip}, reduction={self.reduction!r}"


def criterion_for(loss: str, *, focal_gamma: float) -> tuple[type[nn.Module], dict]:
    """The criterion class and its extra keyword arguments for an estimator's ``loss``.

    Parameters
    ----------
    loss : {"bce", "focal", "asymmetric"}
    focal_gamma : float
        Used with ``"focal"`` only.

    Returns
    -------
    criterion : type
        ``torch.nn.BCEWithLogitsLoss``, :class:`FocalLoss` or :class:`AsymmetricLoss`.
    kwargs : dict
        ``{"gamma": focal_gamma}`` for the focal loss, else empty; ``pos_weight`` is
        added by the caller.
    """
    if loss == "focal":
        return FocalLoss, {"gamma": float(focal_gamma)}
    if loss == "asymmetric":
        return AsymmetricLoss, {}
    return nn.BCEWithLogitsLoss, {}


def criterion_for_layout(layout, loss: str, *, focal_gamma: float) -> tuple[type[nn.Module], dict]:
    """The criterion of a classifier whose targets are laid out as ``layout``.

    An all-binary layout (multi-label) takes :func:`criterion_for`, whose loss is the
    mean over every (sample, label) pair; a layout with softmax groups takes
    :class:`MultiHeadLoss`, the mean over samples of the summed per-target losses
    (the scale at which one cross-entropy and one BCE term weigh the same).

    Parameters
    ----------
    layout : sktext.targets.OutputLayout
    loss : {"bce", "focal", "asymmetric"}
        ``"asymmetric"`` only for an all-binary layout.
    focal_gamma : float

    Returns
    -------
    criterion : type
    kwargs : dict
    """
    if layout.is_multilabel:
        return criterion_for(loss, focal_gamma=focal_gamma)
    if loss == "asymmetric":
        raise ValueError(
            "loss='asymmetric' is made for many 0/1 labels; these targets include categorical "
            "columns (softmax heads). Use loss='bce' or loss='focal' for them."
        )
    return MultiHeadLoss, {
        "binary_logits": layout.binary_logits.tolist(),
        "binary_targets": layout.binary_targets.tolist(),
        "groups": layout.softmax_groups,
        "gamma": float(focal_gamma) if loss == "focal" else None,
    }


#: The values of the regressors' ``loss`` parameter.
REGRESSION_LOSSES = ("mse", "huber")


def bounded_output(
    outputs: torch.Tensor, low: torch.Tensor | None = None, high: torch.Tensor | None = None
) -> torch.Tensor:
    """The regressors' prediction from the head's raw outputs.

    Without bounds the raw outputs are the prediction; with them it is the scaled
    sigmoid ``low + (high - low) * sigmoid(outputs)``, strictly inside ``(low, high)``.
    """
    if low is None or high is None:
        return outputs
    return low + (high - low) * torch.sigmoid(outputs)


class RegressionLoss(nn.Module):
    """Mean squared error or Huber loss of the (optionally bounded) head outputs.

    The regressors feed it standardised targets (see
    :class:`~sktext.regression.TextRegressorBase`), so Huber's ``delta=1`` is one
    standard deviation of each target, and every target weighs the same.

    Parameters
    ----------
    kind : {"mse", "huber"}, default="mse"
    low, high : Tensor of shape (n_outputs,), optional
        Bounds, in the targets' (standardised) units, of the scaled sigmoid applied
        to the outputs (:func:`bounded_output`); None for unbounded outputs.
    delta : float, default=1.0
        Huber's threshold between the quadratic and the linear part.
    reduction : {"mean", "none"}, default="mean"
        The mean over samples and targets, or the loss of each element.

    Examples
    --------
    >>> loss = RegressionLoss("mse")
    >>> float(loss(torch.tensor([[1.0]]), torch.tensor([[3.0]])))
    4.0
    """

    def __init__(
        self,
        kind: str = "mse",
        low: torch.Tensor | None = None,
        high: torch.Tensor | None = None,
        delta: float = 1.0,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if kind not in REGRESSION_LOSSES:
            raise ValueError(f"kind must be 'mse' or 'huber', got {kind!r}.")
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}.")
        self.kind = kind
        self.reduction = reduction
        self.delta = float(delta)
        self.register_buffer("low", None if low is None else torch.as_tensor(low, dtype=torch.float32))
        self.register_buffer("high", None if high is None else torch.as_tensor(high, dtype=torch.float32))

    def forward(self, outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean loss of ``outputs`` against ``targets`` of the same shape (each with ``reduction="none"``)."""
        predicted = bounded_output(outputs, self.low, self.high)
        targets = targets.to(predicted.dtype)
        if self.kind == "huber":
            return F.huber_loss(predicted, targets, delta=self.delta, reduction=self.reduction)
        return F.mse_loss(predicted, targets, reduction=self.reduction)

    def extra_repr(self) -> str:
        return f"kind={self.kind!r}, bounded={self.low is not None}"


class MultiHeadLoss(nn.Module):
    """Sigmoid and softmax heads in one output layer: summed BCE and cross-entropy.

    The logits hold one column per binary target and one group of columns per
    categorical target (see :class:`sktext.targets.OutputLayout`); the targets hold
    one column per target: 0/1 for a binary one, the class index for a categorical
    one. Per sample, the loss is the sum of the binary cross-entropy (or, with
    ``gamma``, the focal loss) of every binary target and the cross-entropy of every
    softmax group; it is averaged over the samples.

    Parameters
    ----------
    binary_logits, binary_targets : sequence of int
        Logit columns of the binary targets and their target columns.
    groups : sequence of (int, int, int)
        ``(target column, first logit, end logit)`` of every softmax group.
    pos_weight : Tensor of shape (n_binary,), optional
        Weight of the positive term of each binary target.
    gamma : float or None, default=None
        Focal-loss focusing parameter for the binary targets; None is plain BCE.
        The softmax groups always use cross-entropy.
    reduction : {"mean", "none"}, default="mean"
        The mean over samples, or one summed loss per sample.

    Examples
    --------
    >>> loss = MultiHeadLoss(binary_logits=[0], binary_targets=[0], groups=[(1, 1, 3)])
    >>> round(float(loss(torch.zeros(1, 3), torch.tensor([[1.0, 1.0]]))), 4)  # log 2 + log 2
    1.3863
    """

    def __init__(
        self,
        binary_logits=(),
        binary_targets=(),
        groups=(),
        pos_weight: torch.Tensor | None = None,
        gamma: float | None = None,
        reduction: str = "mean",
    ) -> None:
        super().__init__()
        if reduction not in ("mean", "none"):
            raise ValueError(f"reduction must be 'mean' or 'none', got {reduction!r}.")
        self.reduction = reduction
        self.binary_logits = [int(i) for i in binary_logits]
        self.binary_targets = [int(i) for i in binary_targets]
        self.groups = [tuple(int(v) for v in group) for group in groups]
        self.binary = (
            FocalLoss(gamma=gamma, pos_weight=pos_weight, reduction="none")
            if gamma is not None
            else nn.BCEWithLogitsLoss(pos_weight=pos_weight, reduction="none")
        )

    def forward(self, logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The mean over samples of the summed per-target losses (per sample with ``reduction="none"``)."""
        total = logits.new_zeros(logits.shape[0])
        if self.binary_logits:
            binary = self.binary(logits[:, self.binary_logits], targets[:, self.binary_targets].to(logits.dtype))
            total = total + binary.sum(dim=1)
        for column, start, stop in self.groups:
            total = total + F.cross_entropy(logits[:, start:stop], targets[:, column].long(), reduction="none")
        return total.mean() if self.reduction == "mean" else total

    def extra_repr(self) -> str:
        return f"n_binary={len(self.binary_logits)}, n_softmax_groups={len(self.groups)}"
