"""Public verification: anyone uploads an image or a text (and optionally its DSSE envelope) and asks "did you
make this?", without an account.

The answer is what ``guard verify`` finds (the C2PA reading, whether this deployment's watermark is in the image,
the record it leads to, that record's inclusion proof against the latest signed checkpoint), reduced to what an
outsider may see: the file's own metadata (it is theirs already), the record's id and log index, the proof and
the signed checkpoint, and only those record fields the operator lists as public (``--public-field``, dotted
paths such as ``created_at`` or ``generator.model_id``). Problems are reported with the log's origin in place of
its database URL. Input is bounded by the server (size limits, rate limits, one verification per worker).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InputError
from guard.provenance.log import ProvenanceLog

DEFAULT_PUBLIC_FIELDS: tuple[str, ...] = ()
FORBIDDEN_FIELDS = ("prompt", "params", "extra", "private", "commitments")
IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"RIFF", b"BM", b"II*\x00", b"MM\x00*")
MAX_TEXT_BYTES = 1 * 1024 * 1024


def check_public_fields(fields: tuple[str, ...]) -> tuple[str, ...]:
    """Validate the operator's list; fields that hold prompts or personal data cannot be made public."""
    for name in fields:
        top = name.split(".", 1)[0]
        if not name or top in FORBIDDEN_FIELDS or not all(part.isidentifier() for part in name.split(".")):
            raise InputError(f"--public-field {name!r}: not a publishable record field "
                             f"(dotted path; {', '.join(FORBIDDEN_FIELDS)} are never public)")
    return fields


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes
    envelope: bytes | None = None


def looks_like_image(data: bytes) -> bool:
    return data.startswith(IMAGE_MAGIC) or data[4:12] in (b"ftypavif", b"ftypheic", b"ftypmif1")


def verify_upload(upload: Upload, *, log: ProvenanceLog, keys, public_fields: tuple[str, ...]) -> dict[str, Any]:
    """The public report for one upload. Bad input (not an image, not UTF-8 text, a broken envelope) raises
    ``InputError``; a file that does not check out is a report with ``ok`` False."""
    safe_name = Path(upload.name or "upload").name[:100] or "upload"
    with tempfile.TemporaryDirectory(prefix="guard-verify-") as tmp:
        if looks_like_image(upload.data):
            from guard.verify.image import verify_image

            path = Path(tmp) / ("upload" + Path(safe_name).suffix.lower()[:10])
            path.write_bytes(upload.data)
            report = verify_image(path, keys=keys, log=log)
        else:
            if len(upload.data) > MAX_TEXT_BYTES:
                raise InputError(f"a text upload may be at most {MAX_TEXT_BYTES:,} bytes")
            from guard.verify.text import verify_text

            path = Path(tmp) / "upload.txt"
            path.write_bytes(upload.data)
            envelope = None
            if upload.envelope:
                envelope = Path(tmp) / "upload.envelope.json"
                envelope.write_bytes(upload.envelope)
            report = verify_text(path, log=log, keys=keys, envelope_path=envelope)
    return public_report(report, log=log, keys=keys, public_fields=public_fields, name=safe_name)


def public_report(report: dict[str, Any], *, log: ProvenanceLog, keys, public_fields: tuple[str, ...],
                  name: str) -> dict[str, Any]:
    """``report`` (from ``verify_image`` / ``verify_text``) with nothing of the record beyond ``public_fields``."""
    internal = {log.display_url, log.url}

    def scrub(text: str) -> str:
        for secret in internal:
            text = text.replace(secret, f"the log {log.origin}")
        return text

    image = report.get("media_type", "").startswith("image/")
    out: dict[str, Any] = {
        "ok": bool(report.get("ok")),
        "file": name,
        "media_type": report.get("media_type") if image else "text/plain; charset=utf-8",
        "sha256": report.get("sha256"),
        "log": {"origin": log.origin},
        "problems": [scrub(p) for p in report.get("problems", [])],
        "notes": [scrub(n) for n in report.get("notes", [])],
    }
    if image:
        out["pixels_sha256"] = report.get("pixels_sha256")
        out["c2pa"] = report.get("c2pa")
        out["ai_generated"] = report.get("ai_generated")
        mark = report.get("watermark") or {}
        out["watermark"] = {"checked": bool(mark.get("checked")), "found": bool(mark.get("found")),
                            "record_id": mark.get("record_id"), "confidence": mark.get("confidence")}
        out["found_via"] = report.get("found_via", [])
    else:
        out["signature"] = report.get("signature")
        out["watermark"] = {"checked": False, "found": False,
                            "reason": "a text watermark needs the generating model's tokenizer; not checked here"}
    index = report.get("index")
    if index is None:
        out["record"] = None
        return out
    stored = log.get(int(index))
    record = stored.data
    out["record"] = {
        "record_id": stored.record_id,
        "index": stored.index,
        "leaf_hash": stored.leaf_hash.hex(),
        "fields": {f: _dotted(record, f) for f in public_fields},
        "inclusion": prove(log, keys, stored),
    }
    return out


def _dotted(record: dict[str, Any], path: str) -> Any:
    value: Any = record
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def prove(log: ProvenanceLog, keys, stored) -> dict[str, Any]:
    """The record's inclusion proof, checked: its leaf against its bytes, the proof against the root, and that root
    against the latest signed checkpoint (signature checked with the log key) when the checkpoint covers it;
    otherwise against the current tree, saying that no signed checkpoint covers the record yet."""
    from core.errors import GuardError
    from guard.provenance.verify import LeafMismatch, check_inclusion

    out: dict[str, Any] = {"verified": False, "signed": False, "checkpoint": None, "problems": []}
    try:
        inclusion = check_inclusion(log, stored)
    except LeafMismatch:
        out["problems"].append("the stored record does not hash to its leaf")
        return out
    except GuardError as exc:
        out["problems"].append(f"inclusion proof: {exc}")
        return out
    proof, latest = inclusion.proof, inclusion.latest
    out.update(proof.to_dict(), verified=True)
    if not inclusion.covered:
        out["problems"].append(f"no signed checkpoint covers record {stored.index} yet"
                               + (f" (the latest covers {latest.checkpoint.size} records)" if latest else ""))
        return out
    signature = "not checked (no log key)"
    if keys is not None:
        try:
            latest.verify(log.origin, keys.log_public_key())
            signature = "valid"
        except GuardError as exc:
            signature = f"invalid: {exc}"
            out["problems"].append(f"checkpoint: {exc}")
    out["checkpoint"] = {"size": latest.checkpoint.size, "root": latest.checkpoint.root.hex(), "note": latest.note,
                         "signature": signature}
    if proof.root != latest.checkpoint.root:
        out["problems"].append("the log's tree does not match its signed checkpoint")
    out["signed"] = signature == "valid" and proof.root == latest.checkpoint.root
    return out
