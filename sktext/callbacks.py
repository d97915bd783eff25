"""The training callbacks sktext adds to skorch's: schedule, unfreezing, reliability.

- :func:`one_cycle`: a ``skorch.callbacks.LRScheduler`` policy (warm-up then cosine or
  linear decay, optionally cycling momentum) whose peak is each parameter group's rate.
- :class:`TrainableLayerGroups`: gradual unfreezing, one training run per stage: the
  last ``n_trainable`` layer groups train during the run, and every parameter gets its
  ``requires_grad`` back at the end.
- :class:`FiniteLossGuard`: stops a run whose loss is no longer finite, with the fix.
- :class:`ValidationScore`: a score of the validation part's logits after each epoch
  (the classifiers' blended, threshold-tuned F1), for early stopping to monitor.
- :class:`EarlyStopping`: skorch's, ending the run with
  :class:`~sktext.reliability.StopTraining` instead of a ``KeyboardInterrupt``, so that
  a real Ctrl-C is never mistaken for it, and only once the epoch's other callbacks
  (the user's too) have seen the epoch: :class:`StopWhenRequested` raises it.
- :class:`TrainingCheckpoint`: writes the training state at the end of every epoch
  and, when its file exists, resumes the run from it.
- :class:`TrainingTimeEstimate`: at ``verbose >= 1``, times a few training steps once
  they are warm and prints how long the run's remaining steps will take.

Clipping and progress bars are skorch's own callbacks; ``net.make_callbacks``
assembles all of them for a run.
"""

from __future__ import annotations

import io
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from skorch.callbacks import Callback
from skorch.callbacks import EarlyStopping as _SkorchEarlyStopping
from skorch.history import History
from torch.optim.lr_scheduler import OneCycleLR

from .distributed import is_main_process
from .models.awd_lstm import layer_groups, set_trainable_groups
from .reliability import StopTraining, TrainingDivergedError

__all__ = [
    "EarlyStopping",
    "FiniteLossGuard",
    "StopWhenRequested",
    "TrainableLayerGroups",
    "TrainingCheckpoint",
    "ValidationScore",
    "one_cycle",
]


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


class FiniteLossGuard(Callback):
    """Stop training, with the fix, as soon as a batch's loss is NaN or infinite.

    A diverging run (a learning rate far too high, targets of another scale) would
    otherwise go on with NaN weights and end in a model that predicts NaN.

    Parameters
    ----------
    parameter : str, default="lr"
        The estimator parameter that sets the learning rate, named in the message.
    value : float, optional
        Its value; by default the net's ``lr``.
    """

    def __init__(self, parameter: str = "lr", value: float | None = None) -> None:
        self.parameter = parameter
        self.value = value

    def on_batch_end(self, net, batch=None, training=None, loss=None, **kwargs):
        if loss is None:
            return
        value = float(loss.detach()) if isinstance(loss, torch.Tensor) else float(loss)
        if math.isfinite(value):
            return
        lr = net.lr if self.value is None else self.value
        which = "training" if training else "validation"
        raise TrainingDivergedError(
            f"Training diverged: the {which} loss became {value} in epoch "
            f"{len(net.history)} with {self.parameter}={lr:g}. Try a lower learning rate "
            f"(e.g. {self.parameter}={lr / 10:g}), keep gradient_clip_norm set (e.g. 1.0), "
            "and check that the targets hold what you expect."
        )


class ValidationScore(Callback):
    """A score of the validation part after each epoch, recorded in the history as ``name``.

    The network's validation logits are collected as skorch computes them for the
    validation loss (no second pass; they stay on the device until the epoch ends), then
    handed to ``score``, whose value early stopping can monitor.

    Parameters
    ----------
    score : callable
        ``score(logits) -> float`` for an ndarray of the validation texts' logits, in the
        order the validation part holds them; higher is better.
    name : str, default="valid_f1"
    """

    def __init__(self, score, name: str = "valid_f1") -> None:
        self.score = score
        self.name = name

    def on_epoch_begin(self, net, **kwargs):
        self.outputs_ = []

    def on_batch_end(self, net, batch=None, training=None, **kwargs):
        y_pred = kwargs.get("y_pred")
        if not training and y_pred is not None:
            self.outputs_.append(y_pred.detach())

    def on_epoch_end(self, net, **kwargs):
        outputs, self.outputs_ = self.outputs_, []
        if outputs:
            logits = torch.cat(outputs).float().cpu().numpy()
            net.history.record(self.name, float(self.score(logits)))


class EarlyStopping(_SkorchEarlyStopping):
    """skorch's ``EarlyStopping``, asking for the run to end rather than raising ``KeyboardInterrupt``.

    When patience runs out it sets ``stop_requested_``; :class:`StopWhenRequested`,
    later in the callback list, then ends the run with ``StopTraining``, so that the
    callbacks in between (the user's loggers) still see the last epoch.
    """

    def on_train_begin(self, net, **kwargs):
        super().on_train_begin(net, **kwargs)
        self.stop_requested_ = False

    def on_epoch_end(self, net, **kwargs):
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt:
            if self.misses_ != self.patience:
                raise
            self.stop_requested_ = True


class StopWhenRequested(Callback):
    """End the run with ``StopTraining`` at the end of an epoch where a callback set ``stop_requested_``."""

    def on_epoch_end(self, net, **kwargs):
        if any(getattr(callback, "stop_requested_", False) for _, callback in net.callbacks_):
            raise StopTraining


#: What a checkpoint file holds (a dict of tensors and plain values, read with weights_only=True).
CHECKPOINT_VERSION = 1


class TrainingCheckpoint(Callback):
    """Save the whole training state after every epoch; resume from it at the next start.

    The file (written to a temporary name and renamed, so a crash mid-write keeps the
    previous one) holds the module's weights, the optimizer's and the schedule's state,
    the early-stopping state (with its best weights so far), the history and torch's
    random state. When a run starts and the file exists, all of it is restored and the
    run trains only the epochs that remain, so an interrupted fit, called again, ends
    where an uninterrupted one would. A finished run is marked complete; starting it
    again restores its final weights and trains nothing.

    Put it last in the callback list: it restores what the schedule and early stopping
    reset when a run begins. Data-parallel, only rank 0 writes the file (every process
    holds the same weights and optimizer state), and every process resumes from it.

    Parameters
    ----------
    path : path-like
        The checkpoint file.
    """

    def __init__(self, path) -> None:
        self.path = path

    def _callback(self, net, kind: type):
        for _, callback in net.callbacks_:
            if isinstance(callback, kind):
                return callback
        return None

    def _state(self, net, *, complete: bool) -> dict:
        from skorch.callbacks import LRScheduler

        schedule = self._callback(net, LRScheduler)
        stopping = self._callback(net, _SkorchEarlyStopping)
        state = {
            "version": CHECKPOINT_VERSION,
            "complete": complete,
            "epochs": len(net.history),
            "max_epochs": int(self.max_epochs_),
            "module": net.module_.state_dict(),
            "optimizer": net.optimizer_.state_dict(),
            "history": json.dumps(list(net.history), default=float),
            "rng_cpu": torch.get_rng_state(),
        }
        sampler = getattr(net, "train_batch_sampler_", None)
        generator = getattr(sampler, "generator", None)
        if generator is not None:  # the batch order of the epochs to come
            state["batch_order"] = json.dumps(generator.bit_generator.state)
        if getattr(sampler, "pending", None) is not None:  # epochs of a fixed number of steps
            state["pending_batches"] = json.dumps(sampler.pending)
        if torch.device(net.device).type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(torch.device(net.device))
        if schedule is not None and getattr(schedule, "lr_scheduler_", None) is not None:
            state["schedule"] = schedule.lr_scheduler_.state_dict()
            state["schedule_batch_idx"] = int(schedule.batch_idx_)
        if stopping is not None:
            state["early_stopping"] = {
                "misses": int(stopping.misses_),
                "threshold": float(stopping.dynamic_threshold_),
                "best_epoch": int(stopping.best_epoch_),
                "best_weights": stopping.best_model_weights_,
            }
        return state

    def _write(self, state: dict) -> None:
        if not is_main_process():  # data-parallel: every process holds the same state
            return
        path = Path(self.path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
        with open(temporary, "wb") as handle:
            handle.write(buffer.getvalue())
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)

    def read(self) -> dict | None:
        """The checkpoint's contents, or None when there is none yet."""
        path = Path(self.path)
        if not path.is_file():
            return None
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # a damaged file: say which, and how to go on
            raise ValueError(
                f"The checkpoint {path} cannot be read ({type(error).__name__}: {error}); delete "
                "it to start this run afresh."
            ) from None
        if not isinstance(state, dict) or state.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"{path} is not a checkpoint this sktext wrote; delete it to start afresh.")
        return state

    def on_train_begin(self, net, **kwargs):
        self.max_epochs_ = net.max_epochs
        self.batch_order_ = None
        self.pending_batches_ = None
        state = self.read()
        if state is None:
            return
        self.batch_order_ = state.get("batch_order")
        self.pending_batches_ = state.get("pending_batches")
        from skorch.callbacks import LRScheduler

        net.module_.load_state_dict(state["module"])
        net.optimizer_.load_state_dict(state["optimizer"])
        net.history = History(json.loads(state["history"]))
        torch.set_rng_state(state["rng_cpu"])
        if "rng_cuda" in state and torch.device(net.device).type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], torch.device(net.device))
        schedule = self._callback(net, LRScheduler)
        if schedule is not None and "schedule" in state:
            schedule.lr_scheduler_.load_state_dict(state["schedule"])
            schedule.batch_idx_ = state["schedule_batch_idx"]
        stopping = self._callback(net, _SkorchEarlyStopping)
        if stopping is not None and "early_stopping" in state:
            saved = state["early_stopping"]
            stopping.misses_ = saved["misses"]
            stopping.dynamic_threshold_ = saved["threshold"]
            stopping.best_epoch_ = saved["best_epoch"]
            stopping.best_model_weights_ = saved["best_weights"]
        # fit_loop reads max_epochs after this: train only the epochs that remain.
        net.max_epochs = 0 if state["complete"] else max(0, self.max_epochs_ - state["epochs"])

    def on_epoch_begin(self, net, **kwargs):
        # The training loader exists only now: give its sampler the saved batch order.
        sampler = getattr(net, "train_batch_sampler_", None)
        if self.batch_order_ is not None and getattr(sampler, "generator", None) is not None:
            sampler.generator.bit_generator.state = json.loads(self.batch_order_)
        if self.pending_batches_ is not None and getattr(sampler, "pending", None) is not None:
            sampler.pending = json.loads(self.pending_batches_)
        self.batch_order_ = self.pending_batches_ = None

    def on_epoch_end(self, net, **kwargs):
        self._write(self._state(net, complete=False))

    def on_train_end(self, net, **kwargs):
        self._write(self._state(net, complete=True))
        net.max_epochs = self.max_epochs_


def format_seconds(seconds: float) -> str:
    """``42 s``, ``7.5 min`` or ``2.1 h``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class TrainingTimeEstimate(Callback):
    """Print how long a run's training will take, from a few timed steps.

    The first ``skip_steps`` training steps are not timed (kernels are chosen and
    memory is laid out then); the next ``timed_steps`` are, and their mean times the
    steps left is printed once. Runs of fewer steps print nothing.

    Parameters
    ----------
    total_steps : int
        Optimizer steps the run is planned for (early stopping may end it sooner).
    skip_steps : int, default=2
    timed_steps : int, default=5
    """

    def __init__(self, total_steps: int, skip_steps: int = 2, timed_steps: int = 5) -> None:
        self.total_steps = total_steps
        self.skip_steps = skip_steps
        self.timed_steps = timed_steps

    def on_train_begin(self, net, **kwargs) -> None:
        self.steps_, self.started_, self.reported_ = 0, None, False

    def on_batch_end(self, net, training=None, **kwargs) -> None:
        if not training or self.reported_:
            return
        self.steps_ += 1
        if self.steps_ == self.skip_steps:
            self.started_ = time.perf_counter()
        elif self.steps_ == self.skip_steps + self.timed_steps and self.started_ is not None:
            per_step = (time.perf_counter() - self.started_) / self.timed_steps
            left = max(self.total_steps - self.steps_, 0)
            from tqdm import tqdm

            tqdm.write(  # above the progress bar, not inside its line
                f"Training: {per_step:.2f} s a step over {self.timed_steps} timed steps; the {left} steps "
                f"left take about {format_seconds(per_step * left)} (plus a validation pass each epoch; "
                "early stopping may end the run sooner)."
            )
            self.reported_ = True
