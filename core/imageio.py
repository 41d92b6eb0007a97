"""Safe image loading shared by every command that reads an image file.

Images come from anywhere (uploads, scraped folders, other people's tools), so decoding is untrusted input: a
missing, empty, truncated or corrupt file, or a decompression bomb (a few KB that claim billions of pixels), must
end in one ``InputError`` that names the file, never in a traceback or an exhausted machine. The pixel limit is
checked from the header, before any pixel is decoded; PIL's own ``DecompressionBombWarning`` is treated as an
error too, so the effective limit is the lower of ``max_pixels`` and PIL's ``Image.MAX_IMAGE_PIXELS``.

Pixels are returned as stored (no EXIF rotation): watermarks live in the stored pixel grid.
"""

from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from core.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

MAX_PIXELS = 89_478_485  # PIL's default warning threshold (~ 9,459 x 9,459); an 8K frame is 33 million
MAX_FILE_BYTES = 256 * 1024 * 1024


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
        raise InputError(f"{path}: file not found") from None
    except PermissionError:
        raise InputError(f"{path}: permission denied") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror or exc}") from None


def read_image(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> ImageFile:
    """Read and decode an image file, or raise ``InputError`` saying what is wrong with it."""
    data = read_file(path)
    image, mime = decode_image(data, name=str(path), max_pixels=max_pixels)
    return ImageFile(name=str(path), data=data, mime=mime, image=image)


def load_image(path: str | Path, *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """The decoded first frame of an image file (see ``read_image``)."""
    return read_image(path, max_pixels=max_pixels).image


def decode_image(data: bytes, *, name: str = "<bytes>", max_pixels: int = MAX_PIXELS) -> tuple[Image.Image, str]:
    """Decode image bytes fully into memory and return the image and its MIME type.

    Every failure becomes an ``InputError`` naming ``name``: decoders raise a zoo of exception types on hostile
    input (``OSError``, ``SyntaxError``, ``struct.error``, ``zlib.error``, ``ValueError``...), and the caller
    only needs to know the file is unusable and why.
    """
    from PIL import Image, UnidentifiedImageError

    if not data:
        raise InputError(f"{name}: empty file (0 bytes), not an image")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
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
    return image, mime


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
