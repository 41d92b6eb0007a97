"""The spectral detector learns up-convolution artefacts from a small set and beats chance on held-out
photographs; calibration meets its target false-positive rate on held-out real images."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.deepfake import DeepfakeDetector, calibration
from tests.fixtures.deepfake import patches, write_pngs


@pytest.fixture(scope="module")
def spectral_model(tmp_path_factory, real_fake_sets):
    from detectors.deepfake import training

    real, fake = real_fake_sets["train"]
    out = tmp_path_factory.mktemp("spectral") / "spectral.json"
    report = training.train("spectral", [str(p) for p in real], [str(p) for p in fake], out=out, holdout=0.25,
                            workers=0)
    assert report.n_real == len(real) and report.n_fake == len(fake) and not report.errors
    assert report.holdout is not None and report.holdout.n_real + report.holdout.n_fake == round(0.25 * 2 * len(real))
    return out


def test_spectral_detector_beats_chance_on_held_out_photographs(spectral_model, real_fake_sets):
    from detectors.deepfake.evaluation import score_sets

    real, fake = real_fake_sets["test"]  # patches of photographs the model never saw
    detector = DeepfakeDetector(backend="spectral", checkpoint=str(spectral_model), faces=False, workers=0)
    [result] = score_sets(detector, [str(p) for p in real], [str(p) for p in fake])
    assert result.errors == 0 and result.n_real == len(real)
    # chance is 0.5; with 96 + 96 images the AUC's standard error is about 0.035
    assert result.auc > 0.65, result
    assert result.accuracy > 0.6, result


def test_conformal_calibration_meets_target_fpr_on_held_out_scores():
    rng = np.random.default_rng(7)
    calib, held_out = rng.beta(2, 5, 2000), rng.beta(2, 5, 20000)  # raw scores of real images
    fitted = calibration.fit(calib, target_fpr=0.01, model="m")
    assert fitted.method == "conformal"
    fpr = float((fitted.apply(held_out) >= fitted.threshold).mean())
    assert 0.005 <= fpr <= 0.015
    # flagging by value and by raw score agree
    np.testing.assert_array_equal(fitted.apply(held_out) >= fitted.threshold, held_out > fitted.raw_threshold)


def test_platt_calibration_gives_probabilities_and_keeps_the_fpr_cut():
    rng = np.random.default_rng(3)
    real, fake = rng.beta(2, 5, 1000), rng.beta(5, 2, 1000)
    fitted = calibration.fit(real, fake, target_fpr=0.05, model="m")
    assert fitted.method == "platt" and fitted.params["a"] > 0
    values = fitted.apply(np.array([0.05, 0.5, 0.95]))
    assert values[0] < 0.1 and 0.3 < values[1] < 0.7 and values[2] > 0.9  # the two Betas cross at 0.5
    held_out = rng.beta(2, 5, 20000)
    assert abs(float((fitted.apply(held_out) >= fitted.threshold).mean()) - 0.05) < 0.015


def test_calibration_refuses_too_few_images_and_other_models(tmp_path):
    with pytest.raises(ValueError, match="needs at least 99 real images, got 50"):
        calibration.fit(np.linspace(0, 1, 50), target_fpr=0.01, model="m")
    fitted = calibration.fit(np.linspace(0, 1, 200), target_fpr=0.05, model="spectral:a.json@1", weights="spectral@1",
                             preprocess={"side": 256, "faces": True})
    loaded = calibration.Calibration.load(fitted.save(tmp_path / "c.json"))
    assert loaded.threshold == fitted.threshold and loaded.sha256
    with pytest.raises(ValueError, match="made for the weights spectral@1 .spectral:a.json@1., not spectral@2"):
        loaded.check("spectral@2", {"side": 256, "faces": True})
    with pytest.raises(ValueError, match="made with faces=True; the detector now uses faces=False"):
        loaded.check("spectral@1", {"side": 256, "faces": False})
    with pytest.raises(ValueError, match="made with side=256; the detector now uses side=512"):
        loaded.check("spectral@1", {"side": 512, "faces": True})
    old = tmp_path / "v1.json"
    old.write_text('{"format": "genguard.deepfake-calibration/v1"}')
    with pytest.raises(ValueError, match="older version .* run `guard detector calibrate` again"):
        calibration.Calibration.load(old)


def test_cli_calibrate_hits_target_fpr_on_held_out_real_images(cli, spectral_model, photos, tmp_path):
    rng = np.random.default_rng(11)
    pool = [p for name in sorted(photos) for p in patches(photos[name], 24, 64, rng)]
    order = rng.permutation(len(pool))
    calib = write_pngs(tmp_path / "calib", [pool[i] for i in order[:120]])
    held = [pool[i] for i in order[120:]]
    result = cli("detector", "calibrate", "--real", calib[0].parent, "--target-fpr", "0.1", "--backend", "spectral",
                 "--checkpoint", spectral_model, "--no-faces", "--workers", "0", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json
    assert data["method"] == "conformal" and data["n_real"] == 120
    assert data["calibration"] == f"{spectral_model}.calibration.json"  # stored beside the checkpoint
    # the detector now picks the calibration up by itself and reports calibrated values
    detector = DeepfakeDetector(backend="spectral", checkpoint=str(spectral_model), faces=False, workers=0)
    scores = [s[0] for s in detector.score(held)]
    assert scores[0].details["calibration"]["method"] == "conformal"
    fpr = np.mean([s.details["flagged"] for s in scores])
    assert len(held) >= 150 and abs(fpr - 0.1) <= 0.07, fpr
    # the checkpoint's preprocessing is required: faces on contradicts it, and is refused
    with pytest.raises(ValueError, match="trained with faces=False, but the detector is set to faces=True"):
        DeepfakeDetector(backend="spectral", checkpoint=str(spectral_model), faces=True).model_id
    # a byte-identical copy under another name is the same weights: the calibration is accepted
    copy = tmp_path / "renamed.json"
    copy.write_bytes(spectral_model.read_bytes())
    renamed = DeepfakeDetector(backend="spectral", checkpoint=str(copy), calibration=data["calibration"], workers=0)
    assert renamed.calibration is not None and renamed.weights_key == detector.weights_key


def test_cli_train_and_eval_report_metrics(cli, real_fake_sets, tmp_path):
    real, fake = real_fake_sets["train"]
    out = tmp_path / "trained.json"
    result = cli("detector", "train", "--real", real[0].parent, "--fake", fake[0].parent, "--backend", "spectral",
                 "--out", out, "--workers", "0", "--json")
    assert result.exit_code == 0, result.stderr
    assert out.is_file() and result.json["holdout"]["auc"] > 0.5
    test_real, test_fake = real_fake_sets["test"]
    result = cli("detector", "eval", "--real", test_real[0].parent, "--fake", test_fake[0].parent, "--backend",
                 "spectral", "--checkpoint", out, "--no-faces", "--workers", "0", "--jpeg", "30", "--blur", "0,2",
                 "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json
    assert [m["quality"] for m in data["jpeg"]] == [30] and [m["sigma"] for m in data["blur"]] == [0, 2]
    for metrics in [data["clean"], *data["jpeg"], *data["blur"]]:
        assert set(metrics) >= {"auc", "ap", "accuracy", "tpr_at_1pct_fpr"} and 0 <= metrics["auc"] <= 1
    assert data["blur"][0]["auc"] == data["clean"]["auc"]  # sigma 0 is the identity
    assert data["preprocess"] == {"side": 256, "faces": False}  # taken from the checkpoint, not the defaults


def test_cli_reports_bad_input_without_traceback(cli, tmp_path):
    result = cli("detector", "train", "--real", tmp_path / "nope", "--fake", tmp_path, "--backend", "spectral",
                 "--out", tmp_path / "x.json")
    assert result.exit_code == 2 and "not a folder" in result.stderr and "Traceback" not in result.stderr
    result = cli("detector", "calibrate", "--real", tmp_path, "--backend", "spectral", "--checkpoint",
                 tmp_path / "missing.json")
    assert result.exit_code == 2 and "missing.json: spectral model file not found" in result.stderr
