"""Appends per second into the provenance log (Merkle upkeep included) against plain SQLAlchemy inserts of the
same rows into a table of the same shape, in the same run.

    python benchmarks/log_append.py                       # SQLite, one writer
    python benchmarks/log_append.py --url postgresql://…   # PostgreSQL
    python benchmarks/log_append.py --writers 4            # 4 writer processes into one log
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._records import record  # noqa: E402
from guard.provenance.log import ProvenanceLog, normalize_url  # noqa: E402


def _fresh_url(base: str | None, tag: str) -> str:
    if base is None:
        return str(Path(tempfile.mkdtemp()) / f"{tag}.db")
    from sqlalchemy import create_engine, text

    admin = create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    name = f"guard_bench_{tag}_{os.getpid()}"
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    return base.rsplit("/", 1)[0] + "/" + name


def ours(url: str, n: int, batch: int, start: int = 0) -> float:
    log = ProvenanceLog(url)
    records = [record(i) for i in range(start, start + n)]
    t = time.perf_counter()
    for s in range(0, n, batch):
        log.append_batch(records[s:s + batch])
    return time.perf_counter() - t


def plain(url: str, n: int, batch: int) -> float:
    """The same records as plain rows: ``json.dumps`` of each record and its indexed columns, inserted with
    SQLAlchemy Core into a table of the same shape (same PRAGMAs), with no canonical form and no Merkle tree."""
    import json

    log = ProvenanceLog(url)
    engine = log.engine
    table = log.tables.tables["guard_records"]
    records = [record(i) for i in range(n)]
    t = time.perf_counter()
    for s in range(0, n, batch):
        rows = []
        for i, r in enumerate(records[s:s + batch], start=s):
            r = r.stored(i, {})
            rows.append({"idx": i, "record_id": r.record_id, "created_at": r.created_at, "media_type": r.media_type,
                         "verdict": r.verdict, "model_id": r.generator["model_id"],
                         "artifact_sha256": r.artifact["sha256"], "body": json.dumps(r.leaf_dict()).encode(),
                         "leaf_hash": b""})
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
    return time.perf_counter() - t


def _writer(args) -> float:
    url, n, batch, k = args
    return ours(url, n, batch, start=k * n)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", help="PostgreSQL URL (default: a SQLite file)")
    parser.add_argument("-n", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--writers", type=int, default=1)
    args = parser.parse_args()
    backend = "postgresql" if args.url else "sqlite"
    print(f"backend {backend}, {args.n} records of ~1 KB, batches of {args.batch}, {args.writers} writer(s), "
          f"{os.cpu_count()} cores")
    if args.writers > 1:
        url = _fresh_url(args.url, "multi")
        ProvenanceLog(url)
        per = args.n // args.writers
        t = time.perf_counter()
        with mp.get_context("spawn").Pool(args.writers) as pool:
            pool.map(_writer, [(url, per, args.batch, k) for k in range(args.writers)])
        wall = time.perf_counter() - t
        log = ProvenanceLog(url)
        assert log.size() == per * args.writers
        print(f"{args.writers} writer processes: {per * args.writers / wall:,.0f} records/s aggregate "
              f"(wall {wall:.2f} s, process start-up included); log size {log.size()}")
        return
    t_plain = plain(_fresh_url(args.url, "plain"), args.n, args.batch)
    t_ours = ours(_fresh_url(args.url, "ours"), args.n, args.batch)
    r_plain, r_ours = args.n / t_plain, args.n / t_ours
    print(f"plain SQLAlchemy inserts (json.dumps rows, no tree): {r_plain:,.0f} records/s")
    print(f"provenance log append_batch (serialise + hash + Merkle nodes): {r_ours:,.0f} records/s")
    print(f"ratio ours/plain: {r_ours / r_plain:.2f}")


if __name__ == "__main__":
    main()
