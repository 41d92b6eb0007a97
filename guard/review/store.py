"""The review index: a projection of the log that the list pages query, kept in the log's database.

The log's own table is shaped for appending and proving (one row per leaf, the record as canonical JSON); a
reviewer asks other questions ("flagged images from model X with a toxicity score over 0.8, newest first").
Answering those from the record bodies means parsing every record, so the review app keeps a narrow copy of the
fields it filters on, one row per record plus one row per detector score, with a composite index for each filter
that ends in ``(created_at, idx)``: every list page is one index range read in the order it is shown, cut off by
keyset paging (``created_at`` and ``idx`` of the last row shown), whatever the log's size.

The projection is derived data, rebuilt from the log at any time (``guard review serve --rebuild-index``); it never
decides what a reviewer is shown as evidence. The record page reads the record itself, checks its leaf hash and
its inclusion proof. Catching up reads only the records appended since the last call.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from core.errors import InputError
from guard.provenance.log import ProvenanceLog
from guard.review.decisions import DECISIONS, INCIDENT_VERDICTS, REVIEW_MEDIA_TYPE

SCHEMA_VERSION = "1"
ALL_LABELS = "*"  # the score row that holds a detector's highest score over all its labels
PG_LOCK_KEY = 0x72657669  # "revi": sequences catching up across review servers on PostgreSQL
PAGE_SIZES = (25, 50, 100, 200)
SCAN_BUDGET = 20_000  # index entries one page may examine: bounds a page's time whatever its filters
KINDS = ("text", "image", "other", "review")


def _tables(md):
    from sqlalchemy import BigInteger, Column, Float, Index, Integer, SmallInteger, String, Table, Text

    index_type = BigInteger().with_variant(Integer, "sqlite")
    records = Table(
        "guard_review_records", md,
        Column("idx", index_type, primary_key=True, autoincrement=False),
        Column("created_at", String(40), nullable=False),
        Column("verdict", String(16), nullable=False),
        Column("kind", String(8), nullable=False),  # text | image | other | review (a reviewer's decision)
        Column("model_id", String(500)),
        Column("parent", String(32)),  # the regenerated attempt, the edited source, or the reviewed record
        Column("incident", SmallInteger, nullable=False),  # 1 for flag, redact and block
        Column("status", String(16)),  # incidents: pending, or the latest decision (confirm, overturn, escalate)
    )
    for name, cols in (("time", ()), ("verdict", ("verdict",)), ("kind", ("kind",)), ("model", ("model_id",)),
                       ("incident", ("incident",)), ("status", ("status",))):
        Index(f"ix_guard_review_{name}", *(records.c[c] for c in cols), records.c.created_at, records.c.idx)
    Index("ix_guard_review_parent", records.c.parent)
    scores = Table(
        "guard_review_scores", md,
        Column("idx", BigInteger, primary_key=True, autoincrement=False),
        Column("detector", String(100), primary_key=True),
        Column("label", String(100), primary_key=True),  # ALL_LABELS: the detector's highest score
        Column("value", Float, nullable=False),  # the highest over stages
        Column("created_at", String(40), nullable=False),
    )
    # value last: the score filter is checked inside the index, without reading the rows
    Index("ix_guard_review_score", scores.c.detector, scores.c.label, scores.c.created_at, scores.c.idx,
          scores.c.value)
    Table("guard_review_values", md, Column("kind", String(16), primary_key=True),
          Column("value", String(500), primary_key=True))
    Table("guard_review_state", md, Column("key", String(64), primary_key=True), Column("value", Text, nullable=False))
    Table(
        "guard_review_users", md,
        Column("username", String(64), primary_key=True),
        Column("password_hash", Text, nullable=False),
        Column("role", String(16), nullable=False),
        Column("active", SmallInteger, nullable=False),
        Column("created_at", String(40), nullable=False),
    )
    sessions = Table(
        "guard_review_sessions", md,
        Column("token_sha256", String(64), primary_key=True),
        Column("username", String(64), nullable=False),
        Column("csrf", String(64), nullable=False),
        Column("created_at", String(40), nullable=False),
        Column("expires_at", String(40), nullable=False),
    )
    Index("ix_guard_review_sessions_user", sessions.c.username)
    return md


def kind_of(record: dict[str, Any]) -> str:
    media = str(record.get("media_type") or "")
    if media == REVIEW_MEDIA_TYPE:
        return "review"
    top = media.split("/", 1)[0]
    return top if top in ("text", "image") else "other"


@dataclass(frozen=True)
class ListQuery:
    """What a list page shows: filters (all optional, combined with AND), page size and the keyset cursor.

    ``before``/``after`` are ``(created_at, idx)`` of the row the page continues from (older / newer).
    """

    since: str | None = None
    until: str | None = None
    verdict: str | None = None
    kind: str | None = None
    model: str | None = None
    detector: str | None = None
    label: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    incident: bool = False
    status: str | None = None
    limit: int = 50
    before: tuple[str, int] | None = None
    after: tuple[str, int] | None = None

    def validate(self) -> "ListQuery":
        if self.limit not in PAGE_SIZES:
            raise InputError(f"page size must be one of {', '.join(map(str, PAGE_SIZES))}")
        if self.kind is not None and self.kind not in KINDS:
            raise InputError(f"media type must be one of {', '.join(KINDS)}")
        if self.status is not None and self.status not in ("pending", *DECISIONS):
            raise InputError(f"review status must be pending or one of {', '.join(DECISIONS)}")
        for bound in (self.score_min, self.score_max):
            if bound is not None and not 0.0 <= bound <= 1.0:
                raise InputError("score bounds must be between 0 and 1")
        if (self.score_min is not None or self.score_max is not None or self.label) and not self.detector:
            raise InputError("a score range or label needs a detector")
        return self


@dataclass(frozen=True)
class Row:
    index: int
    created_at: str
    status: str | None
    record: dict[str, Any]


@dataclass
class Page:
    rows: list[Row]
    older: tuple[str, int] | None  # cursor for the next older page, None at the end
    newer: tuple[str, int] | None  # cursor for the next newer page, None at the start
    scanned_to: str | None = None  # a partial page: the search examined its budget back (or forward) to this time


@dataclass
class CatchUp:
    indexed: int = 0
    upto: int = 0
    seconds: float = 0.0
    decisions: list[int] = field(default_factory=list)


class ReviewStore:
    """The review tables beside one ``ProvenanceLog``: the projection, users and sessions."""

    def __init__(self, log: ProvenanceLog) -> None:
        from sqlalchemy import MetaData

        self.log = log
        self.engine = log.engine
        self.scan_budget = SCAN_BUDGET
        self.tables = _tables(MetaData())
        self.t = self.tables.tables
        self.tables.create_all(self.engine)
        if self.state("schema") not in (None, SCHEMA_VERSION):
            self.rebuild()
        self._set_state("schema", SCHEMA_VERSION)

    # -- state -------------------------------------------------------------------------------------------

    def state(self, key: str) -> str | None:
        from sqlalchemy import select

        s = self.t["guard_review_state"]
        with self.engine.connect() as conn:
            return conn.execute(select(s.c.value).where(s.c.key == key)).scalar()

    def _set_state(self, key: str, value: str) -> None:
        with self._write() as conn:
            self._put_state(conn, key, value)

    def _put_state(self, conn, key: str, value: str) -> None:
        s = self.t["guard_review_state"]
        if conn.execute(s.update().where(s.c.key == key).values(value=value)).rowcount == 0:
            conn.execute(s.insert().values(key=key, value=value))

    def _write(self):
        """A write transaction that excludes other review writers (SQLite: BEGIN IMMEDIATE; PostgreSQL: a lock)."""
        from contextlib import contextmanager

        from sqlalchemy import text

        @contextmanager
        def tx():
            with self.engine.connect() as conn:
                conn = conn.execution_options(guard_write=True)
                with conn.begin():
                    if self.log.dialect == "postgresql":
                        conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": PG_LOCK_KEY})
                    yield conn

        return tx()

    def rebuild(self) -> None:
        """Forget the projection (users and sessions stay); the next ``catch_up`` reads the whole log again."""
        with self._write() as conn:
            for name in ("guard_review_records", "guard_review_scores", "guard_review_values"):
                conn.execute(self.t[name].delete())
            conn.execute(self.t["guard_review_state"].delete().where(self.t["guard_review_state"].c.key == "upto"))

    # -- catching up -------------------------------------------------------------------------------------

    def indexed_upto(self) -> int:
        return int(self.state("upto") or 0)

    def lag(self) -> int:
        return max(0, self.log.size() - self.indexed_upto())

    def catch_up(self, *, limit: int | None = None, chunk: int = 5000,
                 progress: Callable[[int, int], None] | None = None) -> CatchUp:
        """Project the records appended since the last call (at most ``limit``), in transactions of ``chunk``."""
        import time

        t0 = time.perf_counter()
        result = CatchUp(upto=self.indexed_upto())
        total = self.log.size()
        while result.upto < total and (limit is None or result.indexed < limit):
            step = chunk if limit is None else min(chunk, limit - result.indexed)
            with self._write() as conn:
                upto = int(self._state_in(conn, "upto") or 0)  # another server may have moved it
                rows = conn.exec_driver_sql(
                    f"SELECT idx, body FROM guard_records WHERE idx >= {upto} ORDER BY idx LIMIT {int(step)}"
                ).all()
                if not rows:
                    result.upto = upto
                    break
                result.decisions += self._project(conn, rows)
                upto = int(rows[-1][0]) + 1
                self._put_state(conn, "upto", str(upto))
            result.indexed += len(rows)
            result.upto = upto
            if progress:
                progress(result.upto, total)
        if result.indexed >= 50_000:
            self.analyze()
        result.seconds = time.perf_counter() - t0
        return result

    def _state_in(self, conn, key: str) -> str | None:
        from sqlalchemy import select

        s = self.t["guard_review_state"]
        return conn.execute(select(s.c.value).where(s.c.key == key)).scalar()

    def _project(self, conn, rows) -> list[int]:
        """Insert the projection of ``rows`` (idx, body); returns the indices of reviewer decisions among them."""
        import orjson

        records, scores, values, decisions = [], [], set(), []
        updates: dict[int, str] = {}
        for idx, body in rows:
            idx = int(idx)
            try:
                record = orjson.loads(bytes(body))
            except orjson.JSONDecodeError:  # a damaged record: listed, so a reviewer finds it and `log verify` names it
                record = {}
            created = str(record.get("created_at") or "")
            verdict = str(record.get("verdict") or "?")[:16]
            kind = kind_of(record)
            model = (record.get("generator") or {}).get("model_id") if kind != "review" else None
            incident = verdict in INCIDENT_VERDICTS
            records.append({"idx": idx, "created_at": created, "verdict": verdict, "kind": kind,
                            "model_id": None if model is None else str(model)[:500],
                            "parent": _short(record.get("parent"), 32), "incident": int(incident),
                            "status": "pending" if incident else None})
            values |= {("verdict", verdict), ("kind", kind)} | ({("model", str(model)[:500])} if model else set())
            best: dict[tuple[str, str], float] = {}
            for s in record.get("scores") or []:
                try:
                    value = float(s.get("value"))
                except (TypeError, ValueError):
                    continue
                detector, label = _short(s.get("detector"), 100) or "?", _short(s.get("label"), 100) or "?"
                for key in ((detector, label), (detector, ALL_LABELS)):
                    best[key] = max(value, best.get(key, value))
            for (detector, label), value in best.items():
                scores.append({"idx": idx, "detector": detector, "label": label, "value": value, "created_at": created})
                values.add(("detector", detector))
                if label != ALL_LABELS:
                    values.add(("label", f"{detector}\x1f{label}"))
            review = (record.get("extra") or {}).get("review") if kind == "review" else None
            if isinstance(review, dict) and review.get("decision") in DECISIONS:
                try:
                    updates[int(review.get("index"))] = review["decision"]
                    decisions.append(idx)
                except (TypeError, ValueError):
                    pass
        t_rec, t_score, t_val = self.t["guard_review_records"], self.t["guard_review_scores"], self.t["guard_review_values"]
        conn.execute(t_rec.insert(), records)
        if scores:
            conn.execute(t_score.insert(), scores)
        known = {(k, v) for k, v in conn.execute(t_val.select()).all()} if values else set()
        new = [{"kind": k, "value": v} for k, v in values - known]
        if new:
            conn.execute(t_val.insert(), new)
        for target, decision in updates.items():  # the latest decision on an incident is its status
            conn.execute(t_rec.update().where((t_rec.c.idx == target) & (t_rec.c.incident == 1)).values(status=decision))
        return decisions

    def analyze(self) -> None:
        """Refresh the planner's statistics after a large catch-up; on PostgreSQL also vacuum, so the bound of a
        page's window is an index-only read (the visibility map is set)."""
        names = ("guard_review_records", "guard_review_scores")
        with self.engine.connect() as conn:
            if self.log.dialect == "postgresql":
                conn = conn.execution_options(isolation_level="AUTOCOMMIT")
                for name in names:
                    conn.exec_driver_sql(f"VACUUM (ANALYZE) {name}")
            else:
                for name in names:
                    conn.exec_driver_sql(f"ANALYZE {name}")
                conn.commit()

    # -- reading -----------------------------------------------------------------------------------------

    def facets(self) -> dict[str, list[str]]:
        """The values the filters offer: verdicts, kinds, models, detectors, and labels per detector."""
        t = self.t["guard_review_values"]
        out: dict[str, list[str]] = {"verdict": [], "kind": [], "model": [], "detector": [], "label": []}
        with self.engine.connect() as conn:
            for kind, value in conn.execute(t.select().order_by(t.c.kind, t.c.value)).all():
                out.setdefault(kind, []).append(value)
        out["label"] = [v.replace("\x1f", "/") for v in out["label"]]
        return out

    def page(self, q: ListQuery) -> Page:
        """One page of records, newest first (``q.after``: the page after that cursor going newer).

        Work is bounded whatever the filters. One index is read in the page's order: the score index when a
        detector is asked for, else the index of the first equality filter among status, verdict, model, incident
        and media, else time. When other filters remain, the page examines at most ``scan_budget`` entries of that
        index (an index-only read finds where that window ends); if the page is not full by then it is partial:
        ``older`` continues from the end of the window and ``scanned_to`` says how far the search got.
        """
        from sqlalchemy import and_, not_, select

        q = q.validate()
        r, s = self.t["guard_review_records"], self.t["guard_review_scores"]
        equal = [(c, v) for c, v in ((r.c.status, q.status), (r.c.verdict, q.verdict), (r.c.model_id, q.model),
                                      (r.c.incident, 1 if q.incident else None), (r.c.kind, q.kind)) if v is not None]
        residual = []
        if q.detector:
            drive = [s.c.detector == q.detector, s.c.label == (q.label or ALL_LABELS)]
            time_col, idx_col = s.c.created_at, s.c.idx
            base = select(r.c.idx, r.c.created_at, r.c.status).select_from(s.join(r, r.c.idx == s.c.idx))
            if q.score_min is not None:
                residual.append(s.c.value >= q.score_min)
            if q.score_max is not None:
                residual.append(s.c.value <= q.score_max)
        else:
            drive = [equal[0][0] == equal[0][1]] if equal else []
            time_col, idx_col = r.c.created_at, r.c.idx
            base = select(r.c.idx, r.c.created_at, r.c.status)
            equal = equal[1:]
        # a review status is only ever set on incidents: "incident" adds nothing to it
        residual += [c == v for c, v in equal if not (c is r.c.incident and q.status)]
        if q.since:
            drive.append(time_col >= q.since)
        if q.until:
            drive.append(time_col < q.until)
        newest_first = q.after is None
        if q.before is not None:
            t, i = q.before
            drive += [time_col <= t, not_(and_(time_col == t, idx_col >= i))]
        elif q.after is not None:
            t, i = q.after
            drive += [time_col >= t, not_(and_(time_col == t, idx_col <= i))]
        order = (time_col.desc(), idx_col.desc()) if newest_first else (time_col.asc(), idx_col.asc())
        with self.engine.connect() as conn:
            bound = None
            if residual:  # the last index entry this page may examine (an index-only read)
                bound = conn.execute(select(time_col, idx_col).where(*drive).order_by(*order)
                                     .offset(self.scan_budget - 1).limit(1)).first()
            window = []
            if bound is not None:
                t, i = bound[0], int(bound[1])
                window = ([time_col >= t, not_(and_(time_col == t, idx_col < i))] if newest_first else
                          [time_col <= t, not_(and_(time_col == t, idx_col > i))])
            hits = conn.execute(base.where(*drive, *window, *residual).order_by(*order).limit(q.limit + 1)).all()
            full = len(hits) > q.limit
            hits = hits[:q.limit]
            if not newest_first:
                hits.reverse()
            bodies = self._bodies(conn, [int(h.idx) for h in hits])
        rows = [Row(int(h.idx), h.created_at, h.status, bodies.get(int(h.idx), {})) for h in hits]
        further = None if full or bound is None else (bound[0], int(bound[1]))  # the budget ran out first
        if newest_first:
            older = (rows[-1].created_at, rows[-1].index) if full else further
            newer = (rows[0].created_at, rows[0].index) if q.before is not None and rows else None
        else:
            older = (rows[-1].created_at, rows[-1].index) if rows else q.after
            newer = (rows[0].created_at, rows[0].index) if full else further
        return Page(rows, older, newer, scanned_to=further[0] if further else None)

    def _bodies(self, conn, indices: list[int]) -> dict[int, dict[str, Any]]:
        if not indices:
            return {}
        out = {}
        for idx, body in conn.exec_driver_sql(
                f"SELECT idx, body FROM guard_records WHERE idx IN ({','.join(str(int(i)) for i in indices)})"):
            try:
                out[int(idx)] = json.loads(bytes(body))
            except ValueError:
                out[int(idx)] = {}
        return out

    def status_of(self, index: int) -> str | None:
        from sqlalchemy import select

        r = self.t["guard_review_records"]
        with self.engine.connect() as conn:
            return conn.execute(select(r.c.status).where(r.c.idx == index)).scalar()

    def children(self, record_id: str) -> list[dict[str, Any]]:
        """Records that name ``record_id`` as their parent: regenerations, edits and reviewer decisions, in order."""
        from sqlalchemy import select

        r = self.t["guard_review_records"]
        with self.engine.connect() as conn:
            indices = [int(i) for i in conn.execute(
                select(r.c.idx).where(r.c.parent == record_id).order_by(r.c.idx).limit(200)).scalars()]
            bodies = self._bodies(conn, indices)
        return [bodies[i] for i in indices if i in bodies]


def _short(value: Any, size: int) -> str | None:
    return None if value is None else str(value)[:size]
