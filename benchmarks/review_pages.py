"""The review app's list pages on a 10^6-record log: p50/p95 over HTTP, against the naive way in the same run.

    python benchmarks/review_pages.py --db /tmp/review-1e6.db                 # SQLite (built on first use, ~10 min)
    python benchmarks/review_pages.py --db /tmp/review-1e6.db --pg-url postgresql://postgres@127.0.0.1:PORT/postgres

What is measured:

1. building the review index over the whole log (``ReviewStore.catch_up``), once per database;
2. a mix of list pages a reviewer opens (newest records, the incident queue, each filter alone, filters combined,
   a time window deep in the past, 25 pages of keyset paging), each fetched ``--repeat`` times from a real
   ``guard review serve`` process over HTTP by a signed-in client: p50 and p95 per page and over all pages;
3. the naive way, in SQL on the log's own table, for two of those pages: OFFSET paging to the 25th page, and a
   score filter by parsing the record JSON (``json_extract``/``->>``), against the review index's answer.

Records: ``benchmarks/_audit_records.py`` (60 % text, 40 % images, about 1 KB each, over 30 days). The PostgreSQL
log is the SQLite log's tables copied row for row (``COPY``), so both hold the same tree.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

PASSWORD = "benchmark password 1"
PAGES = {
    "log, newest": "/log",
    "incidents, pending": "/incidents",
    "incidents, all statuses": "/incidents?status=",
    "verdict = block": "/log?verdict=block",
    "media = image": "/log?kind=image",
    "model = Qwen": "/log?model=Qwen/Qwen2.5-0.5B-Instruct",
    "toxicity >= 0.5": "/log?detector=toxicity&label=toxicity/toxicity&score_min=0.5",
    "copyright >= 0.55": "/log?detector=copyright&score_min=0.55",
    "toxicity >= 0.9 (rare: partial pages)": "/log?detector=toxicity&label=toxicity/toxicity&score_min=0.9",
    "one day, 20 days ago": "/log?since=2025-05-11T00:00:00&until=2025-05-12T00:00:00",
    "flag + text + Qwen + toxicity >= 0.3": "/log?verdict=flag&kind=text&model=Qwen/Qwen2.5-0.5B-Instruct"
                                            "&detector=toxicity&score_min=0.3",
    "incidents, image, one week": "/incidents?status=&kind=image&since=2025-05-08&until=2025-05-15",
}


def build(url: str, n: int, keys_dir: Path) -> float:
    from benchmarks._audit_records import synth_record
    from guard.provenance.log import ProvenanceLog
    from guard.signing.keys import KeyStore

    keys = KeyStore(keys_dir)
    if not keys.exists():
        keys.init()
    log = ProvenanceLog(url)
    rng = random.Random(3)
    t = time.perf_counter()
    for start in range(log.size(), n, 1000):
        log.append_batch([synth_record(i, n, rng) for i in range(start, min(n, start + 1000))])
        if start % 100_000 == 0:
            print(f"  {start:,} records, {time.perf_counter() - t:.0f} s", file=sys.stderr, flush=True)
    log.checkpoint(keys.log_private_key())
    log.close()
    return time.perf_counter() - t


def copy_to_postgres(db: Path, pg_url: str) -> float:
    """The SQLite log's tables into a fresh PostgreSQL database, row for row."""
    import sqlite3

    import psycopg

    from guard.provenance.log import ProvenanceLog

    t = time.perf_counter()
    source, target = ProvenanceLog(db), ProvenanceLog(pg_url)  # creates the tables (and a meta row we replace)
    same = (source.size(), source.origin) == (target.size(), target.origin)
    source.close()
    target.close()
    if same:  # copied by an earlier run: keep it, and its review index
        return 0.0
    src = sqlite3.connect(db)
    with psycopg.connect(pg_url.replace("postgresql+psycopg://", "postgresql://")) as pg:
        for table in ("records", "scores", "values", "state", "users", "sessions"):
            pg.execute(f"DROP TABLE IF EXISTS guard_review_{table}")
        for table, cols in (("guard_meta", "key, value"), ("guard_nodes", "level, idx, hash"),
                            ("guard_checkpoints", "id, tree_size, root_hash, created_at, note"),
                            ("guard_records", "idx, record_id, created_at, media_type, verdict, model_id, "
                                              "artifact_sha256, body, leaf_hash")):
            pg.execute(f"DELETE FROM {table}")
            with pg.cursor().copy(f"COPY {table} ({cols}) FROM STDIN") as copy:
                for row in src.execute(f"SELECT {cols} FROM {table}"):
                    copy.write_row(row)
        pg.execute("SELECT setval(pg_get_serial_sequence('guard_checkpoints', 'id'), "
                   "(SELECT max(id) FROM guard_checkpoints))")
        pg.execute("ANALYZE")
    return time.perf_counter() - t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(url: str, keys_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", "from guard.cli import main; main()", "review", "serve",
                             "--log", url, "--keys", str(keys_dir), "--port", str(port), "--no-self-test"],
                            env=env, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    from tests.guard.review.helpers import Client

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        try:
            if Client(base).get("/healthz").status == 200:
                return proc, base
        except OSError:
            time.sleep(0.2)
        if proc.poll() is not None:
            raise RuntimeError(proc.stderr.read())
    raise RuntimeError("the review server did not start")


def time_pages(base: str, repeat: int) -> dict[str, list[float]]:
    from tests.guard.review.helpers import Client

    client = Client(base)
    assert client.sign_in("bench", PASSWORD).status == 303
    out: dict[str, list[float]] = {}
    for name, path in PAGES.items():
        client.get(path)  # one untimed request: a fresh server reads its templates and caches on first use
        times = []
        for _ in range(repeat):
            t = time.perf_counter()
            r = client.get(path)
            times.append(time.perf_counter() - t)
            assert r.status == 200, (path, r.status, r.text[:300])
        rows = r.text.count('<a href="/records/')
        out[f"{name} ({rows} rows)"] = times
    # keyset paging: 25 pages deep, following the "Older" link
    path, times = "/log", []
    for _ in range(25):
        t = time.perf_counter()
        r = client.get(path)
        times.append(time.perf_counter() - t)
        path = re.search(r'href="([^"]+)" rel="next"', r.text).group(1).replace("&amp;", "&")
    out["log, pages 1-25 (keyset)"] = times
    return out


def naive(url: str) -> dict[str, tuple[float, float]]:
    """(naive seconds, review index seconds) for the same rows: a deep page by OFFSET against the keyset page that
    starts there, and a score filter by parsing every record's JSON against the score index."""
    from sqlalchemy import text

    from guard.provenance.log import ProvenanceLog
    from guard.review.store import ListQuery, ReviewStore

    log = ProvenanceLog(url)
    store = ReviewStore(log)
    pg = log.dialect == "postgresql"
    score = ("(SELECT max((s->>'value')::float) FROM jsonb_array_elements(convert_from(body, 'UTF8')::jsonb->'scores') s "
             "WHERE s->>'detector' = 'copyright')" if pg else
             "(SELECT max(json_extract(s.value, '$.value')) FROM json_each(CAST(body AS TEXT), '$.scores') s "
             "WHERE json_extract(s.value, '$.detector') = 'copyright')")
    newest = "ORDER BY created_at DESC, idx DESC"
    with log.engine.connect() as conn:  # where page 4,001 starts (not timed)
        cursor = tuple(conn.execute(text(f"SELECT created_at, idx FROM guard_records {newest} LIMIT 1 OFFSET 899999")
                                    ).one())
    queries = {
        "page 18,001 (OFFSET 900,000 vs keyset)": (f"SELECT idx, body FROM guard_records {newest} LIMIT 50 OFFSET 900000",
                                                  ListQuery(before=(cursor[0], int(cursor[1])))),
        "copyright >= 0.59, first page (JSON vs score index)": (
            f"SELECT idx, body FROM guard_records WHERE {score} >= 0.59 {newest} LIMIT 50",
            ListQuery(detector="copyright", score_min=0.59)),
    }
    out = {}
    for name, (sql, query) in queries.items():
        t = time.perf_counter()
        with log.engine.connect() as conn:
            naive_rows = conn.execute(text(sql)).all()
        naive_s = time.perf_counter() - t
        t = time.perf_counter()
        page = store.page(query)
        ours_s = time.perf_counter() - t
        assert [r.index for r in page.rows] == [int(r[0]) for r in naive_rows], name
        out[name] = (naive_s, ours_s)
    log.close()
    return out


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def run(label: str, url: str, keys_dir: Path, repeat: int) -> dict:
    from guard.provenance.log import ProvenanceLog
    from guard.review.auth import Accounts
    from guard.review.store import ReviewStore

    log = ProvenanceLog(url)
    store = ReviewStore(log)
    t = time.perf_counter()
    done = store.catch_up(progress=lambda n, total: print(f"  {label}: indexed {n:,}/{total:,}", file=sys.stderr)
                          if n % 100_000 < 5000 else None)
    index_s = time.perf_counter() - t
    accounts = Accounts(store)
    if accounts.get("bench") is None:
        accounts.add("bench", PASSWORD, "reviewer")
    size = log.size()
    log.close()
    proc, base = serve(url, keys_dir)
    try:
        pages = time_pages(base, repeat)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    all_times = [x for times in pages.values() for x in times]
    result = {"label": label, "records": size, "index_build_s": index_s, "indexed_now": done.indexed,
              "pages": {k: {"p50_ms": 1000 * pct(v, 0.5), "p95_ms": 1000 * pct(v, 0.95), "n": len(v)}
                        for k, v in pages.items()},
              "all_p50_ms": 1000 * pct(all_times, 0.5), "all_p95_ms": 1000 * pct(all_times, 0.95),
              "naive": {k: {"naive_ms": 1000 * a, "ours_ms": 1000 * b, "ratio": a / b} for k, (a, b) in naive(url).items()}}
    return result


def report(r: dict) -> None:
    print(f"\n## {r['label']}: {r['records']:,} records")
    if r["indexed_now"]:
        print(f"review index built over {r['indexed_now']:,} records in {r['index_build_s']:.0f} s "
              f"({r['indexed_now'] / r['index_build_s']:,.0f} records/s)")
    print("\n| page | p50 ms | p95 ms | requests |\n|---|---:|---:|---:|")
    for name, p in r["pages"].items():
        print(f"| {name} | {p['p50_ms']:.1f} | {p['p95_ms']:.1f} | {p['n']} |")
    print(f"| **all pages** | **{r['all_p50_ms']:.1f}** | **{r['all_p95_ms']:.1f}** | |")
    print("\n| in SQL | naive ms | review index ms | naive / index |\n|---|---:|---:|---:|")
    for name, n in r["naive"].items():
        print(f"| {name} | {n['naive_ms']:.1f} | {n['ours_ms']:.1f} | {n['ratio']:.1f}x |")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--db", type=Path, required=True, help="SQLite log (built when absent or short)")
    p.add_argument("-n", type=int, default=1_000_000)
    p.add_argument("--pg-url", help="also run on this PostgreSQL database (the SQLite log is copied into it)")
    p.add_argument("--repeat", type=int, default=20)
    p.add_argument("--json", type=Path, help="also write the numbers here")
    a = p.parse_args()
    keys_dir = a.db.with_suffix(".keys")
    from guard.provenance.log import ProvenanceLog

    if not a.db.exists() or ProvenanceLog(a.db).size() < a.n:
        print(f"built {a.n:,} records in {build(str(a.db), a.n, keys_dir):.0f} s", file=sys.stderr)
    print(f"machine load before: {os.getloadavg()}")
    results = [run("SQLite", str(a.db), keys_dir, a.repeat)]
    if a.pg_url:
        print(f"copied to PostgreSQL in {copy_to_postgres(a.db, a.pg_url):.0f} s", file=sys.stderr)
        results.append(run("PostgreSQL", a.pg_url, keys_dir, a.repeat))
    print(f"machine load after: {os.getloadavg()}")
    for r in results:
        report(r)
    if a.json:
        a.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
