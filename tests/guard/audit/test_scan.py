"""``guard scan`` survives a folder of corrupt, empty, huge and non-image files, reports C2PA and watermark
columns, sends text to the policy's text detectors, and resumes by content hash."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.detectors.deepfake.test_faces_and_engine import _png_header_only
from tests.fixtures.deepfake import patches, up_convolution, write_pngs
from tests.fixtures.shared import shared_path


@pytest.fixture(scope="module")
def spectral_checkpoint(tmp_path_factory, photos):
    """A spectral model trained on a few patches (quality does not matter here, only that it is real)."""
    from detectors.deepfake import training
    from detectors.deepfake.engine import CropPlan
    from detectors.deepfake.faces import resolve

    root = tmp_path_factory.mktemp("scan-model")
    rng = np.random.default_rng(5)
    real = [p for name in ("astronaut", "coffee", "brick", "grass") for p in patches(photos[name], 6, 96, rng)]
    real_paths = write_pngs(root / "real", real)
    fake_paths = write_pngs(root / "fake", [up_convolution(p) for p in real])
    out = root / "spectral.json"
    plan = CropPlan(faces=True, finder=resolve("auto"))  # recorded: the scan then scores faces too, by default
    training.train("spectral", [str(p) for p in real_paths], [str(p) for p in fake_paths], out=out, holdout=0.0,
                   workers=0, plan=plan)
    return out


@pytest.fixture
def messy_folder(tmp_path, photos):
    folder = tmp_path / "inbox"
    (folder / "sub").mkdir(parents=True)
    Image.fromarray(photos["astronaut"]).save(folder / "portrait.jpg", quality=92)
    Image.fromarray(photos["coins"]).save(folder / "sub" / "coins.png")
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0" + os.urandom(3000))  # JPEG magic, garbage after
    (folder / "empty.png").write_bytes(b"")
    _png_header_only(folder / "huge.png", 100_000, 100_000)  # a decompression bomb's header
    (folder / "data.bin").write_bytes(bytes(range(256)) * 8)
    (folder / "notes.txt").write_text("A short note about the photographs in this folder.\n")
    shutil.copy(shared_path("interop", "c2pa", "C.jpg"), folder / "signed.jpg")  # a real C2PA-signed photograph
    return folder


def _records(stdout: str) -> dict[str, dict]:
    return {os.path.basename(r["path"]): r for r in map(json.loads, stdout.splitlines())}


def test_scan_reports_every_file_and_keeps_going(cli, messy_folder, spectral_checkpoint, tmp_path):
    out = tmp_path / "scan.jsonl"
    result = cli("scan", messy_folder, "--backend", "spectral", "--checkpoint", spectral_checkpoint, "--workers", "0",
                 "--jsonl", "--resume", out)
    assert result.exit_code == 2, result.stderr  # three files could not be read: reported, the rest scanned
    assert "3 of 8 files could not be read" in result.stderr
    records = _records(result.stdout)
    assert set(records) == {"portrait.jpg", "coins.png", "corrupt.jpg", "empty.png", "huge.png", "data.bin",
                            "notes.txt", "signed.jpg"}
    for name in ("portrait.jpg", "coins.png", "signed.jpg"):
        record = records[name]
        assert record["status"] == "ok" and record["kind"] == "image" and len(record["sha256"]) == 64
        (score,) = record["scores"]
        assert score["detector"] == "deepfake" and score["label"] == "fake" and 0 <= score["value"] <= 1
        assert score["model"].startswith("spectral:spectral.json@")
    assert len(records["portrait.jpg"]["scores"][0]["details"]["faces"]) == 1
    assert records["coins.png"]["c2pa"]["status"] == "absent"
    assert records["signed.jpg"]["c2pa"]["status"] == "present"
    assert records["corrupt.jpg"]["status"] == "error" and "corrupt" in records["corrupt.jpg"]["error"]
    assert records["empty.png"]["status"] == "error" and "empty file" in records["empty.png"]["error"]
    assert records["huge.png"]["status"] == "error" and "decompression bomb" in records["huge.png"]["error"]
    assert records["data.bin"]["status"] == "skipped" and records["data.bin"]["reason"] == "not an image or text file"
    assert records["notes.txt"]["status"] == "skipped" and records["notes.txt"]["reason"] == "no text detector configured"
    assert "8 files" in result.stderr
    assert "note: deepfake scores are hints, not proof" in result.stderr  # the measured limits, every time

    # the same folder again: everything with a content hash is already in the JSONL file
    again = cli("scan", messy_folder, "--backend", "spectral", "--checkpoint", spectral_checkpoint, "--workers", "0",
                "--json", "--resume", out)
    assert again.exit_code == 2, again.stderr  # the empty file still cannot be read
    assert [os.path.basename(r["path"]) for r in again.json["files"]] == ["empty.png"]  # no content to hash
    assert again.json["summary"]["already_scanned"] == 7
    assert again.json["notes"] and "docs/evidence.md" in again.json["notes"][0]
    assert len(out.read_text().splitlines()) == 9


def test_scan_uses_the_policy_for_images_and_text_and_finds_our_watermark(cli, messy_folder, spectral_checkpoint,
                                                                          keys, tmp_path, photos):
    from guard.watermark.image import WatermarkPayload, embed
    from guard.demo.tiny_models import build_tiny_detoxify

    detox = build_tiny_detoxify(tmp_path / "detox", hub_model_type=False)
    payload = WatermarkPayload.for_record("0123456789abcdef", keys.watermark_key_id())
    marked = embed(Image.fromarray(photos["coffee"]), payload, keys.watermark_secret())
    marked.save(messy_folder / "marked.png")
    policy = tmp_path / "scan.yaml"
    policy.write_text(f"""
name: scan-test
stages:
  output:
    - detector: deepfake
      options: {{backend: spectral, checkpoint: "{spectral_checkpoint}", workers: 0}}
      thresholds: {{fake: 1.0}}
    - detector: toxicity
      options: {{checkpoint: "{detox.checkpoint}", config_dir: "{detox.config_dir}", local_files_only: true}}
      thresholds: {{toxicity: 1.0}}
""")
    result = cli("scan", messy_folder, "--policy", policy, "--keys", keys.directory, "--json")
    assert result.exit_code == 2, result.stderr  # thresholds of 1.0: nothing is flagged; the messy files unread
    assert "3 of 9 files could not be read" in result.stderr and "flagged" not in result.stderr
    records = {os.path.basename(r["path"]): r for r in result.json["files"]}
    notes = records["notes.txt"]
    assert notes["status"] == "ok" and {s["detector"] for s in notes["scores"]} == {"toxicity"}
    assert records["marked.png"]["watermark"]["found"] is True
    assert records["marked.png"]["watermark"]["record_id"] == "0123456789abcdef"
    assert records["coins.png"]["watermark"]["found"] is False
    assert result.json["summary"]["flagged"] == 0


def test_scan_limits_and_bad_input(cli, tmp_path):
    from guard.audit import scan as scanner

    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG" + b"\x00" * 5000)
    seen = []
    summary = scanner.scan([big], scanner.ScanSettings(max_file_bytes=1000), on_record=seen.append)
    assert summary.errors == 1 and "larger than the 1,000-byte limit" in seen[0]["error"]
    result = cli("scan", tmp_path / "missing")
    assert result.exit_code == 2 and "missing: no such file or folder" in result.stderr
