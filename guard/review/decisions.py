"""Reviewer decisions as provenance records, so the review trail is as tamper-evident as the outputs it reviews.

A decision is appended to the same log as the output it is about: a leaf of the same Merkle tree, covered by the
same signed checkpoints, checked by ``guard log verify`` and counted by ``guard audit``. Its ``parent`` is the
reviewed record's id, and ``extra.review`` pins the reviewed leaf by index and leaf hash::

    {"decision": "overturn", "comment": "...", "reviewer": "ana", "role": "reviewer",
     "record_id": "<reviewed id>", "index": 1234, "leaf_hash": "<hex>", "verdict": "block"}

The media type, ``REVIEW_MEDIA_TYPE``, lives with the record itself, so the audit report tells decisions apart
without importing the review app.
"""

from __future__ import annotations

from typing import Any

from core.errors import InputError
from guard.provenance.log import ProvenanceLog, StoredRecord
from guard.provenance.record import REVIEW_MEDIA_TYPE, REVIEW_VERDICT, ProvenanceRecord

DECISIONS = ("confirm", "overturn", "escalate")
INCIDENT_VERDICTS = ("flag", "redact", "block")
MAX_COMMENT = 4000


def is_decision(record: dict[str, Any]) -> bool:
    return record.get("media_type") == REVIEW_MEDIA_TYPE


def decision_record(reviewed: StoredRecord, decision: str, comment: str, *, reviewer: str,
                    role: str) -> ProvenanceRecord:
    """The record of ``reviewer``'s ``decision`` on ``reviewed``; raises ``InputError`` for a bad decision."""
    if decision not in DECISIONS:
        raise InputError(f"decision must be one of {', '.join(DECISIONS)}, got {decision!r}")
    comment = comment.strip()
    if len(comment) > MAX_COMMENT:
        raise InputError(f"the comment is {len(comment)} characters; at most {MAX_COMMENT}")
    if decision in ("overturn", "escalate") and not comment:
        raise InputError(f"say why: a comment is required to {decision}")
    data = reviewed.data
    if is_decision(data):
        raise InputError(f"record {reviewed.index} is itself a review decision")
    return ProvenanceRecord(
        media_type=REVIEW_MEDIA_TYPE,
        generator={"name": "human-review"},
        verdict=REVIEW_VERDICT,
        policy={},
        parent=reviewed.record_id,
        extra={"review": {"decision": decision, "comment": comment, "reviewer": reviewer, "role": role,
                          "record_id": reviewed.record_id, "index": reviewed.index,
                          "leaf_hash": reviewed.leaf_hash.hex(), "verdict": data.get("verdict")}},
    )


def record_decision(log: ProvenanceLog, index: int, decision: str, comment: str, *, reviewer: str, role: str,
                    checkpoint_key=None) -> int:
    """Append the decision; sign a checkpoint over it when the log key is given. Returns the decision's index."""
    entry = log.append(decision_record(log.get(index), decision, comment, reviewer=reviewer, role=role))
    if checkpoint_key is not None:
        log.checkpoint(checkpoint_key)
    return entry.index
