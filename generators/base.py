"""The generator interface every backend implements (transformers text, diffusers images, any callable)."""

from __future__ import annotations

import abc
import asyncio
import threading
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

    A prompt is a string or a chat message list (``core.chat``). Text backends may also offer, with the same
    arguments: ``stream(prompt, hooks, **params)``, an iterator of ``str`` pieces that has ``text`` (so far),
    ``params``, ``watermarked`` and ``close()``; and, for async code, ``agenerate`` (a coroutine) and
    ``astream`` (the same stream with ``async for`` and ``aclose()``). The guard runs a backend without the async
    ones in a worker thread when it is called from async code.
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


class ThreadedStream:
    """A blocking text stream (``Generator.stream``) read from async code: each piece is awaited from a worker
    thread, so the event loop keeps serving while the backend works. ``aclose`` waits for a piece in flight."""

    _END = object()

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self._lock = threading.Lock()  # one of next() and close() at a time: a generator cannot do both at once

    @property
    def text(self) -> str:
        return self._stream.text

    @property
    def params(self) -> dict[str, Any]:
        return self._stream.params

    @property
    def watermarked(self) -> bool:
        return self._stream.watermarked

    def __aiter__(self) -> "ThreadedStream":
        return self

    async def __anext__(self) -> str:
        piece = await asyncio.to_thread(self._locked, next, self._stream, self._END)
        if piece is self._END:
            raise StopAsyncIteration
        return piece

    async def aclose(self) -> None:
        await asyncio.to_thread(self._locked, self._stream.close)

    def _locked(self, fn: Any, *args: Any) -> Any:
        with self._lock:
            return fn(*args)
