"""Face finders side by side: MTCNN (facenet-pytorch's weights, plain torch) against OpenCV's Haar cascade.

    python benchmarks/face_finders.py --data DIR [--sheet FILE]

``DIR`` is the set ``benchmarks/deepfake_data.py`` builds (every image 256 x 256, JPEG q90). On photos that
show a face (FFHQ portraits and web face photos: ``eyes_that`` and ``facemask`` reals) the recall is the share of
images where at least one face is found; on photos chosen to show none (ImageNet samples), any detection is a
candidate false positive: ``--sheet`` draws them all on one contact sheet to be checked by eye (some ImageNet
photos do show people). Also: the DCGAN faces of ``gan-face-generate`` (64 x 64, shown at 256) when installed,
and CPU milliseconds per image (one thread each, the way the decoding workers run them) on 256 x 256 images
and on a 12-megapixel photo.
"""

from __future__ import annotations

import argparse
import csv
import subprocess
import time
from pathlib import Path

import numpy as np


def rows_of(data: Path) -> list[dict]:
    with open(data / "manifest.csv", newline="") as handle:
        return list(csv.DictReader(handle))


def cpu_ms(fn, images, repeat: int = 1) -> float:
    start = time.process_time()
    for _ in range(repeat):
        for image in images:
            fn(image)
    return (time.process_time() - start) * 1000 / (len(images) * repeat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--sheet", type=Path, default=None, help="contact sheet of detections on face-free photos")
    parser.add_argument("--gan", type=int, default=200, help="DCGAN faces to try (0: none)")
    args = parser.parse_args()
    import cv2
    import torch

    from detectors.deepfake.faces import find_faces, finder_id
    from detectors.deepfake.images import decode

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())
    print("finders:", finder_id("mtcnn"), "|", finder_id("haar"))
    rows = rows_of(args.data)
    sets = {
        "FFHQ portraits (eyes_that reals)": [r for r in rows if r["source"] == "eyes_that" and r["label"] == "real"],
        "web face photos (facemask reals)": [r for r in rows if r["source"] == "facemask"],
        "ImageNet samples (no faces expected)": [r for r in rows if r["source"] == "imagenet"],
    }
    images = {name: [decode(str(args.data / r["path"])) for r in chosen] for name, chosen in sets.items()}
    if args.gan:
        try:
            from guard.demo.gan import face_generator

            generator = face_generator()
            images["DCGAN faces (gan-face-generate, at 256 px)"] = [
                np.asarray(g.content) for g in generator.generate(["face"] * args.gan, seed=0, size=256)]
        except Exception as exc:  # noqa: BLE001 - not installed: say so and go on
            print(f"DCGAN faces skipped: {exc}")
    found: dict[tuple[str, str], list[list]] = {}
    print("\n| images | n | finder | images with a face | faces found | CPU ms / image |")
    print("|---|---|---|---|---|---|")
    for name, batch in images.items():
        for finder in ("mtcnn", "haar"):
            boxes = [find_faces(image, finder=finder) for image in batch]
            found[(name, finder)] = boxes
            ms = cpu_ms(lambda im, f=finder: find_faces(im, finder=f), batch[:50])
            hit = sum(bool(b) for b in boxes)
            print(f"| {name} | {len(batch)} | {finder} | {hit} ({hit / len(batch):.1%}) | {sum(map(len, boxes))} "
                  f"| {ms:.1f} |")
    from skimage import data as bundled

    big = cv2.resize(bundled.astronaut(), (4000, 3000), interpolation=cv2.INTER_CUBIC)
    for finder in ("mtcnn", "haar"):
        ms = cpu_ms(lambda im, f=finder: find_faces(im, finder=f), [big], repeat=3)
        print(f"| astronaut at 4000x3000 | 1 | {finder} | {len(find_faces(big, finder=finder))} face(s) | | {ms:.1f} |")
    if args.sheet:
        draw_sheet(args.sheet, images["ImageNet samples (no faces expected)"],
                   {f: found[("ImageNet samples (no faces expected)", f)] for f in ("mtcnn", "haar")},
                   [r["path"] for r in sets["ImageNet samples (no faces expected)"]])
    print("load:", subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip())


def draw_sheet(path: Path, images, boxes_by_finder: dict, names: list[str]) -> None:
    """Every face-free photo where a finder found something, boxes drawn (MTCNN red, Haar blue), numbered."""
    from PIL import Image, ImageDraw

    flagged = [i for i in range(len(images)) if any(boxes_by_finder[f][i] for f in boxes_by_finder)]
    cols, tile = 8, 160
    sheet = Image.new("RGB", (cols * tile, max(1, -(-len(flagged) // cols)) * tile), "white")
    for k, i in enumerate(flagged):
        image = Image.fromarray(images[i])
        draw = ImageDraw.Draw(image)
        for finder, colour in (("mtcnn", "red"), ("haar", "blue")):
            for b in boxes_by_finder[finder][i]:
                draw.rectangle((b.x, b.y, b.x + b.w, b.y + b.h), outline=colour, width=3)
        draw.text((4, 4), str(k), fill="yellow")
        sheet.paste(image.resize((tile, tile)), ((k % cols) * tile, (k // cols) * tile))
    sheet.save(path)
    for k, i in enumerate(flagged):
        counts = {f: len(boxes_by_finder[f][i]) for f in boxes_by_finder}
        print(f"sheet {k}: {names[i]} {counts}")


if __name__ == "__main__":
    main()
