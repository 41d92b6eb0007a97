"""Build step of the review pages benchmark (the timing part follows)."""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


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
    return time.perf_counter() - t


if __name__ == "__main__":
    p = argparse.ArgumentParser()
    p.add_argument("--db", type=Path, required=True)
    p.add_argument("-n", type=int, default=1_000_000)
    a = p.parse_args()
    print(f"built in {build(str(a.db), a.n, a.db.with_suffix('.keys')):.0f} s")
