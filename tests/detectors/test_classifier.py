"""Any sequence-classification model as a scorer, with the policy's label mapping."""

from __future__ import annotations

import hashlib

import pytest

from detectors.classifier import ClassifierDetector, ModelUnavailableError
from guard.demo.tiny_models import build_tiny_classifier

TEXTS = ["you are a stupid idiot", "have a nice day", "thanks friend"]


def test_all_labels_softmax_for_single_label_models(classifier_dir):
    scores = ClassifierDetector(model=str(classifier_dir)).score(TEXTS)
    for row in scores:
        assert [s.label for s in row] == ["neutral", "toxic", "insult"]
        assert sum(s.value for s in row) == pytest.approx(1.0, abs=1e-5)
        assert all(s.detector == "classifier" for s in row)


def test_label_mapping_renames_and_drops_unmapped_labels(classifier_dir):
    mapped = ClassifierDetector(model=str(classifier_dir), labels={"toxic": "toxicity", "insult": "insult"})
    full = ClassifierDetector(model=str(classifier_dir))
    for m, f in zip(mapped.score(TEXTS), full.score(TEXTS)):
        assert [s.label for s in m] == ["toxicity", "insult"]
        assert [s.value for s in m] == pytest.approx([f[1].value, f[2].value], abs=1e-6)


def test_unknown_model_label_in_mapping_is_an_error(classifier_dir):
    with pytest.raises(ValueError, match=r"labels \['hate'\] are not model labels"):
        ClassifierDetector(model=str(classifier_dir), labels={"hate": "identity_attack"}).score(["x"])


def test_multi_label_models_use_sigmoid(tmp_path):
    folder = build_tiny_classifier(tmp_path, labels=("toxic", "threat"), problem_type="multi_label_classification")
    detector = ClassifierDetector(model=str(folder))
    forced = ClassifierDetector(model=str(folder), activation="softmax")
    assert detector.loaded.activation == "sigmoid" and forced.loaded.activation == "softmax"
    rows = detector.score(TEXTS)
    assert any(abs(sum(s.value for s in row) - 1.0) > 1e-3 for row in rows)


def test_model_id_pins_the_weights(classifier_dir):
    digest = hashlib.sha256((classifier_dir / "model.safetensors").read_bytes()).hexdigest()
    assert ClassifierDetector(model=str(classifier_dir)).model_id == f"{classifier_dir}@sha256:{digest}"


def test_long_texts_are_windowed(classifier_dir):
    scores = ClassifierDetector(model=str(classifier_dir), max_length=32, overlap=8).score(["good bad " * 100])
    assert scores[0][0].details["windows"] == 9  # 200 tokens, 30 per window advancing by 22


def test_missing_model_offline_is_unavailable(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelUnavailableError, match="no-such/classifier"):
        ClassifierDetector(model="no-such/classifier").score(["x"])


def test_found_by_name_with_policy_options(classifier_dir):
    from detectors import registry as detection

    detector = detection.create("classifier", {"model": str(classifier_dir), "labels": {"toxic": "toxicity"}})
    assert [s.label for s in detector.score(["x"])[0]] == ["toxicity"]
