"""Where a torch model runs and in what precision: one vocabulary for detectors and generators.

bf16 is the big lever on a GPU and on CPUs with AMX or AVX-512 BF16 units (measured 3x on such a CPU); on a CPU
without them PyTorch emulates bf16 and a ResNet-50 ran 10x *slower* (0.36 against 4.2 images/s on an AVX2 EPYC),
so ``Precision.AUTO`` turns it on only where the hardware has it (``autocast_bf16``). ``Precision.INT8`` (CPU only,
asked for explicitly) quantises the linear layers dynamically; convolutions stay in float32.

Policies and options in the wild spell precision three ways (``bf16``/``fp32``, ``bfloat16``/``float32``, and
torch dtypes); ``Precision.parse`` accepts them all and every component normalises once, where it is built.
torch is imported only inside the functions that need it.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum
from typing import Any

from core.errors import DeviceUnavailableError, InputError

_ALIASES = {"bf16": "bfloat16", "fp32": "float32", "float": "float32", "fp16": "float16", "half": "float16"}
_SHORT = {"bfloat16": "bf16", "float32": "fp32", "float16": "fp16"}


class Precision(StrEnum):
    """The numeric precision a model runs in. A ``str`` enum: ``Precision.BFLOAT16 == "bfloat16"``."""

    AUTO = "auto"  # detectors: bf16 autocast where the hardware has fast bf16, else float32; generators: the default
    FLOAT32 = "float32"
    FLOAT16 = "float16"
    BFLOAT16 = "bfloat16"
    INT8 = "int8"  # dynamic quantisation of the linear layers (CPU only)

    @classmethod
    def parse(cls, value: Any, *, allowed: Iterable[Precision] | None = None) -> Precision:
        """``value`` as a ``Precision``: a ``Precision``, any spelling (``bf16``, ``bfloat16``, ``BF16``,
        ``torch.bfloat16``, ``fp32``, ``float32``, ``fp16``, ``half``...) or a torch dtype; ``None`` is ``AUTO``.
        ``InputError`` for anything else, or for a precision outside ``allowed``."""
        if isinstance(value, cls):
            precision = value
        else:
            text = "auto" if value is None else str(value).strip().lower().removeprefix("torch.")
            try:
                precision = cls(_ALIASES.get(text, text))
            except ValueError:
                precision = None
        choices = tuple(cls) if allowed is None else tuple(allowed)
        if precision is None or precision not in choices:
            names = ", ".join(f"{p.value} ({_SHORT[p.value]})" if p.value in _SHORT else p.value for p in choices)
            raise InputError(f"precision must be one of {names}, got {value!r}")
        return precision

    def torch_dtype(self):
        """The torch dtype of a concrete floating-point precision (``AUTO`` and ``INT8`` have none)."""
        import torch

        dtypes = {Precision.FLOAT32: torch.float32, Precision.FLOAT16: torch.float16,
                  Precision.BFLOAT16: torch.bfloat16}
        if self not in dtypes:
            raise InputError(f"precision {self.value!r} is not one torch dtype")
        return dtypes[self]


# What a model whose weights stay in float32 can run in: as is, under bf16 autocast, or int8-quantised. Detectors
# run this way (so bf16 never changes the weights they load).
AUTOCAST_PRECISIONS = (Precision.AUTO, Precision.FLOAT32, Precision.BFLOAT16, Precision.INT8)
# What a generator loads its weights in (``AUTO``: the backend's default).
LOAD_PRECISIONS = (Precision.AUTO, Precision.FLOAT32, Precision.FLOAT16, Precision.BFLOAT16)


def resolve_device(device: str = "auto"):
    """The ``torch.device`` to run on: ``auto`` is the first CUDA device when there is one, else the CPU; anything
    else is taken as given (``cpu``, ``cuda``, ``cuda:1``). ``DeviceUnavailableError`` when CUDA is asked for
    and absent."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise InputError(f"unknown device {device!r} (use auto, cpu, cuda or cuda:N): {exc}") from None
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise DeviceUnavailableError(f"device {device!r} was asked for but CUDA is not available")
    return resolved


def bf16_is_fast(device) -> bool:
    """Whether bf16 pays off on ``device`` (a ``torch.device`` or its name): GPUs that support it, and CPUs with
    AMX or AVX-512 BF16 units. Elsewhere bf16 is emulated and slower than float32."""
    import torch

    kind = torch.device(device).type
    if kind == "cuda":
        return torch.cuda.is_bf16_supported()
    if kind != "cpu":
        return False
    probes = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def autocast_bf16(device, precision: Precision | str) -> bool:
    """Whether a model on ``device`` runs under bf16 autocast: when asked for, or under ``auto`` where bf16 is
    fast. ``int8`` runs its quantised linear layers without autocast."""
    precision = Precision.parse(precision)
    if precision is Precision.AUTO:
        return bf16_is_fast(device)
    return precision is Precision.BFLOAT16


def quantize_linear(module, device) -> Any:
    """Dynamic int8 quantisation of every ``nn.Linear`` (weights int8, activations quantised per batch), for
    ``Precision.INT8``. PyTorch has these kernels on the CPU only, so any other device is an ``InputError``.

    ``torch.ao.quantization.quantize_dynamic`` is deprecated in favour of torchao, which is not a dependency here
    and needs ``torch.compile`` to be fast on a CPU; the eager API still works in the pinned torch.
    """
    import warnings

    import torch

    if torch.device(device).type != "cpu":
        raise InputError(f"precision int8 (dynamic quantisation) runs on the CPU only, not on {device}; use bf16")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.* deprecated", category=UserWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)
