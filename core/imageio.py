"""Safe image loading, the one decoder every package uses for image files, bytes and arrays.

Images come from anywhere (uploads, scraped folders, other people's tools), so decoding is untrusted input: a
missing, empty, truncated or corrupt file, or a decompression bomb (a few KB that claim billions of pixels), must
end in one ``InputError`` that names the file, never in a traceback or an exhausted machine. The pixel limit is
checked from the header, before any pixel is decoded; PIL's own ``DecompressionBombWarning`` is treated as an
error too, so the effective limit is the lower of ``max_pixels`` and PIL's ``Image.MAX_IMAGE_PIXELS``. Only the
formats in ``image_formats()`` are tried, so a file that merely claims to be, say, PostScript never reaches an
external interpreter.

EXIF orientation is a choice each caller makes with ``upright``:

- ``upright=False`` (the default): the pixels as stored. Everything that proves origin wants this: the image
  watermark lives in the stored pixel grid, and the pixel digest of a record (``core.hashing.pixels_sha256``) is
  of the stored pixels, so ``guard verify``, ``guard trace``, ``guard scan``'s watermark column, the works
  registry (whose digests must match what trace computes for the same file) and the watermark CLI read images
  as stored.
- ``upright=True``: the photo as a viewer sees it, turned by its EXIF orientation. Content classifiers want
  this: the deepfake detector's face finder only finds upright faces, and its models were trained on upright
  photographs.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image

MAX_PIXELS = 89_478_485  # PIL's default warning threshold (~ 9,459 x 9,459); an 8K frame is 33 million
MAX_FILE_BYTES = 256 * 1024 * 1024

# The raster formats photographs and generated images come in. Of these, only the ones Pillow can open here count
# (AVIF needs a Pillow built with libavif, HEIF the pillow-heif plugin registered); the many rarer formats Pillow
# also reads are left out to keep hostile input away from little-used decoders.
_ACCEPTED_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "AVIF", "HEIF", "JPEG2000")


@cache
def image_formats() -> tuple[str, ...]:
    """The Pillow format names this toolkit decodes: the accepted raster formats Pillow can open here."""
    from PIL import Image

    Image.init()
    return tuple(fmt for fmt in _ACCEPTED_FORMATS if fmt in Image.OPEN)


@cache
def image_suffixes() -> frozenset[str]:
    """File suffixes (lowercase, with the dot) that name an image: those Pillow registers for ``image_formats()``.
    Every command that sorts files into images and other files uses this one set."""
    from PIL import Image

    formats = set(image_formats())
    return frozenset(suffix for suffix, fmt in Image.registered_extensions().items() if fmt in formats)


@dataclass(frozen=True)
class ImageFile:
    """An image file as read: its exact bytes (what signatures and hashes cover) and its decoded first frame."""

    name: str
    data: bytes
    mime: str  # "image/png", "image/jpeg", "image/webp", ...
    image: Image.Image

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


def read_file(path: str | Path) -> bytes:
    """The bytes of an image file, or an ``InputError`` naming the file (missing, a folder, too big, unreadable)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if path.is_dir():
            raise InputError(f"{path}: is a folder, not an image file")
        if size > MAX_FILE_BYTES:
            raise InputError(f"{path}: {size:,} bytes is larger than the {MAX_FILE_BYTES:,}-byte limit for images")
        return path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found (cannot read it)") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied (cannot read it)") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_image(path: str | Path, *, max_pixels: int = MAX_PIXELS, upright: bool = False) -> ImageFile:
    """Read and decode an image file, or raise ``InputError`` saying what is wrong with it."""
    data = read_file(path)
    image, mime = decode_image(data, name=str(path), max_pixels=max_pixels, upright=upright)
    return ImageFile(name=str(path), data=data, mime=mime, image=image)


def load_image(path: str | Path, *, max_pixels: int = MAX_PIXELS, upright: bool = False) -> Image.Image:
    """The decoded first frame of an image file (see ``read_image``)."""
    return read_image(path, max_pixels=max_pixels, upright=upright).image


def decode_image(
    data: bytes, *, name: str = "<bytes>", max_pixels: int = MAX_PIXELS, upright: bool = False
) -> tuple[Image.Image, str]:
    """Decode image bytes fully into memory and return the image and its MIME type (of the encoded data).

    Every failure becomes an ``InputError`` naming ``name``: decoders raise a zoo of exception types on hostile
    input (``OSError``, ``SyntaxError``, ``struct.error``, ``zlib.error``, ``ValueError``...), and the caller
    only needs to know the file is unusable and why.
    """
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise InputError(f"{name}: empty file (0 bytes), not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data), formats=image_formats())  # reads the header only
            width, height = image.size
            if width * height > max_pixels:
                raise InputError(
                    f"{name}: {width}x{height} image ({width * height:,} pixels) exceeds the limit of "
                    f"{max_pixels:,} pixels (possible decompression bomb)"
                )
            image.load()
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise InputError(f"{name}: possible decompression bomb: {exc}") from None
        except UnidentifiedImageError:
            raise InputError(f"{name}: not an image format this tool reads (unrecognised or corrupt header)") from None
        except Exception as exc:  # noqa: BLE001 - decoders raise many types on corrupt data; all mean "unusable"
            raise InputError(f"{name}: truncated or corrupt image data ({_describe(exc)})") from None
    mime = Image.MIME.get(image.format or "", f"image/{(image.format or 'unknown').lower()}")
    if upright:
        image = ImageOps.exif_transpose(image)
    return image, mime


def rgb_array(source: Any, *, max_pixels: int = MAX_PIXELS, upright: bool = False) -> np.ndarray:
    """An RGB ``uint8`` array of shape (H, W, 3) from a path, bytes, a PIL image or an array.

    Alpha is dropped, palettes and greyscale become RGB, greyscale of more than 8 bits is scaled to 8 by its range
    (see ``_eight_bit``). Files and bytes go through ``decode_image``; an array must already be ``uint8``, not
    empty, H x W or H x W x 1 (greyscale) or H x W x 3/4. Anything unusable is an ``InputError``.
    """
    import numpy as np
    from PIL import Image, ImageOps

    if isinstance(source, np.ndarray):
        return _as_rgb_array(source)
    if isinstance(source, Image.Image):
        image = ImageOps.exif_transpose(source) if upright else source
    elif isinstance(source, bytes | bytearray):
        image, _ = decode_image(bytes(source), max_pixels=max_pixels, upright=upright)
    else:
        image = load_image(source, max_pixels=max_pixels, upright=upright)
    image = _eight_bit(image)
    return np.asarray(image if image.mode == "RGB" else image.convert("RGB"))


def _eight_bit(image: Image.Image) -> Image.Image:
    """A greyscale image of more than 8 bits ("I;16" of a 16-bit PNG, "I" of a 16-bit TIFF, "F") as an "L" image
    scaled by its range; other images unchanged.

    PIL's own ``convert`` clips such pixels to 0-255, so a 16-bit photograph turns almost white and nothing in it
    can be seen. "I;16" has a known range (0-65535) and is scaled by it, as a viewer shows it; "I" and "F" hold
    values of any range (a 16-bit scan, an 8-bit image widened, floats in 0-1), so they are stretched from their
    own lowest to highest value (NaN counts as the lowest)."""
    import numpy as np
    from PIL import Image

    if image.mode.startswith("I;16"):
        values = np.asarray(image, dtype=np.float32)
        low, span = 0.0, 65535.0
    elif image.mode in ("I", "F"):
        values = np.asarray(image, dtype=np.float32)
        finite = values[np.isfinite(values)]
        low = float(finite.min()) if finite.size else 0.0
        span = (float(finite.max()) - low) if finite.size else 0.0
        values = np.nan_to_num(values, nan=low, posinf=low + span, neginf=low)
    else:
        return image
    scaled = (values - low) * np.float32(255.0 / span) if span > 0 else np.zeros_like(values)
    return Image.fromarray(np.clip(np.rint(scaled), 0, 255).astype(np.uint8), mode="L")


def _as_rgb_array(array: np.ndarray) -> np.ndarray:
    import numpy as np

    if array.ndim == 3 and array.shape[2] == 1:
        array = array[:, :, 0]
    if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[2] not in (3, 4)):
        raise InputError(f"expected an image array of shape HxW (greyscale), HxWx3 (RGB) or HxWx4 (RGBA), "
                         f"got shape {array.shape}")
    if array.shape[0] == 0 or array.shape[1] == 0:
        raise InputError(f"empty image array (shape {array.shape})")
    if array.dtype != np.uint8:
        raise InputError(f"expected a uint8 image array (values 0-255), got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    return np.ascontiguousarray(array[:, :, :3])


def jpeg_roundtrip(image: Image.Image, quality: int) -> Image.Image:
    """``image`` encoded as JPEG at ``quality`` (Pillow's encoder and defaults) and decoded again, as RGB: what a
    platform's re-encoding does to an upload. Quality 100 still re-encodes."""
    from PIL import Image

    buffer = io.BytesIO()
    (image if image.mode == "RGB" else image.convert("RGB")).save(buffer, format="JPEG", quality=int(quality))
    return Image.open(io.BytesIO(buffer.getvalue())).convert("RGB")


def _describe(exc: Exception) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


_SAVE_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


def save_image(image: Image.Image, path: str | Path, *, icc_profile: bytes | None = None) -> None:
    """Write ``image`` in the format its suffix names (JPEG at quality 95, PNG lossless)."""
    path = Path(path)
    fmt = _SAVE_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown image suffix; use one of {', '.join(sorted(_SAVE_FORMATS))}")
    options: dict = {"icc_profile": icc_profile} if icc_profile else {}
    if fmt == "JPEG":
        image = image.convert("RGB") if image.mode not in ("L", "RGB") else image
        options.update(quality=95)
    elif fmt == "WEBP":
        options.update(quality=95)
    try:
        image.save(path, format=fmt, **options)
    except OSError as exc:
        raise InputError(f"{path}: cannot write image: {exc.strerror or exc}") from None
