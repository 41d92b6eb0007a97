"""Attack (or slip): a threshold on a label the detector never emits (``toxicty``, ``negatvie``) is a rule that
never fires. It must be a policy error naming the file, the line and the labels the detector does emit, at
``guard policy check`` and at ``Guard(...)`` before anything is generated."""

from __future__ import annotations

import json

import pytest

from core.errors import PolicyError
from guard.policy import load


def _write(tmp_path, text: str):
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def _error(tmp_path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(PolicyError) as err:
        load(path)
    message = str(err.value)
    assert message.startswith(f"{path}: line "), message
    return message


def test_misspelt_toxicity_label_names_its_line_and_the_known_labels(tmp_path):
    msg = _error(tmp_path, "name: x\nstages:\n  output:\n    - detector: toxicity\n      thresholds:\n"
                           "        toxicity: 0.8\n        toxicty: 0.5\n")
    assert "line 7" in msg and "'toxicty'" in msg
    assert "severe_toxicity" in msg and "identity_attack" in msg


def test_misspelt_sentiment_label(tmp_path):
    msg = _error(tmp_path, "name: x\nstages:\n  output:\n    - detector: sentiment\n      thresholds: {negatvie: 0.5}\n")
    assert "line 5" in msg and "'negatvie'" in msg and "negative" in msg and "positive" in msg


def test_label_of_another_detoxify_model(tmp_path):
    # sexual_explicit exists in the unbiased models only.
    _error(tmp_path, "name: x\nstages:\n  output:\n    - detector: toxicity\n      options: {model: original}\n"
                     "      thresholds: {sexual_explicit: 0.5}\n")
    load(_write(tmp_path, "name: x\nstages:\n  output:\n    - detector: toxicity\n      options: {model: unbiased}\n"
                          "      thresholds: {sexual_explicit: 0.5}\n"))


def test_classifier_labels_come_from_its_config_without_loading_weights(tmp_path):
    model = tmp_path / "clf"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"id2label": {"0": "neutral", "1": "toxic"}}))
    msg = _error(tmp_path, f"name: x\nstages:\n  output:\n    - detector: classifier\n      options: {{model: {model}}}\n"
                           "      thresholds: {toxik: 0.5}\n")
    assert "line 6" in msg and "neutral, toxic" in msg
    load(_write(tmp_path, f"name: x\nstages:\n  output:\n    - detector: classifier\n      options: {{model: {model}}}\n"
                          "      thresholds: {toxic: 0.5}\n"))
    # With a label map, only the mapped labels are reported.
    msg = _error(tmp_path, f"name: x\nstages:\n  output:\n    - detector: classifier\n"
                           f"      options: {{model: {model}, labels: {{toxic: toxicity}}}}\n"
                           "      thresholds: {toxic: 0.5}\n")
    assert "toxicity" in msg


def test_toxicity_checkpoint_labels_are_read_from_the_checkpoint(tmp_path, detoxify_files):
    head = (f"name: x\nstages:\n  output:\n    - detector: toxicity\n"
            f"      options: {{checkpoint: {detoxify_files.checkpoint}, config_dir: {detoxify_files.config_dir}}}\n")
    load(_write(tmp_path, head + "      thresholds: {identity_attack: 0.5, toxicity: 0.5}\n"))
    assert "'identity_hate'" in _error(tmp_path, head + "      thresholds: {identity_hate: 0.5}\n")


def test_fallback_that_emits_none_of_the_thresholded_labels(tmp_path):
    msg = _error(tmp_path, "name: x\nstages:\n  output:\n    - detector: toxicity\n      thresholds: {toxicity: 0.5}\n"
                           "      fallback: {detector: sentiment}\n")
    assert "fallback" in msg and "sentiment" in msg and "line 6" in msg


def test_guard_refuses_before_generating(tmp_path, keys):
    from guard import Guard

    calls = []
    path = _write(tmp_path, "name: x\nstages:\n  output:\n    - detector: sentiment\n      thresholds: {negatvie: 0.5}\n")
    with pytest.raises(PolicyError, match="negatvie"):
        Guard(path, log=tmp_path / "log.db", keys=keys).wrap(lambda prompt: calls.append(prompt) or "text")("hi")
    assert calls == [] and not (tmp_path / "log.db").exists()


def test_policy_check_cli(cli, tmp_path):
    path = _write(tmp_path, "name: x\nstages:\n  output:\n    - detector: sentiment\n      thresholds: {negatvie: 0.5}\n")
    result = cli("policy", "check", path)
    assert result.exit_code == 2 and "negatvie" in result.stderr and "line 5" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    result = cli("policy", "check", path, "--json")
    assert result.exit_code == 2 and result.json["exit_code"] == 2
    assert f"{path}: line 5: stages.output.0.thresholds.negatvie: unknown label" in result.json["error"]
    with pytest.raises(PolicyError) as err:
        load(path)
    assert (err.value.source, err.value.line, err.value.field) == (str(path), 5, "stages.output.0.thresholds.negatvie")


def test_every_shipped_detector_declares_its_labels_or_reads_them():
    """A detector whose labels are not known leaves its thresholds unchecked; every shipped one declares them
    (``emits``) or reads them from its options without loading a model."""
    from detectors.registry import available, detector_class

    options = {"classifier": {"model": "x", "labels": {"a": "b"}}, "copyright": {"works": "x"}}
    for name in available():
        labels = detector_class(name).emitted_labels(options.get(name, {}))
        assert isinstance(labels, frozenset) and labels, name
