"""Backends that make content. They know nothing of policy; the guard passes generation-time hooks in."""

from generators.base import Generation, Generator, GeneratorInfo
from generators.callable import CallableGenerator

__all__ = ["CallableGenerator", "Generation", "Generator", "GeneratorInfo"]
