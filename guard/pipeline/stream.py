"""Streaming behind the policy: text released piece by piece, only once the checks have passed on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from core.errors import GuardError
from generators.base import Generator
from guard.pipeline.steps import StreamState, drive_stream

if TYPE_CHECKING:
    from guard.pipeline.guard import Guard


class GuardedStream(StreamState):
    """A streamed text generation behind the policy.

    Pieces are held back until the output checks have passed on the text that contains them: every
    ``check_every`` pieces the output detectors score the last ``window`` characters, and the held pieces are
    released only if nothing crosses a threshold whose action is block, regenerate or redact (without output rules
    there is nothing to wait for, and each piece is released as it comes). When a check fails, generation stops
    and the stream ends; nothing unchecked has been shown. At the end the whole text is checked, signed and logged
    like any other output, and ``result`` holds the ``GuardedResult`` (``artifact`` is None when the stream was
    stopped), set before the last held pieces are released. A stream cannot be regenerated or redacted after the
    fact: those actions block. The steps are ``guard.pipeline.steps.stream``, which async code runs too.

    A stream that ends early is logged too, with the text it had shown: when the backend raises (the error then
    reaches the consumer), and when the consumer stops reading. The latter is known when the stream is closed:
    call ``close()`` or use the stream in a ``with`` block; otherwise it is logged when the stream is collected.
    """

    def __init__(self, guard: "Guard", generator: Generator, prompt: str, *, check_every: int, window: int,
                 params: dict[str, Any]) -> None:
        if not hasattr(generator, "stream"):
            raise GuardError(f"{generator.info.model_id} cannot stream; call it without .stream()")
        super().__init__(guard, generator, prompt, check_every=check_every, window=window, params=params)
        self._pieces = drive_stream(self)

    def __iter__(self) -> Iterator[str]:
        return self._pieces

    def __next__(self) -> str:
        return next(self._pieces)

    def close(self) -> None:
        """Stop reading: the generation stops, and what was shown so far is logged (``result``)."""
        self._pieces.close()

    def __enter__(self) -> "GuardedStream":
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.close()
