"""Face detection and face crops, with OpenCV's Haar cascades (bundled in opencv-python-headless 4.x).

Why Haar cascades: they ship inside the wheel the project already depends on (no model download), run on a CPU
in milliseconds, and find frontal faces well enough to decide *where* to look closer; the deepfake model then
judges each crop. OpenCV 5 dropped the bundled cascades, hence the ``<5`` pin in pyproject.toml.

``find_faces`` is also the hook for the policy: an output that shows realistic human faces can require a
deepfake disclosure.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np

from core.errors import ModelUnavailableError

# The "alt2" frontal-face cascade: on JPEG copies of the astronaut photograph the "default" cascade found a second,
# false face (on the suit) and 2-3 false faces on 26 face-free photographs (scikit-image and C2PA samples);
# alt2 found exactly the one face in every copy and none on the others.
CASCADE = "haarcascade_frontalface_alt2.xml"
WINDOW = 24  # the cascade's training window, in pixels: the smallest face it can find
MIN_NEIGHBORS = 5  # overlapping detections needed to accept a face (OpenCV's usual value)


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the image it was found in: left, top, width, height."""

    x: int
    y: int
    w: int
    h: int

    def to_list(self) -> list[int]:
        return [self.x, self.y, self.w, self.h]

    def expanded(self, margin: float, width: int, height: int) -> Box:
        """The box grown by ``margin`` times its size on every side, clipped to a ``width`` x ``height`` image.

        Manipulation traces sit at the blend boundary around a swapped face, so the crop keeps some of it."""
        dx, dy = round(self.w * margin), round(self.h * margin)
        left, top = max(0, self.x - dx), max(0, self.y - dy)
        right, bottom = min(width, self.x + self.w + dx), min(height, self.y + self.h + dy)
        return Box(left, top, right - left, bottom - top)


@lru_cache(maxsize=1)
def _cascade():
    """One classifier per process (it cannot be pickled, so each worker process loads its own)."""
    import cv2

    path = cv2.data.haarcascades + CASCADE
    classifier = cv2.CascadeClassifier(path)
    if classifier.empty():
        raise ModelUnavailableError(f"cannot load the Haar cascade {path}: opencv-python-headless 4.x is required")
    return classifier


def find_faces(image: Any, *, min_size: float = 0.08, max_faces: int = 16) -> list[Box]:
    """Frontal faces in ``image`` (PIL image, RGB or greyscale ``uint8`` array), largest first.

    ``min_size`` is the smallest face side as a fraction of the image's shorter side (and at least 24 pixels):
    tiny detections are mostly false positives and too small to judge anyway. The search runs on a copy scaled
    so that this smallest face is one 24-pixel cascade window wide, which makes it cost about the same on a
    phone photo as on a thumbnail; boxes are returned in the pixels of ``image``.
    """
    import cv2

    rgb = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)
    height, width = rgb.shape[:2]
    smallest = max(WINDOW, min_size * min(height, width))  # smallest face of interest, in image pixels
    scale = WINDOW / smallest  # detect where that face is one cascade window wide: no wasted small scales
    grey = rgb if rgb.ndim == 2 else cv2.cvtColor(rgb[:, :, :3], cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    found = _cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=MIN_NEIGHBORS, minSize=(WINDOW, WINDOW))
    boxes = [Box(*(round(v / scale) for v in box)) for box in (found if len(found) else [])]
    boxes.sort(key=lambda b: b.w * b.h, reverse=True)
    return boxes[:max_faces]


def crop(image: np.ndarray, box: Box, margin: float = 0.3) -> np.ndarray:
    """The face region of an RGB array with ``margin`` around it (see ``Box.expanded``)."""
    height, width = image.shape[:2]
    grown = box.expanded(margin, width, height)
    return image[grown.y : grown.y + grown.h, grown.x : grown.x + grown.w]
