"""Reading and writing image files for the watermark commands, with one-line errors for bad files.

A missing, empty, truncated or corrupt file, or a decompression bomb (more pixels than Pillow's limit, which
would exhaust memory when decoded), is an ``InputError`` naming the file, so the CLI exits 2 without a traceback.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from guard.errors import InputError

if TYPE_CHECKING:
    from PIL import Image

_FORMATS = {".png": "PNG", ".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".tif": "TIFF", ".tiff": "TIFF"}


def open_image(path: str | Path) -> Image.Image:
    """Decode an image file fully (so truncation shows here, not later)."""
    from PIL import Image, UnidentifiedImageError

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: {'is a folder, not an image file' if path.is_dir() else 'file not found'}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                image.load()
                return image.copy()
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InputError(f"{path}: refused as a decompression bomb ({exc})") from None
    except UnidentifiedImageError:
        raise InputError(f"{path}: not an image Pillow can read (empty, corrupt or unsupported format)") from None
    except (OSError, SyntaxError, ValueError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(f"{path}: cannot decode image: {reason}") from None


def save_image(image: Image.Image, path: str | Path, *, icc_profile: bytes | None = None) -> None:
    """Write ``image`` in the format its suffix names (JPEG at quality 95, PNG lossless)."""
    path = Path(path)
    fmt = _FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise InputError(f"{path}: unknown image suffix; use one of {', '.join(sorted(_FORMATS))}")
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
