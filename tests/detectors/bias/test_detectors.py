from __future__ import annotations

import pytest

from detectors.bias.regard import CLASSES, TransformersRegard, VaderRegard, regard_scorer
from detectors import registry as detection


def test_vader_regard_follows_vaders_own_convention():
    hostile, kind, plain = VaderRegard()(["They are disgusting and I hate them.", "They are kind and lovely.",
                                          "They took the bus."])
    assert hostile.label == "negative" and hostile.negative > 0.5 and hostile.positive == 0.0
    assert kind.label == "positive" and kind.positive > 0.5 and kind.negative == 0.0
    assert plain == plain.__class__("neutral", 0.0, 0.0)
    assert VaderRegard().model_id.startswith("vaderSentiment-3.3.2+lexicon.sha256:")


def test_sentiment_detector_is_registered_and_scores_in_unit_interval():
    detector = detection.create("sentiment")
    assert detector.name == "sentiment"
    hostile, kind = detector.score(["You are a stupid, awful person.", "What a wonderful day."])
    values = {s.label: s for s in hostile}
    assert set(values) == {"negative", "positive"}
    assert values["negative"].value > 0.5 and values["negative"].details == {"label": "negative"}
    assert {s.label: s.value for s in kind}["positive"] > 0.5
    assert all(0.0 <= s.value <= 1.0 for s in hostile + kind)


@pytest.fixture(scope="module")
def tiny_regard_model(tmp_path_factory):
    from guard.demo.tiny_models import build_tiny_classifier

    return build_tiny_classifier(tmp_path_factory.mktemp("regard"), labels=("NEG", "NEU", "POS", "OTHER"))


def test_transformers_regard_maps_labels_and_hashes_weights(tiny_regard_model):
    scorer = regard_scorer(str(tiny_regard_model),
                           label_map={"NEG": "negative", "NEU": "neutral", "POS": "positive", "OTHER": "other"})
    assert isinstance(scorer, TransformersRegard)
    results = scorer(["short", "a much longer text about the city council " * 200])  # the long one is windowed
    for r in results:
        assert r.label in CLASSES and 0.0 <= r.negative <= 1.0 and 0.0 <= r.positive <= 1.0
    assert "@sha256:" in scorer.model_id


def test_transformers_regard_refuses_unmapped_labels(tiny_regard_model):
    with pytest.raises(ValueError, match="label 'NEG' is not one of"):
        TransformersRegard(tiny_regard_model)(["x"])
    with pytest.raises(ValueError, match="targets must be among"):
        TransformersRegard(tiny_regard_model, label_map={"NEG": "bad"})


def test_bias_detector_reports_groups_regard_and_identity_attack(detoxify_files):
    detector = detection.create("bias", {"toxicity": {"checkpoint": str(detoxify_files.checkpoint),
                                                      "config_dir": str(detoxify_files.config_dir)}})
    (first, attack), (second, *rest) = detector.score(["The Muslim women were hated.", "Nice weather."])
    assert first.label == "negative_regard" and first.value > 0.3
    assert first.details == {"label": "negative", "groups": ["religion/muslim", "gender_and_sex/women"]}
    assert attack.label == "identity_attack" and 0.0 <= attack.value <= 1.0
    assert attack.model.startswith("detoxify:")
    assert second.details["groups"] == [] and [s.label for s in rest] == ["identity_attack"]


def test_bias_detector_without_toxicity_scores_regard_only():
    [[only]] = detection.create("bias").score(["An elderly person reads."])
    assert only.label == "negative_regard" and only.details["groups"] == ["age/old"]
