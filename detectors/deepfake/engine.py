"""Images through a model in batches: decoding, face finding and preprocessing in worker processes (a torch
``DataLoader``), overlapped with the model's compute in the main process.

Each worker item is a *chunk* of images: decoded, optionally degraded (JPEG, blur: the evaluation protocol),
searched for faces, cut into crops (the whole image first, then each face with a margin), and preprocessed into
one stacked array. Only preprocessed chunks travel back, at most ``workers * prefetch`` of them in flight, so
memory stays bounded whatever the folder holds. On a GPU the loader pins the chunk (page-locked memory) so the
copy to the device is asynchronous. A file that cannot be decoded becomes an error for that image only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from core.imageio import MAX_PIXELS
from detectors.deepfake import faces as face_finder
from detectors.deepfake.images import decode

PREFETCH = 2  # chunks queued per worker


@dataclass(frozen=True)
class CropPlan:
    """Which crops of an image are scored: the whole image, and each face found (when ``faces``) by ``finder``
    (``mtcnn`` or ``haar``: resolved where the plan is made, so every worker uses the same one)."""

    faces: bool = True
    margin: float = 0.3
    max_faces: int = 8
    min_face: float = 0.08
    finder: str = "haar"


@dataclass
class ImageOutput:
    """The model's outputs for one input image, one row per crop: the whole image, then each face in ``boxes``."""

    index: int
    outputs: np.ndarray | None
    boxes: list[list[int]] = field(default_factory=list)
    error: str | None = None


class ChunkDataset:
    """Map-style dataset whose items are preprocessed chunks of ``chunk`` images (picklable for any start method)."""

    def __init__(
        self,
        sources: Sequence[Any],
        prepare: Callable[[np.ndarray], np.ndarray],
        plan: CropPlan,
        *,
        chunk: int,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.sources = list(sources)
        self.prepare = prepare
        self.plan = plan
        self.chunk = max(1, chunk)
        self.transform = transform
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return math.ceil(len(self.sources) / self.chunk)

    def __getitem__(self, item: int) -> dict[str, Any]:
        start = item * self.chunk
        arrays: list[np.ndarray] = []
        counts, boxes, errors = [], [], []
        for source in self.sources[start : start + self.chunk]:
            try:
                prepared, found = self._one(source)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch; the error is reported
                counts.append(0)
                boxes.append([])
                errors.append(str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}")
                continue
            arrays.extend(prepared)
            counts.append(len(prepared))
            boxes.append([box.to_list() for box in found])
            errors.append(None)
        inputs = _as_tensor(np.stack(arrays)) if arrays else None
        return {"start": start, "inputs": inputs, "counts": counts, "boxes": boxes, "errors": errors}

    def _one(self, source: Any) -> tuple[list[np.ndarray], list[face_finder.Box]]:
        image = decode(source, max_pixels=self.max_pixels)
        if self.transform is not None:
            image = self.transform(image)
        found = (
            face_finder.find_faces(image, min_size=self.plan.min_face, max_faces=self.plan.max_faces,
                                   finder=self.plan.finder)
            if self.plan.faces
            else []
        )
        crops = [image] + [face_finder.crop(image, box, self.plan.margin) for box in found]
        return [self.prepare(crop) for crop in crops], found


def _as_tensor(array: np.ndarray):
    import torch

    return torch.from_numpy(array)


def _init_worker(_: int) -> None:
    import cv2
    import torch

    cv2.setNumThreads(1)  # the worker is one of many processes; OpenCV's and torch's own pools (MTCNN runs in
    torch.set_num_threads(1)  # the workers) would oversubscribe the cores


def run(
    sources: Sequence[Any],
    forward: Callable[[Any], np.ndarray],
    *,
    prepare: Callable[[np.ndarray], np.ndarray],
    plan: CropPlan,
    batch_size: int = 32,
    workers: int = 0,
    pin_memory: bool = False,
    transform: Callable[[np.ndarray], np.ndarray] | None = None,
    max_pixels: int = MAX_PIXELS,
) -> Iterator[ImageOutput]:
    """Yield one ``ImageOutput`` per source, in order. ``forward`` maps a batch of at most ``batch_size`` crops
    to one row of outputs per crop."""
    dataset = ChunkDataset(sources, prepare, plan, chunk=batch_size, transform=transform, max_pixels=max_pixels)
    for chunk in _chunks(dataset, workers=workers, pin_memory=pin_memory):
        inputs = chunk["inputs"]
        outputs = None
        if inputs is not None:
            outputs = np.concatenate(
                [forward(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)], axis=0
            )
        offset = 0
        for k, (count, boxes, error) in enumerate(zip(chunk["counts"], chunk["boxes"], chunk["errors"])):
            rows = outputs[offset : offset + count] if count else None
            offset += count
            yield ImageOutput(index=chunk["start"] + k, outputs=rows, boxes=boxes, error=error)


def _chunks(dataset: ChunkDataset, *, workers: int, pin_memory: bool) -> Iterator[dict[str, Any]]:
    if workers <= 0 or len(dataset) <= 1:  # one chunk cannot overlap with anything: skip the process start-up
        for item in range(len(dataset)):
            chunk = dataset[item]
            if pin_memory and chunk["inputs"] is not None:
                chunk["inputs"] = chunk["inputs"].pin_memory()
            yield chunk
        return
    from torch.utils.data import DataLoader

    loader = DataLoader(
        dataset,
        batch_size=None,  # items are already chunks
        num_workers=min(workers, len(dataset)),
        pin_memory=pin_memory,
        prefetch_factor=PREFETCH,
        worker_init_fn=_init_worker,
        multiprocessing_context=_context(),
    )
    yield from loader


def _context():
    """Workers start from a fork server, never by forking this process.

    A plain ``fork`` copies the parent's thread pools mid-flight: after OpenCV's pool had run here (face
    detection in-process, or any ``cv2.resize``), forked workers waited forever on a mutex copied locked. The
    fork server is a fresh single-threaded process that imports the decoding modules once, so each worker still
    starts in milliseconds and the server is reused by every later loader.
    """
    import multiprocessing

    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["detectors.deepfake.engine", "torch", "cv2", "PIL.Image"])
    return context
