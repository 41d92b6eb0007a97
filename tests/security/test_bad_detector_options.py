"""Slip: detector options that cannot build the detector (an option it does not take, a model file that is not
there, a required option left out) must fail ``guard policy check`` at the option's line, not after the
generator ran. An unknown detector is reported at its own line."""

from __future__ import annotations

import pytest

from core.errors import PolicyError
from guard.policy import load


def _error(tmp_path, text: str) -> str:
    path = tmp_path / "policy.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(PolicyError) as err:
        load(path)
    assert str(err.value).startswith(f"{path}: line "), err.value
    return str(err.value)


def test_unknown_option_names_its_line_and_the_options_taken(tmp_path):
    msg = _error(tmp_path, "name: x\nstages:\n  output:\n    - detector: toxicity\n      options:\n"
                           "        model: original\n        no_such_kwarg: 1\n")
    assert "line 7" in msg and "no_such_kwarg" in msg and "checkpoint" in msg


def test_missing_checkpoint_file(tmp_path):
    msg = _error(tmp_path, "name: x\nstages:\n  output:\n    - detector: toxicity\n"
                           f"      options: {{checkpoint: {tmp_path}/nope.ckpt}}\n")
    assert "line 5" in msg and "nope.ckpt" in msg


def test_missing_classifier_folder(tmp_path):
    msg = _error(tmp_path, "name: x\nstages:\n  output:\n    - detector: classifier\n"
                           f"      options: {{model: {tmp_path}/models/missing}}\n")
    assert "line 5" in msg and "missing" in msg


def test_copyright_without_works(tmp_path):
    msg = _error(tmp_path, "name: x\nstages:\n  output:\n    - detector: copyright\n      action: block\n")
    assert "line 4" in msg and "works" in msg


def test_copyright_with_a_registry_that_does_not_exist(tmp_path):
    msg = _error(tmp_path, "name: x\nstages:\n  output:\n    - detector: copyright\n"
                           f"      options: {{works: {tmp_path}/no-registry}}\n")
    assert "line 5" in msg and "no works registry" in msg


def test_value_outside_the_choices(tmp_path):
    msg = _error(tmp_path, "name: x\nstages:\n  output:\n    - detector: deepfake\n      options:\n"
                           "        backend: magic\n")
    assert "line 6" in msg and "backend" in msg and "probe" in msg


def test_bad_fallback_option(tmp_path):
    msg = _error(tmp_path, "name: x\nstages:\n  output:\n    - detector: toxicity\n      thresholds: {toxicity: 0.5}\n"
                           "      fallback:\n        detector: sentiment\n        options: {modle: vader}\n")
    assert "line 8" in msg and "modle" in msg


def test_unknown_detector_at_its_own_line(tmp_path):
    msg = _error(tmp_path, "name: x\nstages:\n  output:\n    - action: flag\n      fail: open\n"
                           "      detector: toxicityy\n")
    assert "line 6" in msg and "unknown detector 'toxicityy'" in msg and "toxicity" in msg


def test_unknown_fallback_detector_at_its_own_line(tmp_path):
    msg = _error(tmp_path, "name: x\nstages:\n  output:\n    - detector: toxicity\n      fallback:\n"
                           "        options: {}\n        detector: nope\n")
    assert "line 7" in msg and "unknown detector 'nope'" in msg


def test_shipped_policies_still_check(cli):
    for name in ("default", "strict", "demo"):
        assert cli("policy", "check", name).exit_code == 0
