"""Guard any function that turns a prompt into text or an image, such as an HTTP API client."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from generators.base import Generation, Generator, GeneratorInfo, Modality


class CallableGenerator(Generator):
    """Wraps ``fn(prompt, **params) -> str | PIL.Image.Image``.

    The modality is taken from ``modality`` or, if not given, from the first output. An external model cannot
    be watermarked while it samples, so its text outputs are signed and logged but carry no in-band mark.
    """

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        model_id: str | None = None,
        modality: Modality | None = None,
        revision: str | None = None,
    ) -> None:
        self.fn = fn
        self._model_id = model_id or f"{getattr(fn, '__module__', '?')}.{getattr(fn, '__qualname__', repr(fn))}"
        self._revision = revision
        self.modality = modality or "text"
        self._modality_known = modality is not None

    @property
    def info(self) -> GeneratorInfo:
        return GeneratorInfo(name="callable", model_id=self._model_id, revision=self._revision)

    def generate(self, prompts: list[str], *, hooks: dict[str, Any] | None = None, **params: Any) -> list[Generation]:
        out = []
        for prompt in prompts:
            content = self.fn(prompt, **params)
            modality = _modality_of(content)
            if modality is None:
                raise TypeError(f"{self._model_id} returned {type(content).__name__}; expected str or PIL image")
            if not self._modality_known:
                self.modality, self._modality_known = modality, True
            out.append(Generation(content=content, params=dict(params)))
        return out


def _modality_of(content: Any) -> Modality | None:
    if isinstance(content, str):
        return "text"
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return None
    return "image" if isinstance(content, Image.Image) else None
