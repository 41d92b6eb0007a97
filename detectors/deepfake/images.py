"""Decoding untrusted image files, and the degradations of the published robustness protocol.

Images reach the detector from anywhere (uploads, scraped folders), so decoding is hostile input: an empty,
truncated or corrupt file, or a decompression bomb (a small file whose header claims billions of pixels), must
end in one ``ValueError`` naming the file, never in a crash or an exhausted machine. The pixel limit is checked
from the header, before any pixel is decoded.

Photos are turned upright by their EXIF orientation (faces must be upright for the face detector); alpha is
dropped, palettes and greyscale become RGB. Every decoded image is a ``uint8`` array of shape (H, W, 3).
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MAX_PIXELS = 89_478_485  # PIL's own warning threshold (~9,459 x 9,459); an 8K frame is 33 million


def decode(source: Any, *, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """An RGB ``uint8`` array from a path, bytes, a PIL image or an array; ``ValueError`` if unusable."""
    from PIL import Image

    if isinstance(source, np.ndarray):
        return _as_rgb_array(source)
    if isinstance(source, Image.Image):
        return np.asarray(_upright_rgb(source))
    if isinstance(source, (bytes, bytearray)):
        return _decode_bytes(bytes(source), "<bytes>", max_pixels)
    path = Path(source)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return _decode_bytes(data, str(path), max_pixels)


def _decode_bytes(data: bytes, name: str, max_pixels: int) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise ValueError(f"{name}: empty file (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))  # reads the header only
        except UnidentifiedImageError:
            raise ValueError(f"{name}: not an image (unrecognised or corrupt header)") from None
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise ValueError(f"{name}: possible decompression bomb: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - decoders raise many types on corrupt data; all mean "unusable"
            raise ValueError(f"{name}: corrupt image header ({type(exc).__name__}: {exc})") from None
        width, height = image.size
        if width * height > max_pixels:
            raise ValueError(
                f"{name}: {width}x{height} image ({width * height:,} pixels) exceeds the limit of "
                f"{max_pixels:,} pixels (possible decompression bomb)"
            )
        try:
            image.load()
            return np.asarray(_upright_rgb(image))
        except Exception as exc:  # noqa: BLE001 - as above
            raise ValueError(f"{name}: truncated or corrupt image data ({type(exc).__name__}: {exc})") from None


def _upright_rgb(image):
    from PIL import ImageOps

    image = ImageOps.exif_transpose(image)
    return image if image.mode == "RGB" else image.convert("RGB")


def _as_rgb_array(array: np.ndarray) -> np.ndarray:
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an HxWx3 RGB array, got shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 RGB array, got {array.dtype}")
    return np.ascontiguousarray(array[:, :, :3])


# --- degradations: the robustness protocol of CNNDetection (Wang et al. 2020) and UniversalFakeDetect ----------


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """Re-encode as JPEG at ``quality`` (PIL, like the published protocol); 100 still re-encodes."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=int(quality))
    return np.asarray(Image.open(io.BytesIO(buffer.getvalue())).convert("RGB"))


def blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of each channel with ``scipy.ndimage.gaussian_filter`` (as UniversalFakeDetect does)."""
    if sigma <= 0:
        return image
    from scipy.ndimage import gaussian_filter

    return np.stack([gaussian_filter(image[:, :, c], sigma=sigma) for c in range(3)], axis=2)


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
