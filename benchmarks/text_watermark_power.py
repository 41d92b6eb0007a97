"""Detection power and perplexity cost of the text watermark, on a small language model trained here.

No pretrained language model can be downloaded in this environment, and a random-weight model has a flat
next-token distribution (the easiest case for a watermark and a meaningless perplexity). So this script trains
a small GPT-2 (2 layers, 128 wide, byte-level BPE of 4,096 tokens) for a few minutes on local English text: the
BOLD Wikipedia prompts in ../shared/data and the package descriptions of the installed Python packages. It is a
weak model (its held-out perplexity is printed) but a real one: its next-token distributions have the uneven,
context-dependent entropy the watermark has to work with. Numbers from a larger model will differ (lower
entropy per token means less power at the same length).

Measured, for each watermark strength (bias delta; greenlist ratio 0.25, lefthash, the policy defaults):
- TPR at FPR 1e-3 and 1e-5 (one-sided z thresholds 3.09 and 4.26) after 50, 100 and 200 generated tokens;
- TPR at 200 tokens after 10/20/30% of the tokens are replaced by uniformly random tokens;
- the empirical false-positive rate on unwatermarked samples, and the perplexity of the samples under the
  unwatermarked model (the watermark's quality cost).

Samples are pure multinomial sampling (temperature 1, no top-k/top-p), 200 new tokens, from held-out prompts;
detection uses the guard's own detector (secret key, repeated (context, token) pairs counted once) on token ids.

Run: .venv/bin/python benchmarks/text_watermark_power.py [--samples 200] [--train-steps 600]
"""

from __future__ import annotations

import argparse
import json
import math
import random
import re
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
WORK = REPO / "benchmarks" / "results" / "text-lm"
Z_AT_FPR = {"1e-3": 3.0902, "1e-5": 4.2649}  # one-sided standard-normal quantiles
SECRET = bytes(range(32))


def corpus() -> list[str]:
    """English sentences found on this machine: BOLD prompts + installed packages' long descriptions."""
    from benchmarks.toxicity_throughput import bold_sentences

    lines = bold_sentences()
    site = Path(sys.prefix) / "lib"
    for meta in sorted(site.glob("python3*/site-packages/*.dist-info/METADATA")):
        body = meta.read_text(encoding="utf-8", errors="ignore").split("\n\n", 1)[-1]
        body = re.sub(r"```.*?```", " ", body, flags=re.S)
        for para in re.split(r"\n\s*\n", body):
            text = " ".join(para.split())
            words = text.split()
            if len(words) >= 8 and sum(w.isalpha() for w in words) / len(words) > 0.7:
                lines.append(text)
    random.Random(0).shuffle(lines)
    return lines


def train(steps: int) -> Path:
    if (WORK / "model.safetensors").is_file():
        return WORK
    import torch
    from tokenizers import ByteLevelBPETokenizer
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

    lines = corpus()
    held_out, train_lines = lines[:500], lines[500:]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(train_lines, vocab_size=4096, min_frequency=2, special_tokens=["<|endoftext|>"],
                            show_progress=False)
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<|endoftext|>", eos_token="<|endoftext|>",
                                  unk_token="<|endoftext|>", model_max_length=256)
    eos = tok.eos_token_id
    ids = [i for line in train_lines for i in tok(line)["input_ids"] + [eos]]
    data = torch.tensor(ids)
    config = GPT2Config(vocab_size=len(tok), n_positions=256, n_embd=128, n_layer=2, n_head=4,
                        bos_token_id=eos, eos_token_id=eos)
    torch.manual_seed(0)
    model = GPT2LMHeadModel(config)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.05)
    ctx, batch = 128, 16
    gen = torch.Generator().manual_seed(0)
    start = time.time()
    for step in range(steps):
        offsets = torch.randint(0, len(data) - ctx - 1, (batch,), generator=gen)
        x = torch.stack([data[o : o + ctx] for o in offsets])
        loss = model(input_ids=x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(), sched.step(), opt.zero_grad()
        if step % 25 == 0 or step == steps - 1:
            print(f"step {step} loss {loss.item():.3f} ({time.time() - start:.0f}s)", file=sys.stderr)
    model.eval()
    held = [tok(line)["input_ids"] + [eos] for line in held_out]
    nll, count = 0.0, 0
    with torch.inference_mode():
        for seq in held:
            x = torch.tensor([seq[:256]])
            n = x.shape[1] - 1
            if n > 0:
                nll += model(input_ids=x, labels=x).loss.item() * n
                count += n
    WORK.mkdir(parents=True, exist_ok=True)
    tok.save_pretrained(WORK)
    model.save_pretrained(WORK)
    (WORK / "training.json").write_text(json.dumps({
        "steps": steps, "train_tokens": len(ids), "held_out_perplexity": math.exp(nll / count),
        "parameters": sum(p.numel() for p in model.parameters()), "train_seconds": time.time() - start}))
    return WORK


def perplexity(model, prompt_ids: list[int], new_ids: list[int]) -> float:
    import torch

    x = torch.tensor([prompt_ids + new_ids])
    with torch.inference_mode():
        logits = model(input_ids=x).logits[0, len(prompt_ids) - 1 : -1].float()
    nll = torch.nn.functional.cross_entropy(logits, torch.tensor(new_ids))
    return math.exp(nll.item())


def run(samples: int, deltas: list[float], new_tokens: int = 200) -> dict:
    from generators.transformers_text import TransformersText
    from guard.policy import TextWatermark
    from guard.watermark.text import TextWatermarkDetector, generation_config

    gen = TransformersText(WORK, chat_template=False, batch_size=50, do_sample=True, temperature=1.0, top_k=0,
                           top_p=1.0)
    tok, model = gen.tokenizer, gen.model
    rng = random.Random(1)
    prompts = [" ".join(s.split()[:8]) for s in corpus()[:500]]
    prompts = [rng.choice(prompts) for _ in range(samples)]
    vocab = len(tok)
    out: dict = {"samples": samples, "new_tokens": new_tokens, "rows": []}
    conditions = [("none", None)] + [(f"delta={d}", TextWatermark(bias=d)) for d in deltas]
    for name, settings in conditions:
        hooks = {"text_watermark": generation_config(settings, SECRET)} if settings else None
        start = time.time()
        # min_new_tokens suppresses EOS, so every sample has exactly ``new_tokens`` tokens to score.
        gens = gen.generate(prompts, hooks=hooks, seed=123, max_new_tokens=new_tokens, min_new_tokens=new_tokens)
        seqs = []
        for p, g in zip(prompts, gens):
            p_ids = tok(p)["input_ids"]
            # re-encode the decoded text, as a detector sees it; keep the first ``new_tokens``
            seqs.append((p_ids, tok(g.content, add_special_tokens=False)["input_ids"][:new_tokens]))
        print(f"{name}: generated {samples} x {new_tokens} tokens in {time.time() - start:.0f}s", file=sys.stderr)
        detector = TextWatermarkDetector(tokenizer=tok, model_config=gen.config,
                                         settings=settings or TextWatermark(), secret=SECRET)
        row: dict = {"condition": name, "ppl": sorted(perplexity(model, p, s) for p, s in seqs)}
        for length in (50, 100, 200):
            row[f"z@{length}"] = [detector.detect(s[:length]).z_score for _, s in seqs]
        attack_rng = random.Random(2)
        for frac in (0.1, 0.2, 0.3):
            zs = []
            for _, s in seqs:
                s = list(s)
                for pos in attack_rng.sample(range(len(s)), int(frac * len(s))):
                    s[pos] = attack_rng.randrange(vocab - 1)
                zs.append(detector.detect(s).z_score)
            row[f"z@200-{int(frac * 100)}%"] = zs
        out["rows"].append(row)
    return out


def report(result: dict) -> None:
    training = json.loads((WORK / "training.json").read_text())
    print(f"model: GPT-2 {training['parameters'] / 1e6:.1f}M params, trained {training['steps']} steps on "
          f"{training['train_tokens']:,} tokens; held-out perplexity {training['held_out_perplexity']:.1f}")
    print(f"samples: {result['samples']} per condition, {result['new_tokens']} new tokens, multinomial sampling")
    cols = ["z@50", "z@100", "z@200", "z@200-10%", "z@200-20%", "z@200-30%"]
    print("| condition | FPR target | " + " | ".join(c.replace("z@", "") + " tok" for c in cols) + " | PPL (median) |")
    print("|---|---|" + "---|" * len(cols) + "---|")
    for row in result["rows"]:
        for fpr, z in Z_AT_FPR.items():
            rates = [sum(v > z for v in row[c]) / len(row[c]) for c in cols]
            label = "FPR (empirical)" if row["condition"] == "none" else "TPR"
            ppl = statistics.median(row["ppl"])
            print(f"| {row['condition']} | {label} @ {fpr} | " + " | ".join(f"{r:.3f}" for r in rates)
                  + f" | {ppl:.1f} |")
    for row in result["rows"]:
        print(f"{row['condition']}: mean z@200 {sum(row['z@200']) / len(row['z@200']):.2f}, "
              f"min z@200 {min(row['z@200']):.2f}, max z@200 {max(row['z@200']):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--train-steps", type=int, default=300)
    parser.add_argument("--deltas", type=float, nargs="+", default=[1.0, 2.0])
    args = parser.parse_args()
    train(args.train_steps)
    result = run(args.samples, args.deltas)
    (WORK / "power.json").write_text(json.dumps(result))
    report(result)


if __name__ == "__main__":
    main()
