"""``guard watermark embed|detect`` through the real entry point: JSON output and exit codes."""

from __future__ import annotations

import pytest

from tests.fixtures.watermark import skimage_image


@pytest.fixture
def photo(tmp_path, cli):
    assert cli("keys", "init").exit_code == 0
    path = tmp_path / "coffee.png"
    skimage_image("coffee").save(path)
    return path


def test_embed_then_detect_json(photo, tmp_path, cli):
    out = tmp_path / "marked.jpg"
    embedded = cli("watermark", "embed", photo, "--out", out, "--record-id", "00112233445566AA", "--json")
    assert embedded.exit_code == 0, embedded.stderr
    assert embedded.json["record_id"] == "00112233445566aa" and embedded.json["psnr_db"] >= 40
    found = cli("watermark", "detect", out, "--json")
    assert found.exit_code == 0, found.stderr
    data = found.json
    assert data["found"] is True
    assert data["record_id"] == "00112233445566aa"
    assert data["key_id"] == embedded.json["key_id"] and len(data["key_id"]) == 4
    assert data["false_alarm_probability"] <= 1e-6
    assert isinstance(data["bit_errors_corrected"], int) and 0 <= data["confidence"] <= 1


def test_embed_without_record_id_makes_one(photo, tmp_path, cli):
    result = cli("watermark", "embed", photo, "--out", tmp_path / "m.png")
    assert result.exit_code == 0 and "record" in result.stdout
    assert "watermark found" in cli("watermark", "detect", tmp_path / "m.png").stdout


def test_unmarked_image_exits_1(photo, cli):
    result = cli("watermark", "detect", photo, "--json")
    assert result.exit_code == 1
    assert result.json["found"] is False and result.json["payload"] is None


@pytest.mark.parametrize("content", [b"", b"not an image at all", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"])
def test_unreadable_image_exits_2_with_one_line(tmp_path, cli, content):
    assert cli("keys", "init").exit_code == 0
    bad = tmp_path / "bad.png"
    bad.write_bytes(content)
    for args in (("detect", bad), ("embed", bad, "--out", tmp_path / "o.png")):
        result = cli("watermark", *args)
        assert result.exit_code == 2
        assert result.stderr.count("\n") == 1 and "bad.png" in result.stderr


def test_truncated_image_exits_2(photo, tmp_path, cli):
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(photo.read_bytes()[:5000])
    result = cli("watermark", "detect", truncated)
    assert result.exit_code == 2 and "truncated.png" in result.stderr


def test_missing_file_and_bad_record_id_exit_2(photo, tmp_path, cli):
    assert cli("watermark", "detect", tmp_path / "nope.png").exit_code == 2
    bad_id = cli("watermark", "embed", photo, "--out", tmp_path / "o.png", "--record-id", "xyz")
    assert bad_id.exit_code == 2 and "--record-id" in bad_id.stderr
    assert cli("watermark", "embed", photo, "--out", tmp_path / "o.gif").exit_code == 2


def test_missing_keys_exit_2(tmp_path, cli):
    path = tmp_path / "c.png"
    skimage_image("chelsea").save(path)
    result = cli("watermark", "detect", path)
    assert result.exit_code == 2 and "guard keys init" in result.stderr


def test_decompression_bomb_exits_2(photo, cli, monkeypatch):
    from PIL import Image

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10_000)  # the 600x400 photo is now far over the limit
    result = cli("watermark", "detect", photo)
    assert result.exit_code == 2 and "decompression bomb" in result.stderr
