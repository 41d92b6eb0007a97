"""What the guard adds to each text output, model calls excluded: scoring hooks, DSSE signing, bias and
near-duplicate signals, the log append (durable commit) and the inclusion proof; and text watermark detection.

    python benchmarks/guard_overhead.py [-n 300] [--dir /dev/shm]

The generator is a function returning a fixed ~150-word answer, so the time measured is the guard's own. The
peer is the least any durable log must do: one plain ``sqlite3`` insert of the same record's bytes into a file
with the same settings (WAL, ``synchronous=FULL``), one transaction per record. The two alternate call by call,
so machine load hits both alike; the ratio is the number to compare across machines. CPU time (``process_time``)
is printed too: on a loaded machine a call waits for a core, which wall time counts and CPU time does not.
``--dir`` puts both databases in another folder: on a RAM disk (``/dev/shm``) a commit costs no disk flush, which
shows the guard's own time apart from the disk's.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ANSWER = (
    "Lighthouses guide ships along dangerous coasts with a beam that sweeps the water at night. Each one has its "
    "own pattern of flashes, printed on nautical charts, so a navigator who counts the seconds between them knows "
    "which headland lies ahead. Early towers burned wood or coal in open braziers; later keepers trimmed the wicks "
    "of oil lamps every few hours through the night. The Fresnel lens, introduced in 1823, bent the light of a "
    "single flame into a narrow horizontal beam visible more than twenty miles away. Today most lights are "
    "automated, powered by solar panels and checked by technicians who visit a few times a year. Radio beacons "
    "and satellite positioning have made them less essential, yet sailors still trust a light they can see with "
    "their own eyes when electronics fail in a storm, and many towers remain protected as historic landmarks."
)


def _plain_sqlite(path: Path) -> sqlite3.Connection:
    """The peer's database: the guard log's SQLite settings, no SQLAlchemy, no tree, no signature."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE records (idx INTEGER PRIMARY KEY, record_id TEXT UNIQUE, body BLOB NOT NULL)")
    return conn


def _plain_insert(conn: sqlite3.Connection, i: int, record_id: str, body: bytes) -> None:
    conn.execute("BEGIN IMMEDIATE")
    conn.execute("INSERT INTO records VALUES (?, ?, ?)", (i, record_id, body))
    conn.execute("COMMIT")


def _p90(times: list[float]) -> float:
    return sorted(times)[int(0.9 * len(times))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300)
    parser.add_argument("--dir", type=Path, help="folder for the two databases (default: a new temporary folder)")
    args = parser.parse_args()

    from guard.pipeline.guard import Guard
    from guard.policy import parse
    from guard.signing.keys import KeyStore

    home = Path(tempfile.mkdtemp(dir=args.dir))
    keys = KeyStore(home / "keys")
    keys.init()
    guard = Guard(parse("name: overhead\nprompt_storage: hash\n"), log=home / "log.db", keys=keys)
    guarded = guard.wrap(lambda prompt: ANSWER)
    plain = _plain_sqlite(home / "plain.db")
    for _ in range(20):
        guarded("warm up")
    body = guard.log.get(guard.log.size() - 1).body  # the bytes of a record the guard logged, for the peer
    ours, peer, ours_cpu, peer_cpu = [], [], [], []
    for i in range(args.n):
        t, c = time.perf_counter(), time.process_time()
        guarded(f"question {i}")
        ours.append(time.perf_counter() - t)
        ours_cpu.append(time.process_time() - c)
        t, c = time.perf_counter(), time.process_time()
        _plain_insert(plain, i, f"{i:016x}", body)
        peer.append(time.perf_counter() - t)
        peer_cpu.append(time.process_time() - c)
    m_ours, m_peer = statistics.median(ours), statistics.median(peer)
    print(f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}, {os.cpu_count()} cores, "
          f"record of {len(body)} bytes, n={args.n}, databases in {home.parent}")
    print(f"guard overhead per text output (no detectors configured): median {m_ours * 1e3:.2f} ms, "
          f"p90 {_p90(ours) * 1e3:.2f} ms; CPU time median {statistics.median(ours_cpu) * 1e3:.2f} ms")
    print(f"plain sqlite3 insert of the same record (WAL, synchronous=FULL, one commit): median "
          f"{m_peer * 1e3:.2f} ms, p90 {_p90(peer) * 1e3:.2f} ms; CPU time median "
          f"{statistics.median(peer_cpu) * 1e3:.2f} ms")
    print(f"ratio guard / plain insert: {m_ours / m_peer:.1f}x")

    from generators.transformers_text import TransformersText
    from guard.demo.tiny_models import build_tiny_gpt2
    from guard.watermark.text import TextWatermarkDetector

    gen = TransformersText(build_tiny_gpt2(home / "gpt2"), device="cpu")
    detector = TextWatermarkDetector(tokenizer=gen.tokenizer, model_config=gen.config,
                                     settings=guard.policy.watermark.text, secret=keys.watermark_secret())
    detector.detect(ANSWER)
    t = time.perf_counter()
    for _ in range(50):
        result = detector.detect(ANSWER)
    per = (time.perf_counter() - t) / 50
    print(f"text watermark detection over {result.num_tokens_scored} tokens: {per * 1e3:.2f} ms")


if __name__ == "__main__":
    main()
