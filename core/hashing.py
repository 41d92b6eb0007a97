"""Content digests: of a file, and of an image's pixels.

Both are plain SHA-256 in lowercase hex, so anyone can recompute them with standard tools: ``sha256_file`` equals
``sha256sum FILE``; ``pixels_sha256`` is the digest the provenance record and ``guard trace`` give an image.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from PIL import Image


def sha256_file(path: str | Path) -> str:
    """SHA-256 of a file's bytes, streamed (any size in bounded memory); equals ``sha256sum``."""
    with open(path, "rb") as fh:
        return hashlib.file_digest(fh, "sha256").hexdigest()


def pixels_sha256(image: Image.Image) -> str:
    """SHA-256 of an image's decoded pixels: ``SHA256(b"<width>x<height>:" || RGB bytes)``, rows top to bottom,
    three bytes a pixel, the pixels as stored (no EXIF rotation).

    A digest of pixels rather than of a file survives lossless re-encoding and adding a C2PA manifest to the
    file; the size prefix keeps two images with the same bytes in other shapes apart.
    """
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    return hashlib.sha256(b"%dx%d:" % rgb.size + rgb.tobytes()).hexdigest()
