"""The Guard pipeline: prompt checks → generate → output checks → verdict → watermark → sign → log → result.

``Guard(policy).wrap(generator)`` returns a callable that runs one prompt or a batch through the pipeline.
A blocked output is never handed back as content, but every attempt, blocked or not, is logged with its scores.

The Guard composes parts with one job each, built once per Guard: the ``Checker`` (detectors → decisions), the
``RecordBuilder`` (decisions → verdict and record), the ``Finisher`` (marks and signatures) and the
``ProvenanceLog``. The order of the steps is written once, in ``steps``: ``run`` and ``GuardedStream`` drive its
sequences in the caller's thread and their async counterparts in ``aio`` on an event loop; the checks of existing
content in ``checks`` use the same parts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import chat
from core.errors import GuardError
from generators.base import Generator
from generators.callable import CallableGenerator
from guard.pipeline import steps
from guard.pipeline.checker import Checker, Decision
from guard.pipeline.finisher import Finished, Finisher
from guard.pipeline.recorder import RecordBuilder
from guard.policy import Action, Policy, load
from guard.provenance.log import InclusionProof, LogEntry, ProvenanceLog
from guard.provenance.record import ProvenanceRecord
from guard.signing.keys import ContentSigner, KeyStore

if TYPE_CHECKING:
    from guard.pipeline.aio import AsyncGuardedStream
    from guard.pipeline.stream import GuardedStream


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
        self.checker = Checker()
        self.records = RecordBuilder(self.policy, prompt_digest=self.log.prompt_digest,
                                     watermark_secret_id=self.keys.watermark_key_id)
        self.finisher = Finisher(watermark=self.policy.watermark.image, signing=self.policy.signing,
                                 disclosure=self.policy.disclosure, keys=self.keys, log_origin=self.log.origin,
                                 content_signer=content_signer)

    def wrap(self, generator: Generator | Callable[..., Any]) -> "Guarded":
        """Guard a generator backend or any function of a prompt: plain or ``async def``, returning text or a PIL
        image, or yielding text pieces (a streaming client; see ``generators.callable``). Usable as a decorator."""
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
        if images is not None and len(images) != len(prompts):
            raise GuardError(f"{len(images)} input images for {len(prompts)} prompts; give one per prompt")
        results, error = steps.drive(steps.attempts(self, generator, list(prompts), images=images, params=params),
                                     generator)
        if error is not None:  # every attempt is logged, the ones the error cut short included
            raise error
        return results

    def stream(self, generator: Generator, prompt: str, *, check_every: int = 8, window: int = 2000,
               **params: Any) -> "GuardedStream":
        """Stream a text generation; see ``GuardedStream``."""
        from guard.pipeline.stream import GuardedStream

        return GuardedStream(self, generator, prompt, check_every=check_every, window=window, params=params)

    # -- content that already exists ----------------------------------------------------------------------

    def check_prompt(self, prompt: chat.Prompt, *, source: str = "unspecified") -> GuardedResult:
        """Check a prompt (a string or a message list) without generating: the prompt rules and actions, logged.
        ``result.artifact`` is the prompt as the policy lets it through. See ``guard.pipeline.checks``."""
        from guard.pipeline.checks import check_prompt

        return check_prompt(self, prompt, source=source)

    def check_output(self, content: Any, *, prompt: chat.Prompt | None = None,
                     source: str = "unspecified") -> GuardedResult:
        """Check text (or an image) made elsewhere, e.g. a reply from another system: the output rules and actions
        (and the prompt rules on ``prompt``), then signed and logged as an output of ``source``."""
        from guard.pipeline.checks import check_output

        return check_output(self, content, prompt=prompt, source=source)

    # -- the parts of the steps that every sequence shares (``guard.pipeline.steps``) ----------------------

    def check_prompts(self, prompts: list[chat.Prompt]) -> tuple[list[Decision], list[chat.Prompt]]:
        """Prompt-stage decisions, and the prompts as the generator gets them (redacted where the policy says).

        A prompt is a string or a chat message list; the policy checks its user turn (``core.chat``).
        """
        texts = [chat.user_turn(p) for p in prompts]
        decisions, out = [], []
        for d, prompt, text in zip(self.checker.check("prompt", self.policy.stages.prompt, texts), prompts, texts):
            d, redacted = self.checker.redacted(d, text)
            decisions.append(d)
            out.append(chat.with_user_turn(prompt, redacted) if d.action is Action.redact else prompt)
        return decisions, out

    def hooks(self, generator: Generator) -> dict[str, Any]:
        """Generation-time marks for ``generator``: the text watermark, when it can embed one and it is on."""
        hooks: dict[str, Any] = {}
        if "text_watermark" in generator.hook_names and self.policy.watermark.text.enabled:
            from guard.watermark.text import generation_config

            hooks["text_watermark"] = generation_config(self.policy.watermark.text, self.keys.watermark_secret())
        return hooks

    def commit(
        self,
        generator: Generator,
        superseded: list[ProvenanceRecord],
        finals: list[tuple[ProvenanceRecord, Any]],
    ) -> list[GuardedResult]:
        """Mark and sign what is handed back (``finals``: record and content, None when not handed back), log
        every attempt in one transaction, superseded ones included, and build the results."""
        finished = [self.finisher.finish(rec, content, generator.info) for rec, content in finals]
        entries = self.log.append_batch(superseded + [f.record for f in finished])
        self._maybe_checkpoint(entries)
        by_id = {e.record_id: e for e in entries}
        return [self._result(f, by_id[f.record.record_id]) for f in finished]

    def _result(self, finished: Finished, entry: LogEntry) -> GuardedResult:
        rec = finished.record
        return GuardedResult(
            artifact=finished.content,
            verdict=rec.verdict,
            scores=rec.scores,
            record_id=rec.record_id,
            index=entry.index,
            inclusion_proof=self.log.inclusion_proof(entry.index, entry.tree_size),
            signature=finished.signature,
            media_type=rec.media_type,
            watermark=rec.watermark,
            errors=rec.errors,
            attempts=rec.attempt,
            file_bytes=finished.file_bytes,
        )

    def _maybe_checkpoint(self, entries: list[LogEntry]) -> None:
        if not entries:
            return
        every = self.policy.log.checkpoint_every
        before, after = entries[0].index, entries[-1].tree_size
        if before // every != after // every or (after < every and before == 0):
            self.log.checkpoint(self.keys.log_private_key())


class Guarded:
    """A guarded generator: call it with a prompt (a string or a chat message list), ``batch`` for many,
    ``stream`` for text as it comes; ``agenerate``, ``abatch`` and ``astream`` from async code."""

    def __init__(self, guard: Guard, generator: Generator) -> None:
        self.guard = guard
        self.generator = generator
        self.__wrapped__ = getattr(generator, "fn", generator)

    def __call__(self, prompt: chat.Prompt, *, image: Any = None, **params: Any) -> GuardedResult:
        """One guarded generation; ``image`` is an input image (image-to-image, editing) checked before use."""
        return self.guard.run(self.generator, [prompt], images=None if image is None else [image], **params)[0]

    def batch(self, prompts: list[chat.Prompt], *, images: list[Any] | None = None,
              **params: Any) -> list[GuardedResult]:
        return self.guard.run(self.generator, list(prompts), images=images, **params)

    def stream(self, prompt: chat.Prompt, *, check_every: int = 8, window: int = 2000,
               **params: Any) -> "GuardedStream":
        """Yield text as it is generated, checked every ``check_every`` pieces; see ``GuardedStream``."""
        return self.guard.stream(self.generator, prompt, check_every=check_every, window=window, **params)

    # -- async code: an async backend is awaited on the caller's loop, others run in a worker thread --------

    async def agenerate(self, prompt: chat.Prompt, **params: Any) -> GuardedResult:
        """One guarded generation from async code; see ``guard.pipeline.aio``."""
        from guard.pipeline.aio import arun

        return (await arun(self.guard, self.generator, [prompt], **params))[0]

    async def abatch(self, prompts: list[chat.Prompt], **params: Any) -> list[GuardedResult]:
        from guard.pipeline.aio import arun

        return await arun(self.guard, self.generator, list(prompts), **params)

    def astream(self, prompt: chat.Prompt, *, check_every: int = 8, window: int = 2000,
                **params: Any) -> "AsyncGuardedStream":
        """``async for`` the text as it is generated, checked every ``check_every`` pieces; then ``.result``."""
        from guard.pipeline.aio import AsyncGuardedStream

        return AsyncGuardedStream(self.guard, self.generator, prompt, check_every=check_every, window=window,
                                  params=params)
