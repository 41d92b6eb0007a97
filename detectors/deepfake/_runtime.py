"""Where and how a torch model runs: device, precision, channels_last, and moving batches to the device.

bf16 is the big lever on a GPU and on CPUs with AMX or AVX-512 BF16 units (measured 3x on such a CPU); on a CPU
without them PyTorch emulates bf16 and a ResNet-50 ran 10x *slower* (0.36 against 4.2 images/s on an AVX2
EPYC), so ``dtype="auto"`` only turns it on where the hardware has it. ``dtype="int8"`` (CPU only, asked for
explicitly) quantises the linear layers dynamically: CLIP ViT-L/14 ran 1.6x faster on that EPYC with probe
probabilities within 0.005 of fp32; convolutions are left in fp32, so it does nothing for a ResNet.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

DTYPES = ("auto", "bf16", "fp32", "int8")


def resolve_device(device: str = "auto"):
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    resolved = torch.device(device)
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} was asked for but CUDA is not available")
    return resolved


def cpu_has_bf16() -> bool:
    import torch

    return bool(torch.cpu._is_amx_tile_supported() or torch.cpu._is_avx512_bf16_supported())


def use_bf16(device, dtype: str = "auto") -> bool:
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    if dtype != "auto":
        return dtype == "bf16"  # int8 runs its quantised linear layers without autocast
    if device.type == "cuda":
        import torch

        return torch.cuda.is_bf16_supported()
    return device.type == "cpu" and cpu_has_bf16()


def default_workers(device) -> int:
    """Decoding processes: enough to feed a GPU; one on a CPU, where decoding competes with the model."""
    cores = os.cpu_count() or 1
    if device.type == "cuda":
        return max(1, min(16, cores - 1))
    return 1 if cores > 1 else 0


@dataclass
class TorchRunner:
    """Runs ``fn(pixels)`` on a batch: to the device (non-blocking from pinned memory), channels_last for
    convolutions, under inference mode and bf16 autocast when enabled. Returns float32 numpy."""

    device: Any
    bf16: bool
    channels_last: bool = False
    int8: bool = False

    @classmethod
    def create(cls, device: str = "auto", dtype: str = "auto", *, channels_last: bool = False) -> TorchRunner:
        resolved = resolve_device(device)
        if dtype == "int8" and resolved.type != "cpu":
            raise ValueError("dtype int8 (dynamic quantisation) runs on the CPU only; use bf16 on a GPU")
        return cls(resolved, use_bf16(resolved, dtype), channels_last, dtype == "int8")

    @property
    def pin_memory(self) -> bool:
        return self.device.type == "cuda"

    def prepare_module(self, module):
        module = fold_batchnorm(module.eval()).to(self.device)
        if self.int8:
            module = quantize_linear(module)
        if self.channels_last:
            module = module.to(memory_format=_torch().channels_last)
        return module

    def __call__(self, fn: Callable[[Any], Any], inputs) -> np.ndarray:
        torch = _torch()
        pixels = torch.as_tensor(inputs).to(self.device, non_blocking=True)
        if self.channels_last and pixels.ndim == 4:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode(), torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            out = fn(pixels)
        return out.float().cpu().numpy()


def quantize_linear(module):
    """Dynamic int8 quantisation of every ``nn.Linear`` (weights int8, activations quantised per batch).

    ``torch.ao.quantization.quantize_dynamic`` is deprecated in favour of torchao, which is not a dependency
    here and needs ``torch.compile`` to be fast on a CPU; the eager API still works in the pinned torch.
    """
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*quantiz.* deprecated", category=UserWarning)
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(module, {torch.nn.Linear}, dtype=torch.qint8)


_FOLDABLE = ("ResNetConvLayer", "ResNetShortCut")  # transformers' ResNet: convolution, then normalization


def fold_batchnorm(module):
    """Fold each inference-mode BatchNorm into the convolution before it (exact up to float rounding).

    A ResNet-50 runs 53 BatchNorms, each a full pass over its activations; folded, they cost nothing (about 1.1x
    on the 2-core CPU here). Only transformers' ResNet layers are touched, whose ``forward`` is known to apply
    ``convolution`` then ``normalization``.
    """
    import torch
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    for layer in module.modules():
        norm = getattr(layer, "normalization", None)
        if type(layer).__name__ in _FOLDABLE and isinstance(norm, torch.nn.BatchNorm2d) and not norm.training:
            layer.convolution = fuse_conv_bn_eval(layer.convolution, norm)
            layer.normalization = torch.nn.Identity()
    return module


def _torch():
    import torch

    return torch
