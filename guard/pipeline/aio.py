"""The pipeline for async code: ``Guard.run`` and ``GuardedStream`` with the generator awaited on the event loop.

The steps are ``guard.pipeline.steps``' sequences, the very ones the synchronous pipeline runs; this module only
drives them for async code. Async backends (``agenerate`` / ``astream``: an ``async def`` client, an async
generator function, the gateway's HTTP upstream) run on the caller's loop, with no thread. A backend without them
(a transformers model, a plain function) runs in a worker thread. The policy's own blocking work (detectors,
records, signing, the log's write) runs in worker threads too, so a server's loop keeps serving other requests
meanwhile; a stage without rules costs no thread hop. A task cancelled while a step is awaited (a server shutting
down) has its attempt logged at once, without awaiting, before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from core import chat
from core.errors import GuardError
from generators.base import Generation, Generator, ThreadedStream
from guard.pipeline import steps as pipeline
from guard.pipeline.steps import END, Close, Done, Generate, Next, Open, Release, StreamState, Work, advance

if TYPE_CHECKING:
    from guard.pipeline.guard import Guard, GuardedResult


async def arun(guard: "Guard", generator: Generator, prompts: list[chat.Prompt],
               **params: Any) -> list["GuardedResult"]:
    """``Guard.run`` for async code (no input images): one result per prompt, in order; an error that cut an
    attempt short is raised once every attempt is logged."""
    results, error = await attempts(guard, generator, prompts, **params)
    if error is not None:
        raise error
    return results


async def attempts(guard: "Guard", generator: Generator, prompts: list[chat.Prompt],
                   **params: Any) -> tuple[list["GuardedResult"], Exception | None]:
    """Run and log every attempt; returns one result per prompt and the error that cut attempts short, if one
    did (its prompts' results are the logged failures). For servers, which answer with the record of a failure."""
    sequence = pipeline.attempts(guard, generator, list(prompts), images=None, params=params)
    step, cancelled = advance(sequence), False
    while not isinstance(step, Done):
        try:
            if cancelled:  # a cancelled task may not get to await again: log now
                value = step.call()
            elif isinstance(step, Generate):
                value = await agenerate(generator, step.prompts, step.hooks, step.params)
            else:
                value = await _work(step)
        except asyncio.CancelledError as exc:
            cancelled = True
            step = advance(sequence, error=exc)
        except Exception as exc:
            step = advance(sequence, error=exc)
        else:
            step = advance(sequence, value)
    results, error = step.value
    if cancelled:
        raise error
    return results, error


class AsyncGuardedStream(StreamState):
    """``GuardedStream`` for async code: ``async for piece in stream``, then ``stream.result``.

    The stream runs ``guard.pipeline.steps.stream`` (see there for what is held back, checked and logged). A
    stream that ends early is logged with the text it showed: when the backend raises (``result`` is set, then
    the error reaches the consumer), when the consumer stops reading (``await stream.aclose()``, or
    ``async with``), and when its task is cancelled.
    """

    def __init__(self, guard: "Guard", generator: Generator, prompt: chat.Prompt, *, check_every: int,
                 window: int, params: dict[str, Any]) -> None:
        super().__init__(guard, generator, prompt, check_every=check_every, window=window, params=params)
        self._pieces = self._run()

    def __aiter__(self) -> "AsyncGuardedStream":
        return self

    async def __anext__(self) -> str:
        return await self._pieces.__anext__()

    async def aclose(self) -> None:
        """Stop reading: the generation stops, and what was shown so far is logged (``result``)."""
        await self._pieces.aclose()

    async def __aenter__(self) -> "AsyncGuardedStream":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def _run(self) -> AsyncIterator[str]:
        sequence, source = pipeline.stream(self), None
        try:
            step = advance(sequence)
            while not isinstance(step, Done):
                if isinstance(step, Release):
                    yield step.piece
                    step = advance(sequence)
                    continue
                try:
                    if isinstance(step, Open):
                        value = source = await open_stream(self.generator, step.prompt, step.hooks, step.params)
                    elif isinstance(step, Next):
                        value = await anext(source, END)
                    elif isinstance(step, Close):
                        value, (source, closing) = None, (None, source)
                        await asyncio.shield(closing.aclose())
                    else:
                        value = await _work(step)
                except (Exception, asyncio.CancelledError) as exc:  # cancelled: the sequence logs what was shown
                    step = advance(sequence, error=exc)
                else:
                    step = advance(sequence, value)
        finally:
            sequence.close()  # when the consumer stopped reading, the sequence logs what was shown
            if source is not None:
                await asyncio.shield(source.aclose())


async def agenerate(generator: Generator, prompts: list[chat.Prompt], hooks: dict[str, Any],
                    params: dict[str, Any]) -> list[Generation]:
    """The generator's outputs: awaited on the loop when it is async, else from a worker thread."""
    if hasattr(generator, "agenerate"):
        return await generator.agenerate(prompts, hooks=hooks, **params)
    return await asyncio.to_thread(generator.generate, prompts, hooks=hooks, **params)


async def open_stream(generator: Generator, prompt: chat.Prompt, hooks: dict[str, Any],
                      params: dict[str, Any]) -> Any:
    """An async text stream from the generator: its own ``astream``, else its ``stream`` read from threads."""
    if hasattr(generator, "astream"):
        return generator.astream(prompt, hooks=hooks, **params)
    if hasattr(generator, "stream"):
        return ThreadedStream(await asyncio.to_thread(generator.stream, prompt, hooks=hooks, **params))
    raise GuardError(f"{generator.info.model_id} cannot stream; call it without streaming")


async def _work(step: Work) -> Any:
    """The policy's work off the loop; work that takes no time (a stage without rules) on it."""
    return await asyncio.to_thread(step.call) if step.blocking else step.call()
