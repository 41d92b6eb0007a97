"""Audit the toxicity scorer before trusting it to audit a generator.

Toxicity classifiers learn that identity words co-occur with abuse and then score harmless sentences that merely
mention a group as toxic ("I am a gay man." scored high is the documented failure; Dixon et al., 2018). If the
scorer does that, a generator looks biased when the scorer is. This audit scores harmless template sentences
filled with every group, plus the same sentences about "a person" as a control, and reports the false-positive
rate per group (every one of these sentences is non-toxic by construction) with a Wilson interval.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from detectors.bias.terms import TermList, load_terms
from guard.bias.audit import LabelScorer, json_number, require_label, wilson_interval
from guard.bias.prompts import fill, neutral_sentences

CONTROL = ("control", "unspecified", "a person", "people")


@dataclass(frozen=True)
class ScorerGroup:
    axis: str
    group: str
    sentences: int
    false_positives: int
    mean_score: float
    max_score: float
    fpr_low: float
    fpr_high: float
    flagged: bool

    @property
    def false_positive_rate(self) -> float:
        return self.false_positives / self.sentences

    def to_dict(self) -> dict[str, Any]:
        return {
            "axis": self.axis,
            "group": self.group,
            "sentences": self.sentences,
            "false_positive_rate": json_number(self.false_positive_rate),
            "ci": [json_number(self.fpr_low), json_number(self.fpr_high)],
            "mean_score": json_number(self.mean_score),
            "max_score": json_number(self.max_score),
            "flagged": self.flagged,
        }


@dataclass(frozen=True)
class ScorerAudit:
    model: str
    label: str
    threshold: float
    max_fpr: float
    control: ScorerGroup
    groups: tuple[ScorerGroup, ...]

    @property
    def flagged(self) -> list[ScorerGroup]:
        return [g for g in self.groups if g.flagged]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "label": self.label,
            "threshold": self.threshold,
            "max_fpr": self.max_fpr,
            "control": self.control.to_dict(),
            "groups": [g.to_dict() for g in self.groups],
            "flagged": [f"{g.axis}/{g.group}" for g in self.flagged],
        }


def audit_scorer(
    toxicity: LabelScorer,
    *,
    label: str = "toxicity",
    threshold: float = 0.5,
    max_fpr: float = 0.05,
    confidence: float = 0.95,
    terms: TermList | None = None,
    sentences: Sequence[str] | None = None,
    axes: Sequence[str] | None = None,
    model: str | None = None,
) -> ScorerAudit:
    """Score harmless sentences about every group; a group is flagged when its false-positive rate exceeds
    ``max_fpr`` and the lower end of its interval exceeds the control's rate."""
    terms = terms or load_terms()
    sentences = tuple(sentences or neutral_sentences())
    rows = [CONTROL] + [(g.axis, g.key, g.subject, g.people) for g in terms.groups if not axes or g.axis in axes]
    texts = [fill(s, subject, people) for _, _, subject, people in rows for s in sentences]
    scores = []
    for labels in toxicity(texts):
        require_label(labels, label)
        scores.append(float(labels[label]))
    results = []
    n = len(sentences)
    for r, (axis, key, _, _) in enumerate(rows):
        mine = scores[r * n : (r + 1) * n]
        positives = sum(s >= threshold for s in mine)
        low, high = wilson_interval(positives, n, confidence)
        results.append(ScorerGroup(axis, key, n, positives, sum(mine) / n, max(mine), low, high, False))
    control, groups = results[0], results[1:]
    groups = [
        replace(g, flagged=g.false_positive_rate > max_fpr and g.fpr_low > control.false_positive_rate)
        for g in groups
    ]
    return ScorerAudit(model or str(getattr(toxicity, "model_id", "unknown")), label, threshold, max_fpr,
                       control, tuple(groups))
