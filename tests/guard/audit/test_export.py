"""``guard log export``: JSON Lines, CSV and Parquet, filtered by time, verdict, model and detector."""

from __future__ import annotations

import csv
import json

import pytest

from guard.audit.export import Filters, export, parse_time
from guard.provenance.log import ProvenanceLog


@pytest.fixture
def records(mixed_log):
    log = ProvenanceLog(mixed_log.path)
    yield [r.data for r in log.iter_records()]
    log.close()


def _run(cli, mixed_log, tmp_path, fmt, *filters):
    out = tmp_path / f"out.{fmt}"
    result = cli("log", "export", "--log", mixed_log.path, "--format", fmt, "--out", out, *filters)
    assert result.exit_code == 0, result.stderr
    return out


def _indices(fmt, path) -> list[int]:
    if fmt == "jsonl":
        return [json.loads(line)["index"] for line in path.read_text().splitlines()]
    if fmt == "csv":
        with path.open(newline="") as fh:
            return [int(row["index"]) for row in csv.DictReader(fh)]
    import pyarrow.parquet as pq

    return pq.read_table(path).column("index").to_pylist()


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_formats_hold_every_record(cli, mixed_log, tmp_path, records, fmt):
    path = _run(cli, mixed_log, tmp_path, fmt)
    assert _indices(fmt, path) == [r["index"] for r in records]


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_filters(cli, mixed_log, tmp_path, records, fmt):
    cutoff = sorted(r["created_at"] for r in records)[len(records) // 2]
    cases = [
        (["--verdict", "block"], lambda r: r["verdict"] == "block"),
        (["--verdict", "flag", "--verdict", "redact"], lambda r: r["verdict"] in ("flag", "redact")),
        (["--model", "backfill.chat"], lambda r: r["generator"]["model_id"] == "backfill.chat"),
        (["--since", cutoff], lambda r: r["created_at"] >= cutoff),
        (["--until", cutoff, "--verdict", "allow"], lambda r: r["created_at"] < cutoff and r["verdict"] == "allow"),
        (["--detector", "copyright"], lambda r: any(s["detector"] == "copyright" for s in r["scores"])
         or any(e["detector"] == "copyright" for e in r["errors"])),
        (["--detector", "toxicity"], lambda r: False),
    ]
    sizes = set()
    for args, keep in cases:
        expected = [r["index"] for r in records if keep(r)]
        assert _indices(fmt, _run(cli, mixed_log, tmp_path, fmt, *args)) == expected, args
        sizes.add(len(expected))
    assert len(sizes - {0, len(records)}) >= 3  # the filters really select


def test_csv_and_parquet_keep_the_whole_record(mixed_log, tmp_path, records):
    import pyarrow.parquet as pq

    log = ProvenanceLog(mixed_log.path)
    assert export(log, "parquet", tmp_path / "all.parquet") == len(records)
    table = pq.read_table(tmp_path / "all.parquet").to_pylist()
    assert [json.loads(row["record_json"]) for row in table] == records
    image = next(row for row in table if row["media_type"] == "image/png")
    assert image["watermark_scheme"] and image["signature_type"] == "c2pa" and image["phash"]
    log.close()


def test_stdout(cli, mixed_log, records):
    jsonl = cli("log", "export", "--log", mixed_log.path, "--verdict", "block")
    assert jsonl.exit_code == 0
    assert [json.loads(line)["index"] for line in jsonl.stdout.splitlines()] == \
        [r["index"] for r in records if r["verdict"] == "block"]
    table = cli("log", "export", "--log", mixed_log.path, "--format", "csv", "--model", "backfill.chat")
    rows = list(csv.DictReader(table.stdout.splitlines()))
    assert len(rows) == 40 and {r["model_id"] for r in rows} == {"backfill.chat"}


def test_bad_input(cli, mixed_log):
    assert cli("log", "export", "--log", mixed_log.path, "--format", "xml").exit_code == 2
    bad_time = cli("log", "export", "--log", mixed_log.path, "--since", "yesterday")
    assert bad_time.exit_code == 2 and "ISO 8601" in bad_time.stderr
    maybe = cli("log", "export", "--log", mixed_log.path, "--verdict", "maybe")
    assert maybe.exit_code == 2 and "allow, flag, redact, block, review" in maybe.stderr


def test_every_verdict_a_record_can_carry_is_a_filter(cli, mixed_log, tmp_path):
    """A reviewer's decision is recorded with the verdict ``review``; the export filter takes it."""
    import sqlite3

    from guard.provenance.record import VERDICTS, ProvenanceRecord
    from guard.review.decisions import record_decision

    path = tmp_path / "reviewed.db"
    with sqlite3.connect(mixed_log.path) as src, sqlite3.connect(path) as dst:
        src.backup(dst)
    log = ProvenanceLog(path)
    decided = record_decision(log, 0, "confirm", "", reviewer="ana", role="reviewer")
    log.close()
    for verdict in VERDICTS:
        assert Filters.parse(verdicts=[verdict]).verdicts == (verdict,)
    with pytest.raises(ValueError, match="'maybe' is not one of allow, flag, redact, block, review"):
        ProvenanceRecord(media_type="text/plain", generator={}, verdict="maybe", policy={})
    result = cli("log", "export", "--log", path, "--verdict", "review")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["index"] for line in result.stdout.splitlines()] == [decided]


def test_times_are_normalised_to_the_log_format():
    assert parse_time("2025-06-01", "--since") == "2025-06-01T00:00:00.000000Z"
    assert parse_time("2025-06-01T14:00:00+02:00", "--since") == "2025-06-01T12:00:00.000000Z"
    assert Filters.parse(since="2025-06-01T12:00:00Z").since == "2025-06-01T12:00:00.000000Z"
