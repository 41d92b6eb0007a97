"""Attack: an evidence bundle crafted to exhaust or crash the verifier: a zip bomb member, members that are a JSON
list, hold ``Infinity``, nest 200,000 deep, or a log key of the wrong kind. Each is one line on stderr and exit 2,
in bounded memory and time; a bundle whose bytes were changed stays a finding (exit 1)."""

from __future__ import annotations

import io
import json
import time
import zipfile

import pytest

from guard.verify import evidence
from guard.verify.evidence import _canonical_zip, build_bundle, verify_bundle


@pytest.fixture
def members(tmp_path, keys):
    from guard.provenance.log import ProvenanceLog
    from tests.guard.provenance.helpers import fill

    log = ProvenanceLog(tmp_path / "log.db")
    fill(log, 3)
    data = build_bundle(log, 1, keys)
    log.close()
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def _craft(members: dict[str, bytes], **replaced: bytes) -> bytes:
    """A canonical bundle whose manifest lists the replaced members with their true hashes (a careful forger)."""
    changed = {**members, **{k.replace("_", ".", 1) if k.endswith(("_json", "_pub")) else k: v
                             for k, v in replaced.items()}}
    manifest = json.loads(changed["manifest.json"]) if "manifest_json" not in replaced else None
    if manifest is not None:
        manifest["files"] = {n: evidence._sha(d) for n, d in changed.items() if n != "manifest.json"}
        changed["manifest.json"] = evidence._json(manifest)
    return _canonical_zip({"manifest.json": changed.pop("manifest.json"), **changed})


def _cli(cli, tmp_path, data: bytes):
    path = tmp_path / "hostile.zip"
    path.write_bytes(data)
    result = cli("verify-bundle", path)
    assert "Traceback" not in result.stderr
    return result


def _rejected(cli, tmp_path, data: bytes, words: str):
    result = _cli(cli, tmp_path, data)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr


def test_untouched_bundle_verifies(cli, tmp_path, members):
    assert _cli(cli, tmp_path, _craft(members)).exit_code == 0


def test_manifest_that_is_a_json_list(cli, tmp_path, members):
    _rejected(cli, tmp_path, _craft(members, manifest_json=b"[1, 2, 3]\n"), "manifest.json")


def test_proof_that_holds_infinity(cli, tmp_path, members):
    proof = members["proof.json"].replace(b'"leaf_index": 1', b'"leaf_index": Infinity')
    assert proof != members["proof.json"]
    _rejected(cli, tmp_path, _craft(members, proof_json=proof), "proof.json")


def test_record_nested_200k_deep(cli, tmp_path, members):
    _rejected(cli, tmp_path, _craft(members, record_json=b"[" * 200_000 + b"]" * 200_000), "record.json")


def test_log_key_that_is_x25519(cli, tmp_path, members):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

    pem = X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    _rejected(cli, tmp_path, _craft(members, log_pub=pem), "Ed25519")


def test_zip_bomb_member_is_not_inflated(cli, tmp_path, members):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data, compress_type=zipfile.ZIP_STORED)
        with zf.open("artifact/bomb.txt", "w") as member:  # 64 MiB of zeros in about 64 KiB
            for _ in range(64):
                member.write(bytes(1 << 20))
    data = buf.getvalue()
    assert len(data) < 1 << 20
    start = time.perf_counter()
    _rejected(cli, tmp_path, data, "bomb.txt")
    assert time.perf_counter() - start < 5


def test_bundle_over_the_size_limit(cli, tmp_path, members, monkeypatch):
    monkeypatch.setattr(evidence, "MAX_BUNDLE_BYTES", 1000)
    _rejected(cli, tmp_path, _craft(members), "larger than")


def test_changed_bytes_are_still_a_finding(cli, tmp_path, members):
    data = bytearray(_craft(members))
    data[len(data) // 2] ^= 1
    assert _cli(cli, tmp_path, bytes(data)).exit_code == 1
    assert not verify_bundle(bytes(data)).ok
