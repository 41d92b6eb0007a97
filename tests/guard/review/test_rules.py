"""Which rule fired: read from the record when it says, else derived from the exact policy it was judged by."""

from __future__ import annotations

from guard.policy import parse
from guard.review.rules import PolicyBook, fired_rules

POLICY = parse("""\
name: rules-test
stages:
  prompt:
    - detector: toxicity
      thresholds: {toxicity: 0.9}
      action: flag
      fail: open
  output:
    - detector: toxicity
      fallback: {detector: sentiment}
      thresholds: {toxicity: 0.8, negative: 0.6}
      action: block
""", source="rules-test.yaml")


def _record(**fields):
    return {"verdict": "block", "policy": {"name": POLICY.name, "sha256": POLICY.sha256}, "scores": [], **fields}


def test_derived_from_the_policy_thresholds_including_a_fallback_scorer():
    record = _record(scores=[
        {"detector": "toxicity", "label": "toxicity", "value": 0.95, "stage": "prompt"},
        {"detector": "sentiment", "label": "negative", "value": 0.6, "stage": "output"},  # equal fires, as in the pipeline
        {"detector": "sentiment", "label": "positive", "value": 0.99, "stage": "output"},  # no threshold
        {"detector": "toxicity", "label": "toxicity", "value": 0.79, "stage": "output"},  # under
    ])
    fired, note = fired_rules(record, PolicyBook([POLICY]))
    assert note is None
    assert [(f.stage, f.detector, f.label, f.score, f.threshold, f.action) for f in fired] == [
        ("prompt", "toxicity", "toxicity", 0.95, 0.9, "flag"),
        ("output", "sentiment", "negative", 0.6, 0.6, "block"),
    ]
    assert fired[0].source == "derived from policy rules-test"


def test_a_detector_failure_fires_its_rules_fail_action():
    record = _record(errors=[{"detector": "toxicity", "stage": "prompt", "error": "OSError: no weights"}])
    fired, _ = fired_rules(record, PolicyBook([POLICY]))
    assert [(f.detector, f.action) for f in fired] == [("toxicity", "flag")]  # fail: open
    assert "OSError: no weights" in fired[0].source


def test_the_recorded_rule_wins_over_derivation():
    recorded = {"detector": "copyright", "label": "near_duplicate", "score": 0.97, "threshold": 0.9,
                "stage": "output", "action": "block"}
    fired, note = fired_rules(_record(violations=[{"rule": "copyright", **recorded}]), PolicyBook([POLICY]))
    assert note is None and [f.to_dict() for f in fired] == [{**recorded, "source": "recorded"}]


def test_an_unknown_policy_says_how_to_show_the_rule():
    fired, note = fired_rules(_record(policy={"name": "other", "sha256": "ab" * 32}), PolicyBook([POLICY]))
    assert fired == [] and "--policy FILE" in note and "'other'" in note


def test_allowed_records_fired_nothing():
    assert fired_rules(_record(verdict="allow"), PolicyBook([POLICY])) == ([], None)


def test_shipped_policies_are_known_by_hash():
    from guard.policy import load

    book = PolicyBook.load([])
    assert book.find({"policy": {"sha256": load("default").sha256}}).name == "default"
