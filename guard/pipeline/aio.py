"""The pipeline for async code: ``Guard.run`` and ``GuardedStream`` with the generator awaited on the event loop.

Async backends (``agenerate`` / ``astream``: an ``async def`` client, an async generator function, the gateway's
HTTP upstream) run on the caller's loop, with no thread. A backend without them (a transformers model, a plain
function) runs in a worker thread. The policy's own blocking work (detectors, records, signing, the log's write)
runs in worker threads too, so a server's loop keeps serving other requests meanwhile; a stage without rules
costs no thread hop. The steps, and what is logged when an attempt ends badly, are the synchronous pipeline's:
an attempt cut short by an error is logged with its stage and the error, then the error is raised; a stream that
ends early is logged with the text it showed. Here a stream also ends early when its task is cancelled (a server
shutting down): that attempt is logged at once, without awaiting, before the cancellation goes on.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core import chat
from core.errors import GuardError
from generators.base import Generation, Generator, ThreadedStream
from guard.pipeline.checker import Decision
from guard.pipeline.recorder import STREAM_STOPPING
from guard.policy import Action
from guard.provenance.record import ProvenanceRecord

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
    prompt_decisions = [Decision()] * len(prompts)
    finals: dict[int, tuple[ProvenanceRecord, Any]] = {}
    superseded: list[ProvenanceRecord] = []
    parents: dict[int, ProvenanceRecord] = {}
    attempt, stage = 1, "prompt"
    try:
        prompt_decisions, prompts = await _check_prompts(guard, prompts)
        for i, d in enumerate(prompt_decisions):
            if d.action is Action.block:
                finals[i] = (guard.records.build(generator, prompts[i], d, params=params), None)
        pending = [i for i, d in enumerate(prompt_decisions) if d.action is not Action.block]
        while pending:
            stage = "generate"
            generations = await agenerate(generator, [prompts[i] for i in pending], guard.hooks(generator), params)
            stage = "output"
            judged = await asyncio.to_thread(_judge, guard, generator, pending, prompts, prompt_decisions,
                                             generations, params, attempt, parents)
            retry = []
            for i, rec, content, again in judged:
                if again:
                    superseded.append(rec)
                    parents[i] = rec
                    retry.append(i)
                else:
                    finals[i] = (rec, None if rec.verdict == "block" else content)
            pending, attempt = retry, attempt + 1
    except (Exception, asyncio.CancelledError) as exc:
        for i in range(len(prompts)):
            if i not in finals:
                finals[i] = (guard.records.build(generator, prompts[i], prompt_decisions[i], params=params,
                                                 attempt=attempt, parent=parents.get(i), error=exc,
                                                 error_stage=stage), None)
        done = [finals[i] for i in range(len(prompts))]
        if isinstance(exc, asyncio.CancelledError):  # a cancelled task may not get to await again: log now
            guard.commit(generator, superseded, done)
            raise
        return await _commit(guard, generator, superseded, done), exc
    return await _commit(guard, generator, superseded, [finals[i] for i in range(len(prompts))]), None


class AsyncGuardedStream:
    """``GuardedStream`` for async code: ``async for piece in stream``, then ``stream.result``.

    Pieces are held back until the output checks pass on the text that contains them (every ``check_every``
    pieces, the last ``window`` characters); with no output rules there is nothing to wait for and each piece is
    released as it comes. A failing check stops the stream. At the end the whole text is checked, signed and
    logged, and ``result`` is set before the last held pieces are released, so a consumer that sends them on
    (a server) can name the record with them. A stream that ends early is logged with the text it showed: when
    the backend raises (``result`` is set, then the error reaches the consumer), when the consumer stops reading
    (``await stream.aclose()``, or ``async with``), and when its task is cancelled.
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
        """Stop reading: the generation stops, and what was shown so far is logged (``result``)."""
        await self._pieces.aclose()

    async def __aenter__(self) -> "AsyncGuardedStream":
        return self

    async def __aexit__(self, *exc_info: Any) -> None:
        await self.aclose()

    async def _run(self) -> AsyncIterator[str]:
        guard, generator, rules = self.guard, self.generator, self.guard.policy.stages.output
        prompt, prompt_decision = self.prompt, Decision()
        released = Decision()  # the output check that released the text shown so far
        stopping = Decision()  # the output check that stopped the stream, if one did
        shown: list[str] = []
        held: list[str] = []
        source = None
        stage = "prompt"
        try:
            [prompt_decision], [prompt] = await _check_prompts(guard, [self.prompt])
            if prompt_decision.action is Action.block:
                rec = guard.records.build(generator, prompt, prompt_decision, params=self.params)
                self.result = (await _commit(guard, generator, [], [(rec, None)]))[0]
                return
            stage = "generate"
            source = await open_stream(generator, prompt, guard.hooks(generator), self.params)
            hold = self.check_every if rules else 1
            try:
                count = 0
                async for piece in source:
                    count += 1
                    held.append(piece)
                    if count % hold:
                        continue
                    if rules:
                        stage = "output"
                        decision = await _check_output(guard, rules, source.text[-self.window:])
                        stage = "generate"
                        if decision.action in STREAM_STOPPING:
                            self.stopped, stopping = True, decision
                            break
                        released = decision
                    for piece in held:
                        shown.append(piece)
                        yield piece
                    held = []
            finally:
                await asyncio.shield(source.aclose())
            stage = "output"
            text = source.text
            final = await _check_output(guard, rules, text) if rules else Decision()
            if self.stopped:  # why it stopped comes first; the check of the whole text may name more
                named = {(v.rule.detector, v.label) for v in stopping.violations}
                final = replace(final, violations=stopping.violations + tuple(
                    v for v in final.violations if (v.rule.detector, v.label) not in named))
            generation = Generation(content=text, params=source.params, watermarked=source.watermarked)
            rec = await asyncio.to_thread(guard.records.build, generator, prompt, prompt_decision, final,
                                          generation=generation, content=text, params=self.params,
                                          stream="stopped" if self.stopped else "completed")
            self.result = (await _commit(guard, generator, [], [(rec, None if rec.verdict == "block" else text)]))[0]
        except (GeneratorExit, asyncio.CancelledError):  # the consumer stopped reading, or the task was cancelled
            if self.result is None:
                self._log_early(prompt, prompt_decision, released, shown, source, None, stage)
            raise
        except Exception as exc:
            if self.result is None:
                self._log_early(prompt, prompt_decision, released, shown, source, exc, stage)
            raise
        if self.result.verdict != "block":
            for piece in held:
                yield piece

    def _log_early(self, prompt: chat.Prompt, prompt_decision: Decision, released: Decision, shown: list[str],
                   source: Any, error: BaseException | None, stage: str) -> None:
        """Log a stream that ended before its end: what it had shown, judged by the check that released it.
        Without awaiting: it runs while the stream is closed or cancelled."""
        text = "".join(shown) if shown else None
        generation = None
        if text is not None:
            generation = Generation(content=text, params=getattr(source, "params", self.params),
                                    watermarked=getattr(source, "watermarked", False))
        rec = self.guard.records.build(self.generator, prompt, prompt_decision, released, generation=generation,
                                       content=text, params=self.params, error=error, error_stage=stage,
                                       stream=None if error is not None else "abandoned")
        self.result = self.guard.commit(self.generator, [], [(rec, None if rec.verdict == "block" else text)])[0]


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
