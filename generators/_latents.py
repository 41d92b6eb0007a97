"""Seeds and latents of the image backends (``DiffusersImage``, ``TorchImage``): checked once, hashed one way.

Both draw each image's noise from its own CPU ``torch.Generator`` seeded with ``seed + i``, so a record's seed
reproduces its image alone. ``torch.Generator.manual_seed`` takes integers up to 2**64 - 1 and would truncate a
float without a word; a seed that came through JSON or a form can be either, so it is checked here, where the
mistake can still be named, instead of failing as an overflow deep in torch.
"""

from __future__ import annotations

import hashlib
import numbers
import secrets
from typing import Any

from core.errors import InputError

SEED_LIMIT = 2**64  # torch.Generator.manual_seed accepts 0 .. 2**64 - 1


def first_seed(value: Any, count: int) -> int:
    """The seed of the first of ``count`` images (a fresh random one for ``None``), so that ``seed + count - 1``
    is still a seed torch accepts. Booleans, fractions and strings are refused: they are mistakes, not seeds."""
    if value is None:
        return secrets.randbits(63)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"seed must be a whole number, got {value!r}")
    seed = int(value)
    if not 0 <= seed <= SEED_LIMIT - max(count, 1):
        raise InputError(f"seed must be between 0 and {SEED_LIMIT - max(count, 1)} for {count} image(s), got {seed}")
    return seed


def float_latents(value: Any, what: str = "latents"):
    """``hooks["latents"]`` as a finite float32 tensor: noise with NaN or infinity in it makes a black or
    meaningless image that nothing downstream would notice."""
    import torch

    try:
        latents = torch.as_tensor(value, dtype=torch.float32)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{what} must be numbers (a tensor or an array), got {type(value).__name__}: {exc}") from None
    if not bool(torch.isfinite(latents).all()):
        raise InputError(f"{what} hold NaN or infinite values")
    return latents


def tensor_sha256(tensor) -> str:
    """SHA-256 of a tensor's values as float32 bytes (C order): what a record pins a latent by."""
    return hashlib.sha256(tensor.detach().to("cpu").float().contiguous().numpy().tobytes()).hexdigest()
