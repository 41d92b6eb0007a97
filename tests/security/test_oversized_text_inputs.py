"""Attack (or slip): a text input far larger than any generated output or protected work (``detect-text`` on an
84 MB file reached 14.8 GB; ``works add`` 4.9 GB). Each is refused before it is read: one line, exit 2."""

from __future__ import annotations

import time

import pytest


def _sparse(path, size: int):
    with open(path, "wb") as fh:  # a sparse file: huge to stat, nothing written to disk
        fh.truncate(size)
    return path


def test_detect_text_refuses_an_84_mb_file_without_reading_it(cli, tmp_path):
    big = _sparse(tmp_path / "big.txt", 84 << 20)
    start = time.perf_counter()
    result = cli("detect-text", big, "--model", tmp_path / "no-model")
    assert result.exit_code == 2, result.stderr
    assert "big.txt" in result.stderr and "more than" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert time.perf_counter() - start < 5


def test_detect_text_library_refuses_an_oversized_text(monkeypatch):
    from core.errors import InputError
    from guard.watermark import text as wm

    monkeypatch.setattr(wm, "MAX_TEXT_BYTES", 100)
    detector = wm.TextWatermarkDetector.__new__(wm.TextWatermarkDetector)  # the check comes before any model work
    with pytest.raises(InputError, match="more than 100"):
        detector.detect("word " * 50)


def test_works_add_refuses_an_oversized_work(cli, tmp_path):
    big = _sparse(tmp_path / "corpus.txt", 84 << 20)
    result = cli("works", "add", big, "--works", tmp_path / "works")
    assert result.exit_code == 2 and "corpus.txt" in result.stderr and "more than" in result.stderr, result.stderr
    assert cli("works", "list", "--works", tmp_path / "works", "--json").json["works"] == []


def test_works_add_limit_is_configurable(cli, tmp_path, monkeypatch):
    from guard.audit import works

    monkeypatch.setattr(works, "MAX_WORK_BYTES", 64)
    small = tmp_path / "poem.txt"
    small.write_text("the quick brown fox jumps over the lazy dog " * 3, encoding="utf-8")
    result = cli("works", "add", small, "--works", tmp_path / "works")
    assert result.exit_code == 2 and "more than the 64" in result.stderr
