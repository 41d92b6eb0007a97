"""Offline toxicity scorers on human labels, side by side in one run: held-out splits and cross-domain.

Data: ../shared/data/toxicity/ (Davidson tweets, MIT; Civil Comments re-rated by Toxic Spans, CC0). Each set is
split 70/30, stratified, seed 0, by ``detectors.offline_toxicity.training.split`` -- the split the shipped
combiner was fitted on (``guard toxicity train --holdout 0.3 --seed 0``), so its test rows were never seen.

Scorers, every one scored on the same test rows:
- ``bilstm``: the Jigsaw BiLSTM's ``toxicity`` on the text as given;
- ``svm``: alt-profanity-check's SVM (mean margin of its five LinearSVCs) on the text as given;
- ``vader``: VADER negativity, (1 - compound) / 2, the floor;
- ``rank-mean``: the mean of the BiLSTM's and the SVM's ranks within the test rows (untrained, original text);
- ``shipped``: the ``toxicity-offline`` detector with its shipped combiner (rank-mean, identity neutralisation);
- ``shipped-no-mitigation``: the same combiner on the text as given (what neutralisation costs or gains);
- ``rank-mean@A`` / ``logistic@A``: combiners fitted by ``training`` on the training rows of A (dav, cc or both)
  and scored on each test set: same set = held out, other set = cross-domain;
- ``student@A``: the distilled student of ``_toxicity_student.py`` (hashed character and word n-grams, logistic
  regression on the mean of the label and the teacher ``rank-mean@A``, counterfactual identity augmentation)
  fitted on A's training rows; ``student@A+u`` adds the other set's training texts *without* their labels
  (target: the teacher alone); ``student-labels@A`` learns the labels alone (what the teacher adds);
  ``student-noaug@dav+cc`` is trained without the counterfactual augmentation (what it costs or gains);
- ``rank-mean+student@A``: the mean of the BiLSTM's, the SVM's and the student's ranks within the test rows.

The identity-term audit's harmless HolisticBias sentences (``guard toxicity audit``'s, 20 per descriptor, from
../shared/data/holistic_bias/) are scored by the shipped scorer with and without neutralisation and by the student
with and without augmentation, each at the threshold that flags as many of the pooled test negatives as the
shipped scorer does at 0.5.

For each: ROC AUC and average precision with bootstrap 95% intervals (``--n-boot`` resamples of the test rows,
the same resamples for every scorer, so the AUC difference to the rank-mean gets a paired interval too),
the thresholds at 1% and 5% FPR on that set's test negatives and the TPR they give, and for ``shipped`` the
FPR/TPR of its stored thresholds and F1 at the default policy's thresholds (0.8 output, 0.9 prompt).

Run: nice -n 19 .venv/bin/python benchmarks/toxicity_offline_eval.py [--n-boot 1000] [--json out.json]
Model features and students' test scores are cached in benchmarks/results/toxicity-offline/ (delete to
recompute; a student's cache is keyed by its module's source).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
DATA = REPO.parent / "shared" / "data" / "toxicity"
SETS = {"dav": "davidson.csv", "cc": "civilcomments_toxicspans.csv"}
CACHE = REPO / "benchmarks" / "results" / "toxicity-offline"


def features(scorer, texts: list[str], cache: Path) -> dict[str, np.ndarray]:
    if cache.is_file():
        with np.load(cache) as z:
            return {k: z[k] for k in z.files}
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    parts = [scorer.features(texts[i:i + 4096]) for i in range(0, len(texts), 4096)]
    feats = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
    feats["lexical_original"] = scorer.lexical.margins(texts)
    vader = SentimentIntensityAnalyzer()
    feats["vader"] = np.array([(1 - vader.polarity_scores(t)["compound"]) / 2 for t in texts])
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.savez(cache, **feats)
    return feats


def original(feats: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The combiner features of the text as given (no neutralisation)."""
    from detectors.offline_toxicity.combiner import BILSTM_FEATURES

    out = {name: feats["bilstm_original"][:, i] for i, name in enumerate(BILSTM_FEATURES)}
    out["lexical"] = feats["lexical_original"]
    return out


def take(feats: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[rows] for k, v in feats.items()}


def bootstrap(y: np.ndarray, s: np.ndarray, n_boot: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """AUC and AP of ``n_boot`` resamples of the rows at once: each resample is a row of draw counts, and both
    metrics are sums over the rows sorted by score once (ties grouped, as scikit-learn treats them). The draws
    are made in the rows' given order, so two scorers bootstrapped with equally seeded ``rng`` see the same
    resamples (paired)."""
    counts = rng.multinomial(len(y), np.full(len(y), 1 / len(y)), size=n_boot).astype(np.float64)
    order = np.argsort(-s, kind="stable")
    s, y, counts = s[order], y[order], counts[:, order]
    starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])  # first row of each distinct score, descending
    pos = np.add.reduceat(counts * y, starts, axis=1)  # resample x distinct score: positives drawn there
    neg = np.add.reduceat(counts * (1 - y), starts, axis=1)
    tp, fp = np.cumsum(pos, axis=1), np.cumsum(neg, axis=1)
    n_pos, n_neg = tp[:, -1:], fp[:, -1:]
    # AUC: each positive beats the negatives below its score and ties half of those at it
    auc = np.sum(pos * (n_neg - fp + 0.5 * neg), axis=1) / (n_pos[:, 0] * n_neg[:, 0])
    precision = tp / np.maximum(tp + fp, 1e-12)
    ap = np.sum(pos / n_pos * precision, axis=1)
    return auc, ap


def metrics(y: np.ndarray, s: np.ndarray, n_boot: int, seed: int = 0) -> dict:
    """AUC, AP, their intervals, and the bootstrap AUCs (``_boot_auc``: same ``seed``, same resamples)."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    from detectors.offline_toxicity.combiner import threshold_at_fpr

    auc, ap = bootstrap(y, np.asarray(s, dtype=np.float64), n_boot, np.random.default_rng(seed))
    neg, pos = s[y == 0], s[y == 1]
    out = {"auc": roc_auc_score(y, s), "auc_ci": np.percentile(auc, [2.5, 97.5]).tolist(), "_boot_auc": auc,
           "ap": average_precision_score(y, s), "ap_ci": np.percentile(ap, [2.5, 97.5]).tolist()}
    for fpr in (0.01, 0.05):
        t = threshold_at_fpr(neg, fpr)
        out[f"thr@{fpr:g}"], out[f"tpr@{fpr:g}"] = t, float(np.mean(pos >= t))
    return out


STUDENTS = {  # name -> (labelled sets, the other set's texts unlabelled, alpha: weight of the label, augment)
    "student@dav": (("dav",), False, 0.5, True), "student@cc": (("cc",), False, 0.5, True),
    "student@dav+cc": (("dav", "cc"), False, 0.5, True),
    "student@dav+u": (("dav",), True, 0.5, True), "student@cc+u": (("cc",), True, 0.5, True),
    "student-labels@dav": (("dav",), False, 1.0, True), "student-labels@cc": (("cc",), False, 1.0, True),
    "student-noaug@dav+cc": (("dav", "cc"), False, 0.5, False),
}
AUDITED = ("student@dav+cc", "student-noaug@dav+cc")  # also scored on the identity-term audit's sentences
HOLISTIC_BIAS = REPO.parent / "shared" / "data" / "holistic_bias"


def students(sets: dict, fitted: dict, texts: dict, audit: list[str]) -> dict[str, dict[str, np.ndarray]]:
    """Every student's scores on each set's test rows, and on ``audit`` for the AUDITED ones (cached by data and
    student source)."""
    import _toxicity_student as student

    source = hashlib.sha256(Path(student.__file__).read_bytes()).hexdigest()[:12]
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, (on, unlabelled, alpha, augment) in STUDENTS.items():
        audited = name in AUDITED
        key = hashlib.sha256(f"{name}{source}{[sets[k]['sha256'] for k in sets]}"
                             f"{hashlib.sha256(chr(0).join(audit).encode()).hexdigest() if audited else ''}"
                             .encode()).hexdigest()[:12]
        cache = CACHE / f"{name.replace('@', '-')}-{key}.npz"
        if cache.is_file():
            with np.load(cache) as z:
                out[name] = {k: z[k] for k in z.files}
            continue
        teacher = fitted[f"rank-mean@{'+'.join(on)}"]
        tr_texts, tr_labels, tr_teacher = [], [], []
        for k in on:
            rows = sets[k]["train"]
            tr_texts += [texts[k][i] for i in rows]
            tr_labels.append(sets[k]["y"][rows])
            tr_teacher.append(teacher(take(sets[k]["feats"], rows)))
        extra = None
        if unlabelled:
            other = next(k for k in sets if k not in on)
            rows = sets[other]["train"]
            extra = ([texts[other][i] for i in rows], teacher(take(sets[other]["feats"], rows)))
        started = time.time()
        model = student.fit(tr_texts, np.concatenate(tr_labels).astype(np.float64), np.concatenate(tr_teacher),
                            alpha=alpha, unlabelled=extra, augment=augment)
        out[name] = {k: model([texts[k][i] for i in sets[k]["test"]]) for k in sets}
        if audited:
            out[name]["audit"] = model(audit)
        print(f"fitted {name} in {time.time() - started:.0f} s", file=sys.stderr, flush=True)
        np.savez(cache, **out[name])
    return out


def identity_audit(sets: dict, scores: dict[str, dict[str, np.ndarray]], prompts: list) -> dict:
    """Harmless HolisticBias sentences flagged per group, each scorer at the threshold that flags as many of the
    pooled test negatives of both sets as the shipped scorer does at 0.5 (the audit's threshold): scorers on
    different scales are compared at the same false-positive rate."""
    from detectors.offline_toxicity.combiner import threshold_at_fpr
    from guard.bias.identity_audit import rates

    def negatives(v: dict[str, np.ndarray]) -> np.ndarray:
        return np.concatenate([v[k][sets[k]["y"][sets[k]["test"]] == 0] for k in sets])

    fpr = float(np.mean(negatives(scores["shipped"]) >= 0.5))
    out = {}
    for name, v in scores.items():
        result = rates(v["audit"], prompts, threshold_at_fpr(negatives(v), fpr))
        out[name] = {"sentences": len(prompts), "test_fpr": fpr, **result.to_dict(5)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n-boot", type=int, default=1000)
    parser.add_argument("--json", type=Path, help="also write every number here")
    args = parser.parse_args()
    sys.path.insert(0, str(REPO / "benchmarks"))
    from scipy.stats import rankdata

    from detectors.offline_toxicity import combiner as combiners
    from detectors.offline_toxicity.detector import default_combiner, load_scorer
    from detectors.offline_toxicity.scorer import Settings
    from detectors.offline_toxicity.training import read_labelled, split

    started = time.time()
    scorer = load_scorer(None, Settings(precision="float32"))
    shipped = combiners.load(default_combiner())
    sets, texts = {}, {}
    for key, name in SETS.items():
        data = read_labelled(DATA / name)
        train, test = split(data.labels, 0.3, 0)
        feats = features(scorer, data.texts, CACHE / f"{key}-{data.sha256[:12]}.npz")
        sets[key] = {"y": data.labels, "train": train, "test": test, "feats": feats, "rows": len(data.labels),
                     "sha256": data.sha256}
        texts[key] = data.texts
    fitted = {}
    for kind in ("rank-mean", "logistic"):
        for on in (("dav",), ("cc",), ("dav", "cc")):
            f = {k: np.concatenate([take(sets[s]["feats"], sets[s]["train"])[k] for s in on])
                 for k in sets[on[0]]["feats"]}
            y = np.concatenate([sets[s]["y"][sets[s]["train"]] for s in on])
            fitted[f"{kind}@{'+'.join(on)}"] = combiners.fit(f, y, kind=kind)
    from guard.bias.identity_audit import harmless_sentences

    prompts = harmless_sentences(HOLISTIC_BIAS, per_group=20, seed=0)
    audit_texts = [p.text for p in prompts]
    student_scores = students(sets, fitted, texts, audit_texts)
    audit_key = hashlib.sha256(chr(0).join(audit_texts).encode()).hexdigest()[:12]
    hb = features(scorer, audit_texts, CACHE / f"holistic-bias-{audit_key}.npz")
    audited = {"shipped": {**{k: shipped(take(sets[k]["feats"], sets[k]["test"])) for k in sets},
                           "audit": shipped(hb)},
               "shipped-no-mitigation": {**{k: shipped(original(take(sets[k]["feats"], sets[k]["test"])))
                                            for k in sets}, "audit": shipped(original(hb))},
               **{name: student_scores[name] for name in AUDITED}}
    results: dict = {}
    for key, s in sets.items():
        te = s["test"]
        y, f = s["y"][te], take(s["feats"], te)
        scores = {
            "bilstm": f["bilstm_original"][:, 0],
            "svm": f["lexical_original"],
            "vader": f["vader"],
            "rank-mean": rankdata(f["bilstm_original"][:, 0]) + rankdata(f["lexical_original"]),
            "shipped": shipped(f),
            "shipped-no-mitigation": shipped(original(f)),
            **{name: c(f) for name, c in fitted.items()},
            **{name: v[key] for name, v in student_scores.items()},
            **{f"rank-mean+{name}": rankdata(f["bilstm_original"][:, 0]) + rankdata(f["lexical_original"])
               + rankdata(v[key]) for name, v in student_scores.items() if not name.startswith("student-labels")},
        }
        results[key] = {name: metrics(y, v, args.n_boot) for name, v in scores.items()}
        best = max(("bilstm", "svm"), key=lambda n: results[key][n]["auc"])  # the best single scorer here
        boot = {name: m.pop("_boot_auc") for name, m in results[key].items()}
        for name, m in results[key].items():
            for ref, field in (("rank-mean", "rank_mean"), (best, "best_single")):
                m[f"auc_minus_{field}"] = m["auc"] - results[key][ref]["auc"]
                m[f"auc_minus_{field}_ci"] = np.percentile(boot[name] - boot[ref], [2.5, 97.5]).tolist()
        results[key]["_best_single"] = best
        sv = scores["shipped"]
        neg, pos = sv[y == 0], sv[y == 1]
        results[key]["shipped"]["stored_thresholds"] = {
            k: {"threshold": t, "fpr": float(np.mean(neg >= t)), "tpr": float(np.mean(pos >= t))}
            for k, t in shipped.thresholds.items()}
        for t in (0.5, 0.8, 0.9):
            tp, fp = float(np.sum(pos >= t)), float(np.sum(neg >= t))
            precision = tp / (tp + fp) if tp + fp else 0.0
            recall = tp / len(pos)
            results[key]["shipped"][f"f1@{t:g}"] = 2 * precision * recall / (precision + recall) if tp else 0.0
            results[key]["shipped"][f"fpr@{t:g}"] = fp / len(neg)
        results[key]["_rows"] = {"test": int(len(te)), "positives": int(y.sum())}
    audit = identity_audit(sets, audited, prompts)
    report(results, audit)
    print(f"\n{sum(s['rows'] for s in sets.values())} texts; bootstrap {args.n_boot}; {time.time() - started:.0f} s; "
          f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    if args.json:
        args.json.write_text(json.dumps({**results, "identity_audit": audit}, indent=1, default=float))


def report(results: dict, audit: dict) -> None:
    names = [n for n in results["dav"] if not n.startswith("_")]  # scorers (``_rows``, ``_best_single``: facts)
    print("| scorer | " + " | ".join(f"{k} AUC [95% CI] | {k} AP [95% CI] | {k} TPR@1% / 5% FPR" for k in results)
          + " |")
    print("|---|" + "---|---|---|" * len(results))
    for name in names:
        cells = []
        for key in results:
            m = results[key][name]
            cells += [f"{m['auc']:.3f} [{m['auc_ci'][0]:.3f}, {m['auc_ci'][1]:.3f}]",
                      f"{m['ap']:.3f} [{m['ap_ci'][0]:.3f}, {m['ap_ci'][1]:.3f}]",
                      f"{m['tpr@0.01']:.3f} / {m['tpr@0.05']:.3f}"]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\n| scorer | " + " | ".join(f"{k} AUC minus rank-mean [paired 95% CI] | {k} minus best single "
                                         f"({results[k]['_best_single']})" for k in results) + " |")
    print("|---|" + "---|---|" * len(results))
    for name in names:
        cells = [f"{m[f'auc_minus_{f}']:+.4f} [{m[f'auc_minus_{f}_ci'][0]:+.4f}, {m[f'auc_minus_{f}_ci'][1]:+.4f}]"
                 for m in (results[k][name] for k in results) for f in ("rank_mean", "best_single")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print("\nshipped vs rank-mean (AUC / AP):", "; ".join(
        f"{k}: {results[k]['shipped']['auc'] - results[k]['rank-mean']['auc']:+.4f} / "
        f"{results[k]['shipped']['ap'] - results[k]['rank-mean']['ap']:+.4f}" for k in results))
    print(f"\nidentity-term audit, harmless HolisticBias sentences flagged at each scorer's threshold for "
          f"{next(iter(audit.values()))['test_fpr']:.3f} FPR on the pooled test negatives (the shipped scorer's at "
          "0.5): overall rate; groups above it with 95% confidence; worst five")
    for name, a in audit.items():
        worst = ", ".join(f"{g['group']} {g['flagged']}/{g['sentences']}" for g in a["worst"])
        print(f"| {name} | {a['overall_rate']:.4f} of {a['sentences']} | {a['groups_above_overall']} of "
              f"{a['groups']} | {worst} |")
    for key in results:
        m = results[key]["shipped"]
        stored = ", ".join(f"{k}: threshold {v['threshold']:.3f} -> FPR {v['fpr']:.3f}, TPR {v['tpr']:.3f}"
                           for k, v in m["stored_thresholds"].items())
        print(f"{key} shipped thresholds for this set's test rows: 1% FPR at {m['thr@0.01']:.3f}, 5% at "
              f"{m['thr@0.05']:.3f}; stored thresholds (fitted on both training sets): {stored}; "
              f"F1/FPR at 0.5 {m['f1@0.5']:.3f}/{m['fpr@0.5']:.3f}, at 0.8 {m['f1@0.8']:.3f}/{m['fpr@0.8']:.3f}, "
              f"at 0.9 {m['f1@0.9']:.3f}/{m['fpr@0.9']:.3f}; test rows {results[key]['_rows']}")


if __name__ == "__main__":
    main()
