"""Guard any function that turns a prompt into text or an image, such as an HTTP API client.

The function may be any of the four kinds people write, and is told apart by what a call returns:

- a plain function returning a ``str`` or a PIL image;
- a generator function yielding ``str`` pieces (a streaming client);
- an ``async def`` returning a ``str`` or a PIL image;
- an async generator function yielding ``str`` pieces.

Every kind works with every way of calling: ``generate`` and ``stream`` from ordinary code, ``agenerate`` and
``astream`` from async code. A streamed kind called without streaming is joined into one text; a plain kind
streamed gives its whole text as one piece. Async kinds run on the caller's event loop (no thread); plain kinds
called from async code run in a worker thread, so the loop keeps serving. Async kinds cannot be called from
ordinary code: their client belongs to an event loop, so the error says to ``await`` them instead.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

from core.errors import InputError
from generators.base import Generation, Generator, GeneratorInfo, Modality, ThreadedStream


class CallableGenerator(Generator):
    """Wraps ``fn(prompt, **params)`` of any of the four kinds above; ``prompt`` is a string or a message list.

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
        self._is_async = _is_async(fn)

    @property
    def info(self) -> GeneratorInfo:
        return GeneratorInfo(name="callable", model_id=self._model_id, revision=self._revision)

    # -- ordinary code -------------------------------------------------------------------------------------

    def generate(self, prompts: list[Any], *, hooks: dict[str, Any] | None = None, **params: Any) -> list[Generation]:
        out = []
        for prompt in prompts:
            result = self._sync_call(prompt, params)
            content = "".join(self._pieces(result)) if _is_pieces(result) else result
            out.append(Generation(content=self._checked(content), params=dict(params)))
        return out

    def stream(self, prompt: Any, hooks: dict[str, Any] | None = None, **params: Any) -> PieceStream:
        """The text as it comes, in pieces; a plain function's text is one piece."""
        result = self._sync_call(prompt, params)
        pieces = self._pieces(result) if _is_pieces(result) else iter([self._text(result)])
        return PieceStream(pieces, params)

    # -- async code ----------------------------------------------------------------------------------------

    async def agenerate(self, prompts: list[Any], *, hooks: dict[str, Any] | None = None,
                        **params: Any) -> list[Generation]:
        out = []
        for prompt in prompts:
            result = await self._async_call(prompt, params)
            if _is_async_pieces(result):
                content = "".join([piece async for piece in self._apieces(result)])
            elif _is_pieces(result):
                content = "".join(await asyncio.to_thread(list, self._pieces(result)))
            else:
                content = result
            out.append(Generation(content=self._checked(content), params=dict(params)))
        return out

    def astream(self, prompt: Any, hooks: dict[str, Any] | None = None, **params: Any) -> AsyncPieceStream:
        """The text as it comes, in pieces, from async code; the call is made on the first ``__anext__``."""
        return AsyncPieceStream(self._apieces_of(prompt, params), params)

    async def _apieces_of(self, prompt: Any, params: dict[str, Any]) -> AsyncIterator[str]:
        result = await self._async_call(prompt, params)
        if _is_async_pieces(result):
            async for piece in self._apieces(result):
                yield piece
        elif _is_pieces(result):
            pieces = ThreadedStream(PieceStream(self._pieces(result), params))
            try:
                async for piece in pieces:
                    yield piece
            finally:
                await pieces.aclose()
        else:
            yield self._text(result)

    # -- calling and checking ------------------------------------------------------------------------------

    def _sync_call(self, prompt: Any, params: dict[str, Any]) -> Any:
        if self._is_async:
            raise InputError(f"{self._model_id} is async: use `await guarded.agenerate(prompt)` or "
                             "`guarded.astream(prompt)` from async code")
        result = self.fn(prompt, **params)
        if inspect.isawaitable(result) or _is_async_pieces(result):
            if inspect.iscoroutine(result):
                result.close()  # never awaited: close it, so Python does not warn about it later
            raise InputError(f"{self._model_id} returned {type(result).__name__}: an async result; use "
                             "`await guarded.agenerate(prompt)` or `guarded.astream(prompt)` from async code")
        return result

    async def _async_call(self, prompt: Any, params: dict[str, Any]) -> Any:
        """Call ``fn``: on the loop when it is async, else in a worker thread; await what it returns if need be."""
        if self._is_async:
            result = self.fn(prompt, **params)
        else:
            result = await asyncio.to_thread(self.fn, prompt, **params)
        return await result if inspect.isawaitable(result) else result

    def _pieces(self, result: Iterator[Any]) -> Iterator[str]:
        """``result``'s pieces, each checked to be a string; closing this closes ``result``."""
        try:
            for piece in result:
                yield self._piece(piece)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    async def _apieces(self, result: AsyncIterator[Any]) -> AsyncIterator[str]:
        try:
            async for piece in result:
                yield self._piece(piece)
        finally:
            aclose = getattr(result, "aclose", None)
            if aclose is not None:
                await aclose()

    def _piece(self, piece: Any) -> str:
        if not isinstance(piece, str):
            raise TypeError(f"{self._model_id} streamed a {type(piece).__name__}; a streaming function must "
                            "yield str pieces of text")
        return piece

    def _text(self, result: Any) -> str:
        if not isinstance(result, str):
            raise TypeError(f"{self._model_id} returned {type(result).__name__}; only text can be streamed")
        return result

    def _checked(self, content: Any) -> Any:
        modality = _modality_of(content)
        if modality is None:
            raise TypeError(f"{self._model_id} returned {type(content).__name__}; expected str, PIL image, "
                            "or str pieces (a generator)")
        if not self._modality_known:
            self.modality, self._modality_known = modality, True
        return content


class PieceStream(Iterator[str]):
    """Text pieces of one streamed call, with what ``GuardedStream`` reads: ``text`` so far, ``params``,
    ``watermarked`` (always False: an external model cannot be marked while it samples) and ``close()``."""

    watermarked = False

    def __init__(self, pieces: Iterator[str], params: dict[str, Any]) -> None:
        self._pieces = pieces
        self.params = dict(params)
        self.text = ""

    def __next__(self) -> str:
        piece = next(self._pieces)
        self.text += piece
        return piece

    def close(self) -> None:
        close = getattr(self._pieces, "close", None)
        if close is not None:
            close()


class AsyncPieceStream(AsyncIterator[str]):
    """``PieceStream`` for async code: ``async for`` over it, ``await aclose()`` to stop early."""

    watermarked = False

    def __init__(self, pieces: AsyncIterator[str], params: dict[str, Any]) -> None:
        self._pieces = pieces
        self.params = dict(params)
        self.text = ""

    async def __anext__(self) -> str:
        piece = await self._pieces.__anext__()
        self.text += piece
        return piece

    async def aclose(self) -> None:
        aclose = getattr(self._pieces, "aclose", None)
        if aclose is not None:
            await aclose()


def _is_async(fn: Callable[..., Any]) -> bool:
    """Whether calling ``fn`` gives a coroutine or an async iterator (checked on ``fn`` and on its ``__call__``)."""
    return any(inspect.iscoroutinefunction(f) or inspect.isasyncgenfunction(f)
               for f in (fn, getattr(fn, "__call__", None)) if f is not None)


def _is_pieces(result: Any) -> bool:
    return isinstance(result, Iterator) and not isinstance(result, str)


def _is_async_pieces(result: Any) -> bool:
    return isinstance(result, AsyncIterator)


def _modality_of(content: Any) -> Modality | None:
    if isinstance(content, str):
        return "text"
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - pillow is a dependency
        return None
    return "image" if isinstance(content, Image.Image) else None
