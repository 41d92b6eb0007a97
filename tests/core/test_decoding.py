"""The one decoder: EXIF orientation as each caller asks, arrays for detectors, one set of image suffixes, and
formats outside that set refused before any decoder of theirs runs (file errors are in test_imageio.py)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from core.errors import GuardError, InputError
from core.imageio import (
    decode_image,
    image_formats,
    image_suffixes,
    jpeg_roundtrip,
    read_image,
    rgb_array,
)


def _rotated_jpeg() -> bytes:
    """A 40x20 JPEG, left half red, whose EXIF says "rotate 90 degrees clockwise to display" (orientation 6)."""
    image = Image.new("RGB", (40, 20), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    buf = io.BytesIO()
    image.save(buf, "JPEG", quality=95, exif=exif)
    return buf.getvalue()


def test_pixels_as_stored_unless_upright_is_asked_for(tmp_path):
    path = tmp_path / "phone.jpg"
    path.write_bytes(_rotated_jpeg())
    stored = read_image(path)
    assert stored.image.size == (40, 20) and stored.mime == "image/jpeg"
    upright, mime = decode_image(path.read_bytes(), upright=True)
    assert upright.size == (20, 40) and mime == "image/jpeg"
    top = np.asarray(upright)[:20].reshape(-1, 3).mean(axis=0)  # the red half is on top once turned
    assert top[0] > 200 and top[2] < 60
    assert rgb_array(path).shape == (20, 40, 3)
    assert rgb_array(path, upright=True).shape == (40, 20, 3)
    assert rgb_array(Image.open(path), upright=True).shape == (40, 20, 3)


def test_rgb_array_from_every_kind_of_source(tmp_path):
    rgba = Image.new("RGBA", (6, 4), (10, 20, 30, 40))
    buf = io.BytesIO()
    rgba.save(buf, "PNG")
    (tmp_path / "a.png").write_bytes(buf.getvalue())
    for source in (rgba, buf.getvalue(), tmp_path / "a.png", str(tmp_path / "a.png"), np.asarray(rgba)):
        array = rgb_array(source)
        assert array.shape == (4, 6, 3) and array.dtype == np.uint8 and array[0, 0].tolist() == [10, 20, 30]
    assert rgb_array(np.zeros((4, 4), np.uint8)).shape == (4, 4, 3)


@pytest.mark.parametrize("array, message", [(np.zeros((4, 4, 2), np.uint8), "HxWx3"),
                                            (np.zeros((4, 4, 3), np.float32), "uint8")])
def test_unusable_arrays_are_input_errors(array, message):
    with pytest.raises(InputError, match=message):
        rgb_array(array)


def test_input_error_is_one_type_for_both_kinds_of_caller(tmp_path):
    with pytest.raises(InputError) as caught:
        rgb_array(tmp_path / "missing.png")
    assert isinstance(caught.value, GuardError) and isinstance(caught.value, ValueError)
    assert "missing.png: file not found" in str(caught.value)


def test_formats_outside_the_accepted_set_are_refused():
    buf = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buf, "PPM")  # Pillow reads PPM, this toolkit does not
    with pytest.raises(InputError, match=r"x\.ppm: not an image format this tool reads"):
        decode_image(buf.getvalue(), name="x.ppm")
    eps = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"  # would need Ghostscript to decode
    with pytest.raises(InputError, match="not an image format"):
        decode_image(eps, name="x.eps")


def test_suffixes_are_those_pillow_registers_for_the_accepted_formats():
    suffixes = image_suffixes()
    assert {".png", ".jpg", ".jpeg", ".webp", ".gif", ".bmp", ".tif", ".tiff"} <= suffixes
    assert ".ppm" not in suffixes and ".eps" not in suffixes and ".txt" not in suffixes
    assert (".avif" in suffixes) == ("AVIF" in image_formats())
    assert (".heic" in suffixes) == ("HEIF" in image_formats())
    assert all(s == s.lower() and s.startswith(".") for s in suffixes)


def test_jpeg_roundtrip_is_lossy_rgb_and_keeps_the_size():
    image = Image.effect_noise((64, 48), 40).convert("L")
    out = jpeg_roundtrip(image, 50)
    assert out.mode == "RGB" and out.size == (64, 48)
    diff = np.abs(np.asarray(out, dtype=int) - np.asarray(image.convert("RGB"), dtype=int))
    assert 0 < diff.mean() < 40
