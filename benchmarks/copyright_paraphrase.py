"""Paraphrases of protected works: what MinHash (verbatim reuse) and the sentence-embedding match each catch.

    python benchmarks/copyright_paraphrase.py --encoder "$(guard models path minilm)" \
        [--smollm2 "$(guard models path smollm2)"] [--unrelated 2000]

Works: the openings of 16 public-domain texts (``benchmarks/data/paraphrases.json``), registered with the
sentence encoder. Texts scored against them:

- ``verbatim``: each opening itself; ``edited``: one word in ten replaced and the case changed (what MinHash is
  for);
- ``paraphrase (hand)``: a rewording written by hand for this benchmark, sentence by sentence;
- ``paraphrase (SmolLM2)`` (with ``--smollm2``): SmolLM2-135M-Instruct asked to rewrite each opening in its own
  words (greedy decoding, so the run is reproducible);
- ``same topic``: a text written by hand on the work's subject that is not a paraphrase (the hard negatives);
- ``unrelated``: paragraphs of human text (BOLD Wikipedia sentences and HolisticBias sentences, ~80 words).

Reported per group: the share at or above the thresholds (``near_duplicate`` 0.8 as the tests' policy,
``paraphrase`` at the highest unrelated score and at 0.7/0.8), the median scores, whether the named work is the
right one, and the time per text of each check.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DATA = REPO / "benchmarks" / "data" / "paraphrases.json"


def passages() -> list[dict]:
    items = json.loads(DATA.read_text(encoding="utf-8"))["passages"]
    for p in items:
        if "original_file" in p:
            p["original"] = (REPO / p.pop("original_file")).read_text(encoding="utf-8")
    return items


def edited(text: str, rng: random.Random) -> str:
    words = text.split()
    for i in range(0, len(words), 10):
        words[i] = rng.choice(["and", "then", "so", "very", "quite", "indeed"])
    return " ".join(words).lower()


def smollm2_paraphrases(folder: str, originals: list[str]) -> list[str]:
    from generators.transformers_text import TransformersText

    gen = TransformersText(folder, device="cpu", dtype="float32", batch_size=len(originals))
    asks = [f"Rewrite the following passage in your own words, keeping its meaning:\n\n{o}" for o in originals]
    return [g.content for g in gen.generate(asks, do_sample=False, max_new_tokens=200)]


def unrelated(data: Path, n: int, seed: int = 0) -> list[str]:
    from benchmarks.text_watermark_real import human_passages

    return human_passages(data, n, words=80, seed=seed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", required=True, help="sentence-transformers folder (guard models path minilm)")
    parser.add_argument("--smollm2", help="SmolLM2 folder, to add machine paraphrases")
    parser.add_argument("--unrelated", type=int, default=2000)
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data"))
    parser.add_argument("--out", default="copyright_paraphrase.json")
    args = parser.parse_args()

    from detectors.copyright import CopyrightDetector, WorksStore
    from detectors.sentence_encoder import SentenceEncoder

    items = passages()
    rng = random.Random(0)
    groups: dict[str, list[tuple[str, str | None]]] = {  # (text, the work it comes from)
        "verbatim": [(p["original"], p["name"]) for p in items],
        "edited": [(edited(p["original"], rng), p["name"]) for p in items],
        "paraphrase (hand)": [(p["paraphrase"], p["name"]) for p in items],
    }
    if args.smollm2:
        start = time.time()
        made = smollm2_paraphrases(args.smollm2, [p["original"] for p in items])
        print(f"SmolLM2 paraphrases in {time.time() - start:.0f}s", file=sys.stderr)
        groups["paraphrase (SmolLM2)"] = [(t, p["name"]) for t, p in zip(made, items)]
    groups["same topic"] = [(p["topic"], None) for p in items]
    groups["unrelated"] = [(t, None) for t in unrelated(Path(args.data), args.unrelated)]

    encoder = SentenceEncoder(args.encoder)
    with tempfile.TemporaryDirectory() as tmp:
        store = WorksStore(Path(tmp) / "works", create=True)
        start = time.time()
        for p in items:
            store.add_text(p["name"], p["original"], encoder=encoder)
        print(f"registered {len(items)} works with embeddings in {time.time() - start:.1f}s", file=sys.stderr)
        store.close()
        minhash = CopyrightDetector(str(Path(tmp) / "works"))
        semantic = CopyrightDetector(str(Path(tmp) / "works"), semantic_model=args.encoder)
        semantic.score(["warm up the encoder with one short text of a dozen words or so, no more"])
        rows: dict[str, list[dict]] = {}
        timing = {"minhash": 0.0, "semantic": 0.0, "texts": 0}
        for name, texts in groups.items():
            start = time.time()
            plain = minhash.score([t for t, _ in texts])
            timing["minhash"] += time.time() - start
            start = time.time()
            sem = semantic.score([t for t, _ in texts])
            timing["semantic"] += time.time() - start
            timing["texts"] += len(texts)
            rows[name] = []
            for (text, work), a, b in zip(texts, plain, sem):
                s = {x.label: x for x in b}
                para = s["paraphrase"]
                rows[name].append({
                    "words": len(text.split()),
                    "verbatim": {x.label: x for x in a}["verbatim"].value,
                    "near_duplicate": {x.label: x for x in a}["near_duplicate"].value,
                    "paraphrase": para.value,
                    "right_work": None if work is None else para.details.get("work") == work,
                })
    worst = max(r["paraphrase"] for r in rows["unrelated"])
    result = {"rows": rows, "timing": timing, "unrelated_max": worst, "encoder": encoder.model_id}
    Path(args.out).write_text(json.dumps(result, indent=1))
    report(result)


def report(result: dict) -> None:
    worst = result["unrelated_max"]
    print(f"encoder: {result['encoder']}; highest paraphrase score on unrelated text: {worst:.3f}")
    print(f"| texts | n | words (median) | near_duplicate >= 0.8 | paraphrase > {worst:.2f} (max unrelated) | "
          "paraphrase >= 0.7 | paraphrase >= 0.8 | median near_duplicate | median paraphrase | right work named |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, rows in result["rows"].items():
        n = len(rows)

        def share(pred) -> str:
            return f"{sum(map(pred, rows))}/{n}"

        right = [r["right_work"] for r in rows if r["right_work"] is not None]
        print(f"| {name} | {n} | {statistics.median(r['words'] for r in rows):.0f} | "
              f"{share(lambda r: r['near_duplicate'] >= 0.8)} | {share(lambda r: r['paraphrase'] > worst)} | "
              f"{share(lambda r: r['paraphrase'] >= 0.7)} | {share(lambda r: r['paraphrase'] >= 0.8)} | "
              f"{statistics.median(r['near_duplicate'] for r in rows):.3f} | "
              f"{statistics.median(r['paraphrase'] for r in rows):.3f} | "
              + (f"{sum(right)}/{len(right)}" if right else "") + " |")
    t = result["timing"]
    print(f"time per text: MinHash + verbatim {1000 * t['minhash'] / t['texts']:.1f} ms, with the sentence "
          f"encoder {1000 * t['semantic'] / t['texts']:.1f} ms ({t['texts']} texts)")


if __name__ == "__main__":
    main()
