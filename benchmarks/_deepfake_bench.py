"""What the deepfake throughput benchmarks share: JPEG inputs cut from scikit-image's photographs (no downloads,
the same bytes every run) and a GPU utilisation sampler."""

from __future__ import annotations

import statistics
import threading
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


class GpuSampler:
    """GPU utilisation every 100 ms while the block runs (``torch.cuda.utilization``: needs nvidia-ml-py; else n/a)."""

    def __init__(self, enabled: bool) -> None:
        self.enabled, self.samples, self._stop = enabled, [], threading.Event()

    def __enter__(self):
        if self.enabled:
            threading.Thread(target=self._run, daemon=True).start()
        return self

    def _run(self) -> None:
        import torch

        while not self._stop.wait(0.1):
            try:
                self.samples.append(torch.cuda.utilization())
            except Exception:  # noqa: BLE001 - no NVML: report n/a
                return

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def summary(self) -> str:
        return f"GPU {statistics.mean(self.samples):.0f}%" if self.samples else "GPU n/a"
