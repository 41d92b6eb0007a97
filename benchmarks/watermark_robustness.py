"""Image watermark: ours against invisible-watermark (dwtDct, dwtDctSvd, rivaGan), side by side in one run.

For every natural image scikit-image ships (colour and grey photographs, and three textures) and every photo in
../shared/interop/c2pa (the 91x69 libpng test image is too small for any of the four methods): embed, apply each
attack of issue 5 (``guard/watermark/image_attacks.py``), decode. Reported per method and attack: the rate of
exactly decoded payloads and the bit accuracy; PSNR; embed and detect time at 512x512 and at 3840x2160; and
a false-alarm run over thousands of unmarked crops and over marked images read with another key.

Payloads: ours carries 80 bits (16-bit key id + 64-bit record id) plus a 32-bit tag; dwtDct and dwtDctSvd 64
bits; rivaGan 32 bits (all it supports). Bit accuracy for ours is over the 80 payload bits; when ours reports
no mark it returns no bits, which is counted as 50 % (chance), the conservative convention.

The peer runs in its own interpreter (it breaks cv2 in the project's environment; see DESIGN.md):

    python3.11 -m venv /work/peer-venv && /work/peer-venv/bin/pip install torch==2.13.0 \\
        && /work/peer-venv/bin/pip install --no-deps invisible-watermark \\
        && /work/peer-venv/bin/pip install PyWavelets onnxruntime opencv-python-headless numpy pillow
    PEER_PYTHON=/work/peer-venv/bin/python .venv/bin/python benchmarks/watermark_robustness.py
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from guard.watermark import image as wm  # noqa: E402
from guard.watermark import image_attacks  # noqa: E402
from guard.watermark.image_attacks import ATTACKS  # noqa: E402

INTEROP = Path(__file__).resolve().parents[2] / "shared" / "interop" / "c2pa"
SKIMAGE = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "camera", "moon", "brick", "grass", "gravel")
PEERS = ("dwtDct", "dwtDctSvd", "rivaGan")
SECRET, OTHER = bytes(range(32)), bytes(range(1, 33))


def natural_images() -> dict[str, Image.Image]:
    import skimage.data

    images = {n: Image.fromarray(np.ascontiguousarray(getattr(skimage.data, n)())).convert("RGB") for n in SKIMAGE}
    for path in sorted(INTEROP.glob("*.jpg")) + sorted(INTEROP.glob("*.webp")):
        images[path.name] = Image.open(path).convert("RGB")
    return images


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = (np.asarray(im, dtype=np.float64) for im in (a, b))
    return float(10 * np.log10(255.0**2 / np.mean((x - y) ** 2)))


def ours_robustness(images: dict[str, Image.Image]) -> dict:
    rng = np.random.default_rng(0)
    rows = {name: {"bit_accuracy": [], "exact": []} for name in ATTACKS}
    psnrs = []
    for image in images.values():
        payload = wm.WatermarkPayload(rng.bytes(2).hex(), rng.bytes(8).hex())
        marked = wm.embed(image, payload, SECRET)
        psnrs.append(psnr(image, marked))
        for name, attack in ATTACKS.items():
            result = wm.detect(attack(marked), SECRET)
            accuracy = float(np.mean(result.payload.to_bits() == payload.to_bits())) if result.found else 0.5
            rows[name]["bit_accuracy"].append(accuracy)
            rows[name]["exact"].append(result.payload == payload)
    return {
        "psnr_mean": statistics.fmean(psnrs),
        "psnr_min": min(psnrs),
        "attacks": {n: {k: statistics.fmean(v) for k, v in r.items()} for n, r in rows.items()},
    }


def ours_timing(images: dict[str, Path], repeats: int) -> dict:
    payload = wm.WatermarkPayload("5a3c", "0123456789abcdef")
    out = {}
    for label, path in images.items():
        image = Image.open(path).convert("RGB")
        wm.detect(wm.embed(image, payload, SECRET), SECRET)  # warm caches and imports
        embeds, detects = [], []
        for _ in range(repeats):
            start = time.perf_counter()
            marked = wm.embed(image, payload, SECRET)
            embeds.append(time.perf_counter() - start)
            start = time.perf_counter()
            wm.detect(marked, SECRET)
            detects.append(time.perf_counter() - start)
        out[label] = {"embed_s": statistics.median(embeds), "detect_s": statistics.median(detects)}
    return out


def false_alarms(images: dict[str, Image.Image], count: int) -> dict:
    """Detections on ``count`` unmarked random crops, and on ``count // 4`` crops of marked images read with
    another key (each crop 64..512 pixels a side, any aspect ratio)."""
    rng = np.random.default_rng(1)
    pool = list(images.values())

    def crops(source: list[Image.Image], n: int) -> list[Image.Image]:
        out = []
        for k in range(n):
            image = source[k % len(source)]
            w, h = (int(rng.integers(64, min(512, side) + 1)) for side in image.size)
            x, y = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
            out.append(image.crop((x, y, x + w, y + h)))
        return out

    marked = [wm.embed(im, wm.WatermarkPayload("5a3c", "0123456789abcdef"), OTHER) for im in pool]
    start = time.perf_counter()
    unmarked_hits = sum(
        r.found for k in range(0, count, 500) for r in wm.detect_many(crops(pool, min(500, count - k)), SECRET)
    )
    other_key_hits = sum(r.found for r in wm.detect_many(crops(marked, count // 4) + marked, SECRET))
    return {
        "unmarked_crops": count,
        "unmarked_detections": unmarked_hits,
        "other_key_images": count // 4 + len(marked),
        "other_key_detections": other_key_hits,
        "seconds": time.perf_counter() - start,
        "bound_per_image": wm.FALSE_ALARM_BOUND,
    }


def run_peer(peer_python: str, images: list[Path], timing: dict[str, Path], repeats: int, folder: Path) -> dict:
    job = folder / "job.json"
    job.write_text(json.dumps({
        "images": [str(p) for p in images],
        "attacks_file": image_attacks.__file__,
        "timing_images": {k: str(v) for k, v in timing.items()},
        "repeats": repeats,
    }))
    script = Path(__file__).with_name("watermark_peer.py")
    done = subprocess.run([peer_python, str(script), str(job)], stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"peer run failed ({peer_python}), exit {done.returncode}")
    return json.loads(done.stdout)


def report(ours: dict, peers: dict, timing: dict, alarms: dict) -> str:
    methods = {"ours": ours["robustness"]}
    methods.update({m: peers["robustness"][m] for m in PEERS if m in peers.get("robustness", {})})
    lines = ["| attack | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    for attack in ATTACKS:
        cells = [f"{r['attacks'][attack]['exact']:.0%} ({r['attacks'][attack]['bit_accuracy']:.1%})"
                 for r in methods.values()]
        lines.append(f"| {attack} | " + " | ".join(cells) + " |")
    psnrs = (f"{r['psnr_mean']:.1f} / {r['psnr_min']:.1f}" for r in methods.values())
    lines.append("| PSNR mean / min (dB) | " + " | ".join(psnrs) + " |")
    for label in timing["ours"]:
        for phase in ("embed_s", "detect_s"):
            cells = [f"{timing[m][label][phase] * 1000:.0f} ms"
                     for m in ["ours", *PEERS] if m in timing and label in timing[m]]
            lines.append(f"| {phase[:-2]} time {label} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    text += "\n\nCells: exact-payload rate (bit accuracy). Times: median per image, this machine, one run.\n"
    for label in timing["ours"]:
        ours_total = timing["ours"][label]["embed_s"] + timing["ours"][label]["detect_s"]
        ratios = ", ".join(
            f"{m} {((timing[m][label]['embed_s'] + timing[m][label]['detect_s']) / ours_total):.1f}x"
            for m in PEERS if m in timing and label in timing[m]
        )
        text += f"{label}: ours {ours_total * 1000:.0f} ms embed+detect; peer time / ours: {ratios}\n"
    text += (
        f"False alarms: {alarms['unmarked_detections']} of {alarms['unmarked_crops']} unmarked crops, "
        f"{alarms['other_key_detections']} of {alarms['other_key_images']} images marked with another key "
        f"({alarms['seconds']:.0f} s); bound per image {alarms['bound_per_image']:.1e}.\n"
    )
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timing runs per cell (median)")
    parser.add_argument("--crops", type=int, default=10000, help="unmarked crops for the false-alarm run")
    parser.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON", "/work/peer-venv/bin/python"))
    parser.add_argument("--json", type=Path, help="also write all numbers to this file")
    args = parser.parse_args()

    images = natural_images()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        paths = []
        for name, image in images.items():
            paths.append(folder / f"{Path(name).stem}.png")
            image.save(paths[-1])
        astronaut = images["astronaut"]
        timing_images = {"512x512": folder / "t512.png", "3840x2160": folder / "t4k.png"}
        astronaut.save(timing_images["512x512"])
        astronaut.resize((3840, 2160), Image.Resampling.BICUBIC).save(timing_images["3840x2160"])

        ours = {"robustness": ours_robustness(images)}
        timing = {"ours": ours_timing(timing_images, args.repeat)}
        peers: dict = {}
        if Path(args.peer_python).exists():
            peers = run_peer(args.peer_python, paths, timing_images, max(1, min(args.repeat, 3)), folder)
            for label, by_method in peers["timing"].items():
                for method, cell in by_method.items():
                    timing.setdefault(method, {})[label] = cell
        else:
            print(f"peer interpreter {args.peer_python} not found: ours only (see the docstring)", file=sys.stderr)
        alarms = false_alarms(images, args.crops)

    print(f"{len(images)} natural images, {len(ATTACKS)} attacks\n")
    print(report(ours, peers, timing, alarms))
    if args.json:
        numbers = {"ours": ours, "peers": peers, "timing": timing, "false_alarms": alarms}
        args.json.write_text(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
