"""Do harmless sentences about one group score as toxic more often than about another?

The sentences are HolisticBias v1.1's templates filled with its descriptors, minus what is not harmless: the
templates that voice dislike ("I hate …", "I don't like …", "… are the worst") and the descriptors HolisticBias
marks ``dispreferred`` (outdated or offensive terms). Every remaining sentence is non-toxic by construction, so
any sentence at or above the threshold is a false positive, and the rate per group is comparable across groups.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from guard.bias.audit import json_number, wilson_interval
from guard.bias.prompts import AuditPrompt, load_holistic_bias

UNKIND_TEMPLATES = ("I hate ", "I don't like ", " are the worst")
SKIPPED_AXES = ("nonce",)  # made-up words, a control in HolisticBias, not groups


def harmless_sentences(folder: Path, *, per_group: int = 40, seed: int = 0) -> list[AuditPrompt]:
    """HolisticBias sentences that say nothing unkind, ``per_group`` sampled per descriptor."""
    prompts = load_holistic_bias(folder, per_group=per_group, seed=seed).prompts
    try:
        descriptors = json.loads((folder / "descriptors.json").read_text(encoding="utf-8"))
        dispreferred = {item["descriptor"] for axis in descriptors.values() for bucket in axis.values()
                        for item in bucket if isinstance(item, dict) and item.get("preference") == "dispreferred"}
    except (OSError, ValueError, AttributeError, KeyError, TypeError) as exc:
        raise InputError(f"{folder / 'descriptors.json'}: not HolisticBias descriptors ({exc})") from exc
    return [p for p in prompts if p.axis not in SKIPPED_AXES and p.group not in dispreferred
            and not any(u in p.text for u in UNKIND_TEMPLATES)]


@dataclass(frozen=True)
class GroupRate:
    group: str  # axis/descriptor
    sentences: int
    flagged: int
    low: float
    high: float

    @property
    def rate(self) -> float:
        return self.flagged / self.sentences

    def to_dict(self) -> dict[str, Any]:
        return {"group": self.group, "sentences": self.sentences, "flagged": self.flagged,
                "rate": json_number(self.rate), "ci": [json_number(self.low), json_number(self.high)]}


@dataclass(frozen=True)
class IdentityAudit:
    threshold: float
    overall: float  # share of all harmless sentences flagged
    groups: tuple[GroupRate, ...]  # worst first

    def worst(self, n: int = 10) -> list[GroupRate]:
        return list(self.groups[:n])

    @property
    def groups_over(self) -> int:
        """Groups whose rate is above the overall rate with 95% confidence (the interval's low end above it)."""
        return sum(g.low > self.overall for g in self.groups)

    def to_dict(self, top: int = 10) -> dict[str, Any]:
        return {"threshold": self.threshold, "overall_rate": json_number(self.overall),
                "groups": len(self.groups), "groups_above_overall": self.groups_over,
                "max_rate": json_number(self.groups[0].rate if self.groups else None),
                "worst": [g.to_dict() for g in self.worst(top)]}


def rates(scores: np.ndarray, prompts: list[AuditPrompt], threshold: float) -> IdentityAudit:
    """Per-group false-positive rates with Wilson intervals, worst first."""
    flagged = np.asarray(scores) >= threshold
    by_group: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        by_group.setdefault(p.group_id, []).append(i)
    groups = []
    for group, rows in by_group.items():
        hits = int(flagged[rows].sum())
        low, high = wilson_interval(hits, len(rows))
        groups.append(GroupRate(group, len(rows), hits, low, high))
    groups.sort(key=lambda g: (-g.rate, -g.low, g.group))
    return IdentityAudit(threshold, float(flagged.mean()) if len(flagged) else 0.0, tuple(groups))
