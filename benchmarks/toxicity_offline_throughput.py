"""Offline toxicity scorer throughput and memory against detoxify one text at a time, in one run.

Texts: the same 5-400-word BOLD texts as ``toxicity_throughput.py``. Peer: detoxify's ``original`` architecture
(bert-base-uncased) with random weights, built locally by that benchmark (it costs what the released weights
cost), called as most integrations do: ``Detoxify.predict([text])`` per text. Each method runs in its own process
so its peak memory (max RSS) is its own.

- ``offline-b1``: the ``toxicity-offline`` detector, one text per ``score`` call (first ``--b1-n`` texts);
- ``offline-bN``: one ``score`` call on the whole list, windows in batches of N (``--batches``);
- ``offline-int8``: the best batch with ``precision: int8`` (``core.device.quantize_linear``: the dense layers
  only; the LSTM, most of the cost, stays float32), scores compared with float32;
- ``bilstm-only``: the BiLSTM alone, batched (what the combination and neutralisation add);
- ``detoxify-1by1``: the peer.

Run: nice -n 19 .venv/bin/python benchmarks/toxicity_offline_throughput.py [--n 1000] [--peer-n 100] [--b1-n 200]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from toxicity_throughput import build_checkpoint, make_texts  # noqa: E402


def worker(method: str, n: int, batch: int) -> dict:
    import numpy as np
    import torch

    texts = make_texts(n)
    result: dict = {"method": method, "texts": len(texts), "threads": torch.get_num_threads()}
    if method.startswith("offline") or method == "bilstm-only":
        from detectors.offline_toxicity import OfflineToxicityDetector

        precision = "int8" if method == "offline-int8" else "float32"
        detector = OfflineToxicityDetector(precision=precision, batch_size=batch)
        detector.score(["warm up"])
        if method == "offline-b1":
            run = lambda ts: [detector.score([t])[0] for t in ts]  # noqa: E731
        elif method == "bilstm-only":
            run = detector.scorer.bilstm_logits
        else:
            run = detector.score
    else:
        from detoxify import Detoxify

        checkpoint, _ = build_checkpoint()
        model = Detoxify(checkpoint=str(checkpoint))
        model.predict(["warm up"])
        run = lambda ts: [model.predict([t]) for t in ts]  # noqa: E731
    start = time.perf_counter()
    out = run(texts)
    result["seconds"] = time.perf_counter() - start
    result["texts_per_s"] = len(texts) / result["seconds"]
    if method.startswith("offline"):
        result["scores"] = [[s.value for s in row] for row in out[:200]]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    del np
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="texts for the offline scorer")
    parser.add_argument("--peer-n", type=int, default=100, help="texts for detoxify one at a time (slow)")
    parser.add_argument("--b1-n", type=int, default=200, help="texts for the offline scorer one at a time")
    parser.add_argument("--batches", default="16,64,256,1024", help="batch sizes to try")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--batch", type=int, default=256, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.batch)))
        return
    build_checkpoint()
    runs = [("offline-b1", args.b1_n, 256)] + [(f"offline-b{b}", args.n, b) for b in map(int, args.batches.split(","))]
    results = {}
    for method, n, batch in runs:
        results[method] = _run(method.split("-b")[0] + ("-b1" if method == "offline-b1" else "-bN"), n, batch)
        results[method]["method"] = method
    best = max((k for k in results if k != "offline-b1"), key=lambda k: results[k]["texts_per_s"])
    best_batch = int(best.removeprefix("offline-b"))
    results["offline-int8"] = _run("offline-int8", args.n, best_batch)
    results["bilstm-only"] = _run("bilstm-only", args.n, best_batch)
    results["detoxify-1by1"] = _run("detoxify-1by1", args.peer_n, 1)
    peer = results["detoxify-1by1"]["texts_per_s"]
    print(f"{'method':<16}{'texts':>7}{'texts/s':>11}{'vs detoxify':>13}{'peak MB':>9}")
    for name, r in results.items():
        print(f"{name:<16}{r['texts']:>7}{r['texts_per_s']:>11.1f}{r['texts_per_s'] / peer:>12.1f}x"
              f"{r['peak_rss_mb']:>9.0f}")
    diffs = [abs(a - b) for ra, rb in zip(results[best]["scores"], results["offline-int8"]["scores"])
             for a, b in zip(ra, rb)]
    print(f"best batch: {best_batch}; max |int8 - float32| over {len(results[best]['scores'])} texts: {max(diffs):.4f}")
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs; torch threads "
          f"{results[best]['threads']}")


def _run(method: str, n: int, batch: int) -> dict:
    print(f"running {method} (batch {batch}) ...", file=sys.stderr)
    proc = subprocess.run([sys.executable, __file__, "--worker", method, "--n", str(n), "--batch", str(batch)],
                          capture_output=True, text=True, cwd=REPO)
    if proc.returncode:
        sys.exit(f"{method} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    main()
