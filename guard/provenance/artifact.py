"""Digests of outputs, as the provenance record and ``guard trace`` name them."""

from __future__ import annotations

import hashlib
from typing import Any

from core.hashing import pixels_sha256

TEXT_MEDIA_TYPE = "text/plain; charset=utf-8"


def is_image(content: Any) -> bool:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover
        return False
    return isinstance(content, Image.Image)


def text_digest(text: str) -> dict[str, Any]:
    data = text.encode("utf-8")
    return {"sha256": hashlib.sha256(data).hexdigest(), "hash_of": "utf-8", "size": len(data)}


def image_digest(image) -> dict[str, Any]:
    """The pixel digest (``core.hashing.pixels_sha256``: it survives lossless re-encoding and adding a C2PA
    manifest to the file) and a 64-bit perceptual hash, which finds the image again after lossy edits."""
    import imagehash

    rgb = image.convert("RGB")
    return {
        "sha256": pixels_sha256(rgb),
        "hash_of": "rgb-pixels",
        "width": rgb.width,
        "height": rgb.height,
        "phash": str(imagehash.phash(rgb)),
    }


def digest(content: Any) -> dict[str, Any]:
    return image_digest(content) if is_image(content) else text_digest(content)
