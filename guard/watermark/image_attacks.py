"""The image edits a watermark must survive, as plain functions of a PIL image.

``ATTACKS`` holds the edits of issue 5 (re-encoding, resizing back to the grid, crops, brightness, contrast,
blur); ``GEOMETRIC_ATTACKS`` what platforms do to geometry (issue 14): the image served at another size (any
factor, fixed widths, with and without its aspect ratio), small rotations with and without a larger canvas, a
few pixels of translation, crops to half the area then rescaled, screenshots (a resample and a small border
crop), and upload pipelines that chain these with JPEG 70 or WebP 60.

One definition serves the tests, the benchmark and the peer comparison: the benchmark runs this file inside
the peer's own interpreter too, so it imports nothing but Pillow, numpy and ``core`` (which imports nothing else
of the project).
"""

from __future__ import annotations

import io
import math
from collections.abc import Callable

from PIL import Image, ImageEnhance, ImageFilter

from core.imageio import jpeg_roundtrip

_RESAMPLE = Image.Resampling.BICUBIC


def webp(image: Image.Image, quality: int) -> Image.Image:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="WEBP", quality=quality)
    buffer.seek(0)
    return Image.open(buffer).convert("RGB")


def resize_half_and_back(image: Image.Image) -> Image.Image:
    half = image.resize((max(1, image.width // 2), max(1, image.height // 2)), _RESAMPLE)
    return half.resize(image.size, _RESAMPLE)


def scale(image: Image.Image, factor: float) -> Image.Image:
    """Serve the image at ``factor`` times its size (Lanczos, as thumbnailers do)."""
    size = (max(1, round(image.width * factor)), max(1, round(image.height * factor)))
    return image.resize(size, Image.Resampling.LANCZOS)


def to_width(image: Image.Image, width: int, height: int | None = None) -> Image.Image:
    """Resize to a fixed width, keeping the aspect ratio unless ``height`` is given too."""
    return image.resize((width, height or max(1, round(image.height * width / image.width))), _RESAMPLE)


def center_crop(image: Image.Image, area: float = 0.8) -> Image.Image:
    """Keep the centre ``area`` fraction of the pixels, at the same aspect ratio."""
    side = math.sqrt(area)
    w, h = round(image.width * side), round(image.height * side)
    left, top = (image.width - w) // 2, (image.height - h) // 2
    return image.crop((left, top, left + w, top + h))


def corner_crop(image: Image.Image, keep_width: float, keep_height: float) -> Image.Image:
    """Keep a box of this share of the width and height, from the top-left corner (an off-centre crop)."""
    return image.crop((0, 0, round(image.width * keep_width), round(image.height * keep_height)))


def rotate(image: Image.Image, degrees: float, expand: bool = False) -> Image.Image:
    """Rotate counter-clockwise; without ``expand`` the corners are cut, with it the canvas grows (black fill)."""
    return image.convert("RGB").rotate(degrees, resample=_RESAMPLE, expand=expand)


def translate(image: Image.Image, dx: int, dy: int) -> Image.Image:
    """Shift the content by (dx, dy) pixels at the same size, filling the uncovered edge with black."""
    out = Image.new("RGB", image.size)
    out.paste(image.convert("RGB"), (dx, dy))
    return out


def screenshot(image: Image.Image, factor: float, border: int) -> Image.Image:
    """What a screenshot of the image shown on a screen gives: a resample, and a few pixels cut at each edge."""
    shown = scale(image, factor)
    return shown.crop((border, border + 1, shown.width - border - 2, shown.height - border))


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

GEOMETRIC_ATTACKS: dict[str, Callable[[Image.Image], Image.Image]] = {
    "scale0.3": lambda im: scale(im, 0.3),
    "scale0.5": lambda im: scale(im, 0.5),
    "scale0.7": lambda im: scale(im, 0.7),
    "scale0.83": lambda im: scale(im, 0.83),
    "scale1.3": lambda im: scale(im, 1.3),
    "scale2": lambda im: scale(im, 2.0),
    "width1080": lambda im: to_width(im, 1080),
    "width720": lambda im: to_width(im, 720),
    "width512": lambda im: to_width(im, 512),
    "720x720": lambda im: to_width(im, 720, 720),
    "1080x608": lambda im: to_width(im, 1080, 608),
    "rotate+2": lambda im: rotate(im, 2),
    "rotate-5": lambda im: rotate(im, -5),
    "rotate+5expand": lambda im: rotate(im, 5, expand=True),
    "shift3": lambda im: translate(im, 3, 2),
    "crop50+rescale": lambda im: center_crop(im, 0.5).resize(im.size, _RESAMPLE),
    "corner70x75+w720": lambda im: to_width(corner_crop(im, 0.7, 0.75), 720),
    "screenshot1.25": lambda im: screenshot(im, 1.25, 4),
    "screenshot0.8": lambda im: screenshot(im, 0.8, 3),
    "width720+jpeg70": lambda im: jpeg_roundtrip(to_width(im, 720), 70),
    "scale0.5+webp60": lambda im: webp(scale(im, 0.5), 60),
    "crop50+rescale+jpeg70": lambda im: jpeg_roundtrip(center_crop(im, 0.5).resize(im.size, _RESAMPLE), 70),
    "rotate+3+jpeg70": lambda im: jpeg_roundtrip(rotate(im, 3), 70),
    "screenshot+webp60": lambda im: webp(screenshot(im, 0.9, 5), 60),
}

ALL_ATTACKS = {**ATTACKS, **GEOMETRIC_ATTACKS}
