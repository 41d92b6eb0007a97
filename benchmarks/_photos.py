"""Benchmark inputs: distinct JPEG files cut from scikit-image's photographs (no downloads, same bytes every run)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def make_jpegs(folder: Path, n: int, size: int) -> list[str]:
    """``n`` distinct ``size`` x ``size`` JPEG files (quality 90), cut at seeded random places."""
    from PIL import Image
    from skimage import data

    sources = [data.astronaut(), data.chelsea(), data.coffee(), data.rocket(), data.immunohistochemistry()]
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        image = sources[i % len(sources)]
        y, x = rng.integers(0, image.shape[0] - size), rng.integers(0, image.shape[1] - size)
        path = folder / f"{i:05d}.jpg"
        Image.fromarray(image[y : y + size, x : x + size]).save(path, quality=90)
        paths.append(str(path))
    return paths
