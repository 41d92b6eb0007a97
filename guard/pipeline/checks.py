"""Checking content that already exists: a user's prompt, a reply from another system, an upload.

``Guard.check_prompt`` and ``Guard.check_output`` run the policy's rules on content no guarded generator made,
apply the same actions and log the attempt like a generation; the result is the same ``GuardedResult``. What
differs follows from there being no generator here:

- the record names the content's source as its generator (``{"name": "external", "model_id": source}``);
- existing content cannot be regenerated, so a ``regenerate`` rule blocks it;
- an output is signed like any other; a prompt checked alone is not (nothing was produced), and its record has no
  artifact digest, which would keep a plain hash of the prompt whatever the policy's ``prompt_storage`` says.
  ``result.artifact`` is the prompt as the policy lets it through (redacted, or None when blocked).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from core import chat
from core.errors import GuardError
from generators.base import Generation, Generator, GeneratorInfo, Modality
from guard.pipeline.checker import Decision
from guard.policy import Action
from guard.provenance import artifact as artifacts

if TYPE_CHECKING:
    from guard.pipeline.guard import Guard, GuardedResult


class External(Generator):
    """Where checked content came from, as its record names it; it generates nothing."""

    def __init__(self, source: str, modality: Modality = "text") -> None:
        self.source, self.modality = source, modality

    @property
    def info(self) -> GeneratorInfo:
        return GeneratorInfo(name="external", model_id=self.source)

    def generate(self, prompts: list[Any], *, hooks: dict[str, Any] | None = None, **params: Any) -> list:
        raise GuardError("checked content is not generated here")


def check_prompt(guard: "Guard", prompt: chat.Prompt, *, source: str) -> "GuardedResult":
    """The prompt stage's rules on ``prompt`` (a string or a message list); see the module docstring."""
    generator = External(source)
    [decision], [checked] = guard.check_prompts([prompt])
    record = guard.records.build(generator, checked, decision)
    [result] = guard.commit(generator, [], [(record, None)])
    return result if result.blocked else replace(result, artifact=checked)


def check_output(guard: "Guard", content: Any, *, prompt: chat.Prompt | None, source: str) -> "GuardedResult":
    """The output stage's rules on ``content`` (text or a PIL image), and the prompt stage's on ``prompt`` if
    given; the content is then marked, signed and logged as an output of ``source``."""
    generator = External(source, "image" if artifacts.is_image(content) else "text")
    prompt_decision = Decision()
    if prompt is not None:
        [prompt_decision], [prompt] = guard.check_prompts([prompt])
    [decision] = guard.checker.check("output", guard.policy.stages.output, [content])
    decision, handed = guard.checker.redacted(decision.escalated(Action.block) if decision.action is
                                              Action.regenerate else decision, content)
    record = guard.records.build(generator, prompt, prompt_decision, decision,
                                 generation=Generation(content=content), content=handed)
    return guard.commit(generator, [], [(record, None if record.verdict == "block" else handed)])[0]
