"""The provenance record: what a reviewer needs to know about one output, as canonical JSON (RFC 8785).

Canonical JSON makes the record's bytes, and so its Merkle leaf hash, the same in every implementation.
Personal data (the prompt, when the policy keeps it) never enters the leaf: the leaf holds a salted commitment
``SHA256(salt || value)`` and the value and salt are stored beside the tree, so they can be erased on request
while every leaf hash, and the log's verification, stays intact.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from dataclasses import dataclass, field, fields, replace
from datetime import datetime, timezone
from typing import Any, NewType

import rfc8785

RecordId = NewType("RecordId", str)
SCHEMA = "genguard.provenance/v1"
REVIEW_MEDIA_TYPE = "application/vnd.genguard.review+json"  # a reviewer's decision about another record

# Every verdict a record can carry, defined once: what the pipeline decided about an output, and the verdict of a
# reviewer's decision record (which is not an output). Filters and forms that take a verdict accept exactly these.
OUTPUT_VERDICTS = ("allow", "flag", "redact", "block")
REVIEW_VERDICT = "review"
VERDICTS = (*OUTPUT_VERDICTS, REVIEW_VERDICT)


def new_record_id() -> RecordId:
    """64 random bits as 16 hex digits: short enough for an image watermark payload to carry whole."""
    return RecordId(secrets.token_hex(8))


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def commitment(salt: bytes, value: str) -> str:
    return hashlib.sha256(salt + value.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class ProvenanceRecord:
    """One generation attempt, allowed or not. Frozen: the pipeline builds it complete, and a later step that
    adds to it (a watermark, a signature) makes a new one with ``dataclasses.replace``.

    ``private`` holds erasable plaintext (by field name); it is stored beside the leaf, never in it. ``index``
    and ``commitments`` are what the log writes into the leaf when it appends the record (``stored``).
    """

    media_type: str  # "text/plain; charset=utf-8", "image/png", ...
    generator: dict[str, Any]
    verdict: str  # one of VERDICTS
    policy: dict[str, str]  # name and sha256 of the policy file
    record_id: RecordId = field(default_factory=new_record_id)
    created_at: str = field(default_factory=utc_now)
    artifact: dict[str, Any] | None = None  # sha256, size, phash (images); None when nothing was generated
    params: dict[str, Any] = field(default_factory=dict)  # generation parameters, seed included
    prompt: dict[str, Any] = field(default_factory=lambda: {"storage": "none"})
    scores: list[dict[str, Any]] = field(default_factory=list)  # Score.to_dict() plus "stage"
    errors: list[dict[str, Any]] = field(default_factory=list)  # detector failures: detector, stage, error
    # Why the verdict: each rule that fired (rule, detector, label, score, threshold, stage, action; or fail).
    violations: list[dict[str, Any]] = field(default_factory=list)
    actions: list[str] = field(default_factory=list)  # what the policy did, in order
    attempt: int = 1
    parent: RecordId | None = None  # the earlier attempt this one regenerates, or the source of an edit
    watermark: dict[str, Any] | None = None  # scheme, key_id, payload
    signature: dict[str, Any] | None = None  # type (dsse | c2pa), digest of the envelope or manifest, signer
    extra: dict[str, Any] = field(default_factory=dict)  # further signals (bias, disclosure, faces)
    private: dict[str, str] = field(default_factory=dict, repr=False)
    index: int | None = None
    commitments: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.verdict not in VERDICTS:
            raise ValueError(f"verdict {self.verdict!r} is not one of {', '.join(VERDICTS)}")

    def stored(self, index: int, commitments: dict[str, str]) -> "ProvenanceRecord":
        """The record as the log stores it at ``index``, with the salted commitments of its private fields."""
        return replace(self, index=index, commitments=commitments)

    def leaf_dict(self) -> dict[str, Any]:
        """The record as it enters the tree: everything but the erasable plaintext."""
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "private"}
        return {"schema": SCHEMA, **data}

    def canonical_bytes(self) -> bytes:
        return canonical(self.leaf_dict())

    def statement_dict(self) -> dict[str, Any]:
        """What a signature covers: the leaf content minus what only the log knows (index, signature)."""
        data = self.leaf_dict()
        for key in ("index", "signature", "commitments"):
            data.pop(key)
        return data


def canonical(data: Any) -> bytes:
    """RFC 8785 (JCS) bytes of ``data``.

    The ``rfc8785`` package is the reference, but it is pure Python and was 80% of the cost of an append. Here the
    standard library's C encoder writes the JSON (its key sorting, separators and string escaping already match
    JCS when keys are ASCII), and floats, which Python and ECMAScript print differently, are swapped for tokens
    and written in ECMAScript form afterwards. Anything outside that (non-ASCII keys, integers beyond 2**53,
    non-JSON types) goes to ``rfc8785``. A test checks both paths against the reference on random data.
    """
    floats: list[str] = []
    try:
        prepared = _prepare(data, floats)
    except _NeedsReference:
        return rfc8785.dumps(data)
    text = json.dumps(prepared, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    if floats:
        text = _FLOAT_TOKEN.sub(lambda m: floats[int(m.group(1))], text)
    return text.encode("utf-8")


class _NeedsReference(Exception):
    pass


# Floats become the string "\0<nonce><n>\0" while encoding; the random nonce keeps user data from forging one.
_NONCE = secrets.token_hex(16)
_FLOAT_TOKEN = re.compile(r'"\\u0000' + _NONCE + r'(\d+)\\u0000"')


def _prepare(value: Any, floats: list[str]) -> Any:
    """A copy of ``value`` with floats replaced by tokens; leaves (the common case) are handled inline."""
    kind = type(value)
    if kind is dict:
        out = {}
        for k, v in value.items():
            if type(k) is not str or not k.isascii():
                raise _NeedsReference
            t = type(v)
            out[k] = v if (t is str or v is None or t is bool) else _prepare(v, floats)
        return out
    if kind is list or kind is tuple:
        return [v if type(v) is str else _prepare(v, floats) for v in value]
    if kind is float:
        floats.append(_es_number(value))
        return f"\0{_NONCE}{len(floats) - 1}\0"
    if kind is int:
        if -(2**53) < value < 2**53:
            return value
        raise _NeedsReference
    if kind is str or kind is bool or value is None:
        return value
    raise _NeedsReference


def _es_number(x: float) -> str:
    """ECMAScript Number::toString of a finite double, which JCS mandates."""
    if not math.isfinite(x):
        raise _NeedsReference  # the reference raises the proper error
    if x == 0:
        return "0"
    sign, text = ("-", repr(-x)) if x < 0 else ("", repr(x))
    mantissa, _, exp = text.partition("e")
    whole, _, frac = mantissa.partition(".")
    all_digits = whole + frac
    stripped = all_digits.lstrip("0")
    point = len(whole) + (int(exp) if exp else 0) - (len(all_digits) - len(stripped))
    digits = stripped.rstrip("0")
    k, n = len(digits), point
    if k <= n <= 21:
        out = digits + "0" * (n - k)
    elif 0 < n <= 21:
        out = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        out = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        out = digits[0] + ("." + digits[1:] if k > 1 else "") + ("e+" if e > 0 else "e-") + str(abs(e))
    return sign + out
