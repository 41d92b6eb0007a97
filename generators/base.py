"""The generator interface every backend implements (transformers text, diffusers images, any callable)."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Modality = Literal["text", "image"]


@dataclass(frozen=True)
class GeneratorInfo:
    """What made an output, as the provenance record names it."""

    name: str  # backend, e.g. "transformers", "diffusers", "callable"
    model_id: str  # hub id, local path or function name
    revision: str | None = None
    weights_sha256: str | None = None  # hash over the weights files, so a record pins the exact model

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "model_id": self.model_id,
            "revision": self.revision,
            "weights_sha256": self.weights_sha256,
        }


@dataclass
class Generation:
    """One output and the exact parameters (seed included) that produced it."""

    content: Any  # str for text, PIL.Image.Image for images
    params: dict[str, Any] = field(default_factory=dict)
    watermarked: bool = False  # True when a generation-time watermark was embedded


class Generator(abc.ABC):
    """Makes one output per prompt.

    ``hooks`` carries generation-time marks from the guard: ``hooks["text_watermark"]`` is a text watermark
    configuration a text backend embeds while sampling; ``hooks["latents"]`` is the initial noise a diffusion
    backend starts from; ``hooks["input_images"]`` are the (already checked) input images of an image-to-image or
    editing call, one per prompt. A backend that cannot honour a hook ignores it and leaves ``watermarked`` False.
    """

    modality: Modality
    hook_names: ClassVar[frozenset[str]] = frozenset()  # the hooks this backend honours

    @property
    @abc.abstractmethod
    def info(self) -> GeneratorInfo: ...

    @abc.abstractmethod
    def generate(
        self, prompts: list[str], *, hooks: dict[str, Any] | None = None, **params: Any
    ) -> list[Generation]: ...
