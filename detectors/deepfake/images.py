"""What the deepfake detector reads images as, and the degradations of the published robustness protocol.

Decoding is ``core.imageio``'s (one safe decoder for the whole toolkit: bombs, corrupt files and the rest end in
one ``InputError`` naming the file). The detector asks it for upright photos: faces must be upright for the face
finder, and the models were trained on photos as people see them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from core.imageio import MAX_PIXELS, jpeg_roundtrip, rgb_array


def decode(source: Any, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An upright RGB ``uint8`` array (H, W, 3) from a path, bytes, a PIL image or an array; ``InputError`` (a
    ``ValueError``) if unusable."""
    return rgb_array(source, max_pixels=max_pixels, upright=True)


def to_side(image: np.ndarray, side: int) -> np.ndarray:
    """``image`` with its shorter side brought down to ``side`` pixels (area interpolation), so that features are
    read at one scale whatever the camera. Smaller images are left as they are (upscaling would invent the high
    frequencies that forensic features read); ``side`` 0 keeps every image at its native size."""
    height, width = image.shape[:2]
    if side <= 0 or min(height, width) <= side:
        return image
    import cv2

    scale = side / min(height, width)
    size = (max(side, round(width * scale)), max(side, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


# The IJG (libjpeg) luminance quantisation table at quality 50, which encoders scale for other qualities.
_IJG_LUMA = np.array([16, 11, 10, 16, 24, 40, 51, 61, 12, 12, 14, 19, 26, 58, 60, 55, 14, 13, 16, 24, 40, 57, 69, 56,
                      14, 17, 22, 29, 51, 87, 80, 62, 18, 22, 37, 56, 68, 109, 103, 77, 24, 35, 55, 64, 81, 104, 113,
                      92, 49, 64, 78, 87, 103, 121, 120, 101, 72, 92, 95, 98, 112, 100, 103, 99], dtype=np.int64)
LOSSLESS = 101  # the "JPEG quality" of a losslessly stored image (PNG, TIFF...), one above the best JPEG


def jpeg_quality(table: Any) -> int:
    """The IJG quality (1-100) whose luminance table is closest, in total, to ``table`` (64 values in any order):
    what quality an encoder used, exactly for libjpeg-style encoders and roughly for cameras' own tables."""
    total = int(np.asarray(list(table), dtype=np.int64).sum())
    best, best_gap = 100, None
    for quality in range(1, 101):
        scale = 5000 // quality if quality < 50 else 200 - 2 * quality
        gap = abs(int(np.clip((_IJG_LUMA * scale + 50) // 100, 1, 255).sum()) - total)
        if best_gap is None or gap < best_gap:
            best, best_gap = quality, gap
    return best


def describe_input(source: Any, decoded: np.ndarray) -> dict[str, Any]:
    """What an input was before the detector's scaling: ``width``, ``height`` (upright) and ``jpeg_quality``
    (estimated from its luminance table; ``LOSSLESS`` for other formats, ``None`` for arrays). The calibration's
    shift check compares these with the calibration set's."""
    from PIL import Image

    height, width = decoded.shape[:2]
    quality: int | None = None
    def quality_of(image: Image.Image) -> int:
        tables = getattr(image, "quantization", None)
        return jpeg_quality(tables[0]) if image.format == "JPEG" and tables else LOSSLESS

    try:
        if isinstance(source, Image.Image):
            quality = quality_of(source)
        elif isinstance(source, bytes | bytearray):
            import io

            with Image.open(io.BytesIO(bytes(source))) as opened:
                quality = quality_of(opened)
        elif not isinstance(source, np.ndarray):
            with Image.open(source) as opened:  # the header only: the tables come before any pixel
                quality = quality_of(opened)
    except Exception:  # noqa: BLE001 - it decoded a moment ago; a header we cannot read only costs the estimate
        quality = None
    return {"width": int(width), "height": int(height), "jpeg_quality": quality}


# --- degradations: the robustness protocol of CNNDetection (Wang et al. 2020) and UniversalFakeDetect ----------


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode as JPEG at ``quality`` (PIL, like the published protocol); 100 still re-encodes."""
    from PIL import Image

    return np.asarray(jpeg_roundtrip(Image.fromarray(image), quality))


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each channel with ``scipy.ndimage.gaussian_filter`` (as UniversalFakeDetect does)."""
    if sigma <= 0:
        return image
    from scipy.ndimage import gaussian_filter

    return np.stack([gaussian_filter(image[:, :, c], sigma=sigma) for c in range(3)], axis=2)


def resize(image: np.ndarray, scale: float) -> np.ndarray:
    """Scale both sides by ``scale`` (area interpolation when shrinking, as platforms downsample uploads)."""
    if scale == 1.0:
        return image
    import cv2

    height, width = image.shape[:2]
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC)


@dataclass(frozen=True)
class Degradation:
    """Resize by ``scale``, then re-encode as JPEG at ``quality`` (``None``: no re-encoding): what a social
    platform does to an upload. Picklable, so it runs in the decoding workers."""

    scale: float = 1.0
    quality: int | None = None

    def __call__(self, image: np.ndarray) -> np.ndarray:
        image = resize(image, self.scale)
        return jpeg(image, self.quality) if self.quality is not None else image


def center_crop(image: np.ndarray, size: int) -> np.ndarray:
    """The central ``size`` x ``size`` pixels, without resampling (resampling would erase the artefacts that
    forensic detectors look for). Images smaller than ``size`` on a side are first upscaled (bicubic) until they
    fit: the published code zero-pads instead, which turns a face crop into mostly black border."""
    height, width = image.shape[:2]
    if min(height, width) < size:
        import cv2

        scale = size / min(height, width)
        width, height = max(size, round(width * scale)), max(size, round(height * scale))
        image = cv2.resize(image, (width, height), interpolation=cv2.INTER_CUBIC)
    top, left = (height - size) // 2, (width - size) // 2
    return image[top : top + size, left : left + size]


def normalize(image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """HWC uint8 to CHW float32, scaled to [0, 1] then standardised per channel (torchvision ``Normalize``)."""
    scale = np.float32(1.0 / 255.0)
    out = image.astype(np.float32) * scale
    out -= np.asarray(mean, dtype=np.float32)
    out /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(out.transpose(2, 0, 1))


@dataclass(frozen=True)
class CropNormalize:
    """``center_crop`` then ``normalize``: the preprocessing of CNNDetection and UniversalFakeDetect. Picklable,
    so it runs in the decoding workers."""

    size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return normalize(center_crop(image, self.size), self.mean, self.std)
