import numpy as np
import pytest
import torch

from sktext.callbacks import one_cycle


def _optimizer(lrs):
    parameters = [torch.nn.Parameter(torch.zeros(1)) for _ in lrs]
    return torch.optim.AdamW([{"params": [p], "lr": lr} for p, lr in zip(parameters, lrs)])


def test_peaks_are_each_groups_own_rate():
    optimizer = _optimizer([1e-3, 1e-2])
    scheduler = one_cycle(optimizer, total_steps=20, warmup_fraction=0.25, anneal_strategy="linear")
    seen = []
    for _ in range(20):
        seen.append([g["lr"] for g in optimizer.param_groups])
        optimizer.step()
        if len(seen) < 20:
            scheduler.step()
    seen = np.array(seen)
    np.testing.assert_allclose(seen.max(axis=0), [1e-3, 1e-2], rtol=1e-6)
    np.testing.assert_allclose(seen[0], [1e-3 / 25, 1e-2 / 25], rtol=1e-6)
    assert (seen[-1] < seen[0]).all()


@pytest.mark.parametrize("total_steps, fraction", [(4, 0.25), (10, 0.1), (2, 0.5)])
def test_a_one_step_warm_up_does_not_divide_by_zero(total_steps, fraction):
    optimizer = _optimizer([1e-2])
    scheduler = one_cycle(optimizer, total_steps=total_steps, warmup_fraction=fraction)
    for _ in range(total_steps - 1):
        optimizer.step()
        scheduler.step()


def test_momentum_cycles_against_the_rate():
    optimizer = _optimizer([1e-2])
    scheduler = one_cycle(optimizer, total_steps=40, warmup_fraction=0.25, cycle_momentum=True)
    betas = []
    for _ in range(39):
        betas.append(optimizer.param_groups[0]["betas"][0])
        optimizer.step()
        scheduler.step()
    assert betas[0] == pytest.approx(0.8) and min(betas) == pytest.approx(0.7, abs=1e-3)
    assert betas[-1] > 0.79
