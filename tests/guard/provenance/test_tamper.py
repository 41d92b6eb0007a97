"""Tamper evidence: every kind of change to a 1,000-record log is caught by `guard log verify`, which names the
first bad record index or checkpoint. Each case edits storage directly, as an attacker with database access would."""

from __future__ import annotations

import base64

import pytest
from sqlalchemy import text

from guard.provenance import merkle
from guard.provenance.checkpoint import Checkpoint
from tests.guard.provenance.helpers import fill

N = 1000


def _rows(log, where: str):
    with log.engine.begin() as conn:
        return conn.execute(text(f"SELECT idx, record_id, created_at, media_type, verdict, model_id, "
                                 f"artifact_sha256, body, leaf_hash FROM guard_records WHERE {where} ORDER BY idx")).all()


def _exec(log, sql: str, **params) -> None:
    with log.engine.begin() as conn:
        conn.execute(text(sql), params)


def _reinsert(log, rows, shift: int) -> None:
    with log.engine.begin() as conn:
        for r in rows:
            conn.execute(text("INSERT INTO guard_records VALUES (:idx, :rid, :ca, :mt, :v, :m, :a, :b, :l)"),
                         dict(idx=r.idx + shift, rid=r.record_id, ca=r.created_at, mt=r.media_type, v=r.verdict,
                              m=r.model_id, a=r.artifact_sha256, b=bytes(r.body), l=bytes(r.leaf_hash)))


def modify_record_byte(log, keys):
    body = bytes(_rows(log, "idx = 537")[0].body)
    at = body.index(b'"seed":') + len(b'"seed":')
    forged = body[:at] + (b"9" if body[at:at + 1] != b"9" else b"8") + body[at + 1:]
    _exec(log, "UPDATE guard_records SET body = :b WHERE idx = 537", b=forged)
    return 537, None


def modify_leaf_hash(log, keys):
    _exec(log, "UPDATE guard_records SET leaf_hash = :h WHERE idx = 200", h=b"\x00" * 32)
    return 200, None


def rewrite_record_and_its_hash(log, keys):
    # A careful attacker keeps body and leaf hash consistent; the verdict column still says what was signed.
    body = bytes(_rows(log, "idx = 733")[0].body).replace(b'"verdict":"allow"', b'"verdict":"flag"')
    _exec(log, "UPDATE guard_records SET body = :b, leaf_hash = :h WHERE idx = 733", b=body, h=merkle.leaf_hash(body))
    return 733, None


def rewrite_unindexed_field_and_its_hash(log, keys):
    # The same with a field no column mirrors: only the stored interior nodes disagree. The smallest disagreeing
    # node covers records [732, 734), and no hash says which of the two changed: verification names 732.
    body = bytes(_rows(log, "idx = 733")[0].body).replace(b'"seed":733', b'"seed":734')
    _exec(log, "UPDATE guard_records SET body = :b, leaf_hash = :h WHERE idx = 733", b=body, h=merkle.leaf_hash(body))
    return 732, None


def delete_record(log, keys):
    _exec(log, "DELETE FROM guard_records WHERE idx = 321")
    return 321, None


def insert_record(log, keys):
    tail = _rows(log, "idx >= 400")
    _exec(log, "DELETE FROM guard_records WHERE idx >= 400")
    _reinsert(log, tail, shift=1)
    forged = bytes(tail[0].body).replace(b'"index":400', b'"index":400,"x":1')
    _exec(log, "INSERT INTO guard_records VALUES (400, 'f0f0f0f0f0f0f0f0', '2026-01-01', 'text/plain', 'allow', "
               "'m', NULL, :b, :l)", b=forged, l=merkle.leaf_hash(forged))
    return 400, None


def reorder_records(log, keys):
    a, b = _rows(log, "idx IN (600, 601)")
    _exec(log, "DELETE FROM guard_records WHERE idx IN (600, 601)")
    _reinsert(log, [a], shift=1)
    _reinsert(log, [b], shift=-1)
    return 600, None


def truncate_tail(log, keys):
    _exec(log, "DELETE FROM guard_records WHERE idx >= 950")
    return 950, 2


def modify_interior_node(log, keys):
    _exec(log, "UPDATE guard_nodes SET hash = :h WHERE level = 3 AND idx = 10", h=b"\x11" * 32)
    return 80, None


def swap_checkpoint(log, keys):
    # A correctly signed checkpoint for the same origin and size, but of another history (a fork).
    fork = Checkpoint(log.origin, 500, merkle.leaf_hash(b"another history")).sign(log.origin, keys.log_private_key())
    _exec(log, "UPDATE guard_checkpoints SET note = :n WHERE id = 1", n=fork.note)
    return None, 1


def forge_checkpoint_signature(log, keys):
    note = _checkpoint_note(log, 2)
    sig_line = note.rstrip("\n").rsplit(" ", 1)
    raw = bytearray(base64.b64decode(sig_line[1]))
    raw[10] ^= 0x01
    _exec(log, "UPDATE guard_checkpoints SET note = :n WHERE id = 2",
          n=sig_line[0] + " " + base64.b64encode(bytes(raw)).decode() + "\n")
    return None, 2


def _checkpoint_note(log, cid: int) -> str:
    with log.engine.begin() as conn:
        return conn.execute(text("SELECT note FROM guard_checkpoints WHERE id = :i"), {"i": cid}).scalar()


CASES = [modify_record_byte, modify_leaf_hash, rewrite_record_and_its_hash,
         rewrite_unindexed_field_and_its_hash, delete_record, insert_record,
         reorder_records, truncate_tail, modify_interior_node, swap_checkpoint, forge_checkpoint_signature]


@pytest.fixture
def full_log(log, keys):
    fill(log, 500)
    log.checkpoint(keys.log_private_key())
    fill_from(log, 500, N)
    log.checkpoint(keys.log_private_key())
    return log


def fill_from(log, start: int, stop: int) -> None:
    from tests.guard.provenance.helpers import make_record

    for s in range(start, stop, 100):
        log.append_batch([make_record(i) for i in range(s, min(stop, s + 100))])


def test_untouched_log_verifies(full_log, keys, cli):
    result = cli("log", "verify", "--log", full_log.url, "--keys", keys.directory, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json["ok"] is True and result.json["size"] == N and result.json["checkpoints_checked"] == 2


@pytest.mark.parametrize("tamper", CASES, ids=lambda f: f.__name__)
def test_tampering_is_detected(full_log, keys, cli, tamper):
    bad_index, bad_checkpoint = tamper(full_log, keys)
    result = cli("log", "verify", "--log", full_log.url, "--keys", keys.directory, "--json")
    assert result.exit_code == 1, result.stdout + result.stderr
    report = result.json
    assert report["ok"] is False
    if bad_index is not None:
        assert report["first_bad_index"] == bad_index, report["problems"]
    if bad_checkpoint is not None:
        assert report["first_bad_checkpoint"] == bad_checkpoint, report["problems"]


@pytest.mark.parametrize("tamper", [modify_record_byte, reorder_records, delete_record], ids=lambda f: f.__name__)
def test_worker_processes_find_the_same_first_bad_index(full_log, keys, tamper):
    from guard.provenance.verify import verify_log

    bad_index, _ = tamper(full_log, keys)
    report = verify_log(full_log, keys.log_public_key(), workers=2, chunk=128)
    assert not report.ok and report.first_bad_index == bad_index, report.problems
