"""Build the real-versus-generated image set of the deepfake evidence from public GitHub repositories.

    python benchmarks/deepfake_data.py --repos DIR --out DIR

``--repos`` holds git clones (bare or not) of the repositories in ``SOURCES``, each as ``DIR/<owner>+<name>`` or
``DIR/<owner>+<name>/repo`` or ``DIR/<name>``; files are read with ``git show``, so no work tree is needed. Every
image goes through one pipeline, so that no encoding, size or border tells a real image from a generated one:

1. decode (RGB, EXIF upright), then cut the source's known trap: CNNDetection's ranking images carry a 50 px
   border coloured by label (kept: the inner 244 x 244), eudoxia0's DALL-E 2 images a coloured signature in the
   bottom 16 px (cut);
2. images whose shorter side is then under ``MIN_SIDE`` are skipped (tiny face crops would be upscaled, and
   only real ones are that small);
3. shorter side to ``SIDE`` (area interpolation down, bicubic up), centre square crop;
4. JPEG quality 90, 4:2:0 (PIL's default), no metadata.

Each (source, generator, label) group is subsampled to its ``CAPS`` entry (or ``--per-group``, whichever is
smaller), chosen by a hash of the path (stable across runs): about 2,600 images, as many real as generated. Real images get split ``A`` or ``B`` (hash parity): training uses one half, testing
the other, so no real photo is on both sides. ``manifest.csv`` lists path, label, family, generator, source,
split and licence. The images stay outside the repository; licences are in docs/evidence.md.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import io
import re
import subprocess
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

SIDE = 256
MIN_SIDE = 200
QUALITY = 90
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


@dataclass(frozen=True)
class Source:
    name: str
    repo: str  # owner/name on GitHub
    ref: str
    folder: str
    licence: str
    trap: str = ""  # "cnndetection-border" | "signature-bottom-16"


SOURCES = (
    Source("cnndetection", "PeterWang512/CNNDetection", "gh-pages", "ranking/images", "CC BY-NC-SA 4.0",
           "cnndetection-border"),
    Source("sdfd", "gebaltso/SDFD", "HEAD", "allImages", "no licence stated (research dataset, FG 2024)"),
    Source("fakefaces", "BaseMax/FakeFaces", "HEAD", "faces", "GPL-3.0"),
    Source("eyes_that", "twinkletwinklelittlestar70/eyes_that", "HEAD", "backend/static/images",
           "no licence stated; reals are FFHQ (CC BY-NC-SA 4.0 as a collection)"),
    Source("imagen", "dcsan/imagen", "HEAD", "output/renders", "no licence stated"),
    Source("dalle2", "eudoxia0/eudoxia0.github.io", "HEAD", "assets/content/dall-e-explorations",
           "no licence stated", "signature-bottom-16"),
    Source("imagenet", "EliSchwartz/imagenet-sample-images", "HEAD", "", "ImageNet terms: non-commercial research"),
    Source("facemask", "chandrikadeb7/Face-Mask-Detection", "HEAD", "dataset/without_mask",
           "MIT (repository); photos collected from the web"),
)

# Images per (source, generator, label) group: balanced so no one source dominates its family.
CAPS = {"cnndetection": 20, "sdfd": 200, "fakefaces": 200, "eyes_that": 200, "imagen": 60, "dalle2": 120,
        "imagenet": 500, "facemask": 300}
# CNNDetection's ten test generators, by the family the evidence holds out. "other" is never trained on.
CNNDETECTION_FAMILY = {"biggan": "gan", "cyclegan": "gan", "gaugan": "gan", "stargan": "gan", "stylegan": "gan",
                       "crn": "other", "imle": "other", "seeingdark": "other", "san": "other", "deepfake": "other"}
# dcsan/imagen file-name prefixes: the model that rendered the image (from the repository's data/configs.py).
IMAGEN_MODELS = {"ldif": ("latent-diffusion", "diffusion"), "glid3": ("glid-3", "diffusion"),
                 "disco": ("disco-diffusion", "diffusion"), "stab": ("stable-diffusion-1", "diffusion"),
                 "mdif": ("majesty-diffusion", "diffusion"), "dal2": ("dall-e-2", "diffusion"),
                 "midj": ("midjourney-2022", "diffusion"), "dmin": ("dall-e-mini", "other"),
                 "simu": ("vqgan-clip", "other")}


def classify(source: str, path: str) -> tuple[str, str, str] | None:
    """(label, family, generator) of one file, or ``None`` to leave it out."""
    name = path.rsplit("/", 1)[-1]
    stem = name.rsplit(".", 1)[0]
    if source == "cnndetection":
        match = re.fullmatch(r"\d+_([a-z]+)_(real|fake)", stem)
        if not match:
            return None  # the per-generator thumbnails (biggan.jpg, ...)
        generator, label = match.groups()
        family = "real" if label == "real" else CNNDETECTION_FAMILY[generator]
        return label, family, generator
    if source == "sdfd":
        return "fake", "diffusion", "stable-diffusion-2.1"
    if source == "fakefaces":
        return "fake", "gan", "stylegan"
    if source == "eyes_that":
        label = path.split("/")[-2]
        return (label, "real", "ffhq") if label == "real" else (label, "gan", "stylegan")
    if source == "imagen":
        prefix = re.sub(r"-\d+$", "", stem)
        if prefix not in IMAGEN_MODELS:
            return None
        generator, family = IMAGEN_MODELS[prefix]
        return "fake", family, generator
    if source == "dalle2":
        return "fake", "diffusion", "dall-e-2"
    if source in ("imagenet", "facemask"):
        return "real", "real", source
    raise ValueError(source)


def git_dir(root: Path, repo: str) -> Path:
    owner, name = repo.split("/")
    for candidate in (root / f"{owner}+{name}" / "repo", root / f"{owner}+{name}", root / name):
        if candidate.exists():
            return candidate
    raise SystemExit(f"{repo}: no clone under {root} (tried {owner}+{name}/repo, {owner}+{name}, {name})")


def list_files(gdir: Path, source: Source) -> list[str]:
    args = ["git", "-C", str(gdir), "ls-tree", "-r", "-z", "--name-only", source.ref]
    if source.folder:
        args += ["--", source.folder]
    out = subprocess.run(args, check=True, capture_output=True).stdout.decode()
    return sorted(p for p in out.split("\0") if p.lower().endswith(IMAGE_SUFFIXES))


def read_blobs(gdir: Path, ref: str, paths: list[str]) -> dict[str, bytes]:
    """File contents through one ``git cat-file --batch`` process."""
    proc = subprocess.Popen(["git", "-C", str(gdir), "cat-file", "--batch"], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE)
    out: dict[str, bytes] = {}
    for path in paths:
        proc.stdin.write(f"{ref}:{path}\n".encode())
        proc.stdin.flush()
        header = proc.stdout.readline().split()
        if len(header) < 3:
            continue  # "<object> missing"
        size = int(header[2])
        out[path] = proc.stdout.read(size)
        proc.stdout.read(1)  # the newline after each object
    proc.stdin.close()
    proc.wait()
    return out


def encode(data: bytes, trap: str) -> bytes | None:
    """The one pipeline: trap crop, shorter side to SIDE, centre square, JPEG q90; ``None`` if too small or
    unreadable."""
    import cv2
    import numpy as np
    from PIL import Image, ImageOps

    try:
        image = ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")
    except Exception:  # noqa: BLE001 - Git LFS pointers and broken files are left out
        return None
    rgb = np.asarray(image)
    if trap == "cnndetection-border":
        rgb = rgb[56:300, 56:300]
    elif trap == "signature-bottom-16":
        rgb = rgb[:-16]
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        return None
    scale = SIDE / min(height, width)
    size = (max(SIDE, round(width * scale)), max(SIDE, round(height * scale)))
    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)
    top, left = (size[1] - SIDE) // 2, (size[0] - SIDE) // 2
    rgb = np.ascontiguousarray(rgb[top : top + SIDE, left : left + SIDE])
    buffer = io.BytesIO()
    Image.fromarray(rgb).save(buffer, format="JPEG", quality=QUALITY)
    return buffer.getvalue()


def rank(path: str) -> str:
    return hashlib.sha256(path.encode()).hexdigest()


def write_folders(rows: list[dict], out: Path, target: Path) -> None:
    """Folders of links for ``guard detector train`` and ``eval`` (which read a real and a fake folder): each
    family's images with the A photos to train on (``<family>-train``), and with the B photos to test on
    (``<family>-test``)."""
    for row in rows:
        source = (out / row["path"]).resolve()
        name = f"{row['source']}-{source.name}"
        if row["label"] == "real":
            folders = [f"{family}-{part}/real" for family in ("gan", "diffusion")
                       for part in (("train",) if row["split"] == "A" else ("test",))]
        elif row["family"] in ("gan", "diffusion"):
            folders = [f"{row['family']}-train/fake", f"{row['family']}-test/fake"]
        else:
            continue
        for folder in folders:
            link = target / folder / name
            link.parent.mkdir(parents=True, exist_ok=True)
            if not link.exists():
                link.symlink_to(source)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repos", type=Path, required=True, help="folder of git clones of SOURCES")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--per-group", type=int, default=None, help="cap every group (default: CAPS)")
    parser.add_argument("--folders", type=Path, default=None, help="also write real/fake folders of links for the "
                        "CLI: gan-train, gan-test, diffusion-train, diffusion-test")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rows, skipped = [], defaultdict(int)
    for source in SOURCES:
        gdir = git_dir(args.repos, source.repo)
        groups: dict[tuple, list[str]] = defaultdict(list)
        for path in list_files(gdir, source):
            kind = classify(source.name, path)
            if kind is not None:
                groups[kind].append(path)
        for (label, family, generator), paths in sorted(groups.items()):
            chosen = sorted(paths, key=rank)
            blobs = read_blobs(gdir, source.ref, chosen)
            kept, cap = 0, min(CAPS[source.name], args.per_group or CAPS[source.name])
            for path in chosen:
                if kept >= cap:
                    break
                data = encode(blobs.get(path, b""), source.trap)
                if data is None:
                    skipped[source.name] += 1
                    continue
                digest = rank(path)
                target = args.out / family / source.name / f"{generator}-{label}-{digest[:12]}.jpg"
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(data)
                split = ("A" if int(digest, 16) % 2 == 0 else "B") if label == "real" else ""
                rows.append({"path": str(target.relative_to(args.out)), "label": label, "family": family,
                             "generator": generator, "source": source.name, "split": split,
                             "origin": f"{source.repo}@{source.ref}:{path}", "licence": source.licence})
                kept += 1
            print(f"{source.name:12s} {generator:22s} {label:4s} {family:9s} {kept:4d} of {len(paths)}")
    with open(args.out / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    if args.folders:
        write_folders(rows, args.out, args.folders)
    print(f"{len(rows)} images in {args.out / 'manifest.csv'}; skipped (unreadable or under {MIN_SIDE} px): "
          + ", ".join(f"{k} {v}" for k, v in sorted(skipped.items())))


if __name__ == "__main__":
    main()
