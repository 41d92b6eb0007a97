"""The log on both backends: numbering, proofs, checkpoints, erasure and witnessing."""

from __future__ import annotations

import pytest

from core.errors import LogError, VerificationError
from guard.provenance import merkle
from guard.provenance.checkpoint import SignedCheckpoint
from guard.provenance.verify import verify_log

from tests.guard.provenance.helpers import fill, make_record


def test_append_numbers_records_and_proves_them(log):
    entries = log.append_batch([make_record(i) for i in range(5)])
    assert [e.index for e in entries] == list(range(5))
    assert log.append(make_record(5)).index == 5
    assert log.size() == 6
    stored = log.get(3)
    assert stored.data["index"] == 3 and stored.leaf_hash == merkle.leaf_hash(stored.body)
    assert log.find(stored.record_id) == 3
    assert log.find("0" * 16) is None
    size, root = log.root()
    assert root == merkle.root_from_leaves([log.get(i).leaf_hash for i in range(6)])
    for i in range(size):
        log.inclusion_proof(i).verify()


def test_proofs_against_every_earlier_size(log):
    fill(log, 37, batch=5)
    size, root = log.root()
    for old in range(1, size + 1):
        _, old_root = log.root(old)
        size2, root2, proof = log.consistency_proof(old)
        assert (size2, root2) == (size, root)
        merkle.verify_consistency(old, size, old_root, root, proof)
        log.inclusion_proof(old - 1, old).verify()


def test_out_of_range_requests_are_log_errors(log):
    fill(log, 3)
    with pytest.raises(LogError, match="no record at index 9"):
        log.get(9)
    with pytest.raises(LogError, match="outside"):
        log.inclusion_proof(3)
    with pytest.raises(LogError, match="outside the log"):
        log.root(4)


def test_checkpoints_are_signed_notes_that_verify(log, keys):
    fill(log, 10)
    signed = log.checkpoint(keys.log_private_key())
    parsed = SignedCheckpoint.from_text(signed.note)
    assert parsed.checkpoint.size == 10 and parsed.checkpoint.origin == log.origin
    parsed.verify(log.origin, keys.log_public_key())
    with pytest.raises(VerificationError, match="no signature by"):
        parsed.verify("someone-else", keys.log_public_key())
    assert verify_log(log, keys.log_public_key()).ok


def test_reopening_keeps_identity_and_tree(log_url, keys):
    from guard.provenance.log import ProvenanceLog

    first = ProvenanceLog(log_url)
    fill(first, 12)
    origin, root = first.origin, first.root()
    first.close()
    again = ProvenanceLog(log_url)
    assert again.origin == origin and again.root() == root
    again.append(make_record(12))
    assert again.size() == 13
    again.close()


def test_erasure_removes_the_prompt_and_keeps_the_log_verifiable(log, keys, log_url):
    secret = "my home address is 12 Erasure Lane"
    log.append_batch([make_record(0), make_record(1, prompt=secret), make_record(2)])
    log.checkpoint(keys.log_private_key())
    before = log.get(1)
    assert before.private == {"prompt": secret}
    assert secret.encode() not in before.body  # only the salted commitment is in the leaf
    assert "prompt" in before.data["commitments"]
    assert log.erase(1, "prompt") is True
    assert log.erase(1, "prompt") is False
    after = log.get(1)
    assert after.private == {} and after.body == before.body and after.leaf_hash == before.leaf_hash
    assert verify_log(log, keys.log_public_key()).ok
    if log.dialect == "sqlite":
        from pathlib import Path

        db = Path(log_url)
        stored = b"".join(p.read_bytes() for p in db.parent.glob(db.name + "*"))
        assert secret.encode() not in stored
        assert b"prompt number 2" in stored  # other prompts are still there


def test_prompt_digest_is_keyed_per_log(log, tmp_path):
    from guard.provenance.log import ProvenanceLog

    other = ProvenanceLog(tmp_path / "other.db")
    assert log.prompt_digest("hello") == log.prompt_digest("hello")
    assert log.prompt_digest("hello") != other.prompt_digest("hello")


def test_canonical_json_matches_rfc8785_reference():
    """The fast path (stdlib JSON) and the reference (rfc8785) agree byte for byte on every kind of value."""
    import random

    import rfc8785

    from guard.provenance.record import canonical

    rng = random.Random(8785)
    alphabet = ["a", "Z", "é", "\n", "\u2028", "\"", "\\", "\x01", "€", "😀", "\ue000", "/", "<", " "]

    def value(depth: int):
        kind = rng.randrange(8 if depth < 3 else 5)
        if kind == 0:
            return "".join(rng.choice(alphabet) for _ in range(rng.randrange(6)))
        if kind == 1:
            return rng.choice([0, 1, -7, 2**52, -(2**52), 123456789])
        if kind == 2:
            return rng.choice([0.5, 0.1, 1e-07, 1.0, 123.456, 1e21, 2.5e-05, -0.0, 0.000123, 1e16, 3.0e15])
        if kind == 3:
            return rng.choice([True, False, None])
        if kind == 4:
            return rng.choice([round(rng.random(), 6), rng.uniform(-1, 1) * 10 ** rng.randint(-30, 30),
                               float(rng.randint(-10**6, 10**6))])
        if kind == 5:
            return [value(depth + 1) for _ in range(rng.randrange(4))]
        return {"".join(rng.choice(alphabet) for _ in range(rng.randrange(1, 4))): value(depth + 1)
                for _ in range(rng.randrange(4))}

    for _ in range(3000):
        data = {"k": value(0), "other": value(0)}
        assert canonical(data) == rfc8785.dumps(data), data
