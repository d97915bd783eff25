"""Data-parallel training with ``torch.distributed``: every process trains on a shard of every batch.

Launch the same script once per device (``torchrun --nproc_per_node 4 train.py``) and
join the process group before fitting::

    from sktext.distributed import init_from_environment, is_main_process

    init_from_environment()            # NCCL on GPUs (one per process), gloo on CPU
    clf = TransformerMultiLabelClassifier(batch_size=64).fit(texts, Y)
    if is_main_process():
        clf.save("model")

While a process group of two or more processes is initialized, a fit is
data-parallel (nothing to set on the estimator, so it still clones, pickles and
runs inside ``GridSearchCV``, every process running the same search):

- rank 0's random seed, and its initial weights, are sent to every process, so all
  of them draw the same validation split and the same sequence of batches;
- each process runs forward and backward on its shard (a contiguous slice) of every
  ``batch_size`` batch, so ``batch_size`` stays the *global* batch size;
- the gradients are summed over the processes, each shard's loss weighted by its share
  of the batch, which gives the gradient of the whole batch: the fit follows a
  one-process fit with the same ``batch_size`` (up to floating-point rounding, and
  dropout, whose masks differ per process);
- validation batches are sharded the same way and their losses summed, so every process
  takes the same early-stopping decision;
- at the end, rank 0's module (weights and buffers such as batch-norm statistics) is
  sent to every process, so they all hold the same fitted model.

Everything before and after the training loop (tokenization, the language-model stage
of ULMFiT, threshold tuning) runs in full on every process. Only one process should
write the result: :func:`is_main_process`. ``sktext fit`` does all of this by itself
when started by ``torchrun``.

The functions are no-ops (or report one process) when no process group is
initialized, so the core calls them unconditionally.
"""

from __future__ import annotations

import os
from collections.abc import Iterable

import torch

__all__ = [
    "all_reduce_gradients",
    "broadcast_module",
    "broadcast_seed",
    "init_from_environment",
    "is_main_process",
    "shard_slice",
    "sum_across_processes",
    "world",
]


def _active() -> bool:
    return (
        torch.distributed.is_available()
        and torch.distributed.is_initialized()
        and torch.distributed.get_world_size() > 1
    )


def available_cores() -> int:
    """CPU cores this process may run on (its affinity where the OS tells it, else ``os.cpu_count()``)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def world() -> tuple[int, int]:
    """``(rank, world_size)`` of this process; ``(0, 1)`` when not data-parallel."""
    if not _active():
        return 0, 1
    return torch.distributed.get_rank(), torch.distributed.get_world_size()


def is_main_process() -> bool:
    """True on rank 0, or when not data-parallel: the one process that should save."""
    return world()[0] == 0


def launched_by_torchrun() -> bool:
    """Whether ``torchrun`` (``torch.distributed.run``) started this process with others."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1 and "LOCAL_RANK" in os.environ


def local_cuda_index() -> int | None:
    """The GPU of this process when data-parallel on CUDA (its ``LOCAL_RANK``), else None."""
    if not _active() or not torch.cuda.is_available():
        return None
    return int(os.environ.get("LOCAL_RANK", torch.cuda.current_device()))


def init_from_environment(backend: str | None = None) -> bool:
    """Join the process group that ``torchrun`` describes in the environment.

    Parameters
    ----------
    backend : {"nccl", "gloo"}, optional
        Default: ``"nccl"`` where CUDA is available (each process then uses the GPU
        ``LOCAL_RANK``), else ``"gloo"``.

    Returns
    -------
    data_parallel : bool
        True when this process is one of several; False when it runs alone (no
        ``WORLD_SIZE`` above 1 in the environment), in which case nothing is done.
    """
    if not torch.distributed.is_available():
        return False
    if torch.distributed.is_initialized():
        return _active()
    if int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return False
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
    if missing:
        raise RuntimeError(
            f"WORLD_SIZE is {os.environ['WORLD_SIZE']} but {', '.join(missing)} is not set; start "
            "the script with torchrun (python -m torch.distributed.run --nproc_per_node N ...), "
            "which sets them."
        )
    if backend is None:
        backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group(backend)
    return True


def _collective_device() -> torch.device:
    """Where tensors for a collective must live: the process's GPU under NCCL, else CPU."""
    if torch.distributed.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return torch.device("cpu")


def broadcast_seed(seed: int) -> int:
    """Rank 0's ``seed`` on every process (``seed`` itself when not data-parallel)."""
    if not _active():
        return seed
    tensor = torch.tensor([seed], dtype=torch.int64, device=_collective_device())
    torch.distributed.broadcast(tensor, src=0)
    return int(tensor.item())


def shard_slice(n_rows: int) -> slice:
    """This process's contiguous share of ``n_rows`` rows (all of them when not data-parallel)."""
    rank, world_size = world()
    return slice(n_rows * rank // world_size, n_rows * (rank + 1) // world_size)


def sum_across_processes(value: torch.Tensor) -> torch.Tensor:
    """The sum of ``value`` (a tensor) over the processes; ``value`` when not data-parallel."""
    if not _active():
        return value
    reduced = value.detach().to(_collective_device(), dtype=torch.float32).clone()
    torch.distributed.all_reduce(reduced)
    return reduced.to(value.device)


def _flat_groups(tensors: list[torch.Tensor]) -> dict[tuple, list[int]]:
    groups: dict[tuple, list[int]] = {}
    for index, tensor in enumerate(tensors):
        groups.setdefault((tensor.dtype, tensor.device), []).append(index)
    return groups


def all_reduce_gradients(parameters: Iterable[torch.nn.Parameter]) -> None:
    """Sum every parameter's gradient over the processes, in one flat message per dtype.

    A parameter without a gradient on this process (an empty shard) counts as zeros, so
    every process sends the same layout and ends with the same gradients.
    """
    if not _active():
        return
    parameters = [parameter for parameter in parameters if parameter.requires_grad]
    gradients = [p.grad if p.grad is not None else torch.zeros_like(p) for p in parameters]
    device = _collective_device()
    for indices in _flat_groups(gradients).values():
        flat = torch.cat([gradients[i].reshape(-1) for i in indices]).to(device)
        torch.distributed.all_reduce(flat)
        offset = 0
        for i in indices:
            size = parameters[i].numel()
            parameters[i].grad = flat[offset : offset + size].view_as(parameters[i]).to(parameters[i].device)
            offset += size


def broadcast_module(module: torch.nn.Module) -> None:
    """Overwrite ``module``'s parameters and buffers with rank 0's (no-op when not data-parallel)."""
    if not _active():
        return
    tensors = [t for t in (*module.parameters(), *module.buffers()) if t.dtype != torch.bool]
    device = _collective_device()
    with torch.no_grad():
        for indices in _flat_groups(tensors).values():
            flat = torch.cat([tensors[i].detach().reshape(-1) for i in indices]).to(device)
            torch.distributed.broadcast(flat, src=0)
            offset = 0
            for i in indices:
                size = tensors[i].numel()
                tensors[i].copy_(flat[offset : offset + size].view_as(tensors[i]))
                offset += size
