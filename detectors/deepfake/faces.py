"""Face detection and face crops: MTCNN when its weights are installed, else OpenCV's Haar cascade.

``finder="auto"`` (the default everywhere) uses MTCNN (``detectors.deepfake.mtcnn``: three small networks on
facenet-pytorch's weights) when ``facenet-pytorch`` is installed, and the frontal-face Haar cascade bundled in
opencv-python-headless 4.x otherwise; ``"mtcnn"`` and ``"haar"`` ask for one. On real photos MTCNN finds
faces the cascade misses (turned heads, masks, small faces) with fewer false ones (docs/evidence.md); the
cascade needs no extra package. ``finder_id`` names what ran, so a record can say which finder found its faces.
OpenCV 5 dropped the bundled cascades, hence the ``<5`` pin in pyproject.toml.

``find_faces`` is also the hook for the policy: an output that shows realistic human faces can require a
deepfake disclosure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from core.errors import InputError, ModelUnavailableError
from core.imageio import rgb_array

FINDERS = ("auto", "mtcnn", "haar")

# The "alt2" frontal-face cascade: on JPEG copies of the astronaut photograph the "default" cascade found a second,
# false face (on the suit) and 2-3 false faces on 26 face-free photographs (scikit-image and C2PA samples);
# alt2 found exactly the one face in every copy and none on the others.
CASCADE = "haarcascade_frontalface_alt2.xml"
WINDOW = 24  # the cascade's training window, in pixels: the smallest face it can find
MTCNN_SMALLEST = 20  # pixels: smaller faces are mostly false detections, and too small to judge
# O-Net's face probability a reported face needs. The cascade's published last-stage threshold is 0.7; at 0.7,
# 22 of 500 ImageNet sample photos that show no person got a "face" (dogs, monkeys, a tarantula, textures), at
# 0.9 five did (Haar: six), while 99.2% of 500 real face photos and 93.5% of 200 DCGAN faces (94.5% at 0.7) kept
# theirs (docs/evidence.md; chosen on those images).
MTCNN_MIN_CONFIDENCE = 0.9
MTCNN_WORKING_FACE = 48  # pixels: the smallest face's width in the copy MTCNN searches (O-Net's input size)
MIN_NEIGHBORS = 5  # overlapping detections needed to accept a face (OpenCV's usual value)


@dataclass(frozen=True)
class Box:
    """A face box in pixels of the image it was found in: left, top, width, height, and the finder's
    confidence (MTCNN's face probability; ``None`` for the Haar cascade, which gives none)."""

    x: int
    y: int
    w: int
    h: int
    confidence: float | None = field(default=None, compare=False)

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


def resolve(finder: str = "auto") -> str:
    """``mtcnn`` or ``haar``: what ``finder`` means on this machine."""
    if finder not in FINDERS:
        raise InputError(f"face finder must be one of {', '.join(FINDERS)}, got {finder!r}")
    if finder == "auto":
        return "mtcnn" if _mtcnn_installed() else "haar"
    return finder


def _mtcnn_installed() -> bool:
    """Asked anew each time (it is cheap), so a long-running process picks MTCNN up once it is installed; weights
    that are installed but differ from their pins are then an error when MTCNN loads, not a silent fallback."""
    from detectors.deepfake import mtcnn

    return mtcnn.installed()


def finder_id(finder: str = "auto") -> str:
    """The finder that runs, by name and weights hash (``mtcnn:facenet_pytorch@<sha256>``, ``haar:<cascade>``)."""
    if resolve(finder) == "haar":
        return f"haar:{CASCADE}"
    from detectors.deepfake import mtcnn

    return mtcnn.load().model_id


def find_faces(image: Any, *, min_size: float = 0.08, max_faces: int = 16, finder: str = "auto") -> list[Box]:
    """Faces in ``image`` (PIL image of any mode, RGB or greyscale ``uint8`` array: ``core.imageio.rgb_array``),
    largest first.

    ``min_size`` is the smallest face side as a fraction of the image's shorter side (and at least 24 pixels for
    the cascade, 20 for MTCNN): tiny detections are mostly false positives and too small to judge anyway. Both
    finders search from the scale where that smallest face fills their window, which makes a phone photo cost
    about what a thumbnail does; boxes are in the pixels of ``image``, clipped to it.
    """
    rgb = rgb_array(image)
    boxes = _mtcnn(rgb, min_size) if resolve(finder) == "mtcnn" else _haar(rgb, min_size)
    boxes.sort(key=lambda b: b.w * b.h, reverse=True)
    return boxes[:max_faces]


def _mtcnn(rgb: np.ndarray, min_size: float) -> list[Box]:
    import cv2

    from detectors.deepfake import mtcnn

    height, width = rgb.shape[:2]
    smallest = max(MTCNN_SMALLEST, min_size * min(height, width))
    # O-Net reads 48 x 48 crops: finer pixels than that on the smallest face only cost time, so a large photo is
    # searched on a copy where that face is 48 pixels wide (a 12 MP photo: 4x less than at full size)
    scale = min(1.0, MTCNN_WORKING_FACE / smallest)
    work = rgb if scale == 1.0 else cv2.resize(rgb, (max(1, round(width * scale)), max(1, round(height * scale))),
                                               interpolation=cv2.INTER_AREA)
    boxes = []
    for x1, y1, x2, y2, probability in mtcnn.load().detect(work, smallest * scale):
        if probability < MTCNN_MIN_CONFIDENCE:
            continue
        left, top = max(0, round(x1 / scale)), max(0, round(y1 / scale))
        right, bottom = min(width, round(x2 / scale)), min(height, round(y2 / scale))
        if right > left and bottom > top:
            boxes.append(Box(left, top, right - left, bottom - top, round(float(probability), 6)))
    return boxes


def _haar(rgb: np.ndarray, min_size: float) -> list[Box]:
    import cv2

    height, width = rgb.shape[:2]
    smallest = max(WINDOW, min_size * min(height, width))  # smallest face of interest, in image pixels
    scale = WINDOW / smallest  # detect where that face is one cascade window wide: no wasted small scales
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    if scale < 1.0:
        grey = cv2.resize(grey, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)
    grey = cv2.equalizeHist(grey)
    found = _cascade().detectMultiScale(grey, scaleFactor=1.1, minNeighbors=MIN_NEIGHBORS, minSize=(WINDOW, WINDOW))
    return [Box(*(round(v / scale) for v in box)) for box in (found if len(found) else [])]


def crop(image: np.ndarray, box: Box, margin: float = 0.3) -> np.ndarray:
    """The face region of an RGB array with ``margin`` around it (see ``Box.expanded``)."""
    height, width = image.shape[:2]
    grown = box.expanded(margin, width, height)
    return image[grown.y : grown.y + grown.h, grown.x : grown.x + grown.w]
