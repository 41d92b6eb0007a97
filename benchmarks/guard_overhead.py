"""What the guard adds to each text output, model calls excluded: scoring hooks, DSSE signing, bias and
near-duplicate signals, the log append (durable commit) and the inclusion proof; and text watermark detection.

    python benchmarks/guard_overhead.py [-n 300]

The generator is a function returning a fixed ~150-word answer, so the time measured is the guard's own.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

ANSWER = ("Lighthouses guide ships along dangerous coasts with a beam that sweeps the water at night. " * 12).strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300)
    args = parser.parse_args()

    from guard.signing.keys import KeyStore
    from guard.pipeline.guard import Guard
    from guard.policy import parse

    home = Path(tempfile.mkdtemp())
    keys = KeyStore(home / "keys")
    keys.init()
    guard = Guard(parse("name: overhead\nprompt_storage: hash\n"), log=home / "log.db", keys=keys)
    guarded = guard.wrap(lambda prompt: ANSWER)
    for _ in range(20):
        guarded("warm up")
    times = []
    for i in range(args.n):
        t = time.perf_counter()
        guarded(f"question {i}")
        times.append(time.perf_counter() - t)
    times.sort()
    print(f"guard overhead per text output (no detectors configured), n={args.n}: "
          f"median {statistics.median(times) * 1e3:.2f} ms, p90 {times[int(0.9 * len(times))] * 1e3:.2f} ms")

    from generators.transformers_text import TransformersText
    from guard.demo.tiny_models import build_tiny_gpt2
    from guard.watermark.text import TextWatermarkDetector

    gen = TransformersText(build_tiny_gpt2(home / "gpt2"), device="cpu")
    detector = TextWatermarkDetector(tokenizer=gen.tokenizer, model_config=gen.config,
                                     settings=guard.policy.watermark.text, secret=keys.watermark_secret())
    text = ANSWER
    detector.detect(text)
    t = time.perf_counter()
    for _ in range(50):
        result = detector.detect(text)
    per = (time.perf_counter() - t) / 50
    print(f"text watermark detection over {result.num_tokens_scored} tokens: {per * 1e3:.2f} ms")
    print(f"total (guard overhead + detection): {(statistics.median(times) + per) * 1e3:.2f} ms (target < 5 ms)")


if __name__ == "__main__":
    main()
