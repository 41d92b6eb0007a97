"""Image watermark speed: embed and detect, marked and unmarked, over many photos, optionally side by side with
another version of the watermark module in the same run.

``watermark_robustness.py`` times one image (the best of a few runs) inside an hour-long run; this takes a minute
and shows what a scanner sees: the median over ``--count`` photos resized to 512x512 of the embed time, the
detect time of the marked copy and of the unmarked photo (most of what a scanner reads, and the slower: the
detector searches before it gives up), and the same at 3840x2160 (one photo, ``--repeat`` runs). ``--against
FILE`` loads another copy of ``guard/watermark/image.py`` (for example the previous commit's) and runs it
beside this one on the same images, alternating which goes first; both must find every marked image and
nothing in the unmarked ones:

    git show main:guard/watermark/image.py > /tmp/image_main.py
    .venv/bin/python benchmarks/watermark_speed.py --photos DIR --against /tmp/image_main.py
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from types import ModuleType

from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.watermark_robustness import SECRET, imagenet, natural_images  # noqa: E402
from guard.watermark import image as wm  # noqa: E402


def load(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location("watermark_against", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


PHASES = ("embed", "detect (marked)", "detect (unmarked)")


def run(modules: dict[str, ModuleType], images: list[Image.Image]) -> dict[str, dict[str, list[tuple[float, float]]]]:
    """(wall, CPU) seconds per image for each module and phase. Each phase runs over all images in a row, as a
    scanner does, one module after the other, the first one changing each phase; both answers are checked. CPU
    time sums the process's threads: the work done, whatever the machine's load."""
    payloads = {name: module.WatermarkPayload("5a3c", "0123456789abcdef") for name, module in modules.items()}
    # Untimed: imports, caches, the allocator's first large blocks, and the marked copies.
    marked = {name: [module.embed(image, payloads[name], SECRET) for image in images]
              for name, module in modules.items()}
    for name, module in modules.items():
        module.detect(marked[name][0], SECRET)
    times: dict[str, dict[str, list[tuple[float, float]]]] = {name: {p: [] for p in PHASES} for name in modules}
    for k, phase in enumerate(PHASES):
        for name in list(modules)[:: 1 if k % 2 == 0 else -1]:
            module, payload = modules[name], payloads[name]
            for i, image in enumerate(images):
                start, cpu = time.perf_counter(), time.process_time()
                if phase == "embed":
                    module.embed(image, payload, SECRET)
                else:
                    result = module.detect(marked[name][i] if phase == "detect (marked)" else image, SECRET)
                    if (result.payload != payload) if phase == "detect (marked)" else result.found:
                        raise SystemExit(f"{name}: wrong answer, {phase}, {image.size[0]}x{image.size[1]}")
                times[name][phase].append((time.perf_counter() - start, time.process_time() - cpu))
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, help="folder of the ImageNet sample photos (*.JPEG); "
                        "default: the natural images scikit-image ships")
    parser.add_argument("--count", type=int, default=30, help="photos timed at 512x512")
    parser.add_argument("--repeat", type=int, default=5, help="runs at 3840x2160")
    parser.add_argument("--against", type=Path, help="another copy of guard/watermark/image.py to run beside")
    args = parser.parse_args()

    modules = {"this": wm}
    if args.against:
        modules["against"] = load(args.against)
    paths = imagenet(args.photos)
    sources = ([Image.open(p).convert("RGB") for p in paths[11 :: max(1, len(paths) // args.count)][: args.count]]
               if paths else list(natural_images(None, 1).values())[: args.count])
    small = [image.resize((512, 512), Image.Resampling.BICUBIC) for image in sources]
    large = [sources[0].resize((3840, 2160), Image.Resampling.BICUBIC)] * args.repeat
    load_before = os.getloadavg()
    results = {"512x512": run(modules, small), "3840x2160": run(modules, large)}
    load_after = os.getloadavg()

    print(f"{len(small)} photos at 512x512, {args.repeat} runs at 3840x2160; medians, ms wall / ms CPU")
    print("| size | version | " + " | ".join(PHASES) + " |")
    print("|---" * (len(PHASES) + 2) + "|")
    median = {label: {name: {phase: [statistics.median(column) for column in zip(*rows)]
                             for phase, rows in by_phase.items()} for name, by_phase in times.items()}
              for label, times in results.items()}
    for label, by_name in median.items():
        for name, by_phase in by_name.items():
            cells = " | ".join(f"{wall * 1000:.0f} / {cpu * 1000:.0f}" for wall, cpu in by_phase.values())
            print(f"| {label} | {name} | {cells} |")
    if args.against:
        for label, by_name in median.items():
            ratios = ", ".join(f"{phase} {by_name['against'][phase][0] / by_name['this'][phase][0]:.2f}x "
                               f"({by_name['against'][phase][1] / by_name['this'][phase][1]:.2f}x CPU)"
                               for phase in PHASES)
            print(f"{label}: against / this: {ratios}")
    print(f"load average (1 min) {load_before[0]:.2f} before, {load_after[0]:.2f} after")


if __name__ == "__main__":
    main()
