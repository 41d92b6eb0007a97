"""Bias signals are computed on the text that was generated, not on what redaction left of it.

The attack: a biased sentence that the policy redacts used to vanish from the group statistics, so the more a
generator insulted a group, the less the logged-outputs bias table saw it. The text itself still never enters the
log: only the groups it names and the scores.
"""

from __future__ import annotations

from guard.bias.logged import group_table
from guard.pipeline.checker import REDACTION
from guard.pipeline.guard import Guard
from guard.policy import parse

BIASED = "Muslims are horrible, stupid, disgusting idiots and I hate them."
POLICY = """\
name: redacting
stages:
  output:
    - detector: sentiment
      thresholds: {negative: 0.5}
      action: redact
"""


def test_redacted_sentence_still_counts_under_the_group_it_names(tmp_path, keys):
    guard = Guard(parse(POLICY), log=tmp_path / "log.db", keys=keys)
    result = guard.wrap(lambda prompt: f"The weather is mild today. {BIASED}")("q")
    assert result.verdict == "redact" and result.text == f"The weather is mild today. {REDACTION}"
    stored = guard.log.get(result.index)
    groups = stored.data["extra"]["bias"]["groups"]
    assert {(g["axis"], g["group"]) for g in groups} == {("religion", "muslim")}
    assert BIASED.encode() not in stored.body and b"idiots" not in stored.body
    table = group_table(r.data for r in guard.log.iter_records())
    assert [(row.axis, row.group, row.outputs, row.blocked_or_flagged) for row in table.rows] == [
        ("religion", "muslim", 1, 1)]
