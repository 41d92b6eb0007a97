"""Attack: edit the columns the log is searched by (or an erasable private value) and leave the signed record body
alone. `log verify` must name the edited record, and the commands that answer from a lookup must not report the
forged value: they confirm the body first."""

from __future__ import annotations

import hashlib
import json

import pytest
from sqlalchemy import text

from core.errors import VerificationError
from guard.provenance.record import ProvenanceRecord
from tests.guard.provenance.helpers import fill, make_record

FORGED_COLUMNS = {
    "artifact_sha256": "f" * 64,
    "verdict": "allow",  # record 7 is a "flag"
    "model_id": "someone.else",
    "created_at": "2001-01-01T00:00:00.000000Z",
    "media_type": "image/png",
}


def _exec(log, sql: str, **params) -> None:
    with log.engine.begin() as conn:
        conn.execute(text(sql), params)


@pytest.fixture
def twenty(log, keys):
    fill(log, 20)
    log.checkpoint(keys.log_private_key())
    return log


def _verify(log, keys):
    from guard.provenance.verify import verify_log

    return verify_log(log, keys.log_public_key())


@pytest.mark.parametrize("column", sorted(FORGED_COLUMNS))
def test_forged_lookup_column_is_caught_by_verify(twenty, keys, column):
    _exec(twenty, f"UPDATE guard_records SET {column} = :v WHERE idx = 7", v=FORGED_COLUMNS[column])
    report = _verify(twenty, keys)
    assert report.first_bad_index == 7, report.problems
    assert any(column in p for p in report.problems), report.problems


def test_forged_private_value_is_caught_by_verify_and_show(twenty, keys, cli):
    _exec(twenty, "UPDATE guard_private SET value = 'a forged prompt' WHERE idx = 7")
    report = _verify(twenty, keys)
    assert report.first_bad_index == 7 and any("prompt" in p for p in report.problems), report.problems
    with pytest.raises(VerificationError, match="record 7"):
        twenty.get(7)
    result = cli("log", "show", "--log", twenty.url, "--index", "7", "--json")
    assert result.exit_code == 1 and "forged" not in result.stdout, result.stdout
    assert "record 7" in result.stderr


def test_private_value_for_a_field_never_committed_is_caught(twenty, keys):
    _exec(twenty, "INSERT INTO guard_private (idx, field, salt, value) VALUES (3, 'email', :s, 'x@example.org')",
          s=b"\x00" * 16)
    report = _verify(twenty, keys)
    assert report.first_bad_index == 3, report.problems


def test_changed_leaf_hash_names_its_own_index(twenty, keys):
    _exec(twenty, "UPDATE guard_records SET leaf_hash = :h WHERE idx = 7", h=b"\x00" * 32)
    assert _verify(twenty, keys).first_bad_index == 7


def test_swapped_rows_name_the_first_of_them(twenty, keys):
    with twenty.engine.begin() as conn:
        a, b = conn.execute(text("SELECT idx, body, leaf_hash, record_id FROM guard_records WHERE idx IN (3, 4) "
                                 "ORDER BY idx")).all()
        for row, target in ((a, 4), (b, 3)):
            conn.execute(text("UPDATE guard_records SET record_id = :r || '-' WHERE idx = :i"),
                         {"r": row.record_id, "i": target})
        for row, target in ((a, 4), (b, 3)):
            conn.execute(text("UPDATE guard_records SET body = :b, leaf_hash = :l, record_id = :r WHERE idx = :i"),
                         {"b": row.body, "l": row.leaf_hash, "r": row.record_id, "i": target})
    assert _verify(twenty, keys).first_bad_index == 3


def test_export_by_verdict_reads_the_body_not_the_column(twenty, cli):
    _exec(twenty, "UPDATE guard_records SET verdict = 'allow' WHERE idx = 7")
    result = cli("log", "export", "--log", twenty.url, "--verdict", "flag")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["index"] for line in result.stdout.splitlines()] == [0, 7, 14]


def test_export_refuses_a_body_that_does_not_match_its_leaf(twenty, cli):
    body = json.loads(twenty.get(5).body)
    body["verdict"] = "block"
    _exec(twenty, "UPDATE guard_records SET body = :b WHERE idx = 5", b=json.dumps(body).encode())
    result = cli("log", "export", "--log", twenty.url)
    assert result.exit_code == 1 and "record 5" in result.stderr, result.stderr


def test_verify_file_never_names_a_record_by_a_forged_artifact_column(log, keys, tmp_path, cli):
    answer = tmp_path / "answer.txt"
    answer.write_text("the generated answer", encoding="utf-8")
    sha = hashlib.sha256(answer.read_bytes()).hexdigest()
    records = [make_record(i) for i in range(6)]
    genuine = ProvenanceRecord(**{**records[5].__dict__, "artifact": {"sha256": sha, "size": 20}})
    log.append_batch([*records[:5], genuine])
    _exec(log, "UPDATE guard_records SET artifact_sha256 = :s WHERE idx = 2", s=sha)
    _exec(log, "UPDATE guard_records SET artifact_sha256 = NULL WHERE idx = 5")
    result = cli("verify", answer, "--log", log.url, "--keys", keys.directory, "--json")
    assert result.exit_code == 1
    assert '"index": 2' not in result.stdout and "record 2" in (result.stdout + result.stderr)
