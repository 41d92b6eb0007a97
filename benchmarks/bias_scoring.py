"""Bias audit cost for 10,000 completions: scoring (toxicity, regard, mentions) and analysis, against peers.

An audit of the shipped templates (64 groups x 12 templates = 768 prompts) with 13 samples per prompt makes
9,984 completions. What each stage costs, measured side by side in one run:

Toxicity, the detoxify ``original`` architecture (bert-base-uncased, random weights, built locally by
``benchmarks/toxicity_throughput.py``; same cost as the released weights):
- ``ours``: ``ToxicityDetector.score`` on batches of 64 completions, as ``collect`` calls it;
- ``detoxify-1by1``: ``Detoxify.predict([text])`` per completion (the usual integration);
- ``detoxify-batch``: ``Detoxify.predict(batch)`` on the same batches of 64 (one padded batch each).
bert-base on 2 shared cores scores tens of completions a second, so each runs on the first ``--n`` completions
(``--n-peer`` for the one-by-one peer) and the time for 10,000 is extrapolated linearly (completions are all
20-40 words, so the rate does not drift with position).

Regard (VADER) and group mentions run on all 10,000. Analysis (fairlearn ``MetricFrame`` point estimates and our
vectorised bootstrap, ``n_boot`` resamples) runs on all 10,000; the peer is fairlearn's own
``MetricFrame(n_boot=..., ci_quantiles=...)`` on the same per-prompt table, timed for ``--fairlearn-boot``
resamples per axis and extrapolated to ``n_boot``.

Run: .venv/bin/python benchmarks/bias_scoring.py [--n 256] [--n-peer 48] [--n-boot 2000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.toxicity_throughput import bold_sentences, build_checkpoint  # noqa: E402

TOTAL = 10_000
BATCH = 64


def completions(prompts, samples: int, seed: int = 0) -> list[str]:
    """One 20-40 word continuation per (prompt, sample), cut from BOLD's Wikipedia sentences."""
    rng = random.Random(seed)
    sentences = bold_sentences()
    out = []
    for _ in range(len(prompts) * samples):
        words: list[str] = []
        target = rng.randint(20, 40)
        while len(words) < target:
            words += rng.choice(sentences).split()
        out.append(" ".join(words[:target]))
    return out


def timed(fn, *args):
    start = time.perf_counter()
    value = fn(*args)
    return value, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=256, help="completions scored by ours and detoxify-batch")
    parser.add_argument("--n-peer", type=int, default=48, help="completions scored one by one by detoxify")
    parser.add_argument("--n-boot", type=int, default=2000, help="bootstrap resamples of the analysis")
    parser.add_argument("--fairlearn-boot", type=int, default=10, help="resamples timed for fairlearn's bootstrap")
    args = parser.parse_args()

    import torch

    from detectors.bias.mentions import find_mentions
    from detectors.bias.regard import VaderRegard
    from detectors.toxicity import ToxicityDetector
    from guard.bias.audit import Completion, analyse, metric_frame, per_prompt_values
    from guard.bias.prompts import load_prompt_set
    from guard.policy import BiasPolicy

    prompts = load_prompt_set("templates", per_group=None).prompts
    samples = round(TOTAL / len(prompts))
    texts = completions(prompts, samples)
    total = len(texts)
    print(f"{len(prompts)} prompts x {samples} samples = {total} completions, "
          f"{sum(len(t.split()) for t in texts) / total:.0f} words each on average; torch threads "
          f"{torch.get_num_threads()}", file=sys.stderr)

    checkpoint, config_dir = build_checkpoint()
    rows = []

    def rate(name: str, n: int, seconds: float, note: str = "") -> float:
        per_s = n / seconds
        rows.append((name, n, per_s, total / per_s, note))
        return per_s

    detector = ToxicityDetector(checkpoint=checkpoint, config_dir=config_dir)
    detector.score(["warm up"])
    subset = texts[: args.n]
    _, seconds = timed(lambda: [detector.score(subset[i : i + BATCH]) for i in range(0, len(subset), BATCH)])
    ours = rate("toxicity: ours (batches of 64)", len(subset), seconds, f"precision auto, {detector.model_id[:32]}…")

    from detoxify import Detoxify

    peer = Detoxify(checkpoint=str(checkpoint))
    peer.predict(["warm up"])
    _, seconds = timed(lambda: [peer.predict(subset[i : i + BATCH]) for i in range(0, len(subset), BATCH)])
    batch_rate = rate("toxicity: detoxify-batch (64)", len(subset), seconds)
    _, seconds = timed(lambda: [peer.predict([t]) for t in texts[: args.n_peer]])
    one_rate = rate("toxicity: detoxify-1by1", args.n_peer, seconds)

    regard = VaderRegard()
    regards, seconds = timed(regard, texts)
    rate("regard: VADER", total, seconds)
    _, seconds = timed(lambda: [find_mentions(t) for t in texts])
    rate("group mentions", total, seconds)

    # Analysis on all completions. Toxicity values: VADER negativity (a real score; the cost of the analysis
    # does not depend on which scorer produced the numbers).
    done = [Completion(i // samples, i % samples, t, r.negative, None, r.negative, r.label)
            for i, (t, r) in enumerate(zip(texts, regards))]
    settings = BiasPolicy(n_boot=args.n_boot)
    analyse(prompts[:24], [c for c in done if c.prompt < 24], settings)  # warm imports (fairlearn, scipy)
    result, seconds = timed(analyse, prompts, done, settings)
    rows.append((f"analysis: ours (n_boot={args.n_boot})", total, total / seconds, seconds,
                 f"{len(result.axes)} axes, {len(result.metrics)} metrics, {len(result.flags)} flags"))

    columns = per_prompt_values(prompts, done, settings.toxicity_threshold)
    fair_seconds = 0.0
    for axis in result.axes:
        members = [i for i, p in enumerate(prompts) if p.axis == axis.axis]
        table = {m: columns[m][members] for m in result.metrics}
        groups = [prompts[i].group for i in members]
        _, plain = timed(metric_frame, groups, table)
        _, booted = timed(lambda: metric_frame(groups, table, n_boot=args.fairlearn_boot,
                                               ci_quantiles=[0.025, 0.975], random_state=0))
        fair_seconds += plain + (booted - plain) * args.n_boot / args.fairlearn_boot
    rows.append((f"analysis: fairlearn n_boot={args.n_boot} (extrapolated from {args.fairlearn_boot})", total,
                 total / fair_seconds, fair_seconds, "same per-prompt table, same metrics"))

    print(f"{'stage':<58}{'measured on':>12}{'per s':>10}{'s for ' + str(total):>12}  note")
    for name, n, per_s, seconds, note in rows:
        print(f"{name:<58}{n:>12}{per_s:>10.1f}{seconds:>12.1f}  {note}")
    scoring = total / ours + sum(r[3] for r in rows if r[0].startswith(("regard", "group")))
    print(f"ours vs detoxify-1by1: {ours / one_rate:.2f}x; ours vs detoxify-batch: {ours / batch_rate:.2f}x")
    print(f"whole scoring stage for {total} completions (toxicity + regard + mentions), extrapolated: "
          f"{scoring / 60:.1f} min on this machine")
    print(f"analysis: our bootstrap {fair_seconds / rows[-2][3]:.0f}x faster than fairlearn's n_boot")


if __name__ == "__main__":
    main()
