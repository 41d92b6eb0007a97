"""File and pixel digests are plain SHA-256 that anyone can recompute."""

from __future__ import annotations

import hashlib
import io

from PIL import Image

from core.hashing import pixels_sha256, sha256_file


def test_sha256_file_streams_any_size(tmp_path):
    data = bytes(range(256)) * 20_000  # 5 MB: several read blocks
    path = tmp_path / "blob"
    path.write_bytes(data)
    assert sha256_file(path) == hashlib.sha256(data).hexdigest()
    (tmp_path / "empty").write_bytes(b"")
    assert sha256_file(tmp_path / "empty") == hashlib.sha256(b"").hexdigest()


def test_pixel_digest_is_size_prefix_and_rgb_bytes():
    image = Image.new("RGB", (3, 2), (1, 2, 3))
    assert pixels_sha256(image) == hashlib.sha256(b"3x2:" + bytes([1, 2, 3]) * 6).hexdigest()
    assert pixels_sha256(Image.new("RGB", (2, 3), (1, 2, 3))) != pixels_sha256(image)  # same bytes, other shape


def test_pixel_digest_survives_lossless_reencoding_and_ignores_alpha():
    image = Image.effect_noise((40, 30), 50).convert("RGB")
    buf = io.BytesIO()
    image.save(buf, "PNG")
    assert pixels_sha256(Image.open(buf)) == pixels_sha256(image)
    rgba = image.copy()
    rgba.putalpha(128)
    assert pixels_sha256(rgba) == pixels_sha256(image)
