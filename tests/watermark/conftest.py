"""Natural images for the watermark tests: scikit-image's photographs and the C2PA interop photos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

INTEROP = Path(__file__).resolve().parents[3] / "shared" / "interop" / "c2pa"
SECRET = bytes(range(32))
OTHER_SECRET = bytes(range(1, 33))
# Colour photographs shipped by scikit-image, and grey ones (camera, moon) and textures (brick, grass, gravel).
SKIMAGE_PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina")
SKIMAGE_GREY = ("camera", "moon", "brick", "grass", "gravel")


def skimage_image(name: str):
    import skimage.data
    from PIL import Image

    return Image.fromarray(np.ascontiguousarray(getattr(skimage.data, name)()))


def interop_photos() -> list[Path]:
    """The real photographs among the interop fixtures (the 91x69 libpng test image is too small to carry a mark)."""
    return sorted(p for p in INTEROP.glob("*.jpg")) + sorted(INTEROP.glob("*.webp"))


@pytest.fixture(scope="session")
def payload():
    from guard.watermark.image import WatermarkPayload

    return WatermarkPayload(key_id="5a3c", record_id="0123456789abcdef")


@pytest.fixture(scope="session")
def attack_images():
    """Three natural images of different sizes and levels: 512x512 (level 0), 600x400, and a 1024x683 photo."""
    from PIL import Image

    photo = Image.open(INTEROP / "CA.jpg")
    photo.load()
    return {"astronaut": skimage_image("astronaut"), "coffee": skimage_image("coffee"), "CA.jpg": photo}
