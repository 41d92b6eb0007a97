"""A detector that cannot be built at run time (options it does not take, a model file that is missing, a
required option left out) is a detector failure like any other: the rule's ``fallback`` scores instead, else its
``fail`` setting decides, and the attempt is logged.

The attack (or accident): a policy whose detector cannot be built used to fail only after the generator ran,
with nothing logged and ``fail``/``fallback`` ignored.

``guard.policy.parse`` refuses such a rule before anything runs (``test_bad_detector_options.py``), so the cases
here reach the pipeline the two ways they still can: a policy object changed in code after it was checked
(``model_copy`` does not validate), or a model file that was there when the policy was checked and is gone now.
"""

from __future__ import annotations

import pytest

from guard.pipeline.guard import Guard
from guard.policy import parse

HOSTILE = "You are a horrible, stupid, disgusting idiot and I hate you."


def _guard(tmp_path, keys, rule: str, stage: str = "output", **unchecked) -> Guard:
    """A guard for a policy with one rule; ``unchecked`` fields replace the rule's after the policy was checked."""
    policy = parse(f"name: unbuildable\nstages:\n  {stage}:\n{rule}")
    if unchecked:
        changed = getattr(policy.stages, stage)[0].model_copy(update=unchecked)
        policy = policy.model_copy(update={"stages": policy.stages.model_copy(update={stage: [changed]})})
    return Guard(policy, log=tmp_path / "log.db", keys=keys)


@pytest.mark.parametrize("fail, verdict", [("open", "flag"), ("closed", "block")])
def test_bad_options_follow_the_fail_setting(tmp_path, keys, fail, verdict):
    rule = (f"    - detector: sentiment\n      thresholds: {{negative: 0.5}}\n"
            f"      action: block\n      fail: {fail}\n")
    guard = _guard(tmp_path, keys, rule, options={"no_such_kwarg": 1})
    result = guard.wrap(lambda prompt: "Thank you, that is a lovely question.")("q")
    assert result.verdict == verdict and (result.artifact is None) == (verdict == "block")
    record = guard.log.get(result.index).data
    [error] = record["errors"]
    assert error["detector"] == "sentiment" and error["stage"] == "output" and "no_such_kwarg" in error["error"]
    assert record["violations"] == [{"rule": "sentiment", "stage": "output", "action": verdict, "fail": fail}]


def test_fallback_scores_when_the_detector_cannot_be_built(tmp_path, keys):
    checkpoint = tmp_path / "toxic.ckpt"
    checkpoint.write_bytes(b"there when the policy was checked")
    rule = (f"    - detector: toxicity\n      options: {{checkpoint: {checkpoint}, precision: fp32}}\n"
            "      thresholds: {toxicity: 0.5, negative: 0.5}\n      action: block\n"
            "      fallback: {detector: sentiment}\n")
    guard = _guard(tmp_path, keys, rule)
    checkpoint.unlink()
    result = guard.wrap(lambda prompt: HOSTILE)("q")
    assert result.blocked and {s["detector"] for s in result.scores} == {"sentiment"}
    assert result.errors[0]["detector"] == "toxicity"


def test_required_option_left_out_is_handled_and_logged(tmp_path, keys):
    from detectors.copyright import WorksStore

    WorksStore(tmp_path / "works", create=True).close()
    rule = (f"    - detector: copyright\n      options: {{works: {tmp_path / 'works'}}}\n"
            "      thresholds: {verbatim: 0.5}\n      action: block\n      fail: closed\n")
    guard = _guard(tmp_path, keys, rule, options={})
    result = guard.wrap(lambda prompt: "A line of text.")("q")
    assert result.blocked and guard.log.size() == 1
    assert result.errors[0]["detector"] == "copyright"


def test_prompt_stage_detector_that_cannot_be_built_blocks_before_generating(tmp_path, keys):
    rule = "    - detector: sentiment\n      thresholds: {negative: 0.5}\n      action: block\n      fail: closed\n"
    guard = _guard(tmp_path, keys, rule, stage="prompt", options={"no_such_kwarg": 1})
    calls = []
    result = guard.wrap(lambda prompt: calls.append(prompt) or "text")("q")
    assert result.blocked and calls == [] and guard.log.size() == 1
    assert guard.log.get(result.index).data["errors"][0]["stage"] == "prompt"
