"""Policies: shipped ones load, broken ones name the file, line and field."""

from __future__ import annotations

import pytest

from core.errors import PolicyError
from guard.policy import Action, load, shipped


@pytest.mark.parametrize("name", ["default", "strict", "demo"])
def test_shipped_policies_load(name):
    policy = load(name)
    assert policy.name == name and len(policy.sha256) == 64
    assert policy.stages.output, "every shipped policy checks outputs"


def test_shipped_policies_are_found_by_name():
    assert {"default", "strict", "demo"} <= set(shipped())


def test_policy_by_path(tmp_path):
    path = tmp_path / "mine.yaml"
    path.write_text("name: mine\nstages:\n  output:\n    - detector: sentiment\n      thresholds: {negative: 0.5}\n"
                    "      action: regenerate\n      max_attempts: 2\n")
    policy = load(path)
    rule = policy.stages.output[0]
    assert (rule.action, rule.max_attempts, rule.thresholds) == (Action.regenerate, 2, {"negative": 0.5})
    assert policy.source == str(path)


def _broken(tmp_path, text: str) -> str:
    path = tmp_path / "broken.yaml"
    path.write_text(text)
    with pytest.raises(PolicyError) as err:
        load(path)
    assert str(path) in str(err.value)
    return str(err.value)


def test_unknown_field_names_line_and_field(tmp_path):
    msg = _broken(tmp_path, "name: x\nstages:\n  output:\n    - detector: sentiment\n      treshold: {negative: 1}\n")
    assert "line 5" in msg and "stages.output.0.treshold" in msg and "unknown field" in msg


def test_bad_threshold_names_line(tmp_path):
    msg = _broken(tmp_path, "name: x\nstages:\n  output:\n    - detector: sentiment\n      thresholds: {negative: 3}\n")
    assert "line 5" in msg and "between 0 and 1" in msg


def test_unknown_detector(tmp_path):
    msg = _broken(tmp_path, "name: x\nstages:\n  prompt:\n    - detector: nonexistent\n")
    assert "unknown detector 'nonexistent'" in msg


def test_bad_action_and_prompt_regenerate(tmp_path):
    assert "line 5" in _broken(tmp_path, "name: x\nstages:\n  output:\n    - detector: sentiment\n      action: nuke\n")
    assert "cannot be regenerated" in _broken(
        tmp_path, "name: x\nstages:\n  prompt:\n    - detector: sentiment\n      action: regenerate\n")


def test_malformed_yaml_and_missing_file(tmp_path):
    assert "malformed YAML" in _broken(tmp_path, "name: x\nstages: [\n")
    with pytest.raises(PolicyError, match="not found"):
        load(tmp_path / "missing.yaml")
    with pytest.raises(PolicyError, match="unknown policy 'nosuch'"):
        load("nosuch")


def test_unknown_detector_names_its_own_line(tmp_path):
    msg = _broken(tmp_path, "name: x\nstages:\n  output:\n    - detector: toxicity\n    - detector: toxicty\n")
    assert "line 5" in msg and "stages.output.1.detector" in msg and "unknown detector 'toxicty'" in msg
    msg = _broken(tmp_path, "name: x\nstages:\n  output:\n    - detector: toxicity\n      fallback: {detector: nope}\n")
    assert "line 5" in msg and "stages.output.0.fallback.detector" in msg
