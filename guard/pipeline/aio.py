"""The pipeline for async code: ``Guard.run`` and ``GuardedStream`` with the generator awaited on the event loop.

Async backends (``agenerate`` / ``astream``: an ``async def`` client, an async generator function, the gateway's
HTTP upstream) run on the caller's loop, with no thread. A backend without them (a transformers model, a plain
function) runs in a worker thread. The policy's own blocking work (detectors, records, signing, the log's write)
runs in worker threads too, so a server's loop keeps serving other requests meanwhile; a stage without rules
costs no thread hop. The steps are the Guard's public ones, in the same order as the synchronous pipeline.

Two endings that servers meet are logged as attempts like any other:

- a generator that fails (an API error, a dropped connection): the record's verdict is ``block``, the error is
  under ``errors`` (stage ``generation``), and ``GenerationError`` is raised with the logged results and the
  generator's exception as its cause. A ``GuardError`` (bad input) is raised as it is, unlogged;
- a stream that ends early, closed by its consumer (a client that disconnects) or cancelled (a server that shuts
  down): the record holds the text released so far, written before the stream lets go, so no attempt goes
  unlogged.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core import chat
from core.errors import GenerationError, GuardError
from generators.base import Generation, Generator, ThreadedStream
from guard.pipeline.checker import Decision, _one_line
from guard.pipeline.recorder import STREAM_STOPPING
from guard.policy import Action
from guard.provenance.record import ProvenanceRecord

if TYPE_CHECKING:
    from guard.pipeline.guard import Guard, GuardedResult


async def arun(guard: "Guard", generator: Generator, prompts: list[chat.Prompt],
               **params: Any) -> list["GuardedResult"]:
    """``Guard.run`` for async code (no input images): one result per prompt, in order."""
    prompt_decisions, prompts = await _check_prompts(guard, prompts)
    finals: dict[int, tuple[ProvenanceRecord, Any]] = {}
    for i, d in enumerate(prompt_decisions):
        if d.action is Action.block:
            finals[i] = (guard.records.build(generator, prompts[i], d, params=params), None)

    superseded: list[ProvenanceRecord] = []
    parents: dict[int, ProvenanceRecord] = {}
    pending = [i for i, d in enumerate(prompt_decisions) if d.action is not Action.block]
    attempt = 1
    while pending:
        try:
            generations = await agenerate(generator, [prompts[i] for i in pending], guard.hooks(generator), params)
        except GuardError:
            raise
        except Exception as exc:  # the generator's failure is an attempt: log it, then say so
            for i in pending:
                finals[i] = (failed_record(guard, generator, prompts[i], prompt_decisions[i], exc, params=params,
                                           attempt=attempt, parent=parents.get(i)), None)
            results = await _commit(guard, generator, superseded, [finals[i] for i in range(len(prompts))])
            raise GenerationError(f"{generator.info.model_id} failed: {_one_line(exc)}", results) from exc
        judged = await asyncio.to_thread(_judge, guard, generator, pending, prompts, prompt_decisions, generations,
                                         params, attempt, parents)
        retry = []
        for i, rec, content, again in judged:
            if again:
                superseded.append(rec)
                parents[i] = rec
                retry.append(i)
            else:
                finals[i] = (rec, None if rec.verdict == "block" else content)
        pending, attempt = retry, attempt + 1
    return await _commit(guard, generator, superseded, [finals[i] for i in range(len(prompts))])


class AsyncGuardedStream:
    """``GuardedStream`` for async code: ``async for piece in stream``, then ``stream.result``.

    Pieces are held back until the output checks pass on the text that contains them (every ``check_every``
    pieces, the last ``window`` characters); with no output rules there is nothing to wait for and each piece is
    released as it comes. A failing check stops the stream. At the end the whole text is checked, signed and
    logged, and ``result`` is set before the last held pieces are released, so a consumer that sends them on
    (a server) can name the record with them. ``await stream.aclose()`` ends it early; that attempt is logged
    with what was released.
    """

    def __init__(self, guard: "Guard", generator: Generator, prompt: chat.Prompt, *, check_every: int,
                 window: int, params: dict[str, Any]) -> None:
        self.guard, self.generator, self.prompt = guard, generator, prompt
        self.check_every, self.window, self.params = max(1, check_every), max(1, window), params
        self.result: GuardedResult | None = None
        self.stopped = False
        self._pieces = self._run()

    def __aiter__(self) -> "AsyncGuardedStream":
        return self

    async def __anext__(self) -> str:
        return await self._pieces.__anext__()

    async def aclose(self) -> None:
        await self._pieces.aclose()

    async def _run(self) -> AsyncIterator[str]:
        guard, generator, rules = self.guard, self.generator, self.guard.policy.stages.output
        [prompt_decision], [prompt] = await _check_prompts(guard, [self.prompt])
        if prompt_decision.action is Action.block:
            rec = guard.records.build(generator, prompt, prompt_decision, params=self.params)
            self.result = (await _commit(guard, generator, [], [(rec, None)]))[0]
            return
        source = await open_stream(generator, prompt, guard.hooks(generator), self.params)
        hold = self.check_every if rules else 1
        held: list[str] = []
        released: list[str] = []
        try:
            count, failure = 0, None
            while True:
                try:
                    piece = await source.__anext__()
                except StopAsyncIteration:
                    break
                except GuardError:
                    raise
                except Exception as exc:  # noqa: BLE001 - logged below, then raised as GenerationError
                    failure = exc
                    break
                count += 1
                held.append(piece)
                if count % hold:
                    continue
                if rules and (await _check_output(guard, rules, source.text[-self.window:])).action in STREAM_STOPPING:
                    self.stopped = True
                    break
                for piece in held:
                    released.append(piece)
                    yield piece
                held = []
            generation = Generation(content=source.text, params=source.params, watermarked=source.watermarked)
            if failure is not None:
                rec = failed_record(guard, generator, prompt, prompt_decision, failure, params=self.params,
                                    generation=generation, released="".join(released))
                self.result = (await _commit(guard, generator, [], [(rec, None)]))[0]
                raise GenerationError(f"{generator.info.model_id} failed: {_one_line(failure)}",
                                      [self.result]) from failure
            text = source.text
            final = await _check_output(guard, rules, text) if rules else Decision()
            rec = await asyncio.to_thread(guard.records.build, generator, prompt, prompt_decision, final,
                                          generation=generation, content=text, params=self.params,
                                          stream_stopped=self.stopped)
            self.result = (await _commit(guard, generator, [], [(rec, None if rec.verdict == "block" else text)]))[0]
        except (GeneratorExit, asyncio.CancelledError) as exc:
            if self.result is None:  # log now, without awaiting: a cancelled task may not get to await again
                why = "closed by its consumer" if isinstance(exc, GeneratorExit) else "cancelled"
                self.result = self._log_left(source, prompt, prompt_decision, "".join(released), why)
            raise
        finally:
            await asyncio.shield(source.aclose())
        if self.result.verdict != "block":
            for piece in held:
                yield piece

    def _log_left(self, source: Any, prompt: chat.Prompt, prompt_decision: Decision, released: str,
                  why: str) -> "GuardedResult":
        guard, generator = self.guard, self.generator
        generation = Generation(content=source.text, params=source.params, watermarked=source.watermarked)
        rec = guard.records.build(generator, prompt, prompt_decision, Decision(), generation=generation,
                                  content=released, params=self.params, stream_stopped=False)
        rec = replace(rec, actions=[*rec.actions, f"stream {why}: {len(released)} characters released"])
        return guard.commit(generator, [], [(rec, released)])[0]


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


def failed_record(guard: "Guard", generator: Generator, prompt: chat.Prompt, prompt_decision: Decision,
                  exc: BaseException, *, params: dict[str, Any], attempt: int = 1,
                  parent: ProvenanceRecord | None = None, generation: Generation | None = None,
                  released: str | None = None) -> ProvenanceRecord:
    """The record of an attempt whose generator failed: blocked, with the error, and what had been released."""
    error = {"detector": "generator", "stage": "generation", "error": _one_line(exc)}
    rec = guard.records.build(generator, prompt, prompt_decision, Decision(Action.block, errors=(error,)),
                              generation=generation, params=params, attempt=attempt, parent=parent)
    note = "generation failed" if released is None else \
        f"generation failed: {len(released)} characters released before it"
    return replace(rec, actions=[*rec.actions, note])


# -- the policy's blocking steps, off the loop -------------------------------------------------------------


async def _check_prompts(guard: "Guard", prompts: list[chat.Prompt]) -> tuple[list[Decision], list[chat.Prompt]]:
    if not guard.policy.stages.prompt:
        return guard.check_prompts(prompts)
    return await asyncio.to_thread(guard.check_prompts, prompts)


async def _check_output(guard: "Guard", rules: list, text: str) -> Decision:
    return (await asyncio.to_thread(guard.checker.check, "output", rules, [text]))[0]


def _judge(guard: "Guard", generator: Generator, pending: list[int], prompts: list[chat.Prompt],
           prompt_decisions: list[Decision], generations: list[Generation], params: dict[str, Any], attempt: int,
           parents: dict[int, ProvenanceRecord]) -> list[tuple[int, ProvenanceRecord, Any, bool]]:
    """Output checks, redaction and the records of one attempt (the body of ``Guard.run``'s loop)."""
    decisions = guard.checker.check("output", guard.policy.stages.output, [g.content for g in generations])
    judged = []
    for i, gen, d in zip(pending, generations, decisions):
        d, content = guard.checker.redacted(d, gen.content)
        rec = guard.records.build(generator, prompts[i], prompt_decisions[i], d, generation=gen, content=content,
                                  params=params, attempt=attempt, parent=parents.get(i))
        judged.append((i, rec, content, guard.records.retries(d, attempt)))
    return judged


async def _commit(guard: "Guard", generator: Generator, superseded: list[ProvenanceRecord],
                  finals: list[tuple[ProvenanceRecord, Any]]) -> list["GuardedResult"]:
    return await asyncio.to_thread(guard.commit, generator, superseded, finals)
