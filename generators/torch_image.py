"""Any torch module that maps latent vectors to images (a GAN generator, a VAE decoder) as a ``Generator``.

Such models take no prompt: the image is a function of the latent alone, so the latent is what must be
recorded for the image to be reproducible. Each image gets its own seed (``seed + i`` for image ``i`` of a call)
and its own CPU ``torch.Generator``, which draws the latent from a standard normal of ``latent_shape``; the
record holds the seed, the latent's SHA-256 and the shape, and ``hooks["latents"]`` may hand in latents instead.
The prompt is kept by the guard like any other (it is logged, and checked by the prompt-stage detectors) but does
not condition the image; the record says so (``conditioning: none``).

The module's output, ``[batch, 3, H, W]`` in ``output_range`` (``(-1, 1)`` for a tanh output, the DCGAN
convention), becomes an RGB PIL image, optionally resized to ``size`` (Lanczos) for display. From there the
guard's image path is the one every image takes: faces and disclosure, watermark, C2PA, log.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from core.device import resolve_device
from core.errors import InputError
from core.weights import torch_load, weights_sha256
from generators._latents import first_seed, float_latents, tensor_sha256
from generators.base import Generation, Generator, GeneratorInfo

SIZES = (8, 4096)  # the ``size`` a caller may ask for, in pixels: 4096² RGB is 48 MB an image


def load_state_dict(path: str | Path, key: str | None = None) -> dict[str, Any]:
    """A state dict from a torch file (``weights_only``: no code runs), or the dict under ``key`` in it (training
    checkpoints keep the generator's weights beside the optimiser's, e.g. ``netG_state_dict``)."""
    state = torch_load(path, "weights file")
    if key is not None:
        if not isinstance(state, dict) or key not in state:
            keys = sorted(state) if isinstance(state, dict) else type(state).__name__
            raise InputError(f"{path}: no {key!r} in the file (it holds {keys})")
        state = state[key]
    if not isinstance(state, dict):
        raise InputError(f"{path}: expected a state dict, got {type(state).__name__}")
    return state


class TorchImage(Generator):
    """Latents to images with any ``torch.nn.Module``.

    ``latent_shape`` is one latent's shape (``(100, 1, 1)`` for a DCGAN); ``weights`` the file the module's
    weights came from, hashed for the record (without it, the hash is taken over the module's state dict:
    ``sha256`` of each tensor's name, shape and float32 bytes, in order). ``generate`` takes ``seed`` and ``size``.

    The module is someone else's code, so what it returns is checked before it becomes an image: one float
    tensor ``[batch, 3, H, W]`` per batch of latents, as many images as latents, every value finite. A module that
    fails on the latents (a ``latent_shape`` it was not built for, weights of another dtype) is named with the
    shape it was given. Each of these is an ``InputError``: without the checks a NaN becomes a black image, an
    integer output a grey one, and a module that returns fewer images than latents shifts every later image onto
    the wrong prompt's record.
    """

    modality = "image"
    hook_names = frozenset({"latents"})

    def __init__(
        self,
        module: Any,
        *,
        latent_shape: tuple[int, ...],
        model_id: str,
        weights: str | Path | None = None,
        revision: str | None = None,
        output_range: tuple[float, float] = (-1.0, 1.0),
        device: str = "auto",
        batch_size: int = 16,
        notes: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        if not (math.isfinite(output_range[0]) and math.isfinite(output_range[1]) and output_range[0] < output_range[1]):
            raise InputError(f"output_range must be (low, high) with low < high, got {output_range}")
        if not latent_shape or not all(isinstance(d, numbers.Integral) and d > 0 for d in latent_shape):
            raise InputError(f"latent_shape must be one or more positive whole numbers, got {latent_shape!r}")
        if not hasattr(module, "eval") or not callable(module):
            raise TypeError(f"module must be a torch.nn.Module, got {type(module).__name__}")
        self.latent_shape = tuple(int(d) for d in latent_shape)
        self.model_id = model_id
        self.weights = Path(weights) if weights is not None else None
        self.revision = revision
        self.output_range = (float(output_range[0]), float(output_range[1]))
        self.device = str(resolve_device(device))
        self.batch_size = batch_size
        self.notes = notes  # e.g. the training data's licence, recorded with every image
        self.module = module.eval().to(self.device)

    @cached_property
    def info(self) -> GeneratorInfo:
        digest = weights_sha256(self.weights) if self.weights is not None else _state_sha256(self.module)
        return GeneratorInfo(name="torch", model_id=self.model_id, revision=self.revision, weights_sha256=digest)

    def generate(self, prompts: list[str], *, hooks: dict[str, Any] | None = None, **params: Any) -> list[Generation]:
        import torch

        if not prompts:
            return []
        seed = first_seed(params.pop("seed", None), len(prompts))
        size = _size(params.pop("size", None))
        if params:
            raise InputError(f"unknown generation parameters: {', '.join(sorted(params))}")
        given = _latents_from(hooks, len(prompts), self.latent_shape)
        seeds = [seed + i for i in range(len(prompts))]
        if given is None:
            latents = torch.stack([torch.randn(self.latent_shape, generator=torch.Generator("cpu").manual_seed(s))
                                   for s in seeds])
        else:
            latents = given
        outputs: list[Generation] = []
        for start in range(0, len(prompts), self.batch_size):
            batch = latents[start : start + self.batch_size]
            pixels = self._forward(batch)
            for i, image in enumerate(self._to_images(pixels, size)):
                k = start + i
                record: dict[str, Any] = {
                    "height": image.height, "width": image.width, "native_size": list(pixels.shape[2:]),
                    "latent_shape": list(self.latent_shape), "latent_sha256": tensor_sha256(latents[k]),
                    "conditioning": "none", "device": self.device,
                }
                if given is None:
                    record["seed"] = seeds[k]
                    record["latent_distribution"] = "standard normal, torch.Generator('cpu').manual_seed(seed)"
                if self.notes:
                    record["notes"] = self.notes
                outputs.append(Generation(content=image, params=record))
        return outputs

    def _forward(self, batch):
        """The module on one batch of latents, as float32 pixels on the CPU, after the checks in the class doc."""
        import torch

        try:
            with torch.inference_mode():
                pixels = self.module(batch.to(self.device))
        except torch.OutOfMemoryError:
            raise
        except (RuntimeError, ValueError, TypeError, IndexError) as exc:
            raise InputError(f"{self.model_id}: the module failed on latents of shape {tuple(batch.shape)} "
                             f"(latent_shape {self.latent_shape}): {str(exc)[:300]}") from None
        if not isinstance(pixels, torch.Tensor):
            raise InputError(f"{self.model_id}: expected a tensor of images [batch, 3, H, W], got "
                             f"{type(pixels).__name__}")
        if pixels.dim() != 4 or pixels.shape[1] != 3 or pixels.shape[2] < 1 or pixels.shape[3] < 1:
            raise InputError(f"{self.model_id}: expected images [batch, 3, H, W], got {tuple(pixels.shape)}")
        if pixels.shape[0] != batch.shape[0]:
            raise InputError(f"{self.model_id}: returned {pixels.shape[0]} images for {batch.shape[0]} latents")
        if not pixels.is_floating_point():
            raise InputError(f"{self.model_id}: expected floating-point pixels in output_range {self.output_range}, "
                             f"got {str(pixels.dtype).removeprefix('torch.')}")
        pixels = pixels.float().cpu()
        if not bool(torch.isfinite(pixels).all()):
            raise InputError(f"{self.model_id}: the module's output holds NaN or infinite values")
        return pixels

    def _to_images(self, pixels, size: int | None) -> list:
        from PIL import Image

        low, high = self.output_range
        scaled = ((pixels.clamp(low, high) - low) / (high - low) * 255.0).round()
        array = scaled.permute(0, 2, 3, 1).numpy().astype(np.uint8)
        images = [Image.fromarray(np.ascontiguousarray(a), "RGB") for a in array]
        if size is not None:
            images = [im.resize((int(size), int(size)), Image.Resampling.LANCZOS) for im in images]
        return images


def _size(value: Any) -> int | None:
    """The ``size`` parameter: ``None`` (the module's own), or a whole number of pixels within ``SIZES``."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not SIZES[0] <= value <= SIZES[1]:
        raise InputError(f"size must be a whole number of pixels between {SIZES[0]} and {SIZES[1]}, got {value!r}")
    return int(value)


def _latents_from(hooks: dict[str, Any] | None, count: int, shape: tuple[int, ...]):
    """``hooks["latents"]``: one latent (broadcast) or one per prompt, each of ``shape``; ``None`` if absent."""
    if not hooks or hooks.get("latents") is None:
        return None
    latents = float_latents(hooks["latents"])
    if tuple(latents.shape) == shape:
        latents = latents.unsqueeze(0)
    if tuple(latents.shape[1:]) != shape:
        raise InputError(f"latents must be of shape {shape} (or a batch of them), got {tuple(latents.shape)}")
    if latents.shape[0] == 1 and count > 1:
        latents = latents.expand(count, *shape)
    if latents.shape[0] != count:
        raise InputError(f"got {latents.shape[0]} latents for {count} prompts")
    return latents


def _state_sha256(module) -> str:
    digest = hashlib.sha256()
    for name, tensor in module.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}\n".encode())
        digest.update(tensor.detach().cpu().float().contiguous().numpy().tobytes())
    return digest.hexdigest()
