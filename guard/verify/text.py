"""Verify a text output: its DSSE envelope, the record it names in the log, and that record's inclusion proof."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from core.errors import InputError, VerificationError
from guard.signing.keys import KeyStore
from guard.provenance.log import ProvenanceLog


def read_text_file(path: Path, *, limit: int | None = None) -> str:
    """A UTF-8 text file; with ``limit``, a larger file is refused before it is read."""
    try:
        if limit is not None and path.stat().st_size > limit:
            raise InputError(f"{path}: {path.stat().st_size} bytes, more than the {limit} this command reads")
        data = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (invalid byte at offset {exc.start})") from None


def envelope_path_for(path: Path) -> Path:
    return path.with_name(path.name + ".dsse.json")


def verify_text(
    path: Path,
    *,
    log: ProvenanceLog | None,
    keys: KeyStore | None,
    envelope_path: Path | None = None,
    trust_pem: bytes | None = None,
) -> dict[str, Any]:
    """A report dict with ``ok``; ``ok`` is False (a finding) when anything fails to check out.

    The envelope's signer certificate comes from the key folder, or, for someone without one, from the
    certificates in ``trust_pem`` (the operator's chain). Without a log the record lookup is skipped and said so.
    """
    from guard.signing import dsse

    text = read_text_file(path)
    sha = hashlib.sha256(text.encode("utf-8")).hexdigest()
    report: dict[str, Any] = {"file": str(path), "media_type": "text", "sha256": sha, "ok": False, "problems": [],
                              "notes": [], "record_lookup": "skipped" if log is None else "done"}
    envelope_path = envelope_path or envelope_path_for(path)
    record_index = None
    if envelope_path.is_file():
        try:
            envelope = json.loads(envelope_path.read_text(encoding="utf-8"))
        except (ValueError, UnicodeDecodeError) as exc:
            raise InputError(f"{envelope_path}: not a JSON DSSE envelope: {exc}") from None
        if not isinstance(envelope, dict):
            raise InputError(f"{envelope_path}: not a DSSE envelope (a JSON object was expected)")
        report["envelope"] = str(envelope_path)
        chain = _signer_chain(keys, trust_pem)
        try:
            statement = dsse.verify(envelope, chain, trust_anchor_pem=trust_pem)
        except VerificationError as exc:
            report["signature"] = "invalid"
            report["problems"].append(str(exc))
            return report
        report["signature"] = "trusted" if trust_pem else "valid"
        digests = [s.get("digest", {}).get("sha256") for s in statement.get("subject", [])]
        if sha not in digests:
            report["problems"].append("the text does not match the envelope's subject digest")
            return report
        predicate = statement.get("predicate", {})
        report["record_id"] = predicate.get("record_id")
        if log is None:
            report["notes"].append("no provenance log given: the record the envelope names was not looked up")
            report["ok"] = not report["problems"]
            return report
        record_index = log.find(predicate.get("record_id", ""))
        if record_index is None:
            report["problems"].append(f"record {predicate.get('record_id')} is not in {log.display_url}")
            return report
        stored = log.get(record_index).data
        logged = {k: v for k, v in stored.items() if k not in ("index", "signature", "commitments")}
        if logged != predicate:
            report["problems"].append("the logged record differs from the signed one")
        if (stored.get("signature") or {}).get("envelope_sha256") != dsse.envelope_digest(envelope):
            report["problems"].append("the log names a different envelope for this record")
    else:
        report["signature"] = "absent"
        if log is None:
            raise InputError(f"{path}: nothing to check it against: no envelope ({envelope_path.name}) and no "
                             "provenance log (pass --envelope, or --log)")
        matches = log.find_by_artifact(sha)
        if not matches:
            report["problems"].append("no envelope beside the file and no logged record with this text's hash")
            return report
        record_index = matches[0]
        report["record_id"] = log.get(record_index).record_id
    proof = log.inclusion_proof(record_index)
    try:
        proof.verify()
        report["inclusion_proof"] = proof.to_dict()
    except VerificationError as exc:
        report["problems"].append(f"inclusion proof: {exc}")
    report["index"] = record_index
    report["verdict"] = log.get(record_index).data.get("verdict")
    report["ok"] = not report["problems"]
    return report


def _signer_chain(keys: KeyStore | None, trust_pem: bytes | None) -> bytes:
    """The certificates to find the envelope's signer among: the key folder's chain, else ``--trust``."""
    if keys is not None and keys.path("chain.pem").is_file():
        return keys.certificate_chain_pem()
    if trust_pem is not None:
        return trust_pem
    raise InputError("no signer certificate to check the envelope with: pass --trust with the operator's "
                     "certificate chain (chain.pem), or --keys with your key folder")
