"""The record builder: the one place that turns an attempt's decisions into its verdict and its record.

Every attempt, allowed or not, becomes one ``ProvenanceRecord``, built complete here (only the finisher's
watermark and signature are added later, by ``dataclasses.replace``). The verdict follows from the decisions:

- a prompt that is blocked blocks the attempt; otherwise the output stage's action decides (in a record of a
  prompt alone, ``Guard.check_prompt``, the prompt stage's action does);
- ``regenerate`` blocks this attempt: the record says ``regenerate`` while attempts remain (the pipeline then
  tries again, with this record as the parent) or ``regenerate: gave up after N attempts`` when none do;
- a stream cannot be regenerated or redacted after the fact: there those actions, and a stream stopped by a
  check, block;
- an attempt that raised (the generator, a check) before anything was handed back blocks, and the record names
  the stage and the error; a stream that raised or was abandoned after showing text is judged on the checks that
  released that text;
- otherwise ``redact``, then ``flag`` at either stage, else ``allow``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Literal

from core import chat
from generators.base import Generation, Generator
from guard.pipeline.checker import Decision, one_line
from guard.pipeline.signals import text_signals
from guard.policy import Action, Policy
from guard.provenance import artifact as artifacts
from guard.provenance.record import ProvenanceRecord, canonical

STREAM_STOPPING = (Action.block, Action.regenerate, Action.redact)  # what a stream cannot release

# How a stream ended: ran to its end, stopped by an output check, or abandoned by its consumer.
StreamEnd = Literal["completed", "stopped", "abandoned"]


class RecordBuilder:
    """Builds records under one policy. ``prompt_digest`` keys the stored prompt hash (the log's salt);
    ``watermark_secret_id`` names the watermark secret in records of watermarked text."""

    def __init__(self, policy: Policy, *, prompt_digest: Callable[[str], str],
                 watermark_secret_id: Callable[[], str]) -> None:
        self.policy = policy
        self._prompt_digest = prompt_digest
        self._watermark_secret_id = watermark_secret_id
        self.max_attempts = max((r.max_attempts for r in policy.stages.output if r.action is Action.regenerate),
                                default=1)

    def retries(self, output: Decision, attempt: int) -> bool:
        """Whether the output stage asks for another generation after this attempt."""
        return output.action is Action.regenerate and attempt < self.max_attempts

    def build(
        self,
        generator: Generator,
        prompt: chat.Prompt | None,
        prompt_decision: Decision,
        output_decision: Decision | None = None,
        *,
        generation: Generation | None = None,
        content: Any = None,
        params: Mapping[str, Any] | None = None,
        attempt: int = 1,
        parent: ProvenanceRecord | None = None,
        stream: StreamEnd | None = None,
        error: BaseException | None = None,
        error_stage: str = "generate",
        input_image: dict[str, Any] | None = None,
    ) -> ProvenanceRecord:
        """The record of one attempt.

        ``output_decision`` is None when there was no output to check (the prompt was blocked, a prompt alone was
        checked, or generating failed): the prompt stage's action is then the verdict's, unless an error blocks.
        ``generation`` is None when nothing was generated (the prompt was blocked, a prompt alone was checked, or
        generating failed); ``content`` is the output the record names: the generation after redaction, or None
        when there is none (nothing generated, or a redaction that could not be localised).
        ``stream`` says how a stream ended (None outside a stream). ``error`` is what an attempt raised, at
        ``error_stage``.
        """
        prompt_only = output_decision is None
        output_decision = Decision() if output_decision is None else output_decision
        if stream is not None and (stream == "stopped" or output_decision.action in STREAM_STOPPING):
            output_decision = output_decision.escalated(Action.block)
        verdict, actions = self._verdict(prompt_decision, output_decision, attempt, prompt_only)
        if error is not None and content is None:
            verdict = "block"  # nothing was handed back
        if stream == "stopped":
            actions.append("stream stopped by an output check")
        elif stream == "abandoned":
            actions.append("stream ended early: the consumer stopped reading")
        errors = list(prompt_decision.errors + output_decision.errors)
        if error is not None:
            actions.append(f"{error_stage}:error")
            where = {"generator": generator.info.model_id} if error_stage == "generate" else {}
            errors.append({"stage": error_stage, **where, "error": one_line(error)})
        extra: dict[str, Any] = {}
        if generation is not None and isinstance(generation.content, str):
            extra.update(text_signals(generation.content, output_decision.scores,
                                      named=content if isinstance(content, str) else None))
        if input_image is not None:
            extra["input_image"] = input_image
        if generation is None:
            modality = generator.modality
        else:
            modality = "image" if artifacts.is_image(generation.content) else "text"
        prompt_record, private = self._prompt(prompt)
        return ProvenanceRecord(
            media_type="image/png" if modality == "image" else artifacts.TEXT_MEDIA_TYPE,
            generator=generator.info.to_dict(),
            verdict=verdict,
            policy={"name": self.policy.name, "sha256": self.policy.sha256},
            artifact=None if generation is None else artifacts.digest(generation.content if content is None
                                                                      else content),
            params=dict(generation.params) if generation is not None else dict(params or {}),
            prompt=prompt_record,
            scores=list(prompt_decision.scores + output_decision.scores),
            errors=errors,
            violations=[v.to_dict() for v in prompt_decision.violations + output_decision.violations],
            actions=actions,
            attempt=attempt,
            parent=parent.record_id if parent is not None else None,
            watermark=self._text_watermark() if generation is not None and generation.watermarked else None,
            extra=extra,
            private=private,
        )

    def _verdict(self, prompt: Decision, output: Decision, attempt: int, prompt_only: bool) -> tuple[str, list[str]]:
        actions = [f"{stage}:{d.action.value}" for stage, d in (("prompt", prompt), ("output", output))
                   if d.action is not Action.allow]
        final = prompt.action if prompt_only or prompt.action is Action.block else output.action
        if final is Action.regenerate:
            actions.append("regenerate" if self.retries(output, attempt)
                           else f"regenerate: gave up after {attempt} attempts")
            return "block", actions
        if final in (Action.block, Action.redact):
            return final.value, actions
        return ("flag" if Action.flag in (prompt.action, output.action) else "allow"), actions

    def _prompt(self, prompt: chat.Prompt | None) -> tuple[dict[str, Any], dict[str, str]]:
        """What the record says of the prompt, and the erasable plaintext kept beside it (policy ``prompt_storage``).

        A chat prompt is kept whole, as the canonical JSON of its message list, and marked ``format: chat``.
        None (content checked without a prompt) stores nothing.
        """
        if prompt is None:
            return {"storage": "none"}, {}
        said: dict[str, Any] = {"storage": self.policy.prompt_storage}
        if chat.is_chat(prompt):
            said["format"] = "chat"
            prompt = canonical(prompt).decode("utf-8")
        if said["storage"] == "plain":
            return said, {"prompt": prompt}
        if said["storage"] == "hash":
            return {**said, "hmac_sha256": self._prompt_digest(prompt)}, {}
        return said, {}

    def _text_watermark(self) -> dict[str, Any]:
        cfg = self.policy.watermark.text
        # key_id seeds the green lists together with the secret; secret_id names the secret (not it).
        return {"scheme": "kgw-transformers", "key_id": cfg.key_id, "secret_id": self._watermark_secret_id(),
                "greenlist_ratio": cfg.greenlist_ratio, "bias": cfg.bias, "seeding_scheme": cfg.seeding_scheme,
                "context_width": cfg.context_width}
