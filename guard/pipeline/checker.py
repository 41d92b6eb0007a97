"""The checker: turns a policy's rules and a stage's items into frozen decisions.

One ``Checker`` is built per ``Guard`` (and by ``guard scan`` and ``guard bias-audit``). It owns the detectors it
builds, one per name and options, so a model is loaded once for as long as its checker lives and no cache
outlives it. ``violated`` is the single definition of "a score crosses its rule": at or above the threshold of a
label the rule lists; every caller that flags a score (the pipeline, streaming, ``guard scan``) uses it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from core.errors import GuardError, UnavailableError
from detectors.base import Score
from detectors import registry
from guard.policy import Action, DetectorRule
from guard.provenance import artifact as artifacts

REDACTION = "[redacted]"
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def violated(thresholds: Mapping[str, float], scores: Iterable[Score]) -> list[Score]:
    """The scores that cross a threshold: only labels listed in ``thresholds``, at ``value >= threshold``."""
    return [s for s in scores if s.label in thresholds and s.value >= thresholds[s.label]]


@dataclass(frozen=True)
class Violation:
    """A rule that fired on one item at one stage: a score crossed its threshold, or (``fail`` set) no scorer could
    score the item and the rule's ``fail`` setting decided."""

    rule: DetectorRule
    stage: str
    action: Action  # what the rule called for: its action, or its fail action
    detector: str | None = None  # the scorer whose score crossed: the rule's detector, or its fallback
    label: str | None = None
    score: float | None = None
    threshold: float | None = None
    fail: str | None = None  # "closed" | "open" when the rule fired because its detector failed

    def to_dict(self) -> dict[str, Any]:
        """As the record names it (``ProvenanceRecord.violations``)."""
        out: dict[str, Any] = {"rule": self.rule.detector, "stage": self.stage, "action": self.action.value}
        if self.fail is not None:
            return {**out, "fail": self.fail}
        return {**out, "detector": self.detector, "label": self.label, "score": self.score,
                "threshold": self.threshold}


@dataclass(frozen=True)
class Decision:
    """What one stage concluded about one item: the most severe action called for, and why."""

    action: Action = Action.allow
    violations: tuple[Violation, ...] = ()
    scores: tuple[dict[str, Any], ...] = ()  # Score.to_dict() plus "stage", as the record stores them
    errors: tuple[dict[str, Any], ...] = ()  # detector failures: detector, stage, error

    def escalated(self, action: Action) -> "Decision":
        """This decision with ``action`` if that is more severe than its own."""
        return replace(self, action=action) if action.severity > self.action.severity else self

    def merged(self, other: "Decision") -> "Decision":
        """Both decisions' findings, at the more severe of their actions."""
        return Decision(self.action, self.violations + other.violations, self.scores + other.scores,
                        self.errors + other.errors).escalated(other.action)


class Checker:
    """Runs rules' detectors over items and decides, per item, what the policy calls for. Safe across threads."""

    def __init__(self) -> None:
        self._detectors: dict[tuple[str, str], Any] = {}
        self._kinds: dict[str, frozenset[str]] = {}
        self._lock = threading.Lock()

    def detector(self, name: str, options: Mapping[str, Any] | None = None) -> Any:
        """The detector ``name`` built with ``options``: built on first use, then reused by this checker."""
        key = (name, json.dumps(options or {}, sort_keys=True, default=repr))
        with self._lock:
            if key not in self._detectors:
                self._detectors[key] = registry.create(name, dict(options or {}))
            return self._detectors[key]

    def scorer(self, rule: DetectorRule, *, load: bool = False) -> tuple[str, Any, str | None]:
        """The detector that will score for ``rule`` here: ``(name, detector, why the rule's own one will not)``.

        The rule's own detector, unless it reports that its model cannot load on this machine (``unavailable``)
        or, with ``load``, fails to load; then the rule's ``fallback``, if it names one. Without ``load`` no model
        is loaded, so ``guard policy check`` stays fast; ``guard scan`` loads, as it is about to score.
        """
        detector = self.detector(rule.detector, rule.options)
        reason = detector.unavailable()
        if reason is None and load:
            try:
                detector.model_id  # noqa: B018 - loads the model
            except Exception as exc:  # a load failure is what a fallback is for, as in ``check``
                if isinstance(exc, GuardError) and not isinstance(exc, UnavailableError):
                    raise  # bad input or configuration
                reason = one_line(exc)
        if reason is None or rule.fallback is None:
            return rule.detector, detector, reason
        return rule.fallback.detector, self.detector(rule.fallback.detector, rule.fallback.options), reason

    def _modalities(self, name: str) -> frozenset[str]:
        """The kinds of item a detector scores (its class says so: no need to build it)."""
        if name not in self._kinds:
            self._kinds[name] = frozenset(registry.detector_class(name).modalities)
        return self._kinds[name]

    def check(self, stage: str, rules: list[DetectorRule], items: list[Any]) -> list[Decision]:
        """One decision per item. A rule applies to the items of the kinds (text, image) its detector scores,
        decided item by item. A detector that fails is replaced by the rule's fallback, if any; an item no scorer
        could score gets the rule's ``fail`` action (``closed``: block, ``open``: flag) and the error is recorded."""
        if not items:
            return []
        kinds = [_modality(item) for item in items]
        scores: list[list[dict[str, Any]]] = [[] for _ in items]
        errors: list[list[dict[str, Any]]] = [[] for _ in items]
        found: list[list[Violation]] = [[] for _ in items]
        actions = [Action.allow] * len(items)
        for rule in rules:
            scorers = [(rule.detector, rule.options)]
            if rule.fallback is not None:
                scorers.append((rule.fallback.detector, rule.fallback.options))
            pending = [i for i, kind in enumerate(kinds) if kind in self._modalities(rule.detector)]
            for name, options in scorers:
                if not pending:
                    break
                # A detector failing is a policy matter (fall back, or fail closed/open), and so is one that cannot
                # be built (bad options, missing model files): the same thing to whoever reads the record.
                detector = None
                try:
                    detector = self.detector(name, options)
                    accepted = [i for i in pending if kinds[i] in detector.modalities]
                    batch = detector.score([items[i] for i in accepted]) if accepted else []
                except Exception as exc:
                    if detector is not None and _bad_input(exc):
                        raise  # bad input met while scoring (e.g. an unreadable image) is the caller's to see
                    for i in pending:
                        errors[i].append({"detector": name, "stage": stage, "error": one_line(exc)})
                    continue
                for i, item_scores in zip(accepted, batch):
                    scores[i] += [{**s.to_dict(), "stage": stage} for s in item_scores]
                    hits = violated(rule.thresholds, item_scores)
                    found[i] += [Violation(rule, stage, rule.action, s.detector, s.label, s.value,
                                           rule.thresholds[s.label]) for s in hits]
                    if hits:
                        actions[i] = _more_severe(actions[i], rule.action)
                for i in pending:
                    if i not in accepted:
                        errors[i].append({"detector": name, "stage": stage, "error": f"cannot score {kinds[i]}s"})
                pending = [i for i in pending if i not in accepted]
            on_failure = Action.block if rule.fail == "closed" else Action.flag
            for i in pending:  # configured for these items, and nothing scored them
                actions[i] = _more_severe(actions[i], on_failure)
                found[i].append(Violation(rule, stage, on_failure, fail=rule.fail))
        return [Decision(a, tuple(v), tuple(s), tuple(e)) for a, v, s, e in zip(actions, found, scores, errors)]

    def redacted(self, decision: Decision, content: Any) -> tuple[Decision, Any]:
        """Apply a ``redact`` decision: the content with its violating sentences replaced by ``REDACTION``.

        When the violation cannot be localised (an image, or no single sentence crosses the threshold) the
        decision becomes ``block`` and the content None. Other decisions pass through unchanged.
        """
        if decision.action is not Action.redact:
            return decision, content
        text = self._redact(decision, content)
        if text is None:
            return decision.escalated(Action.block), None
        return decision, text

    def _redact(self, decision: Decision, content: Any) -> str | None:
        if not isinstance(content, str):
            return None
        rules = {id(v.rule): v.rule for v in decision.violations if v.action is Action.redact}
        sentences = _SENTENCE_END.split(content)
        bad = [False] * len(sentences)
        for rule in rules.values():
            for k, scores in enumerate(self.detector(rule.detector, rule.options).score(sentences)):
                bad[k] = bad[k] or bool(violated(rule.thresholds, scores))
        if not any(bad):
            return None
        return " ".join(REDACTION if b else s for s, b in zip(sentences, bad))


def _bad_input(exc: Exception) -> bool:
    """A ``GuardError`` about the call (an unusable input), as opposed to a model or device missing here."""
    return isinstance(exc, GuardError) and not isinstance(exc, UnavailableError)


def _more_severe(a: Action, b: Action) -> Action:
    return b if b.severity > a.severity else a


def _modality(item: Any) -> str:
    return "image" if artifacts.is_image(item) else "text"


def one_line(exc: BaseException) -> str:
    """An exception as the record stores it: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")
