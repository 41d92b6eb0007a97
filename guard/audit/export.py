"""Export log records as JSON Lines, CSV or Parquet, filtered by time, verdict, model and detector.

Every filter reads the record itself, never the log's lookup columns (a column can be edited without touching the
signed record), and every record's bytes are checked against its leaf hash before it is written. Records stream in
index order in chunks, so an export of any size runs in bounded memory.

- ``jsonl``: one full record per line plus its ``leaf_hash`` (what ``guard log export`` always wrote);
- ``csv`` and ``parquet``: one row per record with flat columns (``COLUMNS``) for spreadsheets and data frames,
  and the full record as canonical JSON in ``record_json`` so nothing is lost.
"""

from __future__ import annotations

import csv
import json
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from core.errors import InputError
from guard.provenance.log import ProvenanceLog, StoredRecord
from guard.provenance.record import VERDICTS

FORMATS = ("jsonl", "csv", "parquet")
COLUMNS = ("index", "record_id", "created_at", "media_type", "verdict", "actions", "attempt", "parent",
           "generator", "model_id", "model_revision", "policy", "policy_sha256", "artifact_sha256", "phash",
           "watermark_scheme", "signature_type", "detectors", "max_score", "errors", "leaf_hash", "record_json")


def parse_time(text: str | None, option: str) -> str | None:
    """An ISO 8601 date or time as the log writes times (UTC, microseconds, ``Z``); a bare date is midnight UTC."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise InputError(f"{option} {text!r}: not an ISO 8601 date or time (e.g. 2025-06-01 or "
                         "2025-06-01T12:00:00Z)") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Filters:
    """Which records to read. ``since`` is inclusive, ``until`` exclusive; empty tuples mean no filter."""

    since: str | None = None
    until: str | None = None
    verdicts: tuple[str, ...] = ()
    models: tuple[str, ...] = ()
    detectors: tuple[str, ...] = ()  # records scored by, or with an error from, one of these detectors

    @classmethod
    def parse(cls, *, since: str | None = None, until: str | None = None, verdicts=(), models=(),
              detectors=()) -> "Filters":
        bad = [v for v in verdicts if v not in VERDICTS]
        if bad:
            raise InputError(f"--verdict {bad[0]!r}: not a verdict a record can carry; expected one of "
                             f"{', '.join(VERDICTS)}")
        return cls(parse_time(since, "--since"), parse_time(until, "--until"), tuple(verdicts), tuple(models),
                   tuple(detectors))

    def to_dict(self) -> dict[str, Any]:
        return {"since": self.since, "until": self.until, "verdicts": list(self.verdicts),
                "models": list(self.models), "detectors": list(self.detectors)}

    def matches(self, record: dict[str, Any]) -> bool:
        created = str(record.get("created_at") or "")
        if (self.since and created < self.since) or (self.until and created >= self.until):
            return False
        if self.verdicts and record.get("verdict") not in self.verdicts:
            return False
        if self.models and (record.get("generator") or {}).get("model_id") not in self.models:
            return False
        if not self.detectors:
            return True
        used = {s.get("detector") for s in record.get("scores", [])} | {e.get("detector") for e in
                                                                         record.get("errors", [])}
        return bool(used & set(self.detectors))


def iter_filtered(log: ProvenanceLog, filters: Filters, *, chunk: int = 2000,
                  checked: bool = True) -> Iterator[tuple[StoredRecord, dict]]:
    """(stored record, parsed record) for every record that passes ``filters``, in index order. Raises
    ``VerificationError`` at a record whose bytes do not match its leaf hash, unless ``checked`` is off."""
    for stored in log.iter_records(chunk=chunk, checked=checked):
        data = json.loads(stored.body)
        if filters.matches(data):
            yield stored, data


def flat_row(stored: StoredRecord, record: dict[str, Any]) -> dict[str, Any]:
    """One record as the flat columns of ``COLUMNS``."""
    generator = record.get("generator") or {}
    artifact = record.get("artifact") or {}
    scores = record.get("scores") or []
    return {
        "index": stored.index,
        "record_id": stored.record_id,
        "created_at": record.get("created_at"),
        "media_type": record.get("media_type"),
        "verdict": record.get("verdict"),
        "actions": ";".join(record.get("actions") or []),
        "attempt": record.get("attempt"),
        "parent": record.get("parent"),
        "generator": generator.get("name"),
        "model_id": generator.get("model_id"),
        "model_revision": generator.get("revision"),
        "policy": (record.get("policy") or {}).get("name"),
        "policy_sha256": (record.get("policy") or {}).get("sha256"),
        "artifact_sha256": artifact.get("sha256"),
        "phash": artifact.get("phash"),
        "watermark_scheme": (record.get("watermark") or {}).get("scheme"),
        "signature_type": (record.get("signature") or {}).get("type"),
        "detectors": ";".join(sorted({s.get("detector", "") for s in scores})),
        "max_score": max((float(s.get("value", 0.0)) for s in scores), default=None),
        "errors": len(record.get("errors") or []),
        "leaf_hash": stored.leaf_hash.hex(),
        "record_json": stored.body.decode("utf-8"),
    }


def export(log: ProvenanceLog, fmt: str, out: Path | None, filters: Filters = Filters()) -> int:
    """Write the filtered records to ``out`` (stdout when None); returns how many were written."""
    if fmt not in FORMATS:
        raise InputError(f"unknown export format {fmt!r} (known: {', '.join(FORMATS)})")
    records = iter_filtered(log, filters)
    if fmt == "parquet":
        return _parquet(records, out)
    write = _jsonl if fmt == "jsonl" else _csv
    if out is None:
        return write(records, sys.stdout)
    with out.open("w", encoding="utf-8", newline="") as sink:
        return write(records, sink)


def _jsonl(records, sink) -> int:
    count = 0
    for stored, data in records:
        sink.write(json.dumps({"leaf_hash": stored.leaf_hash.hex(), **data}, sort_keys=True) + "\n")
        count += 1
    return count


def _csv(records, sink) -> int:
    writer = csv.DictWriter(sink, fieldnames=COLUMNS, lineterminator="\n")
    writer.writeheader()
    count = 0
    for stored, data in records:
        writer.writerow(flat_row(stored, data))
        count += 1
    return count


def _parquet(records, out: Path | None, batch: int = 5000) -> int:
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = pa.schema([
        ("index", pa.int64()), ("record_id", pa.string()), ("created_at", pa.string()), ("media_type", pa.string()),
        ("verdict", pa.string()), ("actions", pa.string()), ("attempt", pa.int64()), ("parent", pa.string()),
        ("generator", pa.string()), ("model_id", pa.string()), ("model_revision", pa.string()),
        ("policy", pa.string()), ("policy_sha256", pa.string()), ("artifact_sha256", pa.string()),
        ("phash", pa.string()), ("watermark_scheme", pa.string()), ("signature_type", pa.string()),
        ("detectors", pa.string()), ("max_score", pa.float64()), ("errors", pa.int64()), ("leaf_hash", pa.string()),
        ("record_json", pa.string()),
    ])
    sink = str(out) if out else pa.PythonFile(sys.stdout.buffer, mode="w")
    count = 0
    with pq.ParquetWriter(sink, schema) as writer:
        rows: list[dict[str, Any]] = []
        for stored, data in records:
            rows.append(flat_row(stored, data))
            if len(rows) >= batch:
                writer.write_table(pa.Table.from_pylist(rows, schema=schema))
                count, rows = count + len(rows), []
        if rows or count == 0:
            writer.write_table(pa.Table.from_pylist(rows, schema=schema))
            count += len(rows)
    return count
