"""The pipeline's step sequences, written once and run by every driver.

A guarded call is a fixed sequence: check the prompts (and input images), generate, check the outputs and build
each attempt's record (again while the policy asks to regenerate), then mark, sign and log every attempt, failed
ones included. A stream is the same with the output checked as it grows and released only once checked. Each is
written here once, as a generator that *yields* the work it needs done and is sent back the result (or has the
exception thrown in), without doing any input or output itself:

- ``Work``: the policy's own blocking work (detectors, records, marks and signatures, the log's write);
- ``Generate``: the backend's outputs for some prompts;
- ``Open``, ``Next``, ``Close``: a streaming backend's stream; ``Release``: a piece the stream may now show.

The drivers differ only in how they do that work: ``drive`` and ``drive_stream`` here in the caller's thread
(``Guard.run``, ``GuardedStream``), those in ``aio`` with async backends awaited on the event loop and the rest in
worker threads. So the order of the steps, the verdicts and what is logged cannot drift between sync and async
code, or between whole outputs and streams.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Generator as Steps, Iterator
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from core import chat
from generators.base import Generation, Generator
from guard.pipeline.checker import Decision
from guard.pipeline.recorder import STREAM_STOPPING
from guard.policy import Action
from guard.provenance import artifact as artifacts
from guard.provenance.record import ProvenanceRecord

if TYPE_CHECKING:
    from guard.pipeline.guard import Guard, GuardedResult

# What a sequence treats as the consumer going away: a closed generator, or (async code) a cancelled task.
ENDED_EARLY = (GeneratorExit, asyncio.CancelledError)


@dataclass(frozen=True)
class Work:
    """Call ``call()``. ``blocking``: it may take a while (async drivers run it in a worker thread)."""

    call: Callable[[], Any]
    blocking: bool = True


@dataclass(frozen=True)
class Generate:
    """The backend's ``Generation`` for each prompt."""

    prompts: list[chat.Prompt]
    hooks: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Open:
    """Open the backend's text stream for ``prompt``; the driver keeps it, and closes it however the stream ends."""

    prompt: chat.Prompt
    hooks: dict[str, Any]
    params: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Next:
    """The open stream's next piece, or ``END``."""


@dataclass(frozen=True)
class Close:
    """Close the open stream (generation stops)."""


@dataclass(frozen=True)
class Release:
    """Show ``piece`` to the consumer: the checks have passed on the text that contains it."""

    piece: str


END = object()  # what ``Next`` gets back when the stream has no more pieces

Step = Work | Generate | Open | Next | Close | Release


@dataclass(frozen=True)
class Done:
    """The sequence has returned ``value``."""

    value: Any


def advance(sequence: Steps[Step, Any, Any], value: Any = None, *, error: BaseException | None = None) -> Step | Done:
    """Hand the last step's ``value`` (or the ``error`` it raised) to ``sequence``; its next step, or ``Done``."""
    try:
        return sequence.send(value) if error is None else sequence.throw(error)
    except StopIteration as stop:
        return Done(stop.value)


# -- a call: one or more prompts, whole outputs -------------------------------------------------------------


def attempts(guard: "Guard", generator: Generator, prompts: list[chat.Prompt], *, images: list[Any] | None,
             params: dict[str, Any]) -> Steps[Step, Any, tuple[list["GuardedResult"], BaseException | None]]:
    """Every attempt for ``prompts``, logged; returns one result per prompt and the error that cut attempts short,
    if one did (its prompts' results are then the logged failures, in prompt order like the rest)."""
    n = len(prompts)
    prompt_decisions, inputs = [Decision()] * n, [None] * n
    finals: dict[int, tuple[ProvenanceRecord, Any]] = {}  # prompt -> its last attempt, and what is handed back
    superseded: list[ProvenanceRecord] = []  # attempts that were regenerated
    parents: dict[int, ProvenanceRecord] = {}
    attempt, stage = 1, "prompt"
    try:
        prompt_decisions, prompts = yield Work(lambda: guard.check_prompts(prompts),
                                               blocking=bool(guard.policy.stages.prompt))
        if images is not None:
            stage = "input"
            prompt_decisions, inputs = yield Work(lambda: _check_inputs(guard, prompt_decisions, images))
        for i, d in enumerate(prompt_decisions):
            if d.action is Action.block:
                finals[i] = (guard.records.build(generator, prompts[i], d, params=params, input_image=inputs[i]),
                             None)
        pending = [i for i, d in enumerate(prompt_decisions) if d.action is not Action.block]
        while pending:
            stage = "generate"
            hooks = guard.hooks(generator)
            if images is not None:
                hooks["input_images"] = [images[i] for i in pending]
            generations = yield Generate([prompts[i] for i in pending], hooks, params)
            stage = "output"
            judged = yield Work(lambda: _judge(guard, generator, pending, prompts, prompt_decisions, generations,
                                               params, attempt, parents, inputs))
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
        for i in range(n):  # the attempts the error cut short say so
            if i not in finals:
                finals[i] = (guard.records.build(generator, prompts[i], prompt_decisions[i], params=params,
                                                 attempt=attempt, parent=parents.get(i), error=exc,
                                                 error_stage=stage, input_image=inputs[i]), None)
        done = [finals[i] for i in range(n)]
        return (yield Work(lambda: guard.commit(generator, superseded, done))), exc
    done = [finals[i] for i in range(n)]
    return (yield Work(lambda: guard.commit(generator, superseded, done))), None


def _check_inputs(guard: "Guard", prompt_decisions: list[Decision],
                  images: list[Any]) -> tuple[list[Decision], list[dict[str, Any]]]:
    """The prompt stage's image detectors on the input images, merged into each prompt's decision; and the
    images' digests for the records. An image cannot be redacted sentence by sentence: a redacting rule refuses it."""
    merged = []
    for before, d in zip(prompt_decisions, guard.checker.check("input", guard.policy.stages.prompt, images)):
        merged.append(before.merged(replace(d, action=Action.block) if d.action is Action.redact else d))
    return merged, [artifacts.image_digest(image) for image in images]


def _judge(guard: "Guard", generator: Generator, pending: list[int], prompts: list[chat.Prompt],
           prompt_decisions: list[Decision], generations: list[Generation], params: dict[str, Any], attempt: int,
           parents: dict[int, ProvenanceRecord],
           inputs: list[Any]) -> list[tuple[int, ProvenanceRecord, Any, bool]]:
    """One attempt's output checks, redactions and records, and whether each prompt is to be generated again."""
    decisions = guard.checker.check("output", guard.policy.stages.output, [g.content for g in generations])
    judged = []
    for i, gen, d in zip(pending, generations, decisions):
        d, content = guard.checker.redacted(d, gen.content)
        rec = guard.records.build(generator, prompts[i], prompt_decisions[i], d, generation=gen, content=content,
                                  params=params, attempt=attempt, parent=parents.get(i), input_image=inputs[i])
        judged.append((i, rec, content, guard.records.retries(d, attempt)))
    return judged


def drive(sequence: Steps[Step, Any, Any], generator: Generator) -> Any:
    """Run a call's sequence in this thread; returns what it returns."""
    step = advance(sequence)
    while not isinstance(step, Done):
        try:
            value = _now(step, generator)
        except Exception as exc:
            step = advance(sequence, error=exc)
        else:
            step = advance(sequence, value)
    return step.value


def _now(step: Step, generator: Generator) -> Any:
    """A call's step done in this thread (the streams' steps are done by their drivers)."""
    if isinstance(step, Work):
        return step.call()
    if isinstance(step, Generate):
        return generator.generate(step.prompts, hooks=step.hooks, **step.params)
    raise TypeError(f"not a step of a call: {step!r}")


# -- a stream: one prompt, text released as it is checked ---------------------------------------------------


class StreamState:
    """What a stream's consumer reads besides the pieces: ``result`` (the ``GuardedResult``, set once logged) and
    ``stopped`` (an output check stopped it). ``GuardedStream`` and ``AsyncGuardedStream`` are its two faces."""

    def __init__(self, guard: "Guard", generator: Generator, prompt: chat.Prompt, *, check_every: int,
                 window: int, params: dict[str, Any]) -> None:
        self.guard, self.generator, self.prompt = guard, generator, prompt
        self.check_every, self.window, self.params = max(1, check_every), max(1, window), params
        self.result: GuardedResult | None = None
        self.stopped = False


def stream(s: StreamState) -> Steps[Step, Any, None]:
    """A streamed generation: pieces are held back until the output checks pass on the text that contains them
    (every ``check_every`` pieces, the last ``window`` characters; without output rules each piece is released
    as it comes). A failing check stops the stream. At the end the whole text is checked and logged, and
    ``result`` is set before the last held pieces are released, so a consumer that sends them on (a server) can
    name the record with them. A stream that ends early is logged with the text it showed: when the backend or a
    check raises (the error then reaches the consumer), and when the consumer stops reading."""
    guard, generator, rules = s.guard, s.generator, s.guard.policy.stages.output
    prompt, prompt_decision = s.prompt, Decision()
    released = Decision()  # the output check that released the text shown so far
    stopping = Decision()  # the output check that stopped the stream, if one did
    shown: list[str] = []
    held: list[str] = []
    source = None
    stage = "prompt"
    try:
        [prompt_decision], [prompt] = yield Work(lambda: guard.check_prompts([s.prompt]),
                                                 blocking=bool(guard.policy.stages.prompt))
        if prompt_decision.action is Action.block:
            rec = guard.records.build(generator, prompt, prompt_decision, params=s.params)
            s.result = (yield Work(lambda: guard.commit(generator, [], [(rec, None)])))[0]
            return
        stage = "generate"
        source = yield Open(prompt, guard.hooks(generator), s.params)
        hold, count = (s.check_every if rules else 1), 0
        while (piece := (yield Next())) is not END:
            count += 1
            held.append(piece)
            if count % hold:
                continue
            if rules:
                stage = "output"
                text = source.text[-s.window:]
                decision = (yield Work(lambda: guard.checker.check("output", rules, [text])))[0]
                stage = "generate"
                if decision.action in STREAM_STOPPING:
                    s.stopped, stopping = True, decision
                    break
                released = decision
            for piece in held:
                shown.append(piece)
                yield Release(piece)
            held = []
        yield Close()
        stage = "output"
        text = source.text
        final = (yield Work(lambda: guard.checker.check("output", rules, [text])))[0] if rules else Decision()
        if s.stopped:  # why it stopped comes first; the check of the whole text may name more
            named = {(v.rule.detector, v.label) for v in stopping.violations}
            final = replace(final, violations=stopping.violations + tuple(
                v for v in final.violations if (v.rule.detector, v.label) not in named))
        generation = Generation(content=text, params=source.params, watermarked=source.watermarked)
        rec = yield Work(lambda: guard.records.build(generator, prompt, prompt_decision, final,
                                                     generation=generation, content=text, params=s.params,
                                                     stream="stopped" if s.stopped else "completed"))
        s.result = (yield Work(lambda: guard.commit(generator, [], [(rec, None if rec.verdict == "block"
                                                                      else text)])))[0]
    except ENDED_EARLY:
        if s.result is None:
            _log_early(s, prompt, prompt_decision, released, shown, source, None, stage)
        raise
    except Exception as exc:
        if s.result is None:
            _log_early(s, prompt, prompt_decision, released, shown, source, exc, stage)
        raise
    if s.result.verdict != "block":
        for piece in held:
            yield Release(piece)


def _log_early(s: StreamState, prompt: chat.Prompt, prompt_decision: Decision, released: Decision,
               shown: list[str], source: Any, error: BaseException | None, stage: str) -> None:
    """Log a stream that ended before its end: what it had shown, judged by the check that released it.
    Done at once, in this thread: it runs while the stream is closed or its task cancelled, when no driver may
    wait for work any more."""
    text = "".join(shown) if shown else None
    generation = None
    if text is not None:
        generation = Generation(content=text, params=getattr(source, "params", s.params),
                                watermarked=getattr(source, "watermarked", False))
    rec = s.guard.records.build(s.generator, prompt, prompt_decision, released, generation=generation,
                                content=text, params=s.params, error=error, error_stage=stage,
                                stream=None if error is not None else "abandoned")
    s.result = s.guard.commit(s.generator, [], [(rec, None if rec.verdict == "block" else text)])[0]


def drive_stream(s: StreamState) -> Iterator[str]:
    """Run a stream in this thread, on the backend's ``stream``; yields the released pieces."""
    sequence, source = stream(s), None
    try:
        step = advance(sequence)
        while not isinstance(step, Done):
            if isinstance(step, Release):
                yield step.piece
                step = advance(sequence)
                continue
            try:
                if isinstance(step, Open):
                    value = source = s.generator.stream(step.prompt, hooks=step.hooks, **step.params)
                elif isinstance(step, Next):
                    value = next(source, END)
                elif isinstance(step, Close):
                    value, (source, closing) = None, (None, source)
                    closing.close()
                else:
                    value = _now(step, s.generator)
            except Exception as exc:
                step = advance(sequence, error=exc)
            else:
                step = advance(sequence, value)
    finally:
        sequence.close()  # when the consumer stopped reading, the sequence logs what was shown
        if source is not None:
            source.close()
