"""Image watermark: ours against invisible-watermark (dwtDct, dwtDctSvd, rivaGan), side by side in one run.

Photos: every ``--stride``-th of the 1,000 ImageNet sample photos (one per class, mostly 500x375; a public
GitHub copy, EliSchwartz/imagenet-sample-images, in ``--photos``), the natural images scikit-image ships, and
the photos in ../shared/interop/c2pa. For each: embed, apply every attack of ``image_attacks.ALL_ATTACKS`` (issue
5's and issue 14's geometric ones), decode. Reported per method and attack: the rate of exactly decoded payloads
and the bit accuracy; PSNR and SSIM; embed and detect time at 512x512 and 3840x2160 (and detect time on an
unmarked image); and false alarms over thousands of unmarked crops of all 1,000 photos at several sizes and over
marked images read with another key.

Payloads: ours carries 80 bits (16-bit key id + 64-bit record id) plus a 40-bit tag; dwtDct and dwtDctSvd 64
bits; rivaGan 32 bits (all it supports). Bit accuracy for ours is over the 80 payload bits; when ours reports
no mark it returns no bits, which is counted as 50 % (chance), the conservative convention.

The peer runs in its own interpreter (it breaks cv2 in the project's environment; see DESIGN.md). rivaGan takes
seconds per image on a CPU, so it runs on the first ``--rivagan-images`` photos only (the table says how many).
``--peer-cache FILE`` keeps the peer's results and reuses them while the photos and attacks are unchanged:

    python3.11 -m venv /work/peer-venv && /work/peer-venv/bin/pip install torch==2.13.0 \\
        && /work/peer-venv/bin/pip install --no-deps invisible-watermark \\
        && /work/peer-venv/bin/pip install PyWavelets onnxruntime opencv-python-headless numpy pillow
    PEER_PYTHON=/work/peer-venv/bin/python .venv/bin/python benchmarks/watermark_robustness.py --photos DIR
"""

from __future__ import annotations

import argparse
import hashlib
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
from guard.watermark.image_attacks import ALL_ATTACKS  # noqa: E402

INTEROP = Path(__file__).resolve().parents[2] / "shared" / "interop" / "c2pa"
SKIMAGE = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
           "camera", "moon", "brick", "grass", "gravel")
PEERS = ("dwtDct", "dwtDctSvd", "rivaGan")
SECRET, OTHER = bytes(range(32)), bytes(range(1, 33))


def natural_images(photos: Path | None, stride: int) -> dict[str, Image.Image]:
    import skimage.data

    images = {n: Image.fromarray(np.ascontiguousarray(getattr(skimage.data, n)())).convert("RGB") for n in SKIMAGE}
    for path in sorted(INTEROP.glob("*.jpg")) + sorted(INTEROP.glob("*.webp")):
        images[path.name] = Image.open(path).convert("RGB")
    for path in imagenet(photos)[::stride]:
        images[path.name] = Image.open(path).convert("RGB")
    return {name: image for name, image in images.items() if min(image.size) >= wm.MIN_SIDE}


def imagenet(photos: Path | None) -> list[Path]:
    return sorted(photos.glob("*.JPEG")) if photos else []


def psnr(a: Image.Image, b: Image.Image) -> float:
    x, y = (np.asarray(im, dtype=np.float64) for im in (a, b))
    return float(10 * np.log10(255.0**2 / np.mean((x - y) ** 2)))


def ssim(a: Image.Image, b: Image.Image) -> float:
    from skimage.metrics import structural_similarity

    return float(structural_similarity(np.asarray(a), np.asarray(b), channel_axis=2, data_range=255))


def ours_robustness(images: dict[str, Image.Image]) -> dict:
    rng = np.random.default_rng(0)
    rows = {name: {"bit_accuracy": [], "exact": []} for name in ALL_ATTACKS}
    psnrs, ssims, failures = [], [], {}
    for k, (name, image) in enumerate(images.items()):
        print(f"ours {k + 1}/{len(images)}: {name}", file=sys.stderr, flush=True)
        payload = wm.WatermarkPayload(rng.bytes(2).hex(), rng.bytes(8).hex())
        marked = wm.embed(image, payload, SECRET)
        psnrs.append(psnr(image, marked))
        ssims.append(ssim(image, marked))
        attacked = {attack: fn(marked) for attack, fn in ALL_ATTACKS.items()}
        for (attack, _), result in zip(attacked.items(), wm.detect_many(list(attacked.values()), SECRET)):
            accuracy = float(np.mean(result.payload.to_bits() == payload.to_bits())) if result.found else 0.5
            rows[attack]["bit_accuracy"].append(accuracy)
            rows[attack]["exact"].append(result.payload == payload)
            if result.payload != payload:
                failures.setdefault(attack, []).append(name)
    return {
        "images": len(images),
        "psnr_mean": statistics.fmean(psnrs),
        "psnr_min": min(psnrs),
        "ssim_mean": statistics.fmean(ssims),
        "ssim_min": min(ssims),
        "attacks": {n: {k: statistics.fmean(v) for k, v in r.items()} for n, r in rows.items()},
        "failures": failures,
    }


def ours_timing(images: dict[str, Path], repeats: int) -> dict:
    payload = wm.WatermarkPayload("5a3c", "0123456789abcdef")
    out = {}
    for label, path in images.items():
        image = Image.open(path).convert("RGB")
        wm.detect(wm.embed(image, payload, SECRET), SECRET)  # warm caches and imports
        embeds, detects, unmarked = [], [], []
        for _ in range(repeats):
            start = time.perf_counter()
            marked = wm.embed(image, payload, SECRET)
            embeds.append(time.perf_counter() - start)
            start = time.perf_counter()
            wm.detect(marked, SECRET)
            detects.append(time.perf_counter() - start)
            start = time.perf_counter()
            wm.detect(image, SECRET)
            unmarked.append(time.perf_counter() - start)
        out[label] = {"embed_s": min(embeds), "detect_s": min(detects), "detect_unmarked_s": min(unmarked)}
    return out


def false_alarms(photos: list[Path], images: dict[str, Image.Image], count: int) -> dict:
    """Detections on ``count`` unmarked crops (of all the ImageNet photos, at several sizes, and of the other
    photos), and on crops of marked images read with another key."""
    rng = np.random.default_rng(1)
    pool = [Image.open(p).convert("RGB") for p in photos] + list(images.values())
    sides = (128, 192, 256, 384, 512)

    def crops(source: list[Image.Image], n: int, start: int) -> list[Image.Image]:
        out = []
        for k in range(start, start + n):
            image = source[k % len(source)]
            side = sides[(k // len(source)) % len(sides)]
            w, h = (min(s, int(side * rng.uniform(0.75, 1.25))) for s in image.size)
            x, y = int(rng.integers(0, image.width - w + 1)), int(rng.integers(0, image.height - h + 1))
            out.append(image.crop((x, y, x + w, y + h)))
        return out

    marked = [wm.embed(im, wm.WatermarkPayload("5a3c", "0123456789abcdef"), OTHER) for im in images.values()]
    start = time.perf_counter()
    unmarked_hits = 0
    for k in range(0, count, 250):
        print(f"false alarms {k}/{count}", file=sys.stderr, flush=True)
        unmarked_hits += sum(r.found for r in wm.detect_many(crops(pool, min(250, count - k), k), SECRET))
    seconds = time.perf_counter() - start
    other = crops(marked, len(marked) * 4, 0) + marked
    other_key_hits = sum(r.found for r in wm.detect_many(other, SECRET))
    return {
        "unmarked_crops": count,
        "unmarked_detections": unmarked_hits,
        "unmarked_seconds": seconds,
        "other_key_images": len(other),
        "other_key_detections": other_key_hits,
        "bound_per_image": wm.FALSE_ALARM_BOUND,
    }


def run_peer(peer_python: str, images: list[Path], timing: dict[str, Path], repeats: int, folder: Path,
             rivagan_images: int, cache: Path | None) -> dict:
    attacks_file = Path(image_attacks.__file__)
    digest = hashlib.sha256(attacks_file.read_bytes())
    for path in images:
        digest.update(path.read_bytes())
    key = f"{digest.hexdigest()}:{rivagan_images}"
    if cache and cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("key") == key:
            print(f"peer results reused from {cache}", file=sys.stderr)
            return cached["results"]
    job = folder / "job.json"
    job.write_text(json.dumps({
        "images": [str(p) for p in images],
        "attacks_file": str(attacks_file),
        "timing_images": {k: str(v) for k, v in timing.items()},
        "repeats": repeats,
        "image_limit": {"rivaGan": rivagan_images},
    }))
    script = Path(__file__).with_name("watermark_peer.py")
    done = subprocess.run([peer_python, str(script), str(job)], stdout=subprocess.PIPE, text=True, check=False)
    if done.returncode:
        raise SystemExit(f"peer run failed ({peer_python}), exit {done.returncode}")
    results = json.loads(done.stdout)
    if cache:
        cache.write_text(json.dumps({"key": key, "results": results}))
    return results


def report(ours: dict, peers: dict, timing: dict, alarms: dict) -> str:
    methods = {"ours": ours["robustness"]}
    methods.update({m: peers["robustness"][m] for m in PEERS if m in peers.get("robustness", {})})
    header = [f"{m} ({r.get('images', ours['robustness']['images'])} images)" for m, r in methods.items()]
    lines = ["| attack | " + " | ".join(header) + " |", "|---" * (len(methods) + 1) + "|"]
    for attack in ALL_ATTACKS:
        cells = [f"{r['attacks'][attack]['exact']:.0%} ({r['attacks'][attack]['bit_accuracy']:.1%})"
                 for r in methods.values()]
        lines.append(f"| {attack} | " + " | ".join(cells) + " |")
    psnrs = (f"{r['psnr_mean']:.1f} / {r['psnr_min']:.1f}" for r in methods.values())
    lines.append("| PSNR mean / min (dB) | " + " | ".join(psnrs) + " |")
    lines.append(f"| SSIM mean / min (ours) | {ours['robustness']['ssim_mean']:.4f} / "
                 f"{ours['robustness']['ssim_min']:.4f} |" + " |" * (len(methods) - 1))
    for label in timing["ours"]:
        for phase in ("embed_s", "detect_s"):
            cells = [f"{timing[m][label][phase] * 1000:.0f} ms"
                     for m in ["ours", *PEERS] if m in timing and label in timing[m]]
            lines.append(f"| {phase[:-2]} time {label} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    text += "\n\nCells: exact-payload rate (bit accuracy). Times: ours the best of the repeats, peers the median.\n"
    for label in timing["ours"]:
        ours_total = timing["ours"][label]["embed_s"] + timing["ours"][label]["detect_s"]
        ratios = ", ".join(
            f"{m} {((timing[m][label]['embed_s'] + timing[m][label]['detect_s']) / ours_total):.1f}x"
            for m in PEERS if m in timing and label in timing[m]
        )
        text += (f"{label}: ours {ours_total * 1000:.0f} ms embed+detect, "
                 f"{timing['ours'][label]['detect_unmarked_s'] * 1000:.0f} ms to scan an unmarked image; "
                 f"peer time / ours: {ratios}\n")
    text += (
        f"False alarms: {alarms['unmarked_detections']} of {alarms['unmarked_crops']} unmarked crops "
        f"({alarms['unmarked_seconds']:.0f} s, {alarms['unmarked_seconds'] / alarms['unmarked_crops'] * 1000:.0f} ms "
        f"each), {alarms['other_key_detections']} of {alarms['other_key_images']} images marked with another key; "
        f"bound per image {alarms['bound_per_image']:.1e}.\n"
    )
    for attack, names in ours["robustness"]["failures"].items():
        text += f"ours missed under {attack}: {', '.join(names)}\n"
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, help="folder of the ImageNet sample photos (*.JPEG)")
    parser.add_argument("--stride", type=int, default=25, help="use every N-th ImageNet photo for robustness")
    parser.add_argument("--repeat", type=int, default=5, help="timing runs per cell")
    parser.add_argument("--crops", type=int, default=5000, help="unmarked crops for the false-alarm run")
    parser.add_argument("--rivagan-images", type=int, default=8, help="photos rivaGan runs on (seconds each)")
    parser.add_argument("--peer-python", default=os.environ.get("PEER_PYTHON", "/work/peer-venv/bin/python"))
    parser.add_argument("--peer-cache", type=Path, help="keep and reuse the peer's results in this file")
    parser.add_argument("--no-peer", action="store_true", help="ours only")
    parser.add_argument("--json", type=Path, help="also write all numbers to this file")
    args = parser.parse_args()

    images = natural_images(args.photos, args.stride)
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
        if args.no_peer:
            pass
        elif Path(args.peer_python).exists():
            peers = run_peer(args.peer_python, paths, timing_images, max(1, min(args.repeat, 3)), folder,
                             args.rivagan_images, args.peer_cache)
            for label, by_method in peers["timing"].items():
                for method, cell in by_method.items():
                    timing.setdefault(method, {})[label] = cell
        else:
            print(f"peer interpreter {args.peer_python} not found: ours only (see the docstring)", file=sys.stderr)
        alarms = false_alarms(imagenet(args.photos), images, args.crops)

    print(f"{len(images)} natural images, {len(ALL_ATTACKS)} attacks\n")
    print(report(ours, peers, timing, alarms))
    if args.json:
        numbers = {"ours": ours, "peers": peers, "timing": timing, "false_alarms": alarms}
        args.json.write_text(json.dumps(numbers, indent=2))


if __name__ == "__main__":
    main()
