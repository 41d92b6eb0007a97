"""Which rule fired: detector, label, score, threshold, stage and action for a flagged, redacted or blocked record.

Records carry the rules that fired in ``violations`` (``ProvenanceRecord.violations``: ``rule``, ``stage``,
``action`` and either ``detector``, ``label``, ``score``, ``threshold`` or, when the rule's detector failed,
``fail``); those are shown as recorded. Older records
carry only their scores and the policy's name and SHA-256: the rules are then derived by applying the thresholds
of that exact policy (found among the policies the server was given, by hash) to the recorded scores, exactly as
the pipeline compares them (``score >= threshold``); a detector failure fires its rule's ``fail`` action.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

STAGE_RULES = {"prompt": "prompt", "input": "prompt", "output": "output"}  # input images use the prompt rules


@dataclass(frozen=True)
class Fired:
    detector: str
    label: str | None
    score: float | None
    threshold: float | None
    stage: str
    action: str
    source: str  # "recorded", or "derived from policy NAME"

    def to_dict(self) -> dict[str, Any]:
        return {"detector": self.detector, "label": self.label, "score": self.score, "threshold": self.threshold,
                "stage": self.stage, "action": self.action, "source": self.source}


class PolicyBook:
    """Policies by SHA-256, so a record's policy reference finds the exact thresholds it was judged by."""

    def __init__(self, policies: Iterable[Any] = ()) -> None:
        self.by_sha = {p.sha256: p for p in policies}

    @classmethod
    def load(cls, refs: Iterable[str]) -> "PolicyBook":
        """The shipped policies plus ``refs`` (names or files); a bad file is a ``PolicyError``."""
        from guard.policy import load, shipped

        return cls([load(path) for path in shipped().values()] + [load(ref) for ref in refs])

    def find(self, record: dict[str, Any]):
        return self.by_sha.get((record.get("policy") or {}).get("sha256"))


def fired_rules(record: dict[str, Any], book: PolicyBook) -> tuple[list[Fired], str | None]:
    """The rules that fired for ``record`` and, when they could not be told, why (else None)."""
    recorded = _recorded(record)
    if recorded is not None:
        return recorded, None
    if record.get("verdict") not in ("flag", "redact", "block"):
        return [], None
    policy = book.find(record)
    if policy is None:
        ref = record.get("policy") or {}
        return [], (f"policy {ref.get('name')!r} (sha256 {str(ref.get('sha256'))[:12]}…) is not known to this server; "
                    "start it with --policy FILE to show which rule fired")
    source = f"derived from policy {policy.name}"
    fired: list[Fired] = []
    for s in record.get("scores") or []:
        rule_stage = STAGE_RULES.get(s.get("stage"))
        for rule in getattr(policy.stages, rule_stage, []) if rule_stage else []:
            names = {rule.detector} | ({rule.fallback.detector} if rule.fallback else set())
            threshold = rule.thresholds.get(s.get("label"))
            if s.get("detector") in names and threshold is not None and _num(s.get("value")) >= threshold:
                fired.append(Fired(s["detector"], s.get("label"), _num(s.get("value")), threshold, s["stage"],
                                   rule.action.value, source))
    for e in record.get("errors") or []:
        rule_stage = STAGE_RULES.get(e.get("stage"))
        for rule in getattr(policy.stages, rule_stage, []) if rule_stage else []:
            if e.get("detector") in {rule.detector} | ({rule.fallback.detector} if rule.fallback else set()):
                fired.append(Fired(str(e.get("detector")), None, None, None, str(e.get("stage")),
                                   "block" if rule.fail == "closed" else "flag", f"{source}: detector failed "
                                   f"(fail: {rule.fail}): {e.get('error')}"))
                break
    if not fired:
        return [], f"no score in the record crosses a threshold of policy {policy.name}; see its actions"
    return fired, None


def _recorded(record: dict[str, Any]) -> list[Fired] | None:
    value = record.get("violations")
    if not isinstance(value, list) or not value or not all(isinstance(v, dict) for v in value):
        return None
    fired = []
    for v in value:
        source = "recorded" if "fail" not in v else f"recorded: detector failed (fail: {v['fail']})"
        fired.append(Fired(str(v.get("detector") or v.get("rule")), v.get("label"), _maybe(v.get("score")),
                           _maybe(v.get("threshold")), str(v.get("stage", "?")), str(v.get("action", "?")), source))
    return fired


def _num(value: Any) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("-inf")


def _maybe(value: Any) -> float | None:
    try:
        return None if value is None else float(value)
    except (TypeError, ValueError):
        return None
