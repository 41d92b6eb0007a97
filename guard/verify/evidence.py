"""Evidence bundles: one record, proven, in a zip that a third party checks offline without trusting us.

Format ``genguard.evidence/v1`` (documented in docs/audit.md; ``README.txt`` inside says the same):

===================  ===================================================================================
``record.json``      the record's exact leaf bytes (canonical JSON, RFC 8785)
``proof.json``       RFC 6962 inclusion proof: ``leaf_index``, ``tree_size``, ``leaf_hash``, ``audit_path``,
                     ``root_hash`` (hex), where ``leaf_hash = SHA-256(0x00 || record.json)``
``checkpoint.txt``   the log's signed checkpoint (C2SP signed note) for ``tree_size`` and ``root_hash``
``log.pub``          the log's Ed25519 public key (PEM); ``verifier_key.txt``: the same as a note verifier key
``artifact.json``    the output's digest (SHA-256 of the text's UTF-8 bytes or of the image's RGB pixels)
``artifact/<name>``  optionally the output itself, whose digest must match
``manifest.json``    the format name and the SHA-256 of every other member
===================  ===================================================================================

The zip is canonical (members stored uncompressed in a fixed order with fixed timestamps and permissions), so
``verify_bundle`` rebuilds it from its members and rejects any other bytes: a change to any single byte of the
bundle, container included, fails verification. The proof is against the signed checkpoint's tree size: the
latest checkpoint that covers the record, or a new one when none does.

A bundle comes from someone else, so reading one is bounded: at most ``MAX_BUNDLE_BYTES``, no compressed member
(none is ever written, and a compressed member could inflate without bound), declared member sizes that fit in
the archive, and JSON members that are objects of finite numbers. A bundle that breaks these is rejected as bad
input (``BundleReport.rejected``, exit 2); one whose bytes disagree with its hashes, proof or signature is a
finding (exit 1).
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import InputError, LogError, VerificationError
from guard.provenance import merkle
from guard.provenance.checkpoint import SignedCheckpoint, verifier_key
from guard.provenance.log import ProvenanceLog

FORMAT = "genguard.evidence/v1"
MAX_BUNDLE_BYTES = 256 << 20  # a bundle holds one record and at most one output file
MAX_MEMBERS = 64
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_README = """\
genguard evidence bundle ({format})

This bundle proves that record.json is entry {index} of the provenance log "{origin}",
whose signed checkpoint (checkpoint.txt) commits to {size} entries with root hash {root}.

To verify without genguard (any RFC 6962 / RFC 9162 implementation will do):
1. leaf_hash = SHA-256(0x00 || bytes of record.json); it must equal proof.json "leaf_hash".
2. Check the inclusion proof (RFC 9162 section 2.1.3.2) of leaf_index, tree_size, leaf_hash and
   audit_path against root_hash.
3. checkpoint.txt is a C2SP signed note ("tlog-checkpoint"): its lines are origin, tree size and
   base64(root hash); they must equal tree_size and root_hash. Verify its Ed25519 signature with the key
   in log.pub (note verifier key in verifier_key.txt, e.g. for golang.org/x/mod/sumdb/note). Obtain that
   key from the log operator, not only from this bundle.
4. artifact.json holds the output's SHA-256 (hash_of "utf-8": over the text's UTF-8 bytes; "rgb-pixels":
   over b"<width>x<height>:" + the decoded RGB pixels); it must equal record.json "artifact".
With genguard: guard verify-bundle THIS.zip [--key log.pub]
"""


def _member(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
    info.compress_type = zipfile.ZIP_STORED
    info.create_system = 3
    info.external_attr = 0o100644 << 16
    return info


def _canonical_zip(members: dict[str, bytes]) -> bytes:
    """The one byte sequence a bundle with these members may have (members in the given order)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(_member(name), data)
    return buf.getvalue()


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _json(data: Any) -> bytes:
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")


def covering_checkpoint(log: ProvenanceLog, index: int, keys) -> SignedCheckpoint:
    """The latest signed checkpoint whose tree holds ``index``; signs a new one (needs the log key) if none does."""
    latest = log.latest_checkpoint()
    if latest is not None and latest.checkpoint.size > index:
        return latest
    return log.checkpoint(keys.log_private_key())


def build_bundle(log: ProvenanceLog, index: int, keys, *, artifact: Path | None = None) -> bytes:
    """The bundle for record ``index`` (with the output file itself when ``artifact`` is given)."""
    from cryptography.hazmat.primitives import serialization

    if not 0 <= index < log.size():
        raise LogError(f"no record at index {index} (log size {log.size()})")
    stored = log.get(index)
    public_key = keys.log_public_key()
    signed = covering_checkpoint(log, index, keys)
    try:
        signed.verify(log.origin, public_key)
    except VerificationError as exc:
        raise VerificationError(f"the log's checkpoint does not verify with {keys.path('log.pub')}: {exc}") from None
    proof = log.inclusion_proof(index, signed.checkpoint.size)
    proof.verify()
    if proof.root != signed.checkpoint.root:
        raise VerificationError(f"the log's root at size {proof.tree_size} differs from its signed checkpoint")
    record = stored.data
    digest = record.get("artifact")
    members: dict[str, bytes] = {
        "README.txt": _README.format(format=FORMAT, index=index, origin=log.origin, size=proof.tree_size,
                                     root=proof.root.hex()).encode(),
        "record.json": stored.body,
        "proof.json": _json({"leaf_index": proof.index, "tree_size": proof.tree_size,
                             "leaf_hash": proof.leaf_hash.hex(), "audit_path": [h.hex() for h in proof.hashes],
                             "root_hash": proof.root.hex(), "hash_algorithm": "sha256", "leaf_prefix": "00",
                             "node_prefix": "01"}),
        "checkpoint.txt": signed.note.encode("utf-8"),
        "log.pub": public_key.public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo),
        "verifier_key.txt": (verifier_key(log.origin, public_key) + "\n").encode(),
        "artifact.json": _json({"media_type": record.get("media_type"), "digest": digest}),
    }
    if artifact is not None:
        try:
            data = artifact.read_bytes()
        except OSError as exc:
            raise InputError(f"{artifact}: cannot read: {exc.strerror}") from None
        if digest is None:
            raise InputError(f"record {index} has no artifact (it was blocked before generation)")
        if _artifact_digest(artifact.name, data, digest) != digest.get("sha256"):
            raise InputError(f"{artifact}: its digest does not match record {index}'s artifact")
        members[f"artifact/{artifact.name}"] = data
    manifest = {"format": FORMAT, "record_id": stored.record_id, "leaf_index": index, "origin": log.origin,
                "files": {name: _sha(data) for name, data in members.items()}}
    return _canonical_zip({"manifest.json": _json(manifest), **members})


def _artifact_digest(name: str, data: bytes, digest: dict[str, Any]) -> str:
    """The digest of an output file in the way the record names it."""
    if digest.get("hash_of") == "rgb-pixels":
        from guard.provenance.artifact import image_digest
        from core.imageio import decode_image

        image, _ = decode_image(data, name=name)
        return image_digest(image)["sha256"]
    return _sha(data)


class _Rejected(Exception):
    """The bundle is not a well-formed evidence bundle at all (bad input rather than a failed check)."""


@dataclass
class BundleReport:
    ok: bool = True
    checks: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    rejected: str | None = None  # why the bundle is not a well-formed one (bad input, exit 2); None otherwise
    record: dict[str, Any] = field(default_factory=dict)
    leaf_index: int | None = None
    tree_size: int | None = None
    root_hash: str | None = None
    origin: str | None = None

    def fail(self, problem: str) -> None:
        self.ok = False
        self.problems.append(problem)

    def reject(self, reason: str) -> None:
        self.fail(reason)
        self.rejected = reason

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "format": FORMAT, "origin": self.origin, "leaf_index": self.leaf_index,
                "tree_size": self.tree_size, "root_hash": self.root_hash, "record_id": self.record.get("record_id"),
                "checks": self.checks, "problems": self.problems}


def verify_bundle(data: bytes, *, trusted_key_pem: bytes | None = None) -> BundleReport:
    """Check a bundle completely; every failed check is listed in the report (``ok`` False)."""
    report = BundleReport()
    if len(data) > MAX_BUNDLE_BYTES:
        report.reject(f"{len(data)} bytes, larger than the {MAX_BUNDLE_BYTES} an evidence bundle may have")
        return report
    try:
        members = _read_members(data)
    except VerificationError as exc:
        report.fail(str(exc))
        return report
    except _Rejected as exc:
        report.reject(str(exc))
        return report
    if _canonical_zip(members) != data:
        report.fail("the zip container is not byte-exact (its bytes were changed or it was re-packed)")
    else:
        report.checks.append("container is the canonical zip of its members")
    required = ("manifest.json", "README.txt", "record.json", "proof.json", "checkpoint.txt", "log.pub",
                "verifier_key.txt", "artifact.json")
    missing = [name for name in required if name not in members]
    if missing:
        report.fail(f"missing member(s): {', '.join(missing)}")
        return report
    try:
        _check(report, members, trusted_key_pem)
    except _Rejected as exc:
        report.reject(str(exc))
    except (ValueError, KeyError, TypeError, AttributeError, OverflowError) as exc:  # fields of the wrong shape
        report.reject(f"malformed bundle: {type(exc).__name__}: {exc}")
    return report


def _read_members(data: bytes) -> dict[str, bytes]:
    """The members, each read only after its declared size was checked: no member is inflated."""
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as zf:
            infos = zf.infolist()
            if len(infos) > MAX_MEMBERS:
                raise _Rejected(f"{len(infos)} members, more than the {MAX_MEMBERS} a bundle may have")
            for info in infos:
                if info.compress_type != zipfile.ZIP_STORED:
                    raise _Rejected(f"member {info.filename} is compressed (evidence bundles store members "
                                    "uncompressed); it was not inflated")
            if sum(info.file_size for info in infos) > len(data):
                raise _Rejected("its members declare more bytes than the whole bundle holds")
            return {info.filename: zf.read(info) for info in infos}
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, ValueError, NotImplementedError, RuntimeError,
            OSError) as exc:  # a damaged zip fails in many ways; all mean "this is not the bundle that was made"
        raise VerificationError(f"not a readable evidence bundle: {exc}") from None


def _check(report: BundleReport, members: dict[str, bytes], trusted_key_pem: bytes | None) -> None:
    from cryptography.hazmat.primitives import serialization

    manifest = _object(members, "manifest.json")
    if manifest.get("format") != FORMAT:
        report.fail(f"unknown bundle format {manifest.get('format')!r} (expected {FORMAT})")
    listed = manifest.get("files", {})
    if not isinstance(listed, dict):
        raise _Rejected("manifest.json: files is not an object")
    before = len(report.problems)
    for name in sorted(set(members) - {"manifest.json"} | set(listed)):
        if name not in members or name not in listed:
            report.fail(f"{name}: {'missing from the bundle' if name not in members else 'not in the manifest'}")
        elif _sha(members[name]) != listed[name]:
            report.fail(f"{name}: its SHA-256 does not match the manifest")
    if len(report.problems) == before:
        report.checks.append("manifest lists every member with its SHA-256")

    record_bytes = members["record.json"]
    record = _object(members, "record.json")
    report.record = record
    proof = _object(members, "proof.json")
    index, size = proof["leaf_index"], proof["tree_size"]
    if not all(type(n) is int and n >= 0 for n in (index, size)):
        raise _Rejected("proof.json: leaf_index and tree_size must be whole numbers")
    leaf, root = bytes.fromhex(proof["leaf_hash"]), bytes.fromhex(proof["root_hash"])
    path = [bytes.fromhex(h) for h in proof["audit_path"]]
    report.leaf_index, report.tree_size, report.root_hash = index, size, root.hex()
    if merkle.leaf_hash(record_bytes) != leaf:
        report.fail("record.json does not hash to the proof's leaf hash")
    if record.get("index") != index or record.get("record_id") != manifest.get("record_id"):
        report.fail("record.json's index or id differs from the proof and manifest")
    try:
        merkle.verify_inclusion(index, size, merkle.leaf_hash(record_bytes), path, root)
        report.checks.append(f"RFC 6962 inclusion proof of leaf {index} in a tree of {size}")
    except VerificationError as exc:
        report.fail(f"inclusion proof: {exc}")

    try:
        signed = SignedCheckpoint.from_text(members["checkpoint.txt"].decode("utf-8"))
    except (VerificationError, UnicodeDecodeError) as exc:
        report.fail(f"checkpoint.txt: {exc}")
        return
    report.origin = signed.checkpoint.origin
    if (signed.checkpoint.size, signed.checkpoint.root) != (size, root):
        report.fail("the signed checkpoint is for a different tree size or root than the proof")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    try:
        public_key = serialization.load_pem_public_key(members["log.pub"])
    except ValueError as exc:
        raise _Rejected(f"log.pub: not a PEM public key ({exc})") from None
    if not isinstance(public_key, Ed25519PublicKey):
        raise _Rejected(f"log.pub: not an Ed25519 public key (a {type(public_key).__name__.removesuffix('PublicKey')}"
                        " key); a log signs its checkpoints with Ed25519")
    if trusted_key_pem is not None and _spki(trusted_key_pem) != _der(public_key):
        report.fail("log.pub is not the trusted key given with --key")
    try:
        signed.verify(signed.checkpoint.origin, public_key)
        report.checks.append(f"checkpoint signed by {signed.checkpoint.origin}"
                             + (" (trusted key)" if trusted_key_pem is not None else " (key from the bundle)"))
    except VerificationError as exc:
        report.fail(f"checkpoint: {exc}")
    if members["verifier_key.txt"].decode("utf-8").strip() != verifier_key(signed.checkpoint.origin, public_key):
        report.fail("verifier_key.txt does not name log.pub")

    described = _object(members, "artifact.json")
    if described.get("digest") != record.get("artifact"):
        report.fail("artifact.json differs from the record's artifact digest")
    for name, data in members.items():
        if name.startswith("artifact/"):
            digest = record.get("artifact") or {}
            try:
                matches = _artifact_digest(name, data, digest) == digest.get("sha256")
            except InputError as exc:  # an image that no longer decodes
                report.fail(f"{name}: {exc}")
                continue
            if not matches:
                report.fail(f"{name}: does not match the record's artifact digest")
            else:
                report.checks.append(f"{name} matches the record's artifact digest")


def _object(members: dict[str, bytes], name: str) -> dict[str, Any]:
    """A JSON member that must be an object of finite numbers (no ``Infinity``/``NaN``), nested within reason."""
    def no_constant(token: str):
        raise ValueError(f"{token} is not a JSON number")

    try:
        value = json.loads(members[name], parse_constant=no_constant)
    except RecursionError:
        raise _Rejected(f"{name}: nested too deeply") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise _Rejected(f"{name}: not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise _Rejected(f"{name}: a JSON object was expected, not a {type(value).__name__}")
    return value


def _der(public_key) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _spki(pem: bytes) -> bytes:
    """The trusted key the user gave, as DER; a bad key file is bad input (exit 2), not a finding."""
    from cryptography.hazmat.primitives import serialization

    try:
        return _der(serialization.load_pem_public_key(pem))
    except ValueError as exc:
        raise InputError(f"--key: not a PEM public key: {exc}") from None
