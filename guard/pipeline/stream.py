"""Streaming behind the policy: text released piece by piece, only once the checks have passed on it."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from core.errors import GuardError
from generators.base import Generation, Generator
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

    def _run(self) -> Iterator[str]:
        guard, rules = self.guard, self.guard.policy.stages.output
        [prompt_decision], [prompt] = guard.check_prompts([self.prompt])
        if prompt_decision.action is Action.block:
            rec = guard.records.build(self.generator, prompt, prompt_decision, params=self.params)
            self.result = guard.commit(self.generator, [], [(rec, None)])[0]
            return
        source = self.generator.stream(prompt, hooks=guard.hooks(self.generator), **self.params)
        held: list[str] = []
        try:
            for count, piece in enumerate(source, start=1):
                held.append(piece)
                if count % self.check_every:
                    continue
                window = source.text[-self.window:]
                if guard.checker.check("output", rules, [window])[0].action in STREAM_STOPPING:
                    self.stopped = True
                    break
                yield from held
                held = []
        finally:
            source.close()
        text = source.text
        final = guard.checker.check("output", rules, [text])[0]
        generation = Generation(content=text, params=source.params, watermarked=source.watermarked)
        rec = guard.records.build(self.generator, prompt, prompt_decision, final, generation=generation,
                                  content=text, params=self.params, stream_stopped=self.stopped)
        if rec.verdict != "block":
            yield from held
        self.result = guard.commit(self.generator, [], [(rec, None if rec.verdict == "block" else text)])[0]
