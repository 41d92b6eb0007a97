"""Fine-tune all-MiniLM-L6-v2 end to end for toxicity, time-boxed on the CPU, and compare it cross-domain.

Issue 18 asks whether a sentence encoder fine-tuned end to end beats the rank-mean of the Jigsaw BiLSTM and the
SVM on text it was not trained on (a frozen MiniLM with a linear head does not: 0.575-0.694 AUC cross-domain).
For each training set (Davidson, Civil Comments) a fresh copy of the encoder with a linear head on its mean-pooled
output is trained on a stratified sample of that set's training rows (the 70/30 seed-0 split of
``toxicity_offline_eval.py``), binary cross-entropy with balanced classes, AdamW, for ``--epochs`` or until
``--train-seconds`` run out (whichever is first; the number of texts actually seen is printed). The word
embeddings stay frozen (their 11.7M parameters are half the model and most of the optimiser's cost; every
transformer layer, the pooler input and the head are trained). Then both models score a stratified sample of
each set's *test* rows, beside the BiLSTM, the SVM and their rank-mean on the same rows (features from
``toxicity_offline_eval.py``'s cache: run that first), with bootstrap intervals and the paired difference to the
rank-mean.

Run: nice -n 19 .venv/bin/python benchmarks/toxicity_minilm_finetune.py --encoder "$(guard models path minilm)"
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from toxicity_offline_eval import CACHE, DATA, SETS, bootstrap  # noqa: E402


def sample(labels: np.ndarray, rows: np.ndarray, n: int, seed: int) -> np.ndarray:
    """``n`` of ``rows``, stratified by label (all of them when there are fewer)."""
    if n >= len(rows):
        return rows
    from sklearn.model_selection import train_test_split

    kept, _ = train_test_split(rows, train_size=n, random_state=seed, stratify=labels[rows])
    return np.sort(kept)


class Classifier:
    """The encoder, mean pooling over real tokens, and a linear head (one logit)."""

    def __init__(self, folder: Path, max_length: int) -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.encoder = AutoModel.from_pretrained(folder, dtype=torch.float32)
        self.encoder.get_input_embeddings().weight.requires_grad_(False)
        self.head = torch.nn.Linear(self.encoder.config.hidden_size, 1)
        self.max_length = max_length

    def parameters(self):
        return [p for p in (*self.encoder.parameters(), *self.head.parameters()) if p.requires_grad]

    def __call__(self, texts: list[str]):
        batch = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                               return_tensors="pt")
        hidden = self.encoder(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * mask).sum(1) / mask.sum(1)).squeeze(-1)


def train(model: Classifier, texts: list[str], labels: np.ndarray, *, epochs: int, batch: int, lr: float,
          seconds: float, seed: int) -> dict:
    import torch

    rng = np.random.default_rng(seed)
    pos_weight = torch.tensor((labels == 0).sum() / max(1, (labels == 1).sum()), dtype=torch.float32)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=0.01)
    steps = epochs * ((len(texts) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / max(1, steps // 10))
                                              * max(0.0, 1 - s / steps))
    model.encoder.train()
    started, seen, step = time.time(), 0, 0
    for _ in range(epochs):
        order = rng.permutation(len(texts))
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            logits = model([texts[i] for i in rows])
            y = torch.from_numpy(labels[rows].astype(np.float32))
            loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, y, pos_weight=pos_weight)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
            seen, step = seen + len(rows), step + 1
            if step % 20 == 0:
                print(f"  step {step}/{steps}: loss {loss.item():.3f}, {seen / (time.time() - started):.1f} "
                      "texts/s", file=sys.stderr, flush=True)
            if time.time() - started > seconds:
                return {"texts_seen": seen, "steps": step, "seconds": time.time() - started, "time_box": True}
    return {"texts_seen": seen, "steps": step, "seconds": time.time() - started, "time_box": False}


def score(model: Classifier, texts: list[str], batch: int = 64) -> tuple[np.ndarray, float]:
    import torch

    model.encoder.eval()
    order = np.argsort([len(t) for t in texts])  # similar lengths together: less padding
    out = np.zeros(len(texts), dtype=np.float64)
    started = time.time()
    with torch.inference_mode():
        for start in range(0, len(order), batch):
            rows = order[start:start + batch]
            out[rows] = model([texts[i] for i in rows]).float().numpy()
    return out, len(texts) / (time.time() - started)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--encoder", type=Path, required=True, help="sentence-transformers folder "
                        "(guard models path minilm)")
    parser.add_argument("--train-texts", type=int, default=2000, help="training rows sampled per set")
    parser.add_argument("--eval-texts", type=int, default=1500, help="test rows sampled per set")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--max-length", type=int, default=64, help="tokens; longer texts are cut")
    parser.add_argument("--train-seconds", type=float, default=900, help="time box per training set")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()

    import torch
    from scipy.stats import rankdata
    from sklearn.metrics import roc_auc_score

    from detectors.offline_toxicity.training import read_labelled, split

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    sets = {}
    for key, name in SETS.items():
        data = read_labelled(DATA / name)
        tr, te = split(data.labels, 0.3, 0)
        cache = CACHE / f"{key}-{data.sha256[:12]}.npz"
        if not cache.is_file():
            sys.exit(f"{cache}: missing; run benchmarks/toxicity_offline_eval.py first (it caches the features)")
        with np.load(cache) as z:
            feats = {k: z[k] for k in ("bilstm_original", "lexical_original")}
        sets[key] = {"data": data, "train": sample(data.labels, tr, args.train_texts, 0),
                     "test": sample(data.labels, te, args.eval_texts, 0), "feats": feats}
    results: dict = {"settings": {k: str(v) for k, v in vars(args).items()}, "training": {}, "test": {}}
    scores: dict = {k: {} for k in sets}
    for key, s in sets.items():
        te, f = s["test"], s["feats"]
        scores[key]["bilstm"] = f["bilstm_original"][te, 0]
        scores[key]["svm"] = f["lexical_original"][te]
        scores[key]["rank-mean"] = rankdata(scores[key]["bilstm"]) + rankdata(scores[key]["svm"])
    for on, s in sets.items():
        print(f"training on {on}: {len(s['train'])} texts", file=sys.stderr, flush=True)
        model = Classifier(args.encoder, args.max_length)
        texts = [s["data"].texts[i] for i in s["train"]]
        results["training"][on] = train(model, texts, s["data"].labels[s["train"]], epochs=args.epochs,
                                        batch=args.batch, lr=args.lr, seconds=args.train_seconds, seed=0)
        results["training"][on]["train_texts_per_s"] = (results["training"][on]["texts_seen"]
                                                        / results["training"][on]["seconds"])
        for key, t in sets.items():
            values, speed = score(model, [t["data"].texts[i] for i in t["test"]])
            scores[key][f"minilm-ft@{on}"] = values
            results["training"][on][f"score_texts_per_s_{key}"] = speed
        print(f"  {results['training'][on]}", file=sys.stderr, flush=True)
    for key, s in sets.items():
        y = s["data"].labels[s["test"]]
        boot = {name: bootstrap(y, np.asarray(v, dtype=np.float64), args.n_boot, np.random.default_rng(0))[0]
                for name, v in scores[key].items()}  # same seed: the same resamples for every scorer (paired)
        results["test"][key] = {
            name: {"auc": float(roc_auc_score(y, v)), "auc_ci": np.percentile(boot[name], [2.5, 97.5]).tolist(),
                   "minus_rank_mean": float(roc_auc_score(y, v) - roc_auc_score(y, scores[key]["rank-mean"])),
                   "minus_rank_mean_ci": np.percentile(boot[name] - boot["rank-mean"], [2.5, 97.5]).tolist()}
            for name, v in scores[key].items()}
        results["test"][key]["_rows"] = {"test": int(len(y)), "positives": int(y.sum()),
                                         "rows": s["test"].tolist(), "scores": {k: v.tolist() for k, v in
                                                                                scores[key].items()}}
    print("| scorer | " + " | ".join(f"{k} AUC [95% CI] | {k} minus rank-mean [95% CI]" for k in sets) + " |")
    print("|---|" + "---|---|" * len(sets))
    for name in scores["dav"]:
        cells = []
        for key in sets:
            m = results["test"][key][name]
            cells += [f"{m['auc']:.3f} [{m['auc_ci'][0]:.3f}, {m['auc_ci'][1]:.3f}]",
                      f"{m['minus_rank_mean']:+.3f} [{m['minus_rank_mean_ci'][0]:+.3f}, "
                      f"{m['minus_rank_mean_ci'][1]:+.3f}]"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    for on, t in results["training"].items():
        print(f"trained on {on}: {t['texts_seen']} texts in {t['seconds']:.0f} s ({t['train_texts_per_s']:.1f}/s"
              f"{', stopped by the time box' if t['time_box'] else ''}); scoring "
              + ", ".join(f"{k} {v:.1f}/s" for k, v in t.items() if k.startswith("score_")))
    counts = [{k: results["test"][key]["_rows"][k] for k in ("test", "positives")} for key in sets]
    print(f"test rows {counts}; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=float))


if __name__ == "__main__":
    main()
