"""Verify an image: its C2PA manifest, its invisible watermark, and the provenance record they lead to.

Three independent paths lead from an image to its record, strongest first:

1. the C2PA manifest's ``org.genguard.provenance`` assertion (needs the metadata intact; the manifest's hard
   binding then also proves the pixels are the ones signed);
2. the watermark's record id (survives stripping, re-encoding, resizing, cropping);
3. the record whose artifact digest equals the image's decoded-pixel digest (an untouched image without either).

The record found is then checked: its pixel digest against the image (exact, or perceptual distance for an
edited copy), its leaf hash against its stored bytes, its inclusion proof against the log's root, and, when the
log has a signed checkpoint that covers it, against that checkpoint's root and signature.

``ok`` is False (a finding, exit 1) when something fails to check out: an Invalid manifest, a signer that does
not chain to the trust anchor the caller gave, a manifest and a watermark that name different records, a
record the manifest names that the log does not hold, pixels that differ from what a valid manifest's record
pins, a bad proof, or an image from which nothing at all leads to a record or a valid manifest.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import GuardError, VerificationError
from core.imageio import read_image

if TYPE_CHECKING:
    from guard.signing.keys import KeyStore
    from guard.provenance.log import ProvenanceLog

PERCEPTUAL_MATCH_BITS = 12  # phash bits that may differ for "the same image, edited": JPEG, resize, crop...


def verify_image(
    path: str | Path,
    *,
    keys: KeyStore | None,
    log: ProvenanceLog | None,
    trust: bytes | str | None = None,
) -> dict[str, Any]:
    """A JSON-ready report; ``report["ok"]`` False means a finding, listed in ``report["problems"]``.

    ``trust`` is PEM trust anchors (``--trust CA.pem``): with them a good signer reads ``Trusted``, and one
    that does not chain to them is a problem. Bad input (a missing, corrupt or oversized image) raises
    ``InputError``.
    """
    from guard.provenance.artifact import image_digest
    from guard.signing.c2pa import read_manifest

    loaded = read_image(path)
    digest = image_digest(loaded.image)
    manifest = read_manifest(loaded.data, mime=loaded.mime, trust_anchors_pem=trust)
    report: dict[str, Any] = {
        "file": str(path),
        "media_type": loaded.mime,
        "sha256": loaded.sha256,
        "pixels_sha256": digest["sha256"],
        "phash": digest["phash"],
        "c2pa": manifest.to_dict(),
        "signature": _signature_summary(manifest),
        "ai_generated": manifest.ai_generated,
        "declared_by": manifest.generator if manifest.ai_generated else None,
        "problems": [],
        "notes": [],
        "record_lookup": "skipped" if log is None else "done",
    }
    problems, notes = report["problems"], report["notes"]
    if manifest.status == "present" and manifest.validation_state == "Invalid":
        problems.append(f"C2PA manifest is Invalid: {', '.join(manifest.failure_codes) or 'no reason given'}")
    elif manifest.status == "present" and trust and manifest.validation_state != "Trusted":
        problems.append("C2PA signer does not chain to the given trust anchor")
    elif manifest.status == "unreadable":
        problems.append(f"C2PA manifest is unreadable: {manifest.error}")
    elif manifest.status == "remote":
        notes.append(f"C2PA manifest is stored remotely and was not fetched: {manifest.remote_url}")

    manifest_ok = manifest.status == "present" and manifest.validation_state in ("Valid", "Trusted")
    report["watermark"] = watermark = _watermark(loaded.image, keys)
    manifest_id = (manifest.record_ref or {}).get("record_id")
    mark_id = watermark.get("record_id") if watermark.get("found") else None
    if manifest_id and mark_id and manifest_id != mark_id:
        problems.append(f"the C2PA manifest names record {manifest_id} but the watermark carries {mark_id}")
    record_id = manifest_id or mark_id
    report["record_id"] = record_id
    report["found_via"] = [name for name, rid in (("c2pa", manifest_id), ("watermark", mark_id)) if rid]

    if log is None:
        notes.append("no provenance log given: the record was not checked")
    else:
        _check_record(report, log, keys, record_id, digest, manifest_vouches=manifest_ok and bool(manifest_id))
    if not (manifest_ok or mark_id or report.get("index") is not None) and not problems:
        problems.append("nothing verifies this image: no valid C2PA manifest, no watermark for this key, "
                        "and no logged record with these pixels")
    report["ok"] = not problems
    return report


def _signature_summary(manifest) -> str:
    if manifest.status == "present":
        return f"c2pa {str(manifest.validation_state or 'unknown').lower()}"
    return {"absent": "absent", "remote": "c2pa remote (not fetched)"}.get(manifest.status, "c2pa unreadable")


def _watermark(image, keys: KeyStore | None) -> dict[str, Any]:
    """The watermark detection result for the key store's secret, or why none was run."""
    if keys is None:
        return {"checked": False, "found": False, "reason": "no key folder given"}
    try:
        secret = keys.watermark_secret()
    except GuardError as exc:
        return {"checked": False, "found": False, "reason": str(exc)}
    from guard.watermark.image import detect

    result = detect(image, secret).to_dict()
    return {"checked": True, **result}


def _check_record(
    report: dict[str, Any],
    log: ProvenanceLog,
    keys: KeyStore | None,
    record_id: str | None,
    digest: dict[str, Any],
    *,
    manifest_vouches: bool,
) -> None:
    problems, notes = report["problems"], report["notes"]
    index = log.find(record_id) if record_id else None
    if record_id and index is None:
        problems.append(f"record {record_id} is not in {log.display_url}")
        return
    if index is None:
        matches = log.find_by_artifact(digest["sha256"])
        if not matches:
            return
        index = matches[0]
        report["record_id"] = log.get(index).record_id
        report["found_via"].append("pixels")
    stored = log.get(index)
    data = stored.data
    report["index"] = index
    report["verdict"] = data.get("verdict")
    report["generator"] = data.get("generator")
    artifact = data.get("artifact") or {}
    match = _artifact_match(artifact, digest)
    report["artifact_match"] = match
    if match["match"] == "none" and manifest_vouches:
        problems.append("the pixels differ from those the manifest's record pins")
    elif match["match"] != "exact":
        notes.append(f"the image is not the logged output itself but {match['match']} to it (edited or re-encoded)")
    report["inclusion_proof"] = _check_inclusion(log, keys, stored, problems)


def _artifact_match(artifact: dict[str, Any], digest: dict[str, Any]) -> dict[str, Any]:
    if artifact.get("sha256") == digest["sha256"]:
        return {"match": "exact"}
    if not artifact.get("phash"):
        return {"match": "none"}
    distance = bin(int(artifact["phash"], 16) ^ int(digest["phash"], 16)).count("1")
    return {"match": "similar" if distance <= PERCEPTUAL_MATCH_BITS else "none", "phash_distance": distance}


def _check_inclusion(log: ProvenanceLog, keys: KeyStore | None, stored, problems: list[str]) -> dict[str, Any]:
    """Check the record's leaf and inclusion proof; against the latest signed checkpoint when it covers it."""
    from guard.provenance.verify import LeafMismatch, check_inclusion

    out: dict[str, Any] = {"verified": False}
    try:
        inclusion = check_inclusion(log, stored)
    except LeafMismatch as exc:
        problems.append(str(exc))
        return out
    except GuardError as exc:
        problems.append(f"inclusion proof: {exc}")
        return out
    out.update(inclusion.proof.to_dict(), verified=True)
    try:
        if inclusion.covered:
            if inclusion.proof.root != inclusion.latest.checkpoint.root:
                raise VerificationError("the log's tree does not match its signed checkpoint")
            out["checkpoint"] = _checkpoint_status(log, keys, inclusion.latest)
    except GuardError as exc:
        out["verified"] = False
        problems.append(f"inclusion proof: {exc}")
    return out


def _checkpoint_status(log: ProvenanceLog, keys: KeyStore | None, checkpoint) -> dict[str, Any]:
    status: dict[str, Any] = {"size": checkpoint.checkpoint.size, "signature": "not checked (no log key)"}
    if keys is not None:
        try:
            public_key = keys.log_public_key()
        except GuardError:
            return status
        checkpoint.verify(log.origin, public_key)  # raises VerificationError, reported by the caller
        status["signature"] = "valid"
    return status
