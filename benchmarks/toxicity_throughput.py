"""Toxicity scoring throughput: our ToxicityDetector against detoxify's own ``predict``, in one run.

Model: the detoxify ``original`` architecture (bert-base-uncased, 110M parameters) with random weights, built
locally as a detoxify checkpoint (same cost as the released weights; no download). Its WordPiece vocabulary is
built from the BOLD prompts in ../shared/data (real English from Wikipedia), and the texts are BOLD sentences
joined to 5-400 words each.

Methods, each in its own process so peak memory (max RSS) is its own:
- ``ours``: ``ToxicityDetector.score`` on the whole list (length-bucketed batches, inference_mode, windows of
  512 tokens for longer texts instead of truncation, precision "auto": bf16 only where the CPU has bf16 units);
- ``ours-int8``: the same with ``precision="int8"`` (dynamic int8 quantization of the linear layers);
- ``ours-bf16``: the same with bf16 autocast forced (only meaningful where the CPU has bf16 units);
- ``detoxify-1by1``: ``Detoxify(...).predict([text])`` once per text (what most integrations do);
- ``detoxify-all``: one ``Detoxify(...).predict(texts)`` on the whole list: one padded batch (about 18 GB of
  memory for 1,000 texts), so it runs on the first ``--all-cap`` texts only.

Batch-1 latency (p50/p95) is measured for ``ours`` and ``detoxify-1by1`` on the first ``--latency-n`` texts.

Run: .venv/bin/python benchmarks/toxicity_throughput.py [--n 1000] [--all-cap 200] [--skip ours-bf16]
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import statistics
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BOLD = REPO.parent / "shared" / "data" / "bold"
WORK = REPO / "benchmarks" / "results" / "toxicity-bert-base"
METHODS = ("ours", "ours-int8", "ours-bf16", "detoxify-1by1", "detoxify-all")
CLASSES = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]


def bold_sentences() -> list[str]:
    out = []
    for path in sorted(BOLD.glob("*.json")):
        for group in json.loads(path.read_text(encoding="utf-8")).values():
            for prompts in group.values():
                out += [p.strip() for p in prompts if p.strip()]
    return out


def make_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` texts of 5-400 words (uniform), each made of whole BOLD sentences, cut to the word count."""
    rng = random.Random(seed)
    sentences = bold_sentences()
    texts = []
    for _ in range(n):
        target = rng.randint(5, 400)
        words: list[str] = []
        while len(words) < target:
            words += rng.choice(sentences).split()
        texts.append(" ".join(words[:target]))
    return texts


def build_checkpoint() -> tuple[Path, Path]:
    """bert-base-uncased architecture, random weights, saved as a detoxify checkpoint + local config folder."""
    checkpoint, config_dir = WORK / "toxic_original_random.ckpt", WORK / "config"
    if checkpoint.is_file():
        return checkpoint, config_dir
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    config_dir.mkdir(parents=True, exist_ok=True)
    counts = Counter(t for s in bold_sentences() for t in re.findall(r"[a-z]+|[0-9]+|[^\sa-z0-9]", s.lower()))
    chars = sorted({c for word in counts for c in word})
    base = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *chars, *(f"##{c}" for c in chars)]
    words = [w for w, _ in counts.most_common() if w not in set(base)][: 30522 - len(base)]
    vocab = base + words + [f"[unused{i}]" for i in range(30522 - len(base) - len(words))]
    (config_dir / "vocab.txt").write_text("\n".join(vocab) + "\n", encoding="utf-8")
    BertTokenizer(vocab_file=str(config_dir / "vocab.txt"), model_max_length=512).save_pretrained(config_dir)
    config = BertConfig(num_labels=len(CLASSES))  # the bert-base-uncased architecture
    config.save_pretrained(config_dir)
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    torch.save({"config": {"arch": {"args": {"model_type": str(config_dir),
                                             "model_name": "BertForSequenceClassification",
                                             "tokenizer_name": "BertTokenizer", "num_classes": len(CLASSES)}},
                           "dataset": {"args": {"classes": CLASSES}}},
                "state_dict": model.state_dict()}, checkpoint)
    return checkpoint, config_dir


def worker(method: str, n: int, all_cap: int, latency_n: int) -> dict:
    """Runs one method in this process and returns its measurements."""
    checkpoint, config_dir = build_checkpoint()
    texts = make_texts(n)
    if method == "detoxify-all":
        texts = texts[:all_cap]
    result: dict = {"method": method, "texts": len(texts)}
    if method.startswith("ours"):
        from detectors.toxicity import ToxicityDetector

        detector = ToxicityDetector(checkpoint=checkpoint, config_dir=config_dir,
                                    precision={"ours-bf16": "bfloat16", "ours-int8": "int8"}.get(method, "auto"))
        detector.score(["warm up"])
        run_all = detector.score
        run_one = lambda t: detector.score([t])  # noqa: E731
        result["windows"] = None
    else:
        from detoxify import Detoxify

        model = Detoxify(checkpoint=str(checkpoint))
        model.predict(["warm up"])
        run_all = model.predict if method == "detoxify-all" else (lambda ts: [model.predict([t]) for t in ts])
        run_one = lambda t: model.predict([t])  # noqa: E731
    start = time.perf_counter()
    out = run_all(texts)
    result["seconds"] = time.perf_counter() - start
    result["texts_per_s"] = len(texts) / result["seconds"]
    if method == "ours":
        result["windows"] = sum(s[0].details.get("windows", 1) for s in out)
    if method in ("ours", "ours-int8", "detoxify-1by1"):
        lat = []
        for t in texts[:latency_n]:
            s = time.perf_counter()
            run_one(t)
            lat.append((time.perf_counter() - s) * 1000)
        result["latency_ms_p50"] = statistics.median(lat)
        result["latency_ms_p95"] = statistics.quantiles(lat, n=20)[-1]
    if method.startswith("ours"):
        result["scores"] = [[s.value for s in row] for row in out[:50]]
    elif method == "detoxify-1by1":
        result["scores"] = [[r[c] for c in ("toxicity", "severe_toxicity", "obscene", "threat", "insult",
                                              "identity_attack")] for r in out[:50]]
    result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1000, help="number of texts (default 1000)")
    parser.add_argument("--all-cap", type=int, default=200, help="texts given to the one big predict call")
    parser.add_argument("--latency-n", type=int, default=50, help="texts timed one by one for latency")
    parser.add_argument("--skip", nargs="*", default=[], choices=METHODS)
    parser.add_argument("--worker", choices=METHODS, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.all_cap, args.latency_n)))
        return
    build_checkpoint()
    texts = make_texts(args.n)
    from core.device import bf16_is_fast

    print(f"{len(texts)} texts, {sum(len(t.split()) for t in texts)} words; model: bert-base (detoxify original "
          f"architecture), random weights; CPU has fast bf16: {bf16_is_fast('cpu')} (precision auto uses it)")
    results = {}
    for method in METHODS:
        if method in args.skip:
            continue
        print(f"running {method} ...", file=sys.stderr)
        proc = subprocess.run([sys.executable, __file__, "--worker", method, "--n", str(args.n), "--all-cap",
                               str(args.all_cap), "--latency-n", str(args.latency_n)],
                              capture_output=True, text=True, cwd=REPO)
        if proc.returncode:
            sys.exit(f"{method} failed:\n{proc.stderr[-3000:]}")
        results[method] = json.loads(proc.stdout.strip().splitlines()[-1])
    report(results)


def report(results: dict) -> None:
    base = results.get("detoxify-1by1")
    print(f"{'method':<15}{'texts':>7}{'texts/s':>10}{'vs 1by1':>9}{'p50 ms':>9}{'p95 ms':>9}{'peak MB':>9}")
    for name, r in results.items():
        ratio = f"{r['texts_per_s'] / base['texts_per_s']:.2f}x" if base else "-"
        p50 = f"{r['latency_ms_p50']:.0f}" if "latency_ms_p50" in r else "-"
        p95 = f"{r['latency_ms_p95']:.0f}" if "latency_ms_p95" in r else "-"
        print(f"{name:<15}{r['texts']:>7}{r['texts_per_s']:>10.2f}{ratio:>9}{p50:>9}{p95:>9}{r['peak_rss_mb']:>9.0f}")
    if "ours" in results and "detoxify-all" in results:
        print(f"ours vs one big predict: {results['ours']['texts_per_s'] / results['detoxify-all']['texts_per_s']:.2f}x"
              f" throughput, {results['ours']['peak_rss_mb'] / results['detoxify-all']['peak_rss_mb']:.2f}x memory")
    if "ours" in results:
        print(f"ours scored {results['ours']['windows']} windows for {results['ours']['texts']} texts "
              "(texts over 512 tokens are windowed, not truncated)")
    if "ours" in results and base:
        diffs = [abs(a - b) for ra, rb in zip(results["ours"]["scores"], base["scores"]) for a, b in zip(ra, rb)]
        print(f"max |ours - detoxify| over the first 50 texts (long ones differ by design): {max(diffs):.2e}")
    for variant in ("ours-int8", "ours-bf16"):
        if variant in results and "ours" in results:
            diffs = [abs(a - b) for ra, rb in zip(results["ours"]["scores"], results[variant]["scores"])
                     for a, b in zip(ra, rb)]
            print(f"max |{variant} - ours| score difference over the first 50 texts: {max(diffs):.4f}")


if __name__ == "__main__":
    main()
