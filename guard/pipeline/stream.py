"""Streaming behind the policy: text released piece by piece, only once the checks have passed on it."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core.errors import GuardError
from generators.base import Generation, Generator
from guard.pipeline.checker import Decision
from guard.pipeline.recorder import STREAM_STOPPING
from guard.policy import Action

if TYPE_CHECKING:
    from guard.pipeline.guard import Guard, GuardedResult


class GuardedStream:
    """A streamed text generation behind the policy.

    Pieces are held back until the output checks have passed on the text that contains them: every
    ``check_every`` pieces the output detectors score the last ``window`` characters, and the held pieces are
    released only if nothing crosses a threshold whose action is block, regenerate or redact. When a check fails,
    generation stops and the stream ends; nothing unchecked has been shown. At the end the whole text is checked,
    signed and logged like any other output, and ``result`` holds the ``GuardedResult`` (``artifact`` is None when
    the stream was stopped). A stream cannot be regenerated or redacted after the fact: those actions block.

    A stream that ends early is logged too, with the text it had shown: when the backend raises (the error then
    reaches the consumer), and when the consumer stops reading. The latter is known when the stream is closed:
    call ``close()`` or use the stream in a ``with`` block; otherwise it is logged when the stream is collected.
    """

    def __init__(self, guard: "Guard", generator: Generator, prompt: str, *, check_every: int, window: int,
                 params: dict[str, Any]) -> None:
        if not hasattr(generator, "stream"):
            raise GuardError(f"{generator.info.model_id} cannot stream; call it without .stream()")
        self.guard, self.generator, self.prompt = guard, generator, prompt
        self.check_every, self.window, self.params = max(1, check_every), max(1, window), params
        self.result: GuardedResult | None = None
        self.stopped = False
        self._pieces = self._run()

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

    def _run(self) -> Iterator[str]:
        guard, rules = self.guard, self.guard.policy.stages.output
        prompt, prompt_decision = self.prompt, Decision()
        released = Decision()  # the output check that released the text shown so far
        stopping = Decision()  # the output check that stopped the stream, if one did
        shown: list[str] = []
        source = None
        stage = "prompt"
        try:
            [prompt_decision], [prompt] = guard.check_prompts([self.prompt])
            if prompt_decision.action is Action.block:
                rec = guard.records.build(self.generator, prompt, prompt_decision, params=self.params)
                self.result = guard.commit(self.generator, [], [(rec, None)])[0]
                return
            stage = "generate"
            source = self.generator.stream(prompt, hooks=guard.hooks(self.generator), **self.params)
            held: list[str] = []
            try:
                for count, piece in enumerate(source, start=1):
                    held.append(piece)
                    if count % self.check_every:
                        continue
                    stage = "output"
                    decision = guard.checker.check("output", rules, [source.text[-self.window:]])[0]
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
                source.close()
            stage = "output"
            text = source.text
            final = guard.checker.check("output", rules, [text])[0]
            if self.stopped:  # why it stopped comes first; the check of the whole text may name more
                named = {(v.rule.detector, v.label) for v in stopping.violations}
                final = replace(final, violations=stopping.violations + tuple(
                    v for v in final.violations if (v.rule.detector, v.label) not in named))
            generation = Generation(content=text, params=source.params, watermarked=source.watermarked)
            rec = guard.records.build(self.generator, prompt, prompt_decision, final, generation=generation,
                                      content=text, params=self.params,
                                      stream="stopped" if self.stopped else "completed")
            if rec.verdict != "block":
                for piece in held:
                    shown.append(piece)
                    yield piece
            self.result = guard.commit(self.generator, [], [(rec, None if rec.verdict == "block" else text)])[0]
        except GeneratorExit:  # the consumer stopped reading
            self._log_early(prompt, prompt_decision, released, shown, source, None, stage)
            raise
        except Exception as exc:
            self._log_early(prompt, prompt_decision, released, shown, source, exc, stage)
            raise

    def _log_early(self, prompt: str, prompt_decision: Decision, released: Decision, shown: list[str], source: Any,
                   error: BaseException | None, stage: str) -> None:
        """Log a stream that ended before its end: what it had shown, judged by the check that released it."""
        text = "".join(shown) if shown else None
        generation = None
        if text is not None:
            generation = Generation(content=text, params=getattr(source, "params", self.params),
                                    watermarked=getattr(source, "watermarked", False))
        rec = self.guard.records.build(self.generator, prompt, prompt_decision, released, generation=generation,
                                       content=text, params=self.params, error=error, error_stage=stage,
                                       stream=None if error is not None else "abandoned")
        self.result = self.guard.commit(self.generator, [], [(rec, None if rec.verdict == "block" else text)])[0]
