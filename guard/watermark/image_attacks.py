"""The image edits a watermark must survive (issue 5), as plain functions of a PIL image.

One definition serves the tests, the benchmark and the peer comparison: the benchmark runs this file inside
the peer's own interpreter too, so it imports nothing but Pillow, numpy and ``core`` (which imports nothing else
of the project).
"""

from __future__ import annotations

import math
from collections.abc import Callable

from PIL import Image, ImageEnhance, ImageFilter

from core.imageio import jpeg_roundtrip


def resize_half_and_back(image: Image.Image) -> Image.Image:
    half = image.resize((max(1, image.width // 2), max(1, image.height // 2)), Image.Resampling.BICUBIC)
    return half.resize(image.size, Image.Resampling.BICUBIC)


def center_crop(image: Image.Image, area: float = 0.8) -> Image.Image:
    """Keep the centre ``area`` fraction of the pixels, at the same aspect ratio."""
    side = math.sqrt(area)
    w, h = round(image.width * side), round(image.height * side)
    left, top = (image.width - w) // 2, (image.height - h) // 2
    return image.crop((left, top, left + w, top + h))


def gaussian_blur(image: Image.Image, sigma: float = 1.0) -> Image.Image:
    # Pillow's GaussianBlur takes the standard deviation as ``radius``.
    return image.filter(ImageFilter.GaussianBlur(radius=sigma))


ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "none": lambda im: im,
    "jpeg50": lambda im: jpeg_roundtrip(im, 50),
    "resize0.5": resize_half_and_back,
    "crop80": center_crop,
    "bright+20": lambda im: ImageEnhance.Brightness(im).enhance(1.2),
    "bright-20": lambda im: ImageEnhance.Brightness(im).enhance(0.8),
    "contrast+20": lambda im: ImageEnhance.Contrast(im).enhance(1.2),
    "contrast-20": lambda im: ImageEnhance.Contrast(im).enhance(0.8),
    "blur1": gaussian_blur,
    "crop80+jpeg75": lambda im: jpeg_roundtrip(center_crop(im), 75),
}
