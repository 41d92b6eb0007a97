"""A held-out set of images as they are found: camera photos and unseen generators' images at their native size
and encoding, never through ``deepfake_data.py``'s pipeline (which makes every image a 256 px JPEG at q90).

    python benchmarks/deepfake_native.py --repos DIR --used SET/manifest.csv --out DIR

It is what a detector fitted and calibrated on the pipeline's images meets in use: the scale and compression
differ, which is what ``guard scan``'s shift check must notice. Real: the camera photos of ianare/exif-samples
(``jpg/``: cameras and phones, 0.2-12 MP; thumbnails, the files its README lists as invalid, and all but two
of its sixteen rotated copies of one photo left out) plus ImageNet sample photos and Face-Mask-Detection web
photos that ``deepfake_data.py`` did not take (``--used``); generated: diffusion models' images it did not take
(SDFD's Stable Diffusion 2.1 faces, eudoxia0's DALL-E 2 images, dcsan/imagen renders), so a detector fitted on
the GAN family has seen neither these images nor their generators. Files are copied byte for byte, except
eudoxia0's DALL-E images, whose coloured signature (bottom 16 px) is cut and which are then stored as PNG.
``manifest.csv`` lists path, label, source, origin and licence.
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from deepfake_data import SOURCES, classify, git_dir, list_files, rank, read_blobs  # noqa: E402

CAMERA = ("ianare/exif-samples", "HEAD", "jpg", "CC BY-SA 4.0 (user contributions; see its README)")
MIN_SIDE = 360
# how many of each group: about as many real as generated, and enough real photos to measure a 5% FPR
WANT = {"camera": 60, "imagenet": 120, "facemask": 60, "sdfd": 80, "dalle2": 60, "imagen": 100}


def decodes(data: bytes) -> tuple[int, int] | None:
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.size
    except Exception:  # noqa: BLE001 - broken samples are left out
        return None


def camera_paths(gdir: Path) -> list[str]:
    import subprocess

    out = subprocess.run(["git", "-C", str(gdir), "ls-tree", "-r", "-z", "--name-only", CAMERA[1], "--", CAMERA[2]],
                         check=True, capture_output=True).stdout.decode()
    paths = [p for p in out.split("\0") if p.lower().endswith((".jpg", ".jpeg"))]
    keep = {"jpg/orientation/landscape_1.jpg", "jpg/orientation/portrait_1.jpg"}
    return sorted(p for p in paths if "/invalid/" not in p and "invalid_image" not in p
                  and ("/orientation/" not in p or p in keep))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=Path, required=True, help="folder of git clones (deepfake_data.py's, "
                        "plus ianare+exif-samples)")
    parser.add_argument("--used", type=Path, required=True, help="deepfake_data.py's manifest.csv: files to avoid")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    with open(args.used, newline="") as handle:
        used = {row["origin"] for row in csv.DictReader(handle)}
    rows = []

    def take(name: str, label: str, repo: str, ref: str, licence: str, paths: list[str], trap: str = "") -> None:
        gdir = git_dir(args.repos, repo)
        chosen = [p for p in sorted(paths, key=rank) if f"{repo}@{ref}:{p}" not in used]
        blobs = read_blobs(gdir, ref, chosen)
        kept = 0
        for path in chosen:
            if kept >= WANT[name]:
                break
            data = blobs.get(path, b"")
            size = decodes(data)
            if size is None or min(size) < MIN_SIDE:
                continue
            suffix = Path(path).suffix.lower()
            if trap == "signature-bottom-16":
                from PIL import Image

                image = Image.open(io.BytesIO(data)).convert("RGB")
                buffer = io.BytesIO()
                image.crop((0, 0, image.width, image.height - 16)).save(buffer, format="PNG")
                data, suffix = buffer.getvalue(), ".png"
            target = args.out / label / name / f"{rank(path)[:12]}{suffix}"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(data)
            rows.append({"path": str(target.relative_to(args.out)), "label": label, "source": name,
                         "origin": f"{repo}@{ref}:{path}", "licence": licence})
            kept += 1
        print(f"{name:10s} {label:4s} {kept:4d}")

    take("camera", "real", CAMERA[0], CAMERA[1], CAMERA[3], camera_paths(git_dir(args.repos, CAMERA[0])))
    for source in SOURCES:
        if source.name not in WANT:
            continue
        paths = list_files(git_dir(args.repos, source.repo), source)
        wanted = []
        for path in paths:
            kind = classify(source.name, path)
            if kind is None:
                continue
            label, family, _ = kind
            if label == "real" or family == "diffusion":  # generated: only the diffusion family (unseen)
                wanted.append(path)
        label = "real" if source.name in ("imagenet", "facemask") else "fake"
        take(source.name, label, source.repo, source.ref, source.licence, wanted, source.trap)
    with open(args.out / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"{len(rows)} images in {args.out / 'manifest.csv'}")


if __name__ == "__main__":
    main()
