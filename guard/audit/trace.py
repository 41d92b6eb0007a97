"""``guard trace``: which logged records made this file?

Five ways to find them, each with its similarity and an inclusion proof of the record:

- **exact**: the SHA-256 of the text's UTF-8 bytes, or of an image's decoded RGB pixels (``guard.artifact``),
  looked up in the log's own indexed column;
- **perceptual hash** (images): records whose 64-bit pHash lies within a Hamming distance of the file's;
- **image watermark**: the record id the invisible mark carries (needs the watermark key);
- **near-duplicate** (text): records whose MinHash signature estimates a high Jaccard similarity;
- **text watermark**: when the text-watermark module is present.

The log keeps only hashes of outputs, never the text itself, so near-duplicate search needs a signature made at
logging time: the pipeline stores one in ``record.extra["minhash"]`` (``guard.pipeline.signals``).

Index. To answer in well under a second over 10^6 records, the similarity searches read index tables kept in
the log's own database (``guard_trace_*``, a separate SQLAlchemy ``MetaData``):

- pHash multi-index hashing (Norouzi et al. 2012): the 64 bits are split into 4 bands of 16; two hashes within
  distance ``d`` agree within distance ``d // 4`` on at least one band (pigeonhole), so a query looks up every
  band value within that radius (4 x 137 keys for d <= 11), then checks full distances on the few candidates;
- MinHash LSH: 16 band keys per text signature in a table indexed by key; a query looks up its 16 keys and
  estimates similarity on the candidates' stored 128-byte signatures.

``index_records(log)`` brings the index up to the log's size in chunks, each in its own write transaction, and
remembers how far it got, so it is incremental and safe to call from the pipeline after each append and from
``guard trace`` before each search. Rows are keyed by record index, so a re-run can never duplicate them.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors import fingerprints as fp
from core.errors import GuardError, InputError, LogError
from guard.pipeline.signals import minhash_signature
from guard.provenance.log import ProvenanceLog

PHASH_BANDS = 4
PHASH_BAND_BITS = fp.PHASH_BITS // PHASH_BANDS
DEFAULT_MAX_DISTANCE = 10
MAX_DISTANCE_LIMIT = 15  # radius 3 per band: 4 x 697 keys; beyond that pHash matches are mostly chance
DEFAULT_MIN_SIMILARITY = 0.5
_PG_INDEX_LOCK = 0x67747263  # "gtrc": sequences index writers on PostgreSQL
_STATE_KEY = "indexed_size"


# -- index tables ---------------------------------------------------------------------------------------------


def _signed(value: int) -> int:
    """An unsigned 64-bit value as the signed integer SQL stores."""
    return value - (1 << 64) if value >= 1 << 63 else value


def _unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


def _tables():
    from sqlalchemy import BigInteger, Column, Integer, LargeBinary, MetaData, String, Table, Text

    index_type = BigInteger().with_variant(Integer, "sqlite")
    md = MetaData()
    Table("guard_trace_state", md, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))
    Table("guard_trace_phash", md, Column("idx", index_type, primary_key=True, autoincrement=False),
          Column("phash", BigInteger, nullable=False))
    # (key, idx) as the whole primary key, without a rowid: a lookup by key is one B-tree range scan.
    Table("guard_trace_phash_band", md, Column("key", BigInteger, primary_key=True, autoincrement=False),
          Column("idx", BigInteger, primary_key=True, autoincrement=False), sqlite_with_rowid=False)
    Table("guard_trace_text", md, Column("idx", index_type, primary_key=True, autoincrement=False),
          Column("sig", LargeBinary, nullable=False))
    Table("guard_trace_text_band", md, Column("key", BigInteger, primary_key=True, autoincrement=False),
          Column("idx", BigInteger, primary_key=True, autoincrement=False), sqlite_with_rowid=False)
    return md


def _phash_band_keys(phash: int) -> list[int]:
    mask = (1 << PHASH_BAND_BITS) - 1
    return [(band << PHASH_BAND_BITS) | (phash >> (band * PHASH_BAND_BITS) & mask) for band in range(PHASH_BANDS)]


def _phash_query_keys(phash: int, radius: int) -> list[int]:
    """Every band key within ``radius`` bit flips of the query's band values."""
    keys = []
    for key in _phash_band_keys(phash):
        keys.append(key)
        for r in range(1, radius + 1):
            for bits in itertools.combinations(range(PHASH_BAND_BITS), r):
                keys.append(key ^ sum(1 << b for b in bits))
    return keys


def _bulk_insert(conn, table, rows: list[tuple]) -> None:
    """Insert tuples through the driver's own ``executemany`` (SQLAlchemy's per-row parameter handling costs
    more than the insert itself at 10^7 rows), in the table's column order."""
    mark = {"qmark": "?", "format": "%s", "pyformat": "%s"}.get(conn.dialect.paramstyle)
    columns = [c.name for c in table.columns]
    if mark is None:
        conn.execute(table.insert(), [dict(zip(columns, row)) for row in rows])
        return
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})",
                         rows)


class TraceIndex:
    """The trace index tables of one log's database."""

    def __init__(self, log: ProvenanceLog) -> None:
        self.log = log
        self.tables = _tables()
        try:
            self.tables.create_all(log.engine)
        except Exception as exc:
            raise LogError(f"cannot create the trace index in {log.display_url}: {exc}") from exc
        self.t = self.tables.tables

    @contextmanager
    def _write(self):
        from sqlalchemy import text

        with self.log.engine.connect() as conn:
            conn = conn.execution_options(guard_write=True)  # BEGIN IMMEDIATE on SQLite (the log's hook)
            with conn.begin():
                if self.log.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": _PG_INDEX_LOCK})
                yield conn

    def indexed_size(self, conn=None) -> int:
        from sqlalchemy import select

        t = self.t["guard_trace_state"]
        query = select(t.c.value).where(t.c.key == _STATE_KEY)
        if conn is None:
            with self.log.engine.connect() as own:
                value = own.execute(query).scalar()
        else:
            value = conn.execute(query).scalar()
        return int(value) if value is not None else 0

    def update(self, *, stop: int | None = None, chunk: int = 5000,
               progress: Callable[[int, int], None] | None = None) -> int:
        """Index every record from where the index stops to ``stop`` (default: the log's size).

        Returns how many records were indexed. Each chunk commits on its own, so appenders are never held up
        for long and an interrupted backfill resumes where it stopped.
        """
        target = self.log.size() if stop is None else stop
        if self.indexed_size() >= target:  # the common case after each append: no write lock taken
            return 0
        state = self.t["guard_trace_state"]
        done = 0
        while True:
            with self._write() as conn:
                start = self.indexed_size(conn)
                if start >= target:
                    break
                end = min(start + chunk, target)
                rows = list(self.log.iter_records(start=start, stop=end, chunk=chunk))
                if len(rows) != end - start:
                    raise LogError(f"log records [{start}, {end}) are incomplete; run `guard log verify`")
                self._insert(conn, ((r.index, r.data) for r in rows))
                if start == 0:  # the first chunk ever: the state row does not exist yet
                    conn.execute(state.delete().where(state.c.key == _STATE_KEY))
                    conn.execute(state.insert().values(key=_STATE_KEY, value=str(end)))
                else:
                    conn.execute(state.update().where(state.c.key == _STATE_KEY).values(value=str(end)))
            done += end - start
            if progress:
                progress(end, target)
        return done

    def _insert(self, conn, records: Iterable[tuple[int, dict[str, Any]]]) -> None:
        import numpy as np

        phash_rows, phash_bands, text_rows = [], [], []
        for idx, data in records:
            artifact = data.get("artifact") or {}
            if artifact.get("phash"):
                value = fp.phash_from_hex(artifact["phash"])
                phash_rows.append((idx, _signed(value)))
                phash_bands += [(k, idx) for k in _phash_band_keys(value)]
            sig = minhash_signature((data.get("extra") or {}).get("minhash"))
            if sig is not None:
                text_rows.append((idx, sig))
        text_bands = []
        if text_rows:
            keys = fp.lsh_keys_many(np.frombuffer(b"".join(s for _, s in text_rows), np.uint8).reshape(-1, fp.NUM_PERM))
            text_bands = [(k, idx) for (idx, _), row in zip(text_rows, keys.tolist()) for k in row]
        # Sorted by key, the band rows go into their B-trees in order: far fewer pages touched per chunk.
        for table, rows in (("guard_trace_phash", phash_rows), ("guard_trace_phash_band", sorted(phash_bands)),
                            ("guard_trace_text", text_rows), ("guard_trace_text_band", sorted(text_bands))):
            if rows:
                _bulk_insert(conn, self.t[table], rows)

    # -- searches ---------------------------------------------------------------------------------------------

    def near_images(self, phash: int, max_distance: int) -> list[tuple[int, int]]:
        """(index, Hamming distance) of every indexed image within ``max_distance`` of ``phash``."""
        from sqlalchemy import select

        if not 0 <= max_distance <= MAX_DISTANCE_LIMIT:
            raise InputError(f"--max-distance must be between 0 and {MAX_DISTANCE_LIMIT}, got {max_distance}")
        band, img = self.t["guard_trace_phash_band"], self.t["guard_trace_phash"]
        keys = _phash_query_keys(phash, max_distance // PHASH_BANDS)
        query = (select(img.c.idx, img.c.phash).distinct().join_from(band, img, band.c.idx == img.c.idx)
                 .where(band.c.key.in_(keys)))
        with self.log.engine.connect() as conn:
            rows = conn.execute(query).all()
        if not rows:
            return []
        distances = fp.hamming_many(phash, (_unsigned(int(r.phash)) for r in rows))
        return sorted(((int(r.idx), int(d)) for r, d in zip(rows, distances) if d <= max_distance),
                      key=lambda m: (m[1], m[0]))

    def near_texts(self, signature: bytes, min_similarity: float) -> list[tuple[int, float]]:
        """(index, estimated Jaccard similarity) of every indexed text at or above ``min_similarity``."""
        from sqlalchemy import select

        band, txt = self.t["guard_trace_text_band"], self.t["guard_trace_text"]
        query = (select(txt.c.idx, txt.c.sig).distinct().join_from(band, txt, band.c.idx == txt.c.idx)
                 .where(band.c.key.in_(fp.lsh_keys(signature))))
        with self.log.engine.connect() as conn:
            rows = conn.execute(query).all()
        found = [(int(r.idx), fp.bbit_similarity(signature, bytes(r.sig))) for r in rows]
        return sorted((m for m in found if m[1] >= min_similarity), key=lambda m: (-m[1], m[0]))


def index_records(log: ProvenanceLog, *, stop: int | None = None,
                  progress: Callable[[int, int], None] | None = None) -> int:
    """Bring the trace index of ``log`` up to date; returns how many records were added. Cheap when current."""
    return TraceIndex(log).update(stop=stop, progress=progress)


# -- results --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TraceMatch:
    """One record that made (or nearly made) the file, and how it was found."""

    index: int
    record_id: str
    method: str  # sha256 | phash | image-watermark | minhash | text-watermark
    similarity: float  # 1.0 exact; 1 - distance/64 for pHash; estimated Jaccard for MinHash; confidence for marks
    details: dict[str, Any]
    record: dict[str, Any]
    proof: dict[str, Any]  # RFC 6962 inclusion proof, against the latest signed checkpoint when one covers it

    def to_dict(self) -> dict[str, Any]:
        r = self.record
        return {
            "index": self.index,
            "record_id": self.record_id,
            "method": self.method,
            "similarity": round(self.similarity, 4),
            "details": self.details,
            "created_at": r.get("created_at"),
            "verdict": r.get("verdict"),
            "media_type": r.get("media_type"),
            "model_id": (r.get("generator") or {}).get("model_id"),
            "proof": self.proof,
        }


@dataclass
class TraceReport:
    file: str
    media: str  # text | image
    query: dict[str, Any]  # the file's digests
    matches: list[TraceMatch] = field(default_factory=list)
    checks: dict[str, str] = field(default_factory=dict)  # method -> "ran" or why it was skipped
    indexed: int = 0  # records added to the index before searching

    def to_dict(self) -> dict[str, Any]:
        return {"file": self.file, "media": self.media, "query": self.query, "checks": self.checks,
                "indexed_now": self.indexed, "matches": [m.to_dict() for m in self.matches]}


class _Matches:
    """Collects matches, keeping the best per (record, method), and proves each against one checkpoint."""

    def __init__(self, log: ProvenanceLog) -> None:
        self.log = log
        self.best: dict[tuple[int, str], tuple[float, dict[str, Any]]] = {}

    def add(self, index: int, method: str, similarity: float, details: dict[str, Any]) -> None:
        key = (index, method)
        if key not in self.best or similarity > self.best[key][0]:
            self.best[key] = (similarity, details)

    def resolve(self, limit: int) -> list[TraceMatch]:
        checkpoint = self.log.latest_checkpoint()
        size = self.log.size()
        ranked = sorted(self.best.items(), key=lambda kv: (-kv[1][0], kv[0][0]))[:limit]
        out = []
        for (index, method), (similarity, details) in ranked:
            stored = self.log.get(index)
            covered = checkpoint is not None and checkpoint.checkpoint.size > index
            proof = self.log.inclusion_proof(index, checkpoint.checkpoint.size if covered else size)
            proof.verify()
            proof_dict = proof.to_dict()
            proof_dict["signed_checkpoint"] = checkpoint.note if covered else None
            out.append(TraceMatch(index, stored.record_id, method, similarity, details, stored.data, proof_dict))
        return out


def trace_file(
    path: str | Path,
    log: ProvenanceLog,
    *,
    keys=None,
    max_distance: int = DEFAULT_MAX_DISTANCE,
    min_similarity: float = DEFAULT_MIN_SIMILARITY,
    limit: int = 50,
    update_index: bool = True,
) -> TraceReport:
    """Find the records that made ``path`` (an image by suffix, otherwise UTF-8 text). See the module docstring."""
    path = Path(path)
    from core.imageio import image_suffixes, read_image

    if path.suffix.lower() in image_suffixes():
        report = trace_image(read_image(path).image, log, keys=keys, max_distance=max_distance, limit=limit,
                             update_index=update_index)
    else:
        try:
            text = path.read_bytes().decode("utf-8")
        except FileNotFoundError:
            raise InputError(f"{path}: file not found") from None
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text (byte {exc.start}); images need an image suffix") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror}") from None
        report = trace_text(text, log, min_similarity=min_similarity, limit=limit,
                            update_index=update_index)
    report.file = str(path)
    return report


def trace_image(image, log: ProvenanceLog, *, keys=None, max_distance: int = DEFAULT_MAX_DISTANCE,
                limit: int = 50, update_index: bool = True) -> TraceReport:
    """Trace a decoded image (see ``trace_file``); the index is first brought up to date unless told not to."""
    from guard.provenance.artifact import image_digest

    indexed = index_records(log) if update_index else 0
    digest = image_digest(image)
    phash = fp.phash_from_hex(digest["phash"])
    report = TraceReport(file="<image>", media="image", query={"sha256": digest["sha256"], "phash": digest["phash"],
                                                               "width": digest["width"], "height": digest["height"]},
                         indexed=indexed)
    found = _Matches(log)
    for index in log.find_by_artifact(digest["sha256"]):
        found.add(index, "sha256", 1.0, {"hash_of": "rgb-pixels"})
    report.checks["sha256"] = "ran"
    for index, distance in TraceIndex(log).near_images(phash, max_distance):
        found.add(index, "phash", 1.0 - distance / fp.PHASH_BITS, {"hamming_distance": distance})
    report.checks["phash"] = f"ran (max Hamming distance {max_distance})"
    report.checks["image-watermark"] = _image_watermark(image, log, keys, found)
    report.matches = found.resolve(limit)
    return report


def _image_watermark(image, log: ProvenanceLog, keys, found: _Matches) -> str:
    try:
        from guard.watermark.image import detect
    except ImportError:
        return "skipped: the image watermark module is not installed"
    if keys is None:
        return "skipped: no key folder given"
    try:
        secret = keys.watermark_secret()
    except GuardError as exc:
        return f"skipped: {exc}"
    result = detect(image, secret)
    if not result.found:
        return "ran: no mark for this key"
    index = log.find(result.payload.record_id)
    if index is None:
        return f"ran: mark names record {result.payload.record_id}, which is not in this log"
    found.add(index, "image-watermark", result.confidence, result.to_dict())
    return "ran"


def trace_text(text: str, log: ProvenanceLog, *, min_similarity: float = DEFAULT_MIN_SIMILARITY,
               limit: int = 50, update_index: bool = True) -> TraceReport:
    """Trace a text (see ``trace_file``); the index is first brought up to date unless told not to."""
    if not 0.0 < min_similarity <= 1.0:
        raise InputError(f"--min-similarity must be in (0, 1], got {min_similarity}")
    indexed = index_records(log) if update_index else 0
    candidates = [text] + ([text.rstrip("\r\n")] if text.rstrip("\r\n") != text else [])  # editors add a newline
    digests = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in candidates]
    signature = fp.bbit_signature(text)
    report = TraceReport(file="<text>", media="text", query={"sha256": digests[0], "minhash": fp.TEXT_SCHEME},
                         indexed=indexed)
    found = _Matches(log)
    for digest in digests:
        for index in log.find_by_artifact(digest):
            found.add(index, "sha256", 1.0, {"hash_of": "utf-8"})
    report.checks["sha256"] = "ran"
    for index, similarity in TraceIndex(log).near_texts(signature, min_similarity):
        found.add(index, "minhash", similarity, {"estimate": "jaccard", "shingles": f"char-{fp.SHINGLE}"})
    report.checks["minhash"] = f"ran (min similarity {min_similarity})"
    report.checks["text-watermark"] = _text_watermark()
    report.matches = found.resolve(limit)
    return report


def _text_watermark() -> str:
    """The text watermark carries no record id (it is a statistical mark of a key, not a payload) and testing for
    it needs the generating model's tokenizer, so it cannot find records; ``guard detect-text`` tests for it."""
    try:
        import guard.watermark.text  # noqa: F401
    except ImportError:
        return "skipped: the text watermark module is not installed"
    return ("skipped: the text watermark names no record; test for it with `guard detect-text` and the "
            "generating model's tokenizer")
