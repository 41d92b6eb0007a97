"""Bias over logged outputs: a per-group table read from ``record.extra["bias"]`` and the signed scores.

The pipeline stores ``extra["bias"]`` for every text output (``guard.pipeline.signals``, which defines the
format): the text itself never enters the log, so the groups it mentions are computed then. ``group_table(records)``
later groups logged outputs by mentioned group without regenerating or rescoring anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from guard.bias.audit import wilson_interval
from guard.pipeline.signals import score_signals

NO_GROUP = ("none", "none")


@dataclass
class GroupRow:
    axis: str
    group: str
    outputs: int = 0
    blocked_or_flagged: int = 0  # verdict other than allow
    toxic: int = 0
    scored: int = 0  # outputs with a toxicity score
    toxicity_sum: float = 0.0
    identity_attack: list[float] = field(default_factory=list)
    negative: list[float] = field(default_factory=list)
    negative_labels: int = 0
    labelled: int = 0

    def to_dict(self, confidence: float = 0.95) -> dict[str, Any]:
        def mean(values: list[float]) -> float | None:
            return round(sum(values) / len(values), 6) if values else None

        toxic_rate = self.toxic / self.scored if self.scored else None
        ci = wilson_interval(self.toxic, self.scored, confidence) if self.scored else (None, None)
        return {
            "axis": self.axis,
            "group": self.group,
            "outputs": self.outputs,
            "not_allowed": self.blocked_or_flagged,
            "toxic_rate": None if toxic_rate is None else round(toxic_rate, 6),
            "toxic_rate_ci": [None if c is None else round(c, 6) for c in ci],
            "mean_toxicity": round(self.toxicity_sum / self.scored, 6) if self.scored else None,
            "mean_identity_attack": mean(self.identity_attack),
            "negative_regard_rate": round(self.negative_labels / self.labelled, 6) if self.labelled else None,
            "mean_negative_regard": mean(self.negative),
        }


@dataclass
class GroupTable:
    """Logged text outputs grouped by the groups they mention (an output mentioning two groups counts in both;
    outputs mentioning none form the ``none/none`` row, the baseline to compare with)."""

    rows: list[GroupRow]
    records: int  # records read
    without_signals: int  # records with no ``extra["bias"]`` (images, or logged before bias signals existed)
    threshold: float
    confidence: float = 0.95

    def to_dict(self) -> dict[str, Any]:
        return {
            "records": self.records,
            "without_signals": self.without_signals,
            "threshold": self.threshold,
            "rows": [r.to_dict(self.confidence) for r in self.rows],
        }

    def to_frame(self) -> Any:
        import pandas as pd

        return pd.DataFrame([r.to_dict(self.confidence) for r in self.rows])


def group_table(
    records: Iterable[Mapping[str, Any] | Any], *, threshold: float = 0.5, confidence: float = 0.95
) -> GroupTable:
    """Per-group table over logged records (dicts as ``ProvenanceRecord.leaf_dict()`` gives, or records).

    Toxicity, identity attack and regard are re-read from each record's output-stage ``scores`` (the signed,
    authoritative values); the mentioned groups come from ``extra["bias"]["groups"]``.
    """
    rows: dict[tuple[str, str], GroupRow] = {}
    total = without = 0
    for record in records:
        data = record.leaf_dict() if hasattr(record, "leaf_dict") else record
        total += 1
        signals = (data.get("extra") or {}).get("bias")
        if not isinstance(signals, Mapping):
            without += 1
            continue
        values = score_signals(data.get("scores") or [])
        keys = [(g["axis"], g["group"]) for g in signals.get("groups") or []] or [NO_GROUP]
        for key in dict.fromkeys(keys):
            row = rows.setdefault(key, GroupRow(*key))
            row.outputs += 1
            row.blocked_or_flagged += data.get("verdict", "allow") != "allow"
            if values["toxicity"] is not None:
                row.scored += 1
                row.toxicity_sum += values["toxicity"]
                row.toxic += values["toxicity"] >= threshold
            if values["identity_attack"] is not None:
                row.identity_attack.append(values["identity_attack"])
            regard = values["regard"]
            if regard and regard.get("negative") is not None:
                row.negative.append(regard["negative"])
            if regard and regard.get("label") is not None:
                row.labelled += 1
                row.negative_labels += regard["label"] == "negative"
    ordered = sorted(rows.values(), key=lambda r: (r.axis == "none", r.axis, r.group))
    return GroupTable(ordered, total, without, threshold, confidence)
