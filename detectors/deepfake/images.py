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
