"""Learning-rate schedules (as skorch ``LRScheduler`` policies) and training callbacks."""

from __future__ import annotations

import torch
from torch.optim.lr_scheduler import OneCycleLR


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
