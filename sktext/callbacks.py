"""The training callbacks sktext adds to skorch's: the one-cycle schedule, layer-group freezing.

- :func:`one_cycle`: a ``skorch.callbacks.LRScheduler`` policy (warm-up then cosine or
  linear decay, optionally cycling momentum) whose peak is each parameter group's rate.
- :class:`TrainableLayerGroups`: gradual unfreezing, one training run per stage: the
  last ``n_trainable`` layer groups train during the run, and every parameter gets its
  ``requires_grad`` back at the end.

Clipping, early stopping and progress bars are skorch's own callbacks; ``net.make_callbacks``
assembles all of them for a run.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from skorch.callbacks import Callback
from torch.optim.lr_scheduler import OneCycleLR

from .models.awd_lstm import layer_groups, set_trainable_groups

__all__ = ["TrainableLayerGroups", "one_cycle"]


def one_cycle(
    optimizer: torch.optim.Optimizer,
    *,
    total_steps: int,
    warmup_fraction: float = 0.25,
    anneal_strategy: str = "cos",
    cycle_momentum: bool = False,
    momentum_range: tuple[float, float] = (0.7, 0.8),
    div_factor: float = 25.0,
    final_div_factor: float = 1e4,
    last_epoch: int = -1,
) -> OneCycleLR:
    """A one-cycle schedule whose peak rate is each parameter group's own ``lr``.

    Reading the peaks from the groups keeps discriminative learning rates (a higher
    rate for the head, ``lr / 2.6**k`` for lower layers) through warm-up and decay.
    Use it as ``skorch.callbacks.LRScheduler(policy=one_cycle, step_every="batch",
    total_steps=...)``. With ``anneal_strategy="linear"`` and no momentum cycle it is
    the usual transformer warm-up plus linear decay; with ``cycle_momentum=True`` it
    also cycles momentum (Adam's beta1) between ``momentum_range`` as in ULMFiT.

    Parameters
    ----------
    optimizer : torch.optim.Optimizer
    total_steps : int
        Optimizer steps in the whole cycle.
    warmup_fraction : float, default=0.25
        Share of the steps spent raising the rate.
    anneal_strategy : {"cos", "linear"}, default="cos"
    cycle_momentum : bool, default=False
    momentum_range : (float, float), default=(0.7, 0.8)
        Lowest and highest momentum; momentum is lowest at the peak rate.
    div_factor : float, default=25
        The starting rate is the peak divided by this.
    final_div_factor : float, default=1e4
        The final rate is the starting rate divided by this.
    last_epoch : int, default=-1
        Ignored: every call starts a new cycle (skorch passes it on resumed training).

    Returns
    -------
    scheduler : torch.optim.lr_scheduler.OneCycleLR
    """
    peaks = [group["lr"] for group in optimizer.param_groups]
    total_steps = max(int(total_steps), 2)
    # OneCycleLR divides by (warmup steps - 1): keep the warm-up off exactly one step.
    if abs(warmup_fraction * total_steps - 1) < 1e-9:
        warmup_fraction = 1.5 / total_steps
    return OneCycleLR(
        optimizer,
        max_lr=peaks,
        total_steps=total_steps,
        pct_start=warmup_fraction,
        anneal_strategy=anneal_strategy,
        cycle_momentum=cycle_momentum,
        base_momentum=momentum_range[0],
        max_momentum=momentum_range[1],
        div_factor=div_factor,
        final_div_factor=final_div_factor,
    )


class TrainableLayerGroups(Callback):
    """Train only the last ``n_trainable`` layer groups during a run (ULMFiT's unfreezing).

    At the start of training it freezes every layer group but the last
    ``n_trainable`` (``requires_grad``); at the end it gives every parameter back the
    ``requires_grad`` it had at the start, so an encoder frozen for good
    (``freeze_encoder=True``) stays frozen and the others train again. The optimizer
    is built before training starts, from the parameters trainable then, so frozen
    groups stay in it and get no gradient: AdamW skips them, weight decay included.
    A stage is a run: a new net (the classifiers), or ``partial_fit`` after
    ``set_params(callbacks__trainable_groups__n_trainable=...)`` (the language model).

    skorch's ``Freezer`` / ``Unfreezer`` act at epoch boundaries of one run and only
    one way; stages here are runs with their own schedules, and need both ways.

    Parameters
    ----------
    n_trainable : int or None, default=None
        Layer groups that train, counted from the output; None trains all.
    groups : callable, default=sktext.models.awd_lstm.layer_groups
        Splits the module into layer groups (lists of parameters), input first.
    """

    def __init__(self, n_trainable: int | None = None, groups: Callable = layer_groups) -> None:
        self.n_trainable = n_trainable
        self.groups = groups

    def on_train_begin(self, net, **kwargs) -> None:
        module = net.module_
        self.requires_grad_ = [parameter.requires_grad for parameter in module.parameters()]
        set_trainable_groups(module, self.n_trainable, self.groups)

    def on_train_end(self, net, **kwargs) -> None:
        for parameter, requires_grad in zip(net.module_.parameters(), self.requires_grad_):
            parameter.requires_grad_(requires_grad)
