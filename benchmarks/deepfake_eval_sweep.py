"""The full ``guard detector eval`` sweep (clean, JPEG 30..100, blur 0..3: 13 conditions), timed for two checkouts
of the project side by side in one run: a baseline tree and this one.

    python benchmarks/deepfake_eval_sweep.py --baseline /path/to/other/checkout --real R --fake F -- \\
        --backend spectral --checkpoint model.json

Everything after ``--`` is passed to ``guard detector eval`` for both trees (same checkpoint, same options), each
run in a fresh process with its tree first on ``PYTHONPATH``. Prints wall seconds per run, the ratio, the load
average before and after, and each run's clean AUC (the numbers may differ where the two trees read images
differently; the sweep's cost is the point here).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path


def run(tree: Path, args: list[str]) -> tuple[float, dict]:
    env = {**os.environ, "PYTHONPATH": str(tree)}
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "guard.cli", "detector", "eval", *args, "--json"], env=env,
                          cwd=tree, capture_output=True, text=True)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"{tree}: exit {proc.returncode}: {proc.stderr.strip()[-2000:]}")
    return elapsed, json.loads(proc.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, required=True, help="another checkout of the project")
    parser.add_argument("--real", type=Path, required=True)
    parser.add_argument("--fake", type=Path, required=True)
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="-- then options for guard detector eval")
    args = parser.parse_args()
    rest = [a for a in args.rest if a != "--"]
    common = ["--real", str(args.real.resolve()), "--fake", str(args.fake.resolve()), *rest]
    here = Path(__file__).resolve().parent.parent
    print(f"load before: {os.getloadavg()}")
    results = {}
    for name, tree in (("baseline", args.baseline.resolve()), ("this tree", here)):
        seconds, data = run(tree, common)
        results[name] = seconds
        print(f"{name:10s} {seconds:8.1f} s   clean AUC {data['clean']['auc']:.3f}   ({tree})")
    print(f"load after: {os.getloadavg()}")
    print(f"speed-up: {results['baseline'] / results['this tree']:.1f}x")


if __name__ == "__main__":
    main()
