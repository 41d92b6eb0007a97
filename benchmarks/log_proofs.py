"""Inclusion and consistency proof time at 10^4, 10^5 and 10^6 records, and full `verify` time.

    python benchmarks/log_proofs.py --db /tmp/bench-1e6.db -n 1000000   # builds the log once, then reuses it

Proofs read O(log n) stored nodes in one query; the times should grow like log n, not n.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks._records import record  # noqa: E402
from guard.provenance import merkle  # noqa: E402
from guard.provenance.log import ProvenanceLog  # noqa: E402


def build(log: ProvenanceLog, n: int, batch: int = 1000) -> None:
    have = log.size()
    t = time.perf_counter()
    for s in range(have, n, batch):
        log.append_batch([record(i) for i in range(s, min(n, s + batch))])
        if (s // batch) % 100 == 0:
            print(f"  built {s:,} records ({(s - have) / max(time.perf_counter() - t, 1e-9):,.0f}/s)", flush=True)
    if n > have:
        print(f"built {n - have:,} records in {time.perf_counter() - t:.1f} s")


def time_proofs(log: ProvenanceLog, size: int, trials: int = 200) -> tuple[float, float]:
    rng = random.Random(size)
    _, root = log.root(size)
    t = time.perf_counter()
    for _ in range(trials):
        p = log.inclusion_proof(rng.randrange(size), size)
    inclusion = (time.perf_counter() - t) / trials
    p.verify()
    assert p.root == root
    t = time.perf_counter()
    for _ in range(trials):
        old = rng.randrange(1, size)
        size2, root2, hashes = log.consistency_proof(old, size)
    consistency = (time.perf_counter() - t) / trials
    _, old_root = log.root(old)
    merkle.verify_consistency(old, size2, old_root, root2, hashes)
    return inclusion, consistency


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", required=True, help="log file or URL (built up to -n records if smaller)")
    parser.add_argument("-n", type=int, default=1_000_000)
    parser.add_argument("--verify", action="store_true", help="also time a full verify of the log")
    args = parser.parse_args()
    log = ProvenanceLog(args.db)
    build(log, args.n)
    sizes = [s for s in (10**4, 10**5, 10**6) if s <= log.size()]
    for size in sizes:
        inc, con = time_proofs(log, size)
        print(f"tree size {size:>9,}: inclusion proof {inc * 1e3:.3f} ms, consistency proof {con * 1e3:.3f} ms "
              f"(log2 n = {size.bit_length() - 1})")
    if args.verify:
        from guard.signing.keys import KeyStore
        from guard.provenance.verify import verify_log
        import tempfile

        keys = KeyStore(Path(tempfile.mkdtemp()) / "keys")
        keys.init()
        log.checkpoint(keys.log_private_key())
        t = time.perf_counter()
        report = verify_log(log, keys.log_public_key())
        print(f"full verify of {report.size:,} records: {time.perf_counter() - t:.1f} s, ok={report.ok}")


if __name__ == "__main__":
    main()
