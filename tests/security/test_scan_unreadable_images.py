"""Slip: ``guard scan`` with no deepfake detector configured counted corrupt and over-limit images as "ok". They
are unreadable and reported so, and stderr says that no deepfake detector ran. ``--resume`` naming a folder is
one line and exit 2."""

from __future__ import annotations

import struct
import zlib

from PIL import Image


def _bomb_png(path, width: int = 60_000, height: int = 60_000) -> None:
    """A valid PNG header declaring 3.6 gigapixels, with almost no data."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
                     + chunk(b"IEND", b""))


def test_corrupt_and_oversized_images_are_unreadable(cli, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    Image.new("RGB", (32, 32), (200, 10, 10)).save(folder / "good.png")
    (folder / "corrupt.png").write_bytes((folder / "good.png").read_bytes()[:60] + b"\x00garbage" * 20)
    _bomb_png(folder / "bomb.png")
    result = cli("scan", folder, "--json", "--no-provenance")
    assert result.exit_code == 2, result.stderr  # every file reported, but the scan did not see them all
    assert "2 of 3 files could not be read" in result.stderr and "Traceback" not in result.stderr
    status = {r["path"].rsplit("/", 1)[-1]: r["status"] for r in result.json["files"]}
    assert status["corrupt.png"] == "error" and status["bomb.png"] == "error", status
    assert status["good.png"] != "error"
    assert result.json["summary"]["errors"] == 2
    assert "no deepfake detector" in result.stderr


def test_resume_naming_a_folder(cli, tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    (tmp_path / "resume").mkdir()
    result = cli("scan", tmp_path / "a.png", "--resume", tmp_path / "resume")
    assert result.exit_code == 2 and "resume" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
