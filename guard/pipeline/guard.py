"""The Guard pipeline: prompt checks → generate → output checks → action → watermark → sign → log → result.

``Guard(policy).wrap(generator)`` returns a callable that runs one prompt or a batch through the pipeline.
A blocked output is never handed back as content, but every attempt, blocked or not, is logged with its scores.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.base import Score
from generators.base import Generation, Generator
from generators.callable import CallableGenerator
from guard.provenance import artifact as artifacts
from guard.pipeline import registry as detection
from core.errors import GuardError, UnavailableError
from guard.signing.keys import ContentSigner, KeyStore
from guard.policy import Action, DetectorRule, Policy, load
from guard.provenance.log import InclusionProof, LogEntry, ProvenanceLog
from guard.provenance.record import ProvenanceRecord

REDACTION = "[redacted]"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


@dataclass(frozen=True)
class GuardedResult:
    """What a guarded call returns. ``artifact`` is None when the output was blocked."""

    artifact: Any  # str, PIL image, or None
    verdict: str  # allow | flag | redact | block
    scores: list[dict[str, Any]]
    record_id: str
    index: int
    inclusion_proof: InclusionProof
    signature: dict[str, Any] | None  # DSSE envelope (text) or C2PA manifest summary (images)
    media_type: str
    watermark: dict[str, Any] | None = None
    errors: list[dict[str, Any]] = field(default_factory=list)
    attempts: int = 1
    file_bytes: bytes | None = None  # the signed image file (C2PA manifest embedded)

    @property
    def blocked(self) -> bool:
        return self.verdict == "block"

    @property
    def text(self) -> str:
        if not isinstance(self.artifact, str):
            raise TypeError("this result holds no text" if self.artifact is None else "this result is an image")
        return self.artifact


@dataclass
class _Decision:
    """The outcome of one stage for one item."""

    action: Action = Action.allow
    violations: list[tuple[DetectorRule, list[str]]] = field(default_factory=list)
    scores: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)

    def escalate(self, action: Action) -> None:
        if action.severity > self.action.severity:
            self.action = action


class Guard:
    """Runs generators behind a policy, and marks, signs and logs every output.

    ``policy`` is a shipped policy name, a path, or a loaded ``Policy``. ``log`` is a ``ProvenanceLog``, a URL or
    a path (default: the policy's log, else ``$GUARD_HOME/provenance.db``). ``keys`` is a ``KeyStore`` or folder.
    ``content_signer`` replaces the local signer key, e.g. with a KMS-backed signer.
    """

    def __init__(
        self,
        policy: str | Path | Policy = "default",
        *,
        log: ProvenanceLog | str | Path | None = None,
        keys: KeyStore | str | Path | None = None,
        content_signer: ContentSigner | None = None,
    ) -> None:
        self.policy = load(policy)
        self.keys = keys if isinstance(keys, KeyStore) else KeyStore(keys)
        self.log = log if isinstance(log, ProvenanceLog) else ProvenanceLog(log or self.policy.log.url)
        self._content_signer = content_signer

    @property
    def content_signer(self) -> ContentSigner:
        if self._content_signer is None:
            self._content_signer = self.keys.content_signer()
        return self._content_signer

    def wrap(self, generator: Generator | Callable[..., Any]) -> "Guarded":
        """Guard a generator backend or any function ``prompt -> str | PIL image``. Usable as a decorator."""
        if not isinstance(generator, Generator):
            generator = CallableGenerator(generator)
        return Guarded(self, generator)

    # -- the pipeline ------------------------------------------------------------------------------------

    def run(self, generator: Generator, prompts: list[str], *, images: list[Any] | None = None,
            **params: Any) -> list[GuardedResult]:
        """Run a batch of prompts through every stage; returns one result per prompt, in order.

        ``images`` are input images (one per prompt, for image-to-image or editing): the prompt-stage image
        detectors (e.g. ``deepfake``) score them with the prompt, so a policy can refuse to edit a deepfake; they
        reach the generator as ``hooks["input_images"]`` and their digests are recorded.
        """
        policy = self.policy
        prompt_decisions = self._check("prompt", policy.stages.prompt, prompts)
        prompts = [self._redact_if(d, p, policy.stages.prompt) for d, p in zip(prompt_decisions, prompts)]
        if images is not None:
            if len(images) != len(prompts):
                raise GuardError(f"{len(images)} input images for {len(prompts)} prompts; give one per prompt")
            for d, checked in zip(prompt_decisions, self._check("input", policy.stages.prompt, images)):
                d.scores += checked.scores
                d.errors += checked.errors
                d.violations += checked.violations
                # An image cannot be redacted sentence by sentence: a redacting rule refuses it.
                d.escalate(Action.block if checked.action is Action.redact else checked.action)

        records: list[ProvenanceRecord] = []
        to_generate = [i for i, d in enumerate(prompt_decisions) if d.action is not Action.block]
        finals: dict[int, tuple[ProvenanceRecord, Any]] = {}

        for i, d in enumerate(prompt_decisions):
            if d.action is Action.block:
                rec = self._record(generator, prompts[i], None, None, d, _Decision(), params)
                finals[i] = (rec, None)

        parents: dict[int, ProvenanceRecord] = {}
        attempt = 1
        max_attempts = max((r.max_attempts for r in policy.stages.output if r.action is Action.regenerate), default=1)
        while to_generate:
            hooks = self._hooks(generator)
            if images is not None:
                hooks["input_images"] = [images[i] for i in to_generate]
            generations = generator.generate([prompts[i] for i in to_generate], hooks=hooks, **params)
            decisions = self._check("output", policy.stages.output, [g.content for g in generations])
            retry = []
            for i, gen, d in zip(to_generate, generations, decisions):
                content = gen.content
                if d.action is Action.redact:
                    content = self._redact(d, content)
                    if content is None:
                        d.escalate(Action.block)
                rec = self._record(generator, prompts[i], gen, content, prompt_decisions[i], d, params,
                                   attempt=attempt, parent=parents.get(i))
                if d.action is Action.regenerate and attempt < max_attempts:
                    rec.verdict = "block"
                    rec.actions.append("regenerate")
                    records.append(rec)
                    parents[i] = rec
                    retry.append(i)
                    continue
                if d.action is Action.regenerate:  # out of attempts
                    rec.verdict = "block"
                    rec.actions.append(f"regenerate: gave up after {attempt} attempts")
                finals[i] = (rec, None if rec.verdict == "block" else content)
            to_generate, attempt = retry, attempt + 1

        if images is not None:
            for i, image in enumerate(images):
                finals[i][0].extra["input_image"] = artifacts.image_digest(image)
        return self._commit(generator, records, [finals[i] for i in range(len(prompts))])

    def _commit(
        self,
        generator: Generator,
        superseded: list[ProvenanceRecord],
        finals: list[tuple[ProvenanceRecord, Any]],
    ) -> list[GuardedResult]:
        """Mark and sign what is handed back, log every attempt in one transaction, and build the results."""
        marked = [self._mark_and_sign(generator, rec, content) for rec, content in finals]
        entries = self.log.append_batch(superseded + [rec for rec, _ in finals])
        self._maybe_checkpoint(entries)
        by_id = {e.record_id: e for e in entries}
        results = []
        for (rec, _), (signature, file_bytes, content) in zip(finals, marked):
            entry = by_id[rec.record_id]
            results.append(GuardedResult(
                artifact=content,
                verdict=rec.verdict,
                scores=rec.scores,
                record_id=rec.record_id,
                index=entry.index,
                inclusion_proof=self.log.inclusion_proof(entry.index, entry.tree_size),
                signature=signature,
                media_type=rec.media_type,
                watermark=rec.watermark,
                errors=rec.errors,
                attempts=rec.attempt,
                file_bytes=file_bytes,
            ))
        return results

    def stream(self, generator: Generator, prompt: str, *, check_every: int = 8, window: int = 2000,
               **params: Any) -> "GuardedStream":
        """Stream a text generation; see ``GuardedStream``."""
        return GuardedStream(self, generator, prompt, check_every=check_every, window=window, params=params)

    # -- stages ------------------------------------------------------------------------------------------

    def _check(self, stage: str, rules: list[DetectorRule], items: list[Any]) -> list[_Decision]:
        decisions = [_Decision() for _ in items]
        if not items:
            return decisions
        for rule in rules:
            attempts = [(rule.detector, rule.options)]
            if rule.fallback is not None:
                attempts.append((rule.fallback.detector, rule.fallback.options))
            batch, failed = None, False
            for name, options in attempts:
                try:
                    detector = detection.create(name, options)
                    if not _accepts(detector, items[0]):
                        break
                    batch, failed = detector.score(list(items)), False
                    break
                except Exception as exc:  # a detector failing is a policy matter: fall back, or fail closed/open
                    if isinstance(exc, GuardError) and not isinstance(exc, UnavailableError):
                        raise  # bad input or configuration; a model missing here is the policy's matter
                    failed = True
                    for d in decisions:
                        d.errors.append({"detector": name, "stage": stage, "error": _one_line(exc)})
            if failed:
                for d in decisions:
                    d.escalate(Action.block if rule.fail == "closed" else Action.flag)
                continue
            if batch is None:
                continue
            for d, scores in zip(decisions, batch):
                d.scores += [{**s.to_dict(), "stage": stage} for s in scores]
                hit = _violations(rule, scores)
                if hit:
                    d.violations.append((rule, hit))
                    d.escalate(rule.action)
        return decisions

    def _redact_if(self, decision: _Decision, prompt: str, rules: list[DetectorRule]) -> str:
        if decision.action is not Action.redact:
            return prompt
        redacted = self._redact(decision, prompt)
        if redacted is None:
            decision.escalate(Action.block)
            return prompt
        return redacted

    def _redact(self, decision: _Decision, content: Any) -> str | None:
        """Replace the sentences that violate a redacting rule; None when the violation cannot be localised
        (an image, or no single sentence crosses the threshold), which the caller turns into a block."""
        if not isinstance(content, str):
            return None
        rules = [rule for rule, _ in decision.violations if rule.action is Action.redact]
        sentences = _SENTENCE_END.split(content)
        bad = [False] * len(sentences)
        for rule in rules:
            for k, scores in enumerate(detection.create(rule.detector, rule.options).score(sentences)):
                bad[k] = bad[k] or bool(_violations(rule, scores))
        if not any(bad):
            return None
        return " ".join(REDACTION if b else s for s, b in zip(sentences, bad))

    def _hooks(self, generator: Generator) -> dict[str, Any]:
        hooks: dict[str, Any] = {}
        if "text_watermark" in generator.hook_names and self.policy.watermark.text.enabled:
            from guard.watermark.text import generation_config

            hooks["text_watermark"] = generation_config(self.policy.watermark.text, self.keys.watermark_secret())
        return hooks

    # -- records, marks, signatures ---------------------------------------------------------------------

    def _record(
        self,
        generator: Generator,
        prompt: str,
        generation: Generation | None,
        content: Any,
        prompt_decision: _Decision,
        output_decision: _Decision,
        params: dict[str, Any],
        *,
        attempt: int = 1,
        parent: ProvenanceRecord | None = None,
    ) -> ProvenanceRecord:
        final = Action.block if prompt_decision.action is Action.block else output_decision.action
        flagged = Action.flag in (prompt_decision.action, output_decision.action)
        verdict = {Action.block: "block", Action.redact: "redact"}.get(final, "flag" if flagged else "allow")
        if final is Action.regenerate:
            verdict = "block"
        modality = generator.modality if generation is None else ("image" if artifacts.is_image(generation.content)
                                                                   else "text")
        rec = ProvenanceRecord(
            media_type="image/png" if modality == "image" else artifacts.TEXT_MEDIA_TYPE,
            generator=generator.info.to_dict(),
            verdict=verdict,
            policy={"name": self.policy.name, "sha256": self.policy.sha256},
            artifact=artifacts.digest(content if content is not None else generation.content) if generation else None,
            params=dict(generation.params) if generation else dict(params),
            scores=prompt_decision.scores + output_decision.scores,
            errors=prompt_decision.errors + output_decision.errors,
            actions=[f"{stage}:{a.value}" for stage, a in (("prompt", prompt_decision.action),
                                                            ("output", output_decision.action)) if a is not Action.allow],
            attempt=attempt,
            parent=parent.record_id if parent else None,
        )
        if isinstance(content, str):
            from guard.bias.logged import bias_signals
            from guard.audit.trace import text_signals

            # The text never enters the log, so what a later bias audit and `guard trace` need is kept now:
            # the groups it mentions with its scores, and a MinHash sketch for near-duplicate search.
            rec.extra["bias"] = bias_signals(content, output_decision.scores)
            rec.extra["minhash"] = text_signals(content)
        storage = self.policy.prompt_storage
        rec.prompt = {"storage": storage}
        if storage == "plain":
            rec.private["prompt"] = prompt
        elif storage == "hash":
            rec.prompt["hmac_sha256"] = self.log.prompt_digest(prompt)
        if generation is not None and generation.watermarked:
            cfg = self.policy.watermark.text
            # key_id seeds the green lists together with the secret; secret_id names the secret (not it).
            rec.watermark = {"scheme": "kgw-transformers", "key_id": cfg.key_id,
                             "secret_id": self.keys.watermark_key_id(),
                             "greenlist_ratio": cfg.greenlist_ratio, "bias": cfg.bias,
                             "seeding_scheme": cfg.seeding_scheme, "context_width": cfg.context_width}
        return rec

    def _mark_and_sign(self, generator: Generator, rec: ProvenanceRecord, content: Any):
        """Watermark (images), then sign; returns (signature, signed file bytes, content handed back)."""
        if content is None:
            return None, None, None
        if isinstance(content, str):
            if self.policy.signing.text == "none":
                return None, None, content
            from guard.signing import dsse

            statement = dsse.statement(rec.artifact["sha256"], f"output-{rec.record_id}.txt", rec.statement_dict())
            envelope = dsse.sign(statement, self.content_signer)
            rec.signature = {"type": "dsse", "envelope_sha256": dsse.envelope_digest(envelope),
                             "keyid": envelope["signatures"][0]["keyid"]}
            return envelope, None, content
        return self._mark_and_sign_image(generator, rec, content)

    def _mark_and_sign_image(self, generator: Generator, rec: ProvenanceRecord, image):
        from guard.pipeline.finish_image import finalize_image

        return finalize_image(self, generator, rec, image)

    def _maybe_checkpoint(self, entries: list[LogEntry]) -> None:
        if not entries:
            return
        every = self.policy.log.checkpoint_every
        before, after = entries[0].index, entries[-1].tree_size
        if before // every != after // every or (after < every and before == 0):
            self.log.checkpoint(self.keys.log_private_key())


class Guarded:
    """A guarded generator: call it with a prompt, ``batch`` for many, ``agenerate`` from async code."""

    def __init__(self, guard: Guard, generator: Generator) -> None:
        self.guard = guard
        self.generator = generator
        self.__wrapped__ = getattr(generator, "fn", generator)

    def __call__(self, prompt: str, *, image: Any = None, **params: Any) -> GuardedResult:
        """One guarded generation; ``image`` is an input image (image-to-image, editing) checked before use."""
        return self.guard.run(self.generator, [prompt], images=None if image is None else [image], **params)[0]

    def batch(self, prompts: list[str], *, images: list[Any] | None = None, **params: Any) -> list[GuardedResult]:
        return self.guard.run(self.generator, list(prompts), images=images, **params)

    async def agenerate(self, prompt: str, **params: Any) -> GuardedResult:
        """Run the pipeline in a worker thread so a server's event loop keeps serving."""
        return await asyncio.to_thread(self.__call__, prompt, **params)

    def stream(self, prompt: str, *, check_every: int = 8, window: int = 2000, **params: Any) -> "GuardedStream":
        """Yield text as it is generated, checked every ``check_every`` pieces; see ``GuardedStream``."""
        return self.guard.stream(self.generator, prompt, check_every=check_every, window=window, **params)


class GuardedStream:
    """A streamed text generation behind the policy.

    Pieces are held back until the output checks have passed on the text that contains them: every
    ``check_every`` pieces the output detectors score the last ``window`` characters, and the held pieces are
    released only if nothing crosses a threshold whose action is block, regenerate or redact. When a check fails,
    generation stops and the stream ends; nothing unchecked has been shown. At the end the whole text is checked,
    signed and logged like any other output, and ``result`` holds the ``GuardedResult`` (``artifact`` is None when
    the stream was stopped). A stream cannot be regenerated or redacted after the fact: those actions block.
    """

    STOPPING = (Action.block, Action.regenerate, Action.redact)

    def __init__(self, guard: Guard, generator: Generator, prompt: str, *, check_every: int, window: int,
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
        guard, policy = self.guard, self.guard.policy
        prompt_decision = guard._check("prompt", policy.stages.prompt, [self.prompt])[0]
        prompt = guard._redact_if(prompt_decision, self.prompt, policy.stages.prompt)
        if prompt_decision.action is Action.block:
            rec = guard._record(self.generator, prompt, None, None, prompt_decision, _Decision(), self.params)
            self.result = guard._commit(self.generator, [], [(rec, None)])[0]
            return
        source = self.generator.stream(prompt, hooks=guard._hooks(self.generator), **self.params)
        held: list[str] = []
        try:
            for count, piece in enumerate(source, start=1):
                held.append(piece)
                if count % self.check_every:
                    continue
                window = source.text[-self.window:]
                if guard._check("output", policy.stages.output, [window])[0].action in self.STOPPING:
                    self.stopped = True
                    break
                yield from held
                held = []
        finally:
            source.close()
        text = source.text
        final = guard._check("output", policy.stages.output, [text])[0]
        if self.stopped or final.action in self.STOPPING:
            final.escalate(Action.block)
        generation = Generation(content=text, params=source.params, watermarked=source.watermarked)
        rec = guard._record(self.generator, prompt, generation, text, prompt_decision, final, self.params)
        if self.stopped:
            rec.actions.append("stream stopped by an output check")
        if rec.verdict != "block":
            yield from held
        self.result = guard._commit(self.generator, [], [(rec, None if rec.verdict == "block" else text)])[0]


def _accepts(detector, item: Any) -> bool:
    modality = "image" if artifacts.is_image(item) else "text"
    return modality in detector.modalities


def _violations(rule: DetectorRule, scores: list[Score]) -> list[str]:
    return [s.label for s in scores if s.label in rule.thresholds and s.value >= rule.thresholds[s.label]]


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
