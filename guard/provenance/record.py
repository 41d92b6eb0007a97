"""The provenance record: what a reviewer needs to know about one output, as canonical JSON (RFC 8785).

Canonical JSON makes the record's bytes, and so its Merkle leaf hash, the same in every implementation.
Personal data (the prompt, when the policy keeps it) never enters the leaf: the leaf holds a salted commitment
``SHA256(salt || value)`` and the value and salt are stored beside the tree, so they can be erased on request
while every leaf hash, and the log's verification, stays intact.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, NewType

import rfc8785

RecordId = NewType("RecordId", str)
SCHEMA = "genguard.provenance/v1"


def new_record_id() -> RecordId:
    """64 random bits as 16 hex digits: short enough for an image watermark payload to carry whole."""
    return RecordId(secrets.token_hex(8))


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def commitment(salt: bytes, value: str) -> str:
    return hashlib.sha256(salt + value.encode("utf-8")).hexdigest()


@dataclass
class ProvenanceRecord:
    """One generation attempt, allowed or not.

    ``private`` holds erasable plaintext (by field name); it is stored beside the leaf, never in it. ``index``
    and ``commitments`` are filled in by the log when the record is appended.
    """

    media_type: str  # "text/plain; charset=utf-8", "image/png", ...
    generator: dict[str, Any]
    verdict: str  # allow | flag | redact | block
    policy: dict[str, str]  # name and sha256 of the policy file
    record_id: RecordId = field(default_factory=new_record_id)
    created_at: str = field(default_factory=utc_now)
    artifact: dict[str, Any] | None = None  # sha256, size, phash (images); None when nothing was generated
    params: dict[str, Any] = field(default_factory=dict)  # generation parameters, seed included
    prompt: dict[str, Any] = field(default_factory=lambda: {"storage": "none"})
    scores: list[dict[str, Any]] = field(default_factory=list)  # Score.to_dict() plus "stage"
    errors: list[dict[str, Any]] = field(default_factory=list)  # detector failures: detector, stage, error
    actions: list[str] = field(default_factory=list)  # what the policy did, in order
    attempt: int = 1
    parent: RecordId | None = None  # the earlier attempt this one regenerates, or the source of an edit
    watermark: dict[str, Any] | None = None  # scheme, key_id, payload
    signature: dict[str, Any] | None = None  # type (dsse | c2pa), digest of the envelope or manifest, signer
    extra: dict[str, Any] = field(default_factory=dict)  # further signals (bias, disclosure, faces)
    private: dict[str, str] = field(default_factory=dict, repr=False)
    index: int | None = None
    commitments: dict[str, str] = field(default_factory=dict)

    def leaf_dict(self) -> dict[str, Any]:
        """The record as it enters the tree: everything but the erasable plaintext."""
        data = asdict(self)
        data.pop("private")
        return {"schema": SCHEMA, **data}

    def canonical_bytes(self) -> bytes:
        return rfc8785.dumps(self.leaf_dict())

    def statement_dict(self) -> dict[str, Any]:
        """What a signature covers: the leaf content minus what only the log knows (index, signature)."""
        data = self.leaf_dict()
        for key in ("index", "signature", "commitments"):
            data.pop(key)
        return data


def canonical(data: Any) -> bytes:
    return rfc8785.dumps(data)
