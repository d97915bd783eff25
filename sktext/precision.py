"""The ``precision`` parameter: which number format training and prediction compute in.

Every sktext estimator takes ``precision="auto"``, ``"fp32"`` or ``"bf16"``:

- ``"fp32"``: plain float32 everywhere;
- ``"bf16"``: bfloat16 mixed precision: training under ``torch.autocast`` (weights,
  optimizer state and the loss stay float32, matrix products run in bf16); prediction
  under autocast too, or, for the transformer estimators on a CPU, with a bf16 copy of
  the weights (layer norms and softmax then run in bf16 as well, and no per-layer
  casts are paid);
- ``"auto"``: bf16 where the hardware runs it fast, fp32 elsewhere. Fast means a CUDA
  device that supports bf16, or a CPU whose instruction set has bf16 arithmetic
  (AVX-512 BF16 or AMX, read from the CPU's feature flags by :func:`cpu_has_fast_bf16`,
  not guessed from its vendor or model). Without them bf16 is emulated on a CPU and
  slower than fp32, so ``"auto"`` stays fp32 there.

Measured on the bundled model (``benchmarks/inference.py``, README there), on two
2-core AMD EPYC machines with AVX-512 BF16: bf16 costs no measurable F1 at equal
epochs, in training (paired micro-F1 +0.0003 and -0.0002, three seeds on each) and in
prediction (within 0.001). It predicts 2.6-2.9x as fast as a plain fp32 loop and trains
1.7x (one machine) to 2.6x (the other) as fast as fp32, so ``"auto"`` picks it there.

The fitted model keeps float32 weights whatever the precision, so a model fitted in
bf16 saves, loads and predicts at fp32 on any machine.
"""

from __future__ import annotations

import contextlib
import copy
import functools
from pathlib import Path

import torch
from torch import nn

from .validation import Options, check_parameter

__all__ = [
    "PRECISIONS",
    "PRECISION_CONSTRAINT",
    "PrecisionMixin",
    "autocast",
    "check_precision",
    "cpu_has_fast_bf16",
    "resolve_precision",
]

PRECISIONS = ("auto", "fp32", "bf16")
_DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16}
# CPU feature flags (as Linux names them in /proc/cpuinfo) that make bf16 arithmetic fast.
FAST_BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
_CPUINFO = Path("/proc/cpuinfo")

#: The declared constraint of every estimator's ``precision`` (see :mod:`sktext.validation`);
#: the hint answers the usual misspellings, as the message cannot depend on the value.
PRECISION_CONSTRAINT = Options(
    PRECISIONS,
    hint=(
        "'auto' is bf16 where the device runs it fast, else fp32; write 'fp32' for float32 "
        "and 'bf16' for bfloat16, in lower case; float16 is not offered, its narrow range "
        "overflows in training: use 'bf16'"
    ),
)


def check_precision(precision, owner: str = "resolve_precision") -> None:
    """Raise sktext's parameter ValueError (naming the choices) unless ``precision`` is one of them."""
    check_parameter(owner, "precision", precision, [PRECISION_CONSTRAINT])


def _cpu_fields_from_proc() -> dict[str, str] | None:
    """``/proc/cpuinfo`` as ``{field: value}``, each field's first occurrence (the first CPU's).

    None where there is no such file. The benchmarks record the CPU from it too.
    """
    try:
        text = _CPUINFO.read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, separator, value = line.partition(":")
        if separator:
            fields.setdefault(key.strip(), value.strip())
    return fields


def _cpu_flags_from_proc() -> set[str] | None:
    """The feature flags of the first CPU in ``/proc/cpuinfo``; None where there is no such file."""
    fields = _cpu_fields_from_proc()
    if fields is None:
        return None
    return set(fields.get("flags", fields.get("Features", "")).split())


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 arithmetic in its instruction set (AVX-512 BF16 or AMX).

    Asks torch's own CPU feature query where this torch has one
    (``torch.cpu._is_avx512_bf16_supported``, ``torch.cpu._is_amx_tile_supported``),
    else the ``avx512_bf16`` / ``amx_bf16`` flags of ``/proc/cpuinfo``. Any other
    CPU (AVX2, plain AVX-512, ARM without those flags) answers False: there torch
    emulates bf16, slower than fp32.

    Returns
    -------
    bool
    """
    queries = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if all(callable(query) for query in queries):
        try:
            return any(bool(query()) for query in queries)
        except RuntimeError:
            pass
    flags = _cpu_flags_from_proc()
    return bool(flags) and any(flag in flags for flag in FAST_BF16_CPU_FLAGS)


def _device_has_fast_bf16(device: torch.device) -> bool:
    if device.type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        return cpu_has_fast_bf16()
    return False


def resolve_precision(precision: str, device: torch.device | str, *, auto_on_cpu: bool = True) -> torch.dtype:
    """The compute dtype ``precision`` means on ``device``: ``torch.float32`` or ``torch.bfloat16``.

    Parameters
    ----------
    precision : {"auto", "fp32", "bf16"}
    device : torch.device or str
    auto_on_cpu : bool, default=True
        Whether ``"auto"`` may choose bf16 on a CPU (a model family whose bf16 cost was
        not measured passes False: ``"auto"`` is then bf16 on CUDA only).

    Returns
    -------
    torch.dtype
    """
    check_precision(precision)
    if precision != "auto":
        return _DTYPES[precision]
    device = torch.device(device)
    if device.type == "cpu" and not auto_on_cpu:
        return torch.float32
    return torch.bfloat16 if _device_has_fast_bf16(device) else torch.float32


def autocast(device: torch.device | str, dtype: torch.dtype | None = None):
    """bf16 autocast on ``device`` when ``dtype`` is bf16, else a no-op context.

    ``dtype=None`` keeps the behaviour of sktext before ``precision`` existed: bf16
    on CUDA, nothing elsewhere.
    """
    device = torch.device(device)
    if dtype is None:
        dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    if dtype == torch.float32 or device.type not in ("cpu", "cuda"):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


class PrecisionMixin:
    """What an estimator with a ``precision`` parameter needs (reads ``precision`` and ``device_``).

    Class attributes a model family sets:

    - ``_auto_bf16_on_cpu``: whether ``precision="auto"`` may pick bf16 on a CPU with
      fast bf16 (True once the family's F1 cost was measured to be nil);
    - ``_bf16_weights_on_cpu``: whether bf16 prediction on a CPU runs a bf16 copy of
      the weights (faster than autocast) rather than autocast.
    """

    #: Merged into every subclass's constraints (:func:`sktext.validation.parameter_constraints`).
    _parameter_constraints: dict = {"precision": [PRECISION_CONSTRAINT]}

    _auto_bf16_on_cpu = False
    _bf16_weights_on_cpu = False

    def _compute_dtype(self) -> torch.dtype:
        """The dtype ``precision`` resolves to on the fitted device."""
        return resolve_precision(self.precision, self.device_, auto_on_cpu=self._auto_bf16_on_cpu)

    def _inference_module(self, dtype: torch.dtype) -> nn.Module:
        """``module_``, or for bf16 on a CPU a bf16 copy of it, made once and kept."""
        module = self.module_
        if not (dtype == torch.bfloat16 and self._bf16_weights_on_cpu and self.device_.type == "cpu"):
            return module
        cached = self.__dict__.get("_bf16_module")
        if cached is not None and cached[0] is module:
            return cached[1]
        half = copy.deepcopy(module).to(torch.bfloat16).eval()
        self.__dict__["_bf16_module"] = (module, half)
        return half

    def __getstate__(self):
        state = dict(super().__getstate__())
        state.pop("_bf16_module", None)
        return state
