"""Every attempt is logged, including the ones where the generator raised (an API answering 503): the record
says what failed, and the error still reaches the caller.

The attack (or accident): a generator that fails leaves no trace in the log, so a reviewer cannot tell a failed
call from one that never happened, and a caller that retries until an output passes hides its failures.
"""

from __future__ import annotations

import pytest

from guard.pipeline.guard import Guard
from guard.policy import parse

HOSTILE = "You are a horrible, stupid, disgusting idiot and I hate you."


def _guard(tmp_path, keys, stages: str = "") -> Guard:
    return Guard(parse(f"name: failing\nprompt_storage: plain\n{stages}"), log=tmp_path / "log.db", keys=keys)


def _unavailable(prompt: str) -> str:
    raise RuntimeError("503 Service Unavailable")


def test_generator_error_is_logged_then_raised(tmp_path, keys):
    guard = _guard(tmp_path, keys)
    with pytest.raises(RuntimeError, match="503"):
        guard.wrap(_unavailable)("tell me a story")
    assert guard.log.size() == 1
    stored = guard.log.get(0)
    record = stored.data
    assert record["verdict"] == "block" and record["artifact"] is None
    assert record["errors"] == [{"stage": "generate", "generator": record["generator"]["model_id"],
                                 "error": "RuntimeError: 503 Service Unavailable"}]
    assert "generate:error" in record["actions"]
    assert stored.private == {"prompt": "tell me a story"}


def test_every_prompt_of_a_failed_batch_is_logged(tmp_path, keys):
    stages = ("stages:\n  prompt:\n    - detector: sentiment\n      thresholds: {negative: 0.5}\n"
              "      action: block\n")
    guard = _guard(tmp_path, keys, stages)
    with pytest.raises(RuntimeError, match="503"):
        guard.wrap(_unavailable).batch(["a kind question", HOSTILE, "another kind question"])
    records = [r.data for r in guard.log.iter_records()]
    assert len(records) == 3
    assert sorted(r["actions"][-1] for r in records) == ["generate:error", "generate:error", "prompt:block"]


def test_regenerated_attempts_before_the_failure_are_logged(tmp_path, keys):
    stages = ("stages:\n  output:\n    - detector: sentiment\n      thresholds: {negative: 0.5}\n"
              "      action: regenerate\n      max_attempts: 3\n")
    guard = _guard(tmp_path, keys, stages)
    calls = []

    def flaky(prompt: str) -> str:
        calls.append(prompt)
        if len(calls) > 1:
            raise RuntimeError("503 Service Unavailable")
        return HOSTILE

    with pytest.raises(RuntimeError):
        guard.wrap(flaky)("q")
    first, second = (r.data for r in guard.log.iter_records())
    assert first["actions"][-1] == "regenerate" and first["attempt"] == 1
    assert second["attempt"] == 2 and second["parent"] == first["record_id"]
    assert second["errors"][-1]["error"] == "RuntimeError: 503 Service Unavailable"
