"""Evidence bundles: a bundle verifies offline; a bundle with any one byte changed does not (exit 1)."""

from __future__ import annotations

import io
import json
import zipfile

import pytest

from guard.verify.evidence import FORMAT, build_bundle, verify_bundle
from guard.provenance import merkle
from guard.provenance.checkpoint import SignedCheckpoint


@pytest.fixture
def text_log(tmp_path, keys):
    """A small log made through the pipeline, with a checkpoint that does not yet cover its last records."""
    from guard.pipeline.guard import Guard
    from guard.policy import parse

    guard = Guard(parse("name: plain\nlog: {checkpoint_every: 1000}\n"), log=tmp_path / "log.db", keys=keys)
    generate = guard.wrap(lambda prompt: f"Answer to {prompt}.")
    results = [generate(f"question {i}") for i in range(5)]
    return guard.log, results


def test_bundle_verifies_with_any_rfc6962_verifier(text_log, keys):
    log, results = text_log
    before = len(log.checkpoints())
    data = build_bundle(log, 4, keys)
    assert len(log.checkpoints()) == before + 1  # none covered record 4 (checkpoint_every 1000 left 1): signed one
    report = verify_bundle(data, trusted_key_pem=keys.path("log.pub").read_bytes())
    assert report.ok, report.problems
    # The same checks by hand, from the documented members, with nothing but hashlib and the RFC's algorithm.
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        members = {name: zf.read(name) for name in zf.namelist()}
    proof = json.loads(members["proof.json"])
    assert merkle.leaf_hash(members["record.json"]).hex() == proof["leaf_hash"]
    merkle.verify_inclusion(proof["leaf_index"], proof["tree_size"], bytes.fromhex(proof["leaf_hash"]),
                            [bytes.fromhex(h) for h in proof["audit_path"]], bytes.fromhex(proof["root_hash"]))
    note = SignedCheckpoint.from_text(members["checkpoint.txt"].decode())
    assert (note.checkpoint.size, note.checkpoint.root.hex()) == (proof["tree_size"], proof["root_hash"])
    assert json.loads(members["record.json"])["record_id"] == results[4].record_id
    assert json.loads(members["manifest.json"])["format"] == FORMAT


def test_reuses_the_latest_covering_checkpoint(text_log, keys):
    log, _ = text_log
    log.checkpoint(keys.log_private_key())
    count = len(log.checkpoints())
    build_bundle(log, 2, keys)
    assert len(log.checkpoints()) == count


def test_every_single_byte_change_is_caught(text_log, keys):
    log, _ = text_log
    data = build_bundle(log, 1, keys)
    assert verify_bundle(data).ok
    missed = []
    for i in range(len(data)):
        changed = bytearray(data)
        changed[i] ^= 0x20
        if verify_bundle(bytes(changed)).ok:
            missed.append(i)
    assert missed == []


def test_wrong_trusted_key_fails(text_log, keys, tmp_path):
    from guard.signing.keys import KeyStore

    log, _ = text_log
    other = KeyStore(tmp_path / "other")
    other.init()
    report = verify_bundle(build_bundle(log, 0, keys), trusted_key_pem=other.path("log.pub").read_bytes())
    assert not report.ok and "not the trusted key" in report.problems[0]


def test_bundle_with_the_artifact_file(keys, tmp_path):
    from PIL import Image
    from skimage import data as skdata

    from guard.pipeline.guard import Guard
    from guard.policy import parse

    guard = Guard(parse("name: images\n"), log=tmp_path / "log.db", keys=keys)
    result = guard.wrap(lambda p: Image.fromarray(skdata.coffee()).resize((200, 150)))("coffee")
    image = tmp_path / "coffee.png"
    image.write_bytes(result.file_bytes)  # the C2PA-signed file the pipeline handed back
    report = verify_bundle(build_bundle(guard.log, result.index, keys, artifact=image))
    assert report.ok and any("artifact/coffee.png matches" in c for c in report.checks)


def test_cli_evidence_and_verify_bundle(text_log, keys, cli, tmp_path):
    log, results = text_log
    out = tmp_path / "bundle.zip"
    made = cli("evidence", "--record-id", results[3].record_id, "--out", out, "--log", log.url.removeprefix(
        "sqlite:///"), "--keys", keys.directory, "--json")
    assert made.exit_code == 0, made.stderr
    assert made.json["leaf_index"] == 3
    ok = cli("verify-bundle", out, "--key", keys.path("log.pub"), "--json")
    assert ok.exit_code == 0 and ok.json["ok"] is True
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 1
    out.write_bytes(bytes(data))
    bad = cli("verify-bundle", out)
    assert bad.exit_code == 1 and "NOT verified" in bad.stdout
    assert cli("verify-bundle", tmp_path / "missing.zip").exit_code == 2
    assert cli("evidence", "--index", "99", "--out", out, "--log", log.url.removeprefix("sqlite:///"),
               "--keys", keys.directory).exit_code == 2
