"""Backends that make content. They know nothing of policy; the guard passes generation-time hooks in."""

from __future__ import annotations

from typing import TYPE_CHECKING

from generators.base import Generation, Generator, GeneratorInfo
from generators.callable import CallableGenerator

__all__ = ["CallableGenerator", "DiffusersImage", "Generation", "Generator", "GeneratorInfo", "TorchImage",
           "TransformersText"]

if TYPE_CHECKING:
    from generators.diffusers_image import DiffusersImage
    from generators.torch_image import TorchImage
    from generators.transformers_text import TransformersText


def __getattr__(name: str):
    # The model backends pull in torch, transformers or diffusers when used, not when this package is imported.
    if name == "TorchImage":
        from generators.torch_image import TorchImage

        return TorchImage
    if name == "TransformersText":
        from generators.transformers_text import TransformersText

        return TransformersText
    if name == "DiffusersImage":
        from generators.diffusers_image import DiffusersImage

        return DiffusersImage
    raise AttributeError(f"module 'generators' has no attribute {name!r}")
