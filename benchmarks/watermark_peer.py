"""The peer side of ``watermark_robustness.py``: invisible-watermark (dwtDct, dwtDctSvd, rivaGan).

Runs inside the peer's own interpreter (``PEER_PYTHON``; installing invisible-watermark into the project's
environment breaks cv2, see DESIGN.md) and prints one JSON document. It imports nothing from the project but
the attack definitions, loaded by file path with the ``core`` package they use, so both sides apply exactly the
same edits.

    PEER_PYTHON benchmarks/watermark_peer.py JOB.json
"""

from __future__ import annotations

import importlib.util
import json
import statistics
import sys
import time
from pathlib import Path

import cv2
import numpy as np
from imwatermark import WatermarkDecoder, WatermarkEncoder
from PIL import Image

METHODS = {"dwtDct": 64, "dwtDctSvd": 64, "rivaGan": 32}  # payload bits each can carry (rivaGan: 32 only)


def load_attacks(path: str):
    """The attacks file and the ``core`` package it imports (which imports nothing else of the project)."""
    sys.path.insert(0, str(Path(path).resolve().parents[2]))  # guard/watermark/image_attacks.py -> the repository
    spec = importlib.util.spec_from_file_location("image_attacks", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.ALL_ATTACKS


def to_bgr(image: Image.Image) -> np.ndarray:
    return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)


def to_pil(bgr: np.ndarray) -> Image.Image:
    return Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return 10 * np.log10(255.0**2 / mse) if mse else float("inf")


def decode(bgr: np.ndarray, method: str, bits: int) -> np.ndarray:
    if bgr.shape[0] * bgr.shape[1] < 256 * 256:
        return np.full(bits, -1)  # the peer refuses images this small
    return np.asarray(WatermarkDecoder("bits", bits).decode(bgr, method), dtype=int)


def main(job_path: str) -> None:
    job = json.loads(open(job_path).read())
    attacks = load_attacks(job["attacks_file"])
    WatermarkEncoder.loadModel()
    WatermarkDecoder.loadModel()
    rng = np.random.default_rng(0)
    out = {"robustness": {}, "timing": {}}
    for method, nbits in METHODS.items():
        rows = {name: {"bit_accuracy": [], "exact": []} for name in attacks}
        psnrs = []
        limit = job.get("image_limit", {}).get(method, len(job["images"]))
        for path in job["images"][:limit]:
            print(f"peer {method}: {path}", file=sys.stderr, flush=True)
            payload = rng.integers(0, 2, nbits)
            encoder = WatermarkEncoder()
            encoder.set_watermark("bits", payload.tolist())
            original = to_bgr(Image.open(path))
            if original.shape[0] * original.shape[1] < 256 * 256:  # the peer refuses to mark it: a miss
                for name in attacks:
                    rows[name]["bit_accuracy"].append(0.5)
                    rows[name]["exact"].append(False)
                continue
            marked = encoder.encode(original, method)
            psnrs.append(psnr(original, marked))
            for name, attack in attacks.items():
                bits = decode(to_bgr(attack(to_pil(marked))), method, nbits)
                rows[name]["bit_accuracy"].append(float(np.mean(bits == payload)))
                rows[name]["exact"].append(bool(np.array_equal(bits, payload)))
        out["robustness"][method] = {
            "images": limit,
            "psnr_mean": statistics.fmean(psnrs),
            "psnr_min": min(psnrs),
            "attacks": {n: {k: statistics.fmean(v) for k, v in r.items()} for n, r in rows.items()},
        }
    for label, path in job["timing_images"].items():
        image = to_bgr(Image.open(path))
        for method, nbits in METHODS.items():
            encoder = WatermarkEncoder()
            encoder.set_watermark("bits", [1, 0] * (nbits // 2))
            embeds, detects = [], []
            for _ in range(job["repeats"]):
                start = time.perf_counter()
                marked = encoder.encode(image, method)
                embeds.append(time.perf_counter() - start)
                start = time.perf_counter()
                decode(marked, method, nbits)
                detects.append(time.perf_counter() - start)
            out["timing"].setdefault(label, {})[method] = {
                "embed_s": statistics.median(embeds),
                "detect_s": statistics.median(detects),
            }
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1])
