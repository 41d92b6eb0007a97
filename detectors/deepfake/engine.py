"""Images through a model in batches: decoding, face finding and preprocessing in worker processes (a torch
``DataLoader``), overlapped with the model's compute in the main process.

Each worker item is a *chunk* of images: decoded, brought to the plan's scale (``CropPlan.side``), searched
for faces, then for each *condition* (none, or the evaluation protocol's JPEG and blur degradations) degraded, cut
into crops (the whole image first, then each face with a margin) and preprocessed into one stacked array. An
image is decoded and searched for faces once, however many conditions it is scored under. Only preprocessed chunks travel back, at most ``workers * prefetch`` of them in flight, so
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
from detectors.deepfake.images import decode, describe_input, to_side

PREFETCH = 2  # chunks queued per worker


DEFAULT_SIDE = 256  # pixels: the shorter side every input is brought down to before features are read


@dataclass(frozen=True)
class CropPlan:
    """How an image becomes the crops a model reads - the preprocessing a checkpoint and a calibration record.

    First the image's shorter side is brought down to ``side`` pixels (area interpolation; never up: upscaling
    invents a spectrum; ``0`` keeps native pixels), so a 12 MP photo and a 256 px one are seen at the same scale.
    Then the crops: the whole image, and each face found (when ``faces``) by ``finder`` (``mtcnn`` or ``haar``:
    resolved where the plan is made, so every worker uses the same one), with ``margin`` around it.
    """

    faces: bool = True
    margin: float = 0.3
    max_faces: int = 8
    min_face: float = 0.08
    finder: str = "haar"
    side: int = DEFAULT_SIDE

    def to_json(self) -> dict[str, Any]:
        """What changes the crops: recorded in checkpoints and calibrations, compared when they are loaded."""
        record: dict[str, Any] = {"side": self.side, "faces": self.faces}
        if self.faces:
            record.update(face_finder=self.finder, face_margin=self.margin, max_faces=self.max_faces,
                          min_face=self.min_face)
        return record


@dataclass
class ImageOutput:
    """The model's outputs for one input image, one row per crop (the whole image, then each face in ``boxes``)
    and condition: ``conditions`` blocks of equal size, in the order the conditions were given. ``info`` says what
    the input was (``images.describe_input``: size before scaling, JPEG quality)."""

    index: int
    outputs: np.ndarray | None
    boxes: list[list[int]] = field(default_factory=list)
    error: str | None = None
    info: dict[str, Any] = field(default_factory=dict)
    conditions: int = 1

    def per_condition(self) -> list[np.ndarray]:
        """The output rows of each condition (whole image first, then faces)."""
        assert self.outputs is not None
        return np.split(self.outputs, self.conditions)


class ChunkDataset:
    """Map-style dataset whose items are preprocessed chunks of ``chunk`` images (picklable for any start method)."""

    def __init__(
        self,
        sources: Sequence[Any],
        prepare: Callable[[np.ndarray], np.ndarray],
        plan: CropPlan,
        *,
        chunk: int,
        conditions: Sequence[Callable[[np.ndarray], np.ndarray] | None] = (None,),
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        self.sources = list(sources)
        self.prepare = prepare
        self.plan = plan
        self.chunk = max(1, chunk)
        self.conditions = list(conditions) or [None]
        self.max_pixels = max_pixels

    def __len__(self) -> int:
        return math.ceil(len(self.sources) / self.chunk)

    def __getitem__(self, item: int) -> dict[str, Any]:
        start = item * self.chunk
        arrays: list[np.ndarray] = []
        counts, boxes, errors, infos = [], [], [], []
        for source in self.sources[start : start + self.chunk]:
            try:
                prepared, found, info = self._one(source)
            except Exception as exc:  # noqa: BLE001 - one bad file must not stop the batch; the error is reported
                counts.append(0)
                boxes.append([])
                infos.append({})
                errors.append(str(exc) if isinstance(exc, ValueError) else f"{type(exc).__name__}: {exc}")
                continue
            arrays.extend(prepared)
            counts.append(len(prepared))
            boxes.append([box.to_list() for box in found])
            infos.append(info)
            errors.append(None)
        inputs = _as_tensor(np.stack(arrays)) if arrays else None
        return {"start": start, "inputs": inputs, "counts": counts, "boxes": boxes, "errors": errors, "infos": infos}

    def _one(self, source: Any) -> tuple[list[np.ndarray], list[face_finder.Box], dict[str, Any]]:
        decoded = decode(source, max_pixels=self.max_pixels)
        info = describe_input(source, decoded)
        image = to_side(decoded, self.plan.side)
        found = (
            face_finder.find_faces(image, min_size=self.plan.min_face, max_faces=self.plan.max_faces,
                                   finder=self.plan.finder)
            if self.plan.faces
            else []
        )
        prepared = []
        for condition in self.conditions:
            degraded = image if condition is None else condition(image)
            prepared.append(self.prepare(degraded))
            height, width = degraded.shape[:2]
            sy, sx = height / image.shape[0], width / image.shape[1]  # a condition may resize: boxes follow
            for box in found:
                moved = face_finder.Box(round(box.x * sx), round(box.y * sy), round(box.w * sx), round(box.h * sy))
                prepared.append(self.prepare(face_finder.crop(degraded, moved, self.plan.margin)))
        return prepared, found, info


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
    conditions: Sequence[Callable[[np.ndarray], np.ndarray] | None] = (None,),
    max_pixels: int = MAX_PIXELS,
) -> Iterator[ImageOutput]:
    """Yield one ``ImageOutput`` per source, in order. ``forward`` maps a batch of at most ``batch_size`` crops
    to one row of outputs per crop. ``conditions`` degrade the scaled image before it is cut (``None``: as it is);
    each image is decoded and searched for faces once for all of them."""
    conditions = list(conditions) or [None]
    chunk = max(1, batch_size // len(conditions))
    dataset = ChunkDataset(sources, prepare, plan, chunk=chunk, conditions=conditions, max_pixels=max_pixels)
    for chunk in _chunks(dataset, workers=workers, pin_memory=pin_memory):
        inputs = chunk["inputs"]
        outputs = None
        if inputs is not None:
            outputs = np.concatenate(
                [forward(inputs[i : i + batch_size]) for i in range(0, len(inputs), batch_size)], axis=0
            )
        offset = 0
        for k, (count, boxes, error, info) in enumerate(
            zip(chunk["counts"], chunk["boxes"], chunk["errors"], chunk["infos"])
        ):
            rows = outputs[offset : offset + count] if count else None
            offset += count
            yield ImageOutput(index=chunk["start"] + k, outputs=rows, boxes=boxes, error=error, info=info,
                              conditions=len(conditions))


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
