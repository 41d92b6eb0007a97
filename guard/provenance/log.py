"""The provenance log: append-only records in an RFC 6962 Merkle tree, stored through SQLAlchemy.

Storage is SQLite (a file, WAL mode, ``synchronous=FULL``) by default and PostgreSQL for many writers; both use
the same tables. Every record is a leaf; every complete, aligned interior node is stored when the leaf that
closes it is appended, so inclusion and consistency proofs read O(log n) rows in one query and never the whole
log. Appends are sequenced by one lock per log: ``BEGIN IMMEDIATE`` on SQLite (one writer at a time, readers
unaffected in WAL mode) and a transaction-scoped advisory lock on PostgreSQL. Inside the lock the writer reads
the tree size, numbers its records, and commits records and nodes in one transaction, so indices are distinct
and gap-free across threads and processes, and a crash loses only what was never acknowledged.

Erasable personal data (``ProvenanceRecord.private``) lives in its own table next to a salted commitment in the
leaf; erasing it removes the row and overwrites it on disk without touching any hash.

A log opened ``readonly`` (every command that only reads) never writes: SQLite opens the file read-only and
PostgreSQL sessions are read-only, and a database without the log's tables is "not a genguard log" rather than
one to create them in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import LogError
from guard.provenance import merkle
from guard.provenance.checkpoint import Checkpoint, SignedCheckpoint
from guard.provenance.record import ProvenanceRecord, commitment

PG_LOCK_KEY = 0x67756172  # "guar": the advisory lock that sequences appends on PostgreSQL


def _tables():
    from sqlalchemy import (BigInteger, Column, Integer, LargeBinary, MetaData, SmallInteger, String, Table,
                            Text)

    # INTEGER PRIMARY KEY makes the index SQLite's rowid: appends and range scans stay on the table's own B-tree.
    index_type = BigInteger().with_variant(Integer, "sqlite")
    md = MetaData()
    Table("guard_meta", md, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))
    Table(
        "guard_records", md,
        Column("idx", index_type, primary_key=True, autoincrement=False),
        Column("record_id", String(32), nullable=False, unique=True),
        Column("created_at", String(40), nullable=False, index=True),
        Column("media_type", String(100), nullable=False),
        Column("verdict", String(16), nullable=False, index=True),
        Column("model_id", String(500), index=True),
        Column("artifact_sha256", String(64), index=True),
        Column("body", LargeBinary, nullable=False),
        Column("leaf_hash", LargeBinary, nullable=False),
    )
    Table(
        "guard_nodes", md,
        Column("level", SmallInteger, primary_key=True, autoincrement=False),
        Column("idx", BigInteger, primary_key=True, autoincrement=False),
        Column("hash", LargeBinary, nullable=False),
    )
    Table(
        "guard_private", md,
        Column("idx", BigInteger, primary_key=True, autoincrement=False),
        Column("field", String(64), primary_key=True),
        Column("salt", LargeBinary, nullable=False),
        Column("value", Text, nullable=False),
    )
    Table(
        "guard_checkpoints", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("tree_size", BigInteger, nullable=False),
        Column("root_hash", LargeBinary, nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("note", Text, nullable=False),
    )
    return md


def normalize_url(ref: str | Path | None) -> str:
    """A SQLAlchemy URL from a URL, a file path or nothing (the default log under ``$GUARD_HOME``)."""
    from guard.home import guard_home

    if ref is None:
        ref = guard_home() / "provenance.db"
    text = str(ref)
    if "://" not in text:
        path = Path(text).expanduser().resolve()
        if path.is_dir():
            raise LogError(f"{path}: is a folder, expected a log file or database URL")
        return f"sqlite:///{path}"
    if text.startswith(("postgresql://", "postgres://")):
        return "postgresql+psycopg://" + text.split("://", 1)[1]
    return text


def open_existing(ref: str | Path | None, *, write: bool = False) -> "ProvenanceLog":
    """Open a log that must already exist: a mistyped path is an error, not a new empty log, and a database
    without the log's tables is "not a genguard log". Read-only unless ``write``: reading never writes."""
    normalized = normalize_url(ref)
    if normalized.startswith("sqlite:///"):
        path = Path(normalized.removeprefix("sqlite:///"))
        if not path.is_file():
            raise LogError(f"{path}: no provenance log there (pass --log or set GUARD_LOG)")
    return ProvenanceLog(normalized, create=False, readonly=not write)


@dataclass(frozen=True)
class LogEntry:
    """Where an appended record landed."""

    index: int
    record_id: str
    leaf_hash: bytes
    tree_size: int  # size of the tree right after this batch was appended
    root: bytes  # root at that size


@dataclass(frozen=True)
class InclusionProof:
    index: int
    tree_size: int
    leaf_hash: bytes
    hashes: list[bytes]
    root: bytes

    def verify(self) -> None:
        merkle.verify_inclusion(self.index, self.tree_size, self.leaf_hash, self.hashes, self.root)

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "tree_size": self.tree_size,
            "leaf_hash": self.leaf_hash.hex(),
            "hashes": [h.hex() for h in self.hashes],
            "root": self.root.hex(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "InclusionProof":
        return cls(
            index=int(data["index"]),
            tree_size=int(data["tree_size"]),
            leaf_hash=bytes.fromhex(data["leaf_hash"]),
            hashes=[bytes.fromhex(h) for h in data["hashes"]],
            root=bytes.fromhex(data["root"]),
        )


@dataclass(frozen=True)
class StoredRecord:
    index: int
    record_id: str
    body: bytes  # the canonical JSON leaf content
    leaf_hash: bytes
    private: dict[str, str] = field(default_factory=dict)  # erasable plaintext still held, by field

    @property
    def data(self) -> dict[str, Any]:
        return json.loads(self.body)


class ProvenanceLog:
    """One log, addressed by a SQLAlchemy URL or a file path. Safe to share between threads.

    By default the log is created when it does not exist. ``create=False`` opens only an existing log (its
    tables must be there); ``readonly=True`` also opens it for reading only, so nothing can be written.
    """

    def __init__(self, url: str | Path | None = None, *, create: bool = True, readonly: bool = False) -> None:
        from sqlalchemy import create_engine, event, pool

        self.url = normalize_url(url)
        self.dialect = self.url.split(":", 1)[0].split("+", 1)[0]
        self.readonly = readonly
        create = create and not readonly
        self.tables = _tables()
        self._t = self.tables.tables
        try:
            if self.dialect == "sqlite":
                path = Path(self.url.removeprefix("sqlite:///"))
                if create:
                    path.parent.mkdir(parents=True, exist_ok=True)
                    self.engine = create_engine(self.url, connect_args={"timeout": 60})
                else:
                    if not path.is_file():
                        raise LogError(f"{path}: no provenance log there")
                    self.engine = create_engine(  # a URI with mode=ro: SQLite itself refuses every write
                        "sqlite://", poolclass=pool.QueuePool,
                        creator=lambda: _sqlite_open(path, readonly=readonly))
                event.listen(self.engine, "connect", partial(_sqlite_connect, wal=create))
                event.listen(self.engine, "begin", _sqlite_begin)
            else:
                options = {"options": "-c default_transaction_read_only=on"} if readonly else {}
                self.engine = create_engine(self.url, pool_pre_ping=True, connect_args=options)
            if create:
                with self._write() as conn:  # under the write lock: processes creating one log at once queue
                    self.tables.create_all(conn)
            self._meta = self._ensure_meta() if create else self._read_meta()
        except LogError:
            raise
        except Exception as exc:  # driver errors: unreachable server, unwritable file, bad URL, not a database
            if not create and "not a database" in str(exc):
                raise LogError(f"{_redact(self.url)}: not a genguard log (not an SQLite database)") from exc
            raise LogError(f"cannot open provenance log {_redact(self.url)}: {_first_line(exc)}") from exc
        self._lock = threading.Lock()  # guards the in-memory frontier cache
        self._frontier: tuple[int, bytes, merkle.Frontier] | None = None
        self._newest: InclusionProof | None = None  # of the last leaf this object appended, at that tree size

    def __repr__(self) -> str:
        return f"ProvenanceLog({_redact(self.url)!r})"

    @property
    def display_url(self) -> str:
        return _redact(self.url)

    # -- transactions ------------------------------------------------------------------------------------

    @contextmanager
    def _write(self):
        from sqlalchemy import text

        if self.readonly:
            raise LogError(f"{self.display_url} was opened read-only")
        with self.engine.connect() as conn:
            conn = conn.execution_options(guard_write=True)
            with conn.begin():
                if self.dialect == "postgresql":
                    conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
                yield conn

    @contextmanager
    def _read(self):
        with self.engine.connect() as conn, conn.begin():
            yield conn

    # -- metadata ----------------------------------------------------------------------------------------

    def _ensure_meta(self) -> dict[str, str]:
        from sqlalchemy import select

        meta = self._t["guard_meta"]
        with self._write() as conn:
            values = dict(conn.execute(select(meta.c.key, meta.c.value)).all())
            if "log_id" not in values:
                log_id = secrets.token_hex(8)
                values = {"log_id": log_id, "origin": f"genguard.log/{log_id}", "salt": secrets.token_hex(32)}
                conn.execute(meta.insert(), [{"key": k, "value": v} for k, v in values.items()])
        return values

    def _read_meta(self) -> dict[str, str]:
        """The metadata of an existing log; a database without the log's tables is not a log."""
        from sqlalchemy import inspect, select

        present = set(inspect(self.engine).get_table_names())
        missing = sorted(set(self._t) - present)
        if missing:
            raise LogError(f"{_redact(self.url)}: not a genguard log (no {', '.join(missing)} table"
                           f"{'s' if len(missing) > 1 else ''}); pass the log a guarded pipeline wrote "
                           "(--log or GUARD_LOG)")
        meta = self._t["guard_meta"]
        with self._read() as conn:
            values = dict(conn.execute(select(meta.c.key, meta.c.value)).all())
        if not {"log_id", "origin", "salt"} <= set(values):
            raise LogError(f"{_redact(self.url)}: not a genguard log (its guard_meta table has no log id)")
        return values

    @property
    def log_id(self) -> str:
        return self._meta["log_id"]

    @property
    def origin(self) -> str:
        """The checkpoint origin line; also the name of the key that signs this log's checkpoints."""
        return self._meta["origin"]

    def prompt_digest(self, prompt: str) -> str:
        """HMAC-SHA256 of a prompt under this log's secret salt: lets a reviewer ask "was this prompt used?"
        without the log storing the prompt, and without a dictionary attack from outside the log."""
        return hmac.new(bytes.fromhex(self._meta["salt"]), prompt.encode("utf-8"), hashlib.sha256).hexdigest()

    # -- appending ---------------------------------------------------------------------------------------

    def append(self, record: ProvenanceRecord) -> LogEntry:
        return self.append_batch([record])[0]

    def append_batch(self, records: Sequence[ProvenanceRecord]) -> list[LogEntry]:
        """Append records in one transaction; they get consecutive indices. Returns once durable."""
        if not records:
            return []
        t_rec, t_node, t_priv = self._t["guard_records"], self._t["guard_nodes"], self._t["guard_private"]
        with self._write() as conn:
            tip = conn.exec_driver_sql("SELECT idx, leaf_hash FROM guard_records ORDER BY idx DESC LIMIT 1").first()
            size = 0 if tip is None else int(tip[0]) + 1
            frontier = self._load_frontier(conn, size, None if tip is None else bytes(tip[1]))
            rows, nodes, private, staged = [], [], [], []
            for offset, record in enumerate(records):
                salts = {name: secrets.token_bytes(16) for name in record.private}
                record = record.stored(size + offset, {name: commitment(salts[name], value)
                                                       for name, value in record.private.items()})
                body = record.canonical_bytes()
                leaf = merkle.leaf_hash(body)
                rows.append({"idx": record.index, **dict(zip(LOOKUP_COLUMNS, lookup_values(vars(record)))),
                             "body": body, "leaf_hash": leaf})
                private += [
                    {"idx": record.index, "field": name, "salt": salts[name], "value": value}
                    for name, value in record.private.items()
                ]
                path = frontier.hashes[::-1]  # the audit path of a tree's last leaf: the frontier before it
                nodes += [{"level": lv, "idx": i, "hash": h} for lv, i, h in frontier.append(leaf)]
                staged.append((record.index, record.record_id, leaf))
            conn.execute(t_rec.insert(), rows)
            if nodes:
                conn.execute(t_node.insert(), nodes)
            if private:
                conn.execute(t_priv.insert(), private)
        root = frontier.root()
        with self._lock:
            self._frontier = (frontier.size, staged[-1][2], frontier)
            self._newest = InclusionProof(staged[-1][0], frontier.size, staged[-1][2], path, root)
        return [LogEntry(i, rid, leaf, frontier.size, root) for i, rid, leaf in staged]

    def _size(self, conn) -> int:
        last = conn.exec_driver_sql("SELECT max(idx) FROM guard_records").scalar()
        return 0 if last is None else int(last) + 1

    def _load_frontier(self, conn, size: int, last_leaf: bytes | None) -> merkle.Frontier:
        """The right edge of the tree at ``size`` (whose last leaf is ``last_leaf``): from the cache when no other
        writer moved it, else O(log n) rows."""
        if size == 0:
            return merkle.Frontier()
        with self._lock:
            cached = self._frontier
        if cached and cached[0] == size and cached[1] == last_leaf:
            f = cached[2]
            return merkle.Frontier(f.size, f.hashes)
        coords = merkle.Frontier.coordinates(size)
        found = self._fetch_nodes(conn, coords)
        return merkle.Frontier(size, [found[c] for c in coords])

    def _fetch_nodes(self, conn, coords: Iterable[tuple[int, int]]) -> dict[tuple[int, int], bytes]:
        """Hashes of complete subtrees: level 0 from the records' leaf hashes, higher levels from stored nodes.

        Plain SQL with integer literals: building and compiling SQLAlchemy expressions cost 30 times the query
        itself. The values are ints we computed (``int()`` below), never caller text. One index range per level
        (``level = L AND idx IN (...)``), since a row-value IN list makes SQLite scan the table.
        """
        coords = list(coords)
        found: dict[tuple[int, int], bytes] = {}
        by_level: dict[int, list[int]] = {}
        for level, index in coords:
            by_level.setdefault(int(level), []).append(int(index))
        leaves = by_level.pop(0, [])
        if leaves:
            rows = conn.exec_driver_sql(
                f"SELECT idx, leaf_hash FROM guard_records WHERE idx IN ({','.join(map(str, leaves))})"
            )
            for idx, h in rows:
                found[(0, int(idx))] = bytes(h)
        if by_level:
            where = " OR ".join(f"(level = {lv} AND idx IN ({','.join(map(str, ids))}))" for lv, ids in by_level.items())
            for lv, idx, h in conn.exec_driver_sql(f"SELECT level, idx, hash FROM guard_nodes WHERE {where}"):
                found[(int(lv), int(idx))] = bytes(h)
        missing = [c for c in coords if c not in found]
        if missing:
            raise LogError(f"log storage is missing Merkle node(s) {missing[:3]}; run `guard log verify`")
        return found

    # -- reading -----------------------------------------------------------------------------------------

    def size(self) -> int:
        with self._read() as conn:
            return self._size(conn)

    def get(self, index: int) -> StoredRecord:
        """The record at ``index``, confirmed: its bytes hash to its leaf, its lookup columns and erasable values
        match what the record commits to. Raises ``VerificationError`` naming the record when they do not."""
        from sqlalchemy import select

        t, p = self._t["guard_records"], self._t["guard_private"]
        with self._read() as conn:
            row = None
            if 0 <= index < SQL_INTEGER_LIMIT:  # an index no database integer holds names no record
                row = conn.execute(select(*(t.c[name] for name in ROW_COLUMNS)).where(t.c.idx == index)).first()
            if row is None:
                raise LogError(f"no record at index {index} (log size {self._size(conn)})")
            private = conn.execute(select(p.c.field, p.c.salt, p.c.value).where(p.c.idx == index)).all()
        _confirm(row, private)
        return StoredRecord(int(row.idx), row.record_id, bytes(row.body), bytes(row.leaf_hash),
                            {field: value for field, _salt, value in private})

    def find(self, record_id: str) -> int | None:
        """The index of the record with this id (its body confirms the id)."""
        found = self._lookup("record_id", record_id)
        return found[0] if found else None

    def find_by_artifact(self, sha256_hex: str) -> list[int]:
        """Indices of the records of this artifact (each record's body confirms the hash)."""
        return self._lookup("artifact_sha256", sha256_hex)

    def _lookup(self, column: str, value: str) -> list[int]:
        """Rows whose lookup ``column`` holds ``value``, each confirmed against its record before it is named."""
        from sqlalchemy import select

        t = self._t["guard_records"]
        with self._read() as conn:
            rows = conn.execute(select(*(t.c[name] for name in ROW_COLUMNS)).where(t.c[column] == value)
                                .order_by(t.c.idx)).all()
        for row in rows:
            _confirm(row)
        return [int(row.idx) for row in rows]

    def iter_records(self, *, start: int = 0, stop: int | None = None, chunk: int = 2000,
                     checked: bool = True) -> Iterator[StoredRecord]:
        """Records in index order, read in chunks so memory stays bounded (private fields not included). Unless
        ``checked`` is off, each record's bytes are checked against its leaf hash; ``guard log verify`` checks
        the rest."""
        from sqlalchemy import select

        t = self._t["guard_records"]
        query = select(t.c.idx, t.c.record_id, t.c.body, t.c.leaf_hash)
        if stop is not None:
            query = query.where(t.c.idx < stop)
        while True:
            with self._read() as conn:
                rows = conn.execute(query.where(t.c.idx >= start).order_by(t.c.idx).limit(chunk)).all()
            for row in rows:
                stored = StoredRecord(int(row.idx), row.record_id, bytes(row.body), bytes(row.leaf_hash))
                if checked and merkle.leaf_hash(stored.body) != stored.leaf_hash:
                    _altered(stored.index, "its stored bytes do not hash to its leaf hash")
                yield stored
            if len(rows) < chunk:
                return
            start = int(rows[-1].idx) + 1

    # -- proofs ------------------------------------------------------------------------------------------

    def _with_nodes(self, conn, compute):
        """Run a proof computation with every node it needs fetched in one query."""
        found = self._fetch_nodes(conn, merkle.nodes_needed(compute))
        return compute(lambda level, index: found[(level, index)])

    def root(self, size: int | None = None) -> tuple[int, bytes]:
        with self._read() as conn:
            size = self._checked_size(conn, size)
            return size, self._with_nodes(conn, lambda lookup: merkle.root(size, lookup))

    def _checked_size(self, conn, size: int | None) -> int:
        current = self._size(conn)
        if size is None:
            return current
        if not 0 <= size <= current:
            raise LogError(f"tree size {size} is outside the log (current size {current})")
        return size

    def inclusion_proof(self, index: int, size: int | None = None) -> InclusionProof:
        with self._lock:
            newest = self._newest
        if newest is not None and (newest.index, newest.tree_size) == (index, size):
            # The proof of the leaf this log last appended, kept from the append: no query.
            return InclusionProof(newest.index, newest.tree_size, newest.leaf_hash, list(newest.hashes), newest.root)
        with self._read() as conn:
            size = self._checked_size(conn, size)
            if not 0 <= index < size:
                raise LogError(f"index {index} is outside a tree of size {size}")
            leaf, hashes, root = self._with_nodes(
                conn, lambda lookup: (lookup(0, index), merkle.inclusion_proof(index, size, lookup),
                                      merkle.root(size, lookup))
            )
        return InclusionProof(index, size, leaf, hashes, root)

    def consistency_proof(self, size1: int, size2: int | None = None) -> tuple[int, bytes, list[bytes]]:
        """Proof that the tree at ``size2`` (default: now) extends the tree at ``size1``: (size2, root2, hashes)."""
        with self._read() as conn:
            size2 = self._checked_size(conn, size2)
            if not 0 < size1 <= size2:
                raise LogError(f"no consistency proof from size {size1} to size {size2}")
            return size2, *self._with_nodes(
                conn, lambda lookup: (merkle.root(size2, lookup), merkle.consistency_proof(size1, size2, lookup))
            )

    # -- checkpoints -------------------------------------------------------------------------------------

    def checkpoint(self, private_key) -> SignedCheckpoint:
        """Sign the current tree head with the log key and store it."""
        from guard.provenance.record import utc_now

        t = self._t["guard_checkpoints"]
        with self._write() as conn:
            size = self._size(conn)
            root = self._with_nodes(conn, lambda lookup: merkle.root(size, lookup))
            signed = Checkpoint(self.origin, size, root).sign(self.origin, private_key)
            conn.execute(t.insert().values(tree_size=size, root_hash=root, created_at=utc_now(), note=signed.note))
        return signed

    def checkpoints(self) -> list[tuple[int, SignedCheckpoint | None, str]]:
        """Every stored checkpoint as (id, parsed note or None when malformed, raw note)."""
        from sqlalchemy import select

        from core.errors import VerificationError

        t = self._t["guard_checkpoints"]
        with self._read() as conn:
            rows = conn.execute(select(t.c.id, t.c.note).order_by(t.c.id)).all()
        out = []
        for row in rows:
            try:
                out.append((int(row.id), SignedCheckpoint.from_text(row.note), row.note))
            except VerificationError:
                out.append((int(row.id), None, row.note))
        return out

    def latest_checkpoint(self) -> SignedCheckpoint | None:
        parsed = [c for _, c, _ in self.checkpoints() if c is not None]
        return parsed[-1] if parsed else None

    # -- erasure -----------------------------------------------------------------------------------------

    def erase(self, index: int, field_name: str) -> bool:
        """Erase one private field of one record (right to erasure). Leaves every hash untouched.

        Returns False when there was nothing to erase. On SQLite, ``secure_delete`` overwrites the freed
        bytes and the WAL is checkpointed and truncated; on PostgreSQL the table is vacuumed.
        """
        from sqlalchemy import text

        p = self._t["guard_private"]
        with self._write() as conn:
            if self._size(conn) <= index or index < 0:
                raise LogError(f"no record at index {index}")
            deleted = conn.execute(p.delete().where((p.c.idx == index) & (p.c.field == field_name))).rowcount
        with self.engine.connect() as conn:
            if self.dialect == "sqlite":
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            elif self.dialect == "postgresql":
                conn.execution_options(isolation_level="AUTOCOMMIT").execute(text("VACUUM guard_private"))
        return bool(deleted)

    def close(self) -> None:
        self.engine.dispose()


# The columns of ``guard_records`` derived from the record body: the log is searched by them, so every reader that
# answers from them confirms them against the body (``_confirm``), and ``guard log verify`` checks them all.
LOOKUP_COLUMNS = ("record_id", "created_at", "media_type", "verdict", "model_id", "artifact_sha256")
SQL_INTEGER_LIMIT = 2**63  # SQLite and PostgreSQL integers are signed 64-bit
ROW_COLUMNS = ("idx", *LOOKUP_COLUMNS, "body", "leaf_hash")


def lookup_values(record: dict[str, Any]) -> tuple:
    """The values of ``LOOKUP_COLUMNS`` for a record (a ``ProvenanceRecord``'s fields or its parsed body)."""
    return (record.get("record_id"), record.get("created_at"), record.get("media_type"), record.get("verdict"),
            (record.get("generator") or {}).get("model_id"), (record.get("artifact") or {}).get("sha256"))


def row_problems(index: int, columns: Sequence[Any], body: bytes, leaf: bytes, data: Any,
                 private: Iterable[tuple[str, bytes, str]] = ()) -> list[str]:
    """What is wrong with one stored row: bytes that do not hash to the stored leaf hash, a record that names
    another index, lookup columns that differ from the record, erasable values that do not match the salted
    commitments in the record. ``columns`` are the row's values of ``LOOKUP_COLUMNS``; ``data`` is the parsed body
    (None when it is not JSON)."""
    problems = []
    if merkle.leaf_hash(body) != leaf:
        problems.append("stored leaf hash does not match the record bytes")
    if not isinstance(data, dict):
        return [*problems, "stored record is not a JSON object"]
    if data.get("index") != index:
        problems.append(f"record says index {data.get('index')}, stored at {index}")
    expected = lookup_values(data)
    if tuple(columns) != expected:
        problems += [f"lookup column {name} ({have!r}) does not match the record ({want!r})"
                     for name, have, want in zip(LOOKUP_COLUMNS, columns, expected) if have != want]
    committed = data.get("commitments") if isinstance(data.get("commitments"), dict) else {}
    for name, salt, value in private:
        if name not in committed:
            problems.append(f"erasable field {name!r} is stored but the record commits to no such field")
        elif not hmac.compare_digest(commitment(bytes(salt), value), str(committed[name])):
            problems.append(f"erasable field {name!r} does not match the record's commitment")
    return problems


def _confirm(row, private: Iterable[tuple[str, bytes, str]] = ()) -> None:
    """Raise ``VerificationError`` unless the stored row agrees with its record (see ``row_problems``)."""
    body = bytes(row.body)
    try:
        data = json.loads(body)
    except ValueError:
        data = None
    columns = [getattr(row, name) for name in LOOKUP_COLUMNS]
    problems = row_problems(int(row.idx), columns, body, bytes(row.leaf_hash), data, private)
    if problems:
        _altered(int(row.idx), problems[0])


def _altered(index: int, problem: str) -> None:
    from core.errors import VerificationError

    raise VerificationError(f"record {index}: {problem}: the log was altered; run `guard log verify`")


def _sqlite_open(path: Path, *, readonly: bool):
    """A connection to an existing SQLite file; ``mode=ro`` makes SQLite refuse every write to it."""
    import sqlite3
    from urllib.parse import quote

    mode = "ro" if readonly else "rw"
    return sqlite3.connect(f"file:{quote(str(path))}?mode={mode}", uri=True, timeout=60, check_same_thread=False)


def _sqlite_connect(dbapi_conn, _record, *, wal: bool = True) -> None:
    # Let the "begin" hook decide how transactions start (the pysqlite driver would otherwise start them lazily).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA busy_timeout=60000")
    if wal:  # a new log is switched to WAL once (it persists); an existing file is not touched before it is checked
        cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA secure_delete=ON")
    cur.close()


def _sqlite_begin(conn) -> None:
    # Writers take the write lock up front, so two appenders never read the same tree size.
    conn.exec_driver_sql("BEGIN IMMEDIATE" if conn.get_execution_options().get("guard_write") else "BEGIN")


def _redact(url: str) -> str:
    """A URL safe to print: the password is hidden."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
