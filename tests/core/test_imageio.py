"""Bad image input ends in one clear ``InputError`` naming the file; good input decodes with its MIME type."""

from __future__ import annotations

import io
import struct
import zlib

import pytest
from PIL import Image

from core.errors import InputError
from core.imageio import MAX_PIXELS, decode_image, load_image, read_image, rgb_array


def _png(size=(32, 24), mode="RGB") -> bytes:
    buf = io.BytesIO()
    Image.new(mode, size, 90).save(buf, "PNG")
    return buf.getvalue()


def _forged_png(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims ``width`` x ``height``: a few bytes that would decode to billions of pixels."""
    data = bytearray(_png((1, 1), "L"))
    ihdr = 8  # after the signature: length(4) type(4) data(13) crc(4)
    data[ihdr + 8 : ihdr + 16] = struct.pack(">II", width, height)
    crc = zlib.crc32(bytes(data[ihdr + 4 : ihdr + 21])) & 0xFFFFFFFF
    data[ihdr + 21 : ihdr + 25] = struct.pack(">I", crc)
    return bytes(data)


@pytest.mark.parametrize("fmt,mime", [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp")])
def test_reads_bytes_mime_and_pixels(tmp_path, fmt, mime):
    path = tmp_path / f"ok.{fmt.lower()}"
    Image.new("RGB", (40, 30), (200, 10, 10)).save(path, fmt)
    loaded = read_image(path)
    assert loaded.mime == mime
    assert loaded.data == path.read_bytes()
    assert loaded.image.size == (40, 30)
    assert load_image(path).size == (40, 30)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"nope\.png: file not found"):
        read_image(tmp_path / "nope.png")


def test_folder_is_not_an_image(tmp_path):
    with pytest.raises(InputError, match="is a folder"):
        read_image(tmp_path)


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    with pytest.raises(InputError, match=r"empty\.png: empty file"):
        read_image(path)


def test_not_an_image(tmp_path):
    path = tmp_path / "notes.jpg"
    path.write_text("this is text, not a JPEG")
    with pytest.raises(InputError, match=r"notes\.jpg: not an image format"):
        read_image(path)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP"])
def test_truncated_file(tmp_path, fmt):
    buf = io.BytesIO()
    Image.effect_noise((128, 128), 60).convert("RGB").save(buf, fmt)
    path = tmp_path / f"cut.{fmt.lower()}"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    with pytest.raises(InputError, match=rf"cut\.{fmt.lower()}: .*(truncated|corrupt|not an image)"):
        read_image(path)


def test_corrupt_png_chunk(tmp_path):
    data = bytearray(_png((64, 64)))
    data[-20] ^= 0xFF  # inside the last IDAT chunk: its CRC no longer matches
    path = tmp_path / "corrupt.png"
    path.write_bytes(bytes(data))
    with pytest.raises(InputError, match=r"corrupt\.png: truncated or corrupt image data"):
        read_image(path)


def test_decompression_bomb_above_our_limit(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_forged_png(10_000, 10_000))  # 100 million pixels claimed by a ~70-byte file
    with pytest.raises(InputError, match=r"bomb\.png: .*decompression bomb"):
        read_image(path)


def test_decompression_bomb_pil_refuses_outright():
    # Over twice PIL's limit PIL raises DecompressionBombError itself, before our check sees the size.
    with pytest.raises(InputError, match=r"huge\.png: possible decompression bomb"):
        decode_image(_forged_png(30_000, 30_000), name="huge.png")


def test_pixel_limit_is_a_parameter():
    assert decode_image(_png((32, 24)), max_pixels=32 * 24)[0].size == (32, 24)
    with pytest.raises(InputError, match=r"32x24 image \(768 pixels\) exceeds the limit of 767"):
        decode_image(_png((32, 24)), name="small.png", max_pixels=767)
    assert MAX_PIXELS >= 7680 * 4320  # an 8K frame is not a bomb


def test_cli_exits_2_on_bad_image(tmp_path, keys, cli):
    from guard.provenance.log import ProvenanceLog

    ProvenanceLog(tmp_path / "log.db").close()
    bad = tmp_path / "broken.png"
    bad.write_bytes(_png((64, 64))[:50])
    result = cli("verify", bad, "--keys", keys.directory, "--log", tmp_path / "log.db")
    assert result.exit_code == 2
    assert "broken.png" in result.stderr and "Traceback" not in result.stderr


def test_greyscale_of_more_than_8_bits_is_scaled_by_its_range(tmp_path):
    import numpy as np

    ramp = np.tile(np.arange(256, dtype=np.uint16), (4, 1))
    path = tmp_path / "ramp16.png"
    Image.fromarray(ramp * 257).save(path)  # 16 bits: 0-65535, opens as "I;16"
    expected = np.repeat(ramp[:, :, None], 3, axis=2).astype(np.uint8)
    assert Image.open(path).mode == "I;16" and np.array_equal(rgb_array(path), expected)
    # "I" and "F" have no fixed range: stretched from their lowest to their highest value
    assert np.array_equal(rgb_array(Image.fromarray((ramp.astype(np.int32) + 1000) * 3, "I")), expected)
    floats = ramp.astype(np.float32) / 255
    floats[0, 0] = np.nan
    out = rgb_array(Image.fromarray(floats, "F"))
    assert out[0, 0, 0] == 0 and np.array_equal(out[1:], expected[1:])
    assert not rgb_array(Image.new("F", (3, 3), 7.5)).any()  # one value: no range to stretch
