"""Text watermark power and cost on a real model: SmolLM2-135M-Instruct answering varied prompts.

Two steps, so the generation can run on a GPU when one is at hand and the analysis anywhere:

``generate`` samples answers from SmolLM2 (chat template) to varied prompts under several conditions: no mark,
the guard's keyed green-list watermark (transformers' KGW processor, greenlist 0.25, lefthash, as the policy sets
it) at bias 2 and 3, and SynthID-Text (transformers' tournament-sampling processor, 30 keys, 5-grams). Every
sample is forced to exactly ``--tokens`` new tokens (EOS suppressed; the prompts ask for long answers, so this
rarely bites). It also records each sample's perplexity under the unwatermarked model (the watermark's quality
cost), computed in float32 on the same device. Output: one JSON file of token ids and perplexities.

``analyse`` (CPU) re-tokenizes every decoded answer, as a detector sees text, and scores it:
- KGW with the guard's detector (secret key, each (context, token) pair counted once) and, side by side, with
  transformers' own ``WatermarkDetector`` (the published key, repeated pairs counted) on the same samples;
- SynthID with the untrained mean-of-g-values score (the Bayesian detector needs training data and time, see
  docs/evidence.md);
- the false-positive side from human text: >= 10,000 passages of BOLD Wikipedia sentences and HolisticBias
  sentences joined into paragraphs, scored the same way; thresholds at empirical FPR 1e-3 and 1e-5 come from
  these scores (1e-5 from 10^4 passages is the maximum score: no passage may exceed it), next to the z-test's
  own thresholds (3.09 and 4.26);
- TPR at 25, 50, 100 and 200 tokens, and at 200 tokens after 10/20/30% of the words are replaced by random words
  from the human corpus (a crude paraphrase attack that keeps the length).

Run:
  python benchmarks/text_watermark_real.py generate --model "$(guard models path smollm2)" --samples 512 --out gen.json
  python benchmarks/text_watermark_real.py analyse gen.json --passages 10000
"""

from __future__ import annotations

import argparse
import json
import math
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
SECRET = bytes(range(32))
SYNTHID_KEYS = [654, 400, 836, 123, 340, 443, 597, 160, 57, 29, 590, 639, 13, 715, 468, 990, 966, 226, 324, 585,
                118, 504, 421, 521, 129, 669, 732, 225, 90, 960]
SYNTHID_NGRAM = 5
LENGTHS = (25, 50, 100, 200)
ATTACKS = (0.1, 0.2, 0.3)
Z_AT_FPR = {"1e-3": 3.0902, "1e-5": 4.2649}

TASKS = [
    "Write a detailed essay of about 300 words on {t}.",
    "Explain {t} to a curious teenager, in several paragraphs.",
    "Tell a long story in which {t} plays a central part.",
    "What are the advantages and disadvantages of {t}? Discuss each at length.",
    "Write a blog post giving practical advice about {t}.",
    "Describe the history of {t} in detail.",
    "Write a letter to a friend about {t}, with plenty of detail.",
    "Give a thorough step-by-step guide related to {t}.",
    "Argue for and against the claim that {t} will matter more in the future.",
    "Write a news report about a recent event involving {t}.",
]
TOPICS = [
    "lighthouses", "bees", "public libraries", "electric cars", "volcanoes", "chess", "bread baking", "rainforests",
    "the printing press", "marathon running", "recycling", "solar panels", "jazz music", "the Roman Empire",
    "smartphones", "vaccines", "coffee", "space telescopes", "city parks", "learning a new language", "bicycles",
    "the ocean tides", "gardening", "earthquakes", "classical ballet", "video games", "honey", "trains",
    "the internet", "photography", "mountain climbing", "wind turbines", "board games", "tea ceremonies",
    "the human heart", "renewable energy", "museums", "street food", "penguins", "clocks", "bridges", "forests",
    "remote work", "poetry", "the moon landing", "coral reefs", "robots", "the postal service", "kites",
    "water purification", "castles", "hiking", "sleep", "friendship", "ancient Egypt", "weather forecasting",
    "fountain pens", "cheese making", "dinosaurs", "the Olympic Games", "migrating birds", "origami",
]


@dataclass(frozen=True)
class Settings:
    """The fields of the policy's ``watermark.text`` that key and shape the mark (plain, so generation needs no
    pydantic where it runs)."""

    bias: float = 2.0
    greenlist_ratio: float = 0.25
    seeding_scheme: str = "lefthash"
    context_width: int = 1
    key_id: str = "default"
    z_threshold: float = 4.0


def prompts(n: int, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    grid = [task.format(t=topic) for task in TASKS for topic in TOPICS]
    rng.shuffle(grid)
    return [grid[i % len(grid)] for i in range(n)]


# -- generation ---------------------------------------------------------------------------------------------


def conditions() -> list[tuple[str, dict, float]]:
    """(name, watermark, temperature), most important first (a run cut short keeps those)."""
    return [("none@T0.7", {}, 0.7), ("kgw-d2@T0.7", {"kgw": 2.0}, 0.7), ("none@T1.0", {}, 1.0),
            ("kgw-d2@T1.0", {"kgw": 2.0}, 1.0), ("kgw-d3@T0.7", {"kgw": 3.0}, 0.7),
            ("synthid@T0.7", {"synthid": True}, 0.7)]


def generate(args) -> None:
    import torch

    from generators.transformers_text import TransformersText
    from guard.watermark.text import generation_config

    torch.backends.cuda.matmul.allow_tf32 = False
    gen = TransformersText(args.model, device=args.device, dtype="float32", batch_size=args.batch)
    tok, model = gen.tokenizer, gen.model
    items = prompts(args.samples)
    out = {"model": gen.info.to_dict(), "device": str(model.device), "tokens": args.tokens, "prompts": items,
           "top_p": 0.95, "conditions": {}}
    if model.device.type == "cuda":
        out["gpu"] = torch.cuda.get_device_name(0)
    path = Path(args.out)
    for name, mark, temperature in conditions():
        if args.only and name not in args.only:
            continue
        hooks = None
        if "kgw" in mark:
            hooks = {"text_watermark": generation_config(Settings(bias=mark["kgw"]), SECRET)}
        elif "synthid" in mark:
            from transformers import SynthIDTextWatermarkingConfig

            hooks = {"text_watermark": SynthIDTextWatermarkingConfig(keys=SYNTHID_KEYS, ngram_len=SYNTHID_NGRAM)}
        start = time.time()
        ids, ppl = [], []
        for begin in range(0, len(items), args.batch):
            chunk = items[begin:begin + args.batch]
            enc = gen._encode(chunk, True)
            with torch.inference_mode():
                torch.manual_seed(args.seed + begin)
                kwargs = {"watermarking_config": hooks["text_watermark"]} if hooks else {}
                seqs = model.generate(**enc, do_sample=True, temperature=temperature, top_p=0.95, top_k=0,
                                      max_new_tokens=args.tokens, min_new_tokens=args.tokens,
                                      pad_token_id=tok.pad_token_id, **kwargs)
                new = seqs[:, enc["input_ids"].shape[1]:]
                ppl += _perplexity(model, enc, new)
            ids += new.tolist()
        out["conditions"][name] = {"temperature": temperature, "watermark": mark, "ids": ids, "ppl": ppl,
                                   "seconds": round(time.time() - start, 1)}
        print(f"{name}: {len(ids)} x {args.tokens} tokens in {time.time() - start:.0f}s", file=sys.stderr)
        path.write_text(json.dumps(out))  # after every condition: a run cut short keeps what it finished


def _perplexity(model, enc, new) -> list[float]:
    """exp(mean NLL) of each continuation given its prompt, under the model without any logits processor."""
    import torch

    ids = torch.cat([enc["input_ids"], new], dim=1)
    mask = torch.cat([enc["attention_mask"], torch.ones_like(new)], dim=1)
    positions = (mask.cumsum(-1) - 1).clamp(min=0)  # prompts are left-padded, as generate() positions them
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions).logits
    logits = logits[:, enc["input_ids"].shape[1] - 1:-1].float()
    nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), new, reduction="none").mean(dim=1)
    return torch.exp(nll).tolist()


# -- analysis -----------------------------------------------------------------------------------------------


def human_passages(data: Path, n: int, words: int = 170, seed: int = 0) -> list[str]:
    """Paragraphs of ~``words`` words (about 200 SmolLM2 tokens) of human text: BOLD's Wikipedia sentence
    starts and HolisticBias template sentences, shuffled and joined."""
    from guard.bias.prompts import load_holistic_bias

    bold = [p for f in sorted((data / "bold").glob("*_prompt.json"))
            for groups in json.loads(f.read_text()).values() for people in groups.values() for p in people]
    hb = [p.text for p in load_holistic_bias(data / "holistic_bias", per_group=None, seed=seed).prompts]
    rng = random.Random(seed)
    rng.shuffle(bold)
    rng.shuffle(hb)
    pool = bold + hb[:len(bold)]  # about half each
    rng.shuffle(pool)
    out, i = [], 0
    while len(out) < n:
        para: list[str] = []
        while sum(len(s.split()) for s in para) < words:
            para.append(pool[i % len(pool)])
            i += 1
        out.append(" ".join(para))
    return out


def attack(text: str, frac: float, vocab: list[str], rng: random.Random) -> str:
    words = text.split()
    for pos in rng.sample(range(len(words)), int(round(frac * len(words)))):
        words[pos] = rng.choice(vocab)
    return " ".join(words)


class KgwScores:
    """z-scores of a token sequence at every length in ``LENGTHS`` from one pass, for the guard's detector
    (each (previous token, token) pair counted once) and transformers' default (every pair counted).

    Green lists come from transformers' own processor as the guard builds it (keyed, drawn on the CPU), cached
    per previous token as bit sets: with lefthash and a context of one token the green list depends on that
    token alone. The detectors themselves re-draw a green list for every (context, token) pair they have not
    cached, which costs minutes per thousand passages on two shared cores; ``check`` compares this class with
    them, z for z, on a subset of every run's texts.
    """

    def __init__(self, processor, vocab: int, ratio: float) -> None:
        self.processor, self.vocab, self.ratio = processor, vocab, ratio
        self.bits: dict[int, object] = {}

    def _green(self, prev: int, tok: int) -> int:
        import numpy as np
        import torch

        bits = self.bits.get(prev)
        if bits is None:
            mask = np.zeros(self.vocab, dtype=bool)
            mask[self.processor._get_greenlist_ids(torch.tensor([prev])).numpy()] = True
            bits = self.bits[prev] = np.packbits(mask)
        return int(bits[tok >> 3] >> (7 - (tok & 7))) & 1

    def z(self, ids: list[int]) -> dict[str, dict[int, float]]:
        """z at each length in ``LENGTHS`` (the whole sequence where it is shorter)."""
        ends = {min(n, len(ids)) for n in LENGTHS}
        seen: set[tuple[int, int]] = set()
        at: dict[int, tuple[float, float]] = {}
        green = green_unique = unique = 0
        for i, pair in enumerate(zip(ids[:-1], ids[1:]), start=2):  # i tokens seen after this pair
            g = self._green(*pair)
            green += g
            if pair not in seen:
                seen.add(pair)
                unique += 1
                green_unique += g
            if i in ends:
                at[i] = (self._zscore(green_unique, unique), self._zscore(green, i - 1))
        pick = {n: at.get(min(n, len(ids)), (0.0, 0.0)) for n in LENGTHS}
        return {"kgw": {n: v[0] for n, v in pick.items()}, "kgw-transformers": {n: v[1] for n, v in pick.items()}}

    def _zscore(self, green: int, total: int) -> float:
        return (green - self.ratio * total) / math.sqrt(total * self.ratio * (1 - self.ratio)) if total else 0.0


class SynthIdScores:
    """Mean g-value over the scored (non-repeated) 5-gram contexts and all 30 tournament layers, as a z-score
    against the unwatermarked expectation 0.5 (each g is a fair coin without the mark); every length from one
    pass (the repetition mask of a prefix is the prefix of the mask)."""

    def __init__(self) -> None:
        from transformers.generation.logits_process import SynthIDTextWatermarkLogitsProcessor

        self.proc = SynthIDTextWatermarkLogitsProcessor(
            ngram_len=SYNTHID_NGRAM, keys=SYNTHID_KEYS, sampling_table_size=2**16, sampling_table_seed=0,
            context_history_size=1024, device="cpu")

    def z(self, ids: list[int]) -> dict[int, float]:
        import torch

        if len(ids) <= SYNTHID_NGRAM:
            return {n: 0.0 for n in LENGTHS}
        x = torch.tensor([ids])
        g = self.proc.compute_g_values(x)[0].float()  # (len - ngram + 1, depth)
        mask = self.proc.compute_context_repetition_mask(x)[0].float()
        depth = g.shape[1]
        sums = torch.cumsum(g.sum(1) * mask, 0)
        counts = torch.cumsum(mask, 0) * depth
        out = {}
        for n in LENGTHS:
            k = min(n - SYNTHID_NGRAM, len(mask) - 1)  # scored positions within the first n tokens
            c = float(counts[k])
            out[n] = float((sums[k] / c - 0.5) / (0.5 / math.sqrt(c))) if c else 0.0
        return out


def analyse(args) -> None:
    import numpy as np
    from transformers import AutoConfig, AutoTokenizer

    from guard.watermark.text import generation_config

    gen = json.loads(Path(args.generated).read_text())
    model_dir = args.tokenizer or gen["model"]["model_id"]
    tok = AutoTokenizer.from_pretrained(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    start = time.time()
    human = human_passages(Path(args.data), args.passages)
    vocab = sorted({w for p in human[:2000] for w in p.split() if w.isalpha()})
    human_ids = [tok(p, add_special_tokens=False)["input_ids"][:max(LENGTHS)] for p in human]
    print(f"{len(human)} human passages, median {int(np.median([len(h) for h in human_ids]))} tokens "
          f"({time.time() - start:.0f}s)", file=sys.stderr)
    settings = Settings()
    kgw = KgwScores(generation_config(settings, SECRET).construct_processor(config.vocab_size, "cpu"),
                    config.vocab_size, settings.greenlist_ratio)
    synthid = SynthIdScores()

    def scores(ids: list[int]) -> dict[str, dict[int, float]]:
        return {**kgw.z(ids), "synthid": synthid.z(ids)}

    start = time.time()
    null_rows = [scores(h) for h in human_ids]
    null = {k: {n: np.array([r[k][n] for r in null_rows]) for n in LENGTHS} for k in null_rows[0]}
    print(f"human passages scored ({time.time() - start:.0f}s)", file=sys.stderr)
    meta = {k: v for k, v in gen.items() if k not in ("conditions", "prompts")}
    result = {"passages": len(human), "generation": meta, "rows": [], "null": {}, "check": {}}
    for name in null:
        for n in LENGTHS:
            s = np.sort(null[name][n])
            result["null"][f"{name}@{n}"] = {"thr_1e-3": float(s[-int(len(s) * 1e-3) - 1]), "max": float(s[-1]),
                                              "over_z_1e-3": float((s > Z_AT_FPR["1e-3"]).mean()),
                                              "over_z_1e-5": float((s > Z_AT_FPR["1e-5"]).mean())}
    rng = random.Random(3)
    checked: list[list[int]] = human_ids[:args.check]
    for cname, cond in gen["conditions"].items():
        texts = [tok.decode(ids, skip_special_tokens=True) for ids in cond["ids"]]
        seqs = [tok(t, add_special_tokens=False)["input_ids"][:max(LENGTHS)] for t in texts]
        checked += seqs[:args.check // 4]
        rows = [scores(s) for s in seqs]
        attacked = {f: [scores(tok(attack(t, f, vocab, rng), add_special_tokens=False)["input_ids"][:max(LENGTHS)])
                        for t in texts] for f in ATTACKS}
        kinds = ["kgw", "kgw-transformers"] if "kgw" in cname or cname.startswith("none") else []
        kinds += ["synthid"] if "synthid" in cname or cname.startswith("none") else []
        for kind in kinds:
            row = {"condition": cname, "detector": kind, "n": len(seqs),
                   "ppl_median": float(np.median(cond["ppl"])), "ppl_mean": float(np.mean(cond["ppl"]))}
            for n in LENGTHS:
                row[f"{n}"] = _rates(np.array([r[kind][n] for r in rows]), null[kind][n])
            for frac in ATTACKS:
                z = np.array([r[kind][max(LENGTHS)] for r in attacked[frac]])
                row[f"200-{int(frac * 100)}%"] = _rates(z, null[kind][max(LENGTHS)])
            result["rows"].append(row)
        print(f"{cname} scored", file=sys.stderr)
    result["check"] = check(checked, tok, config, kgw)
    Path(args.out).write_text(json.dumps(result, indent=1))
    report(result)


def check(seqs: list[list[int]], tok, config, kgw: KgwScores) -> dict:
    """The largest difference between ``KgwScores`` and the real detectors (the guard's, and transformers'
    ``WatermarkDetector`` with the same key and its defaults) over ``seqs``, at every length."""
    import torch
    from transformers import WatermarkDetector, WatermarkingConfig

    from guard.watermark.text import TextWatermarkDetector, hashing_key

    ours = TextWatermarkDetector(tokenizer=tok, model_config=config, settings=Settings(), secret=SECRET)
    peer = WatermarkDetector(model_config=config, device="cpu", watermarking_config=WatermarkingConfig(
        greenlist_ratio=0.25, bias=2.0, hashing_key=hashing_key(SECRET, "default"), seeding_scheme="lefthash",
        context_width=1))
    worst = {"kgw": 0.0, "kgw-transformers": 0.0}
    start = time.time()
    for ids in seqs:
        fast = kgw.z(ids)
        for n in LENGTHS:
            if len(ids) < n:
                continue
            worst["kgw"] = max(worst["kgw"], abs(ours.detect(ids[:n]).z_score - fast["kgw"][n]))
            z = float(peer(torch.tensor([ids[:n]]), return_dict=True).z_score[0])
            worst["kgw-transformers"] = max(worst["kgw-transformers"], abs(z - fast["kgw-transformers"][n]))
    print(f"checked {len(seqs)} sequences against the detectors ({time.time() - start:.0f}s): {worst}",
          file=sys.stderr)
    return {"sequences": len(seqs), "max_abs_z_difference": worst}


def _rates(scores, null) -> dict:
    """Detection rates: at empirical thresholds from human text (FPR 1e-3: the 99.9th percentile; with 10^4
    passages, 'above the maximum' is FPR 0 of 10^4) and at the z-test's thresholds."""
    import numpy as np

    s = np.sort(null)
    thr3 = s[-int(len(s) * 1e-3) - 1]
    return {"emp_1e-3": float((scores > thr3).mean()), "emp_max": float((scores > s[-1]).mean()),
            "z_1e-3": float((scores > Z_AT_FPR["1e-3"]).mean()), "z_1e-5": float((scores > Z_AT_FPR["1e-5"]).mean()),
            "median": float(np.median(scores))}


def report(result: dict) -> None:
    print(f"human passages: {result['passages']}; generation: {result['generation']}")
    cols = [str(n) for n in LENGTHS] + [f"200-{int(f * 100)}%" for f in ATTACKS]
    print("| condition | detector | n | " + " | ".join(c + (" tok" if c.isdigit() else "") for c in cols)
          + " | PPL median |")
    print("|---|---|---|" + "---|" * len(cols) + "---|")
    for row in result["rows"]:
        cells = [f"{row[c]['emp_1e-3']:.2f} / {row[c]['emp_max']:.2f}" for c in cols]
        print(f"| {row['condition']} | {row['detector']} | {row['n']} | " + " | ".join(cells)
              + f" | {row['ppl_median']:.2f} |")
    print("cells: detection rate at the empirical FPR 1e-3 threshold / above the human maximum (FPR < 1e-4 over "
          f"{result['passages']} passages)")
    print("| detector | length | 99.9th pct of human scores | max | share > 3.09 | share > 4.26 |")
    print("|---|---|---|---|---|---|")
    for key, v in result["null"].items():
        name, n = key.split("@")
        print(f"| {name} | {n} | {v['thr_1e-3']:.2f} | {v['max']:.2f} | {v['over_z_1e-3']:.5f} | "
              f"{v['over_z_1e-5']:.5f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="step", required=True)
    g = sub.add_parser("generate")
    g.add_argument("--model", required=True, help="SmolLM2 folder (guard models path smollm2) or .gguf file")
    g.add_argument("--samples", type=int, default=512)
    g.add_argument("--tokens", type=int, default=200)
    g.add_argument("--batch", type=int, default=64)
    g.add_argument("--device", default="auto")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--only", nargs="*", help="condition names to run (default: all)")
    g.add_argument("--out", required=True)
    a = sub.add_parser("analyse")
    a.add_argument("generated")
    a.add_argument("--passages", type=int, default=10000)
    a.add_argument("--data", default=str(REPO.parent / "shared" / "data"), help="folder with bold/ and holistic_bias/")
    a.add_argument("--tokenizer", help="folder with SmolLM2's tokenizer (default: the generation's model)")
    a.add_argument("--check", type=int, default=200, help="human passages checked against the real detectors "
                   "(and a quarter as many texts of each condition)")
    a.add_argument("--out", default="text_watermark_real.json")
    args = parser.parse_args()
    generate(args) if args.step == "generate" else analyse(args)


if __name__ == "__main__":
    main()
