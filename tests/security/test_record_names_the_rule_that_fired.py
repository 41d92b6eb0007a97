"""A record whose verdict is block, flag or redact names the rule that fired: detector, label, score, threshold,
stage and action (or, when the detector failed, the rule's ``fail`` setting). ``guard log show`` and the audit
report print it.

The attack (or audit gap): a blocked or flagged output whose record does not say why cannot be reviewed, and a
policy change that silently switched the reason goes unnoticed.
"""

from __future__ import annotations

import json

import pytest

from guard.pipeline.guard import Guard
from guard.policy import parse

HOSTILE = "You are a horrible, stupid, disgusting idiot and I hate you."


def _policy(action: str, stage: str = "output", fail: str = "closed") -> str:
    return (f"name: why-{action}\nstages:\n  {stage}:\n    - detector: sentiment\n      thresholds: {{negative: 0.5}}\n"
            f"      action: {action}\n      fail: {fail}\n")


@pytest.mark.parametrize("action, stage, verdict", [("block", "output", "block"), ("flag", "output", "flag"),
                                                    ("redact", "output", "redact"), ("block", "prompt", "block")])
def test_verdict_names_the_rule(tmp_path, keys, action, stage, verdict):
    guard = Guard(parse(_policy(action, stage)), log=tmp_path / "log.db", keys=keys)
    text = f"The weather is mild today. {HOSTILE}"
    result = guard.wrap(lambda prompt: text)(text if stage == "prompt" else "q")
    assert result.verdict == verdict
    [why] = guard.log.get(result.index).data["violations"]
    score = next(s["value"] for s in result.scores if s["label"] == "negative" and s["stage"] == stage)
    assert why == {"rule": "sentiment", "detector": "sentiment", "label": "negative", "score": score,
                   "threshold": 0.5, "stage": stage, "action": action}


def test_an_allowed_output_names_no_rule(tmp_path, keys):
    guard = Guard(parse(_policy("block")), log=tmp_path / "log.db", keys=keys)
    result = guard.wrap(lambda prompt: "Thank you, that is a lovely question.")("q")
    assert result.verdict == "allow" and guard.log.get(result.index).data["violations"] == []


def test_a_failed_detector_names_its_rule_and_fail_setting(tmp_path, keys, monkeypatch):
    from detectors.sentiment import SentimentDetector

    def explode(self, items):
        raise RuntimeError("model weights unavailable")

    monkeypatch.setattr(SentimentDetector, "score", explode)
    guard = Guard(parse(_policy("flag", fail="closed")), log=tmp_path / "log.db", keys=keys)
    result = guard.wrap(lambda prompt: "ok")("q")
    assert result.verdict == "block"
    assert guard.log.get(result.index).data["violations"] == [
        {"rule": "sentiment", "stage": "output", "action": "block", "fail": "closed"}]


def test_log_show_and_the_audit_report_print_why(tmp_path, keys, cli):
    guard = Guard(parse(_policy("block")), log=tmp_path / "log.db", keys=keys)
    guard.wrap(lambda prompt: HOSTILE)("q")
    shown = cli("log", "show", "--log", tmp_path / "log.db")
    assert shown.exit_code == 0, shown.stderr
    assert "sentiment:negative" in shown.stdout and "block" in shown.stdout
    report = cli("audit", "--log", tmp_path / "log.db", "--keys", keys.directory, "--json")
    assert report.exit_code == 0, report.stderr
    assert json.loads(report.stdout)["rules_fired"] == [
        {"rule": "sentiment", "detector": "sentiment", "label": "negative", "stage": "output", "action": "block",
         "count": 1}]
    markdown = cli("audit", "--log", tmp_path / "log.db", "--keys", keys.directory, "--md")
    assert "## Rules that fired" in markdown.stdout and "| sentiment | sentiment | negative |" in markdown.stdout


def test_a_stopped_stream_names_the_check_that_stopped_it(tmp_path, keys):
    from tests.guard.pipeline.test_stream import Scripted

    guard = Guard(parse(_policy("block")), log=tmp_path / "log.db", keys=keys)
    stream = guard.wrap(Scripted("the weather is calm today . " + HOSTILE + " more words" * 20)).stream(
        "q", check_every=2, window=60)
    "".join(stream)
    violations = guard.log.get(stream.result.index).data["violations"]
    assert violations[0]["rule"] == "sentiment" and violations[0]["label"] == "negative"
    assert violations[0]["action"] == "block" and violations[0]["score"] >= 0.5
