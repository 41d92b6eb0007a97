"""One preprocessing for train, eval, calibrate and scan: images brought to one scale, faces as the checkpoint
says, refused when options contradict it; calibrations tied to the weights hash, and a scan that says when its
images do not look like the calibration set. Every user mistake: exit 2 and one line."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from detectors.deepfake import DeepfakeDetector, shift
from detectors.deepfake.images import LOSSLESS, describe_input, to_side
from tests.fixtures.deepfake import patches, write_pngs


@pytest.fixture(scope="module")
def model(tmp_path_factory, real_fake_sets):
    """A spectral model trained through the CLI's code on 128 px patches: it records side 256, faces off."""
    from detectors.deepfake import training

    real, fake = real_fake_sets["train"]
    out = tmp_path_factory.mktemp("preprocess") / "spectral.json"
    training.train("spectral", [str(p) for p in real[:24]], [str(p) for p in fake[:24]], out=out, holdout=0.0,
                   workers=0)
    return out


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory, model, photos):
    """The model calibrated (conformal, 10% FPR) on 120 lossless 96 px patches of the photographs."""
    from tests.conftest import run_cli

    root = tmp_path_factory.mktemp("calibrated")
    rng = np.random.default_rng(3)
    pool = [p for name in sorted(photos) for p in patches(photos[name], 20, 96, rng)]
    order = rng.permutation(len(pool))
    write_pngs(root / "calib", [pool[i] for i in order[:120]])
    write_pngs(root / "alike", [pool[i] for i in order[120:170]])
    result = run_cli("detector", "calibrate", "--real", root / "calib", "--target-fpr", "0.1", "--backend",
                     "spectral", "--checkpoint", model, "--workers", "0", "--json")
    assert result.exit_code == 0, result.stderr
    return root, result.json


def _one_error_line(result, expected: str) -> None:
    assert result.exit_code == 2, (result.exit_code, result.stdout, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and expected in lines[0] and "Traceback" not in result.stderr, result.stderr


def test_a_large_photo_is_read_at_the_scale_of_a_small_one(model, photos, tmp_path):
    big = np.asarray(Image.fromarray(photos["astronaut"]).resize((1536, 1024), Image.Resampling.BICUBIC))
    small = to_side(big, 256)
    assert small.shape[:2] == (256, 384) and to_side(small, 256) is small  # never upscaled
    detector = DeepfakeDetector(backend="spectral", checkpoint=str(model), workers=0)
    on_big, on_small = (s[0] for s in detector.score([big, small]))
    assert on_big.details["raw"] == on_small.details["raw"]  # the same pixels reach the features
    unrecorded = tmp_path / "unrecorded.json"  # a model file that does not say how it was trained
    unrecorded.write_text(json.dumps({k: v for k, v in json.loads(model.read_text()).items() if k != "preprocess"}))
    native = DeepfakeDetector(backend="spectral", checkpoint=str(unrecorded), side=0, workers=0)
    assert native.score([big])[0][0].details["raw"] != on_big.details["raw"]
    assert detector.preprocess == {"side": 256, "faces": False}  # from the checkpoint: faces off, as trained


def test_inputs_are_described_by_size_and_jpeg_quality(tmp_path, photos):
    Image.fromarray(photos["coffee"]).save(tmp_path / "q60.jpg", quality=60)
    Image.fromarray(photos["coffee"]).save(tmp_path / "lossless.png")
    decoded = np.zeros((400, 600, 3), np.uint8)
    assert describe_input(str(tmp_path / "q60.jpg"), decoded) == {"width": 600, "height": 400, "jpeg_quality": 60}
    assert describe_input(str(tmp_path / "lossless.png"), decoded)["jpeg_quality"] == LOSSLESS
    assert describe_input(decoded, decoded)["jpeg_quality"] is None


def test_shift_check_on_summaries():
    rng = np.random.default_rng(0)
    inputs = [{"width": 256, "height": 256, "jpeg_quality": 90}] * 200
    stored = shift.reference(inputs, rng.beta(2, 5, 200))
    alike = shift.check(stored, inputs[:60], rng.beta(2, 5, 60), raw_threshold=0.6, target_fpr=0.05)
    assert not alike.shifted and alike.checked and "applies" in alike.message
    phones = [{"width": 4032, "height": 3024, "jpeg_quality": 75}] * 60
    moved = shift.check(stored, phones, rng.beta(2, 5, 60), raw_threshold=0.6, target_fpr=0.05)
    assert moved.shifted and [c.quantity for c in moved.checks if c.shifted] == ["resolution", "jpeg_quality"]
    assert "not guaranteed" in moved.message and "3024" in moved.message
    scores = shift.check(stored, inputs[:60], rng.beta(5, 2, 60) * 0.6, raw_threshold=0.6, target_fpr=0.05)
    assert [c.quantity for c in scores.checks if c.shifted] == ["scores"]
    few = shift.check(stored, phones[:5], rng.beta(2, 5, 5), raw_threshold=0.6, target_fpr=0.05)
    assert not few.shifted and not few.checked and "too few images" in few.message
    assert len(shift.reference(inputs * 10, rng.random(2000))["scores"]) == shift.REFERENCE_SIZE


def test_scan_reports_a_shift_instead_of_the_promised_rate(cli, calibrated, photos, tmp_path):
    root, made = calibrated
    assert made["preprocess"] == {"side": 256, "faces": False} and made["weights"].startswith("spectral@")
    with open(made["calibration"]) as handle:
        stored = json.load(handle)
    assert set(stored["reference"]) == {"n", "resolution", "jpeg_quality", "scores"}  # summaries, no pixels
    result = cli("scan", root / "alike", "--backend", "spectral", "--checkpoint", made["calibration"].removesuffix(
        ".calibration.json"), "--workers", "0", "--no-provenance", "--json")
    assert result.exit_code in (0, 1), result.stderr
    (report,) = result.json["calibration_shift"]
    assert report["checked"] and not report["shifted"], report
    # the same photographs as large, recompressed JPEGs: what a phone or a platform gives
    rng = np.random.default_rng(4)
    phones = tmp_path / "phones"
    phones.mkdir()
    for i, name in enumerate(n for n in sorted(photos) for _ in range(2)):
        crop = patches(photos[name], 1, 200, rng)[0]
        Image.fromarray(crop).resize((800, 800), Image.Resampling.BICUBIC).save(phones / f"{i}.jpg", quality=70)
    checkpoint = made["calibration"].removesuffix(".calibration.json")
    result = cli("scan", phones, "--backend", "spectral", "--checkpoint", checkpoint, "--workers", "0",
                 "--no-provenance", "--json")
    (report,) = result.json["calibration_shift"]
    assert report["shifted"] and "not guaranteed" in report["message"], report
    assert {c["quantity"] for c in report["checks"] if c["shifted"]} >= {"resolution", "jpeg_quality"}
    text = cli("scan", phones, "--backend", "spectral", "--checkpoint", checkpoint, "--workers", "0",
               "--no-provenance")
    assert "CALIBRATION SHIFT (deepfake): these images do not look like the calibration set" in text.stdout


def test_eval_reads_each_image_once_and_sorts_conditions(cli, model, real_fake_sets, monkeypatch):
    from detectors.deepfake import engine

    real, fake = real_fake_sets["test"]
    decoded = []
    original = engine.decode
    monkeypatch.setattr(engine, "decode", lambda source, **kw: decoded.append(source) or original(source, **kw))
    result = cli("detector", "eval", "--real", real[0].parent, "--fake", fake[0].parent, "--backend", "spectral",
                 "--checkpoint", model, "--workers", "0", "--jpeg", "100,30,70", "--blur", "2,0", "--json")
    assert result.exit_code == 0, result.stderr
    assert len(decoded) == len(real) + len(fake)  # 6 conditions, one decode per image
    assert [m["quality"] for m in result.json["jpeg"]] == [30, 70, 100]
    assert [m["sigma"] for m in result.json["blur"]] == [0, 2]
    assert result.json["blur"][0]["auc"] == result.json["clean"]["auc"]


def test_the_same_weights_under_another_name_keep_their_calibration(cli, calibrated, tmp_path):
    root, made = calibrated
    checkpoint = made["calibration"].removesuffix(".calibration.json")
    copy = tmp_path / "detector.json"
    copy.write_bytes(open(checkpoint, "rb").read())
    result = cli("scan", root / "alike", "--backend", "spectral", "--checkpoint", copy, "--calibration",
                 made["calibration"], "--workers", "0", "--no-provenance", "--json")
    assert result.exit_code in (0, 1), result.stderr
    score = result.json["files"][0]["scores"][0]
    assert score["details"]["calibration"]["method"] == "conformal"


def test_options_that_contradict_the_checkpoint_are_refused(cli, calibrated):
    root, made = calibrated
    checkpoint = made["calibration"].removesuffix(".calibration.json")
    for command in (["scan", root / "alike"], ["detector", "eval", "--real", root / "alike", "--fake", root / "alike"],
                    ["detector", "calibrate", "--real", root / "calib", "--out", root / "c.json"]):
        result = cli(*command, "--backend", "spectral", "--checkpoint", checkpoint, "--faces", "--workers", "0")
        _one_error_line(result, "trained with faces=False, but the detector is set to faces=True")


def test_calibration_of_other_weights_or_preprocessing_is_refused(cli, calibrated, model, real_fake_sets, tmp_path):
    from detectors.deepfake import training

    root, made = calibrated
    real, fake = real_fake_sets["train"]
    other = tmp_path / "other.json"
    training.train("spectral", [str(p) for p in real[24:40]], [str(p) for p in fake[24:40]], out=other,
                   holdout=0.0, workers=0)
    result = cli("scan", root / "alike", "--backend", "spectral", "--checkpoint", other, "--calibration",
                 made["calibration"], "--workers", "0")
    _one_error_line(result, "calibration was made for the weights spectral@")
    result = cli("scan", root / "alike", "--backend", "spectral", "--checkpoint", model, "--side", "128",
                 "--workers", "0")
    _one_error_line(result, "trained with side=256, but the detector is set to side=128")
    old = tmp_path / "v1.json"
    old.write_text('{"format": "genguard.deepfake-calibration/v1", "method": "conformal"}')
    result = cli("scan", root / "alike", "--backend", "spectral", "--checkpoint", model, "--calibration", old)
    _one_error_line(result, "made by an older version")


def test_other_user_errors_are_one_line(cli, model, tmp_path, photos):
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_error_line(cli("detector", "calibrate", "--real", empty, "--backend", "spectral", "--checkpoint", model),
                    "no image files")
    _one_error_line(cli("detector", "train", "--real", empty, "--fake", empty, "--backend", "resnet", "--out",
                        tmp_path / "m.json"), "only spectral, clip, probe can be trained")
    _one_error_line(cli("scan", empty, "--backend", "hf", "--model", "org/not-downloaded-detector"),
                    "is not on this machine and the toolkit is offline")
    corrupt = tmp_path / "corrupt"
    write_pngs(corrupt, [photos["coins"][:64, :64]] * 2)
    (corrupt / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 40)
    result = cli("scan", corrupt, "--backend", "spectral", "--checkpoint", model, "--workers", "0", "--json")
    assert result.exit_code == 2 and result.json["summary"]["errors"] == 1  # reported, the scan goes on, then 2
    assert "1 of 2 files could not be read" in result.stderr


def test_train_help_lists_only_trainable_backends(cli):
    text = cli("detector", "train", "--help").stdout
    assert "spectral" in text and "clip" in text and "probe" in text and "experimental" in text
    assert "resnet" not in text and "hf " not in text and "the hf classifier" not in text
