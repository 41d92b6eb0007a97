"""A policy whose detoxify checkpoint is missing offline scores with its ``toxicity-offline`` fallback instead of
failing closed. Tiny packages from ``tests/fixtures/offline_toxicity.py``."""

from __future__ import annotations

import pytest

pytest.importorskip("h5py")
pytest.importorskip("joblib")


def test_guard_pipeline_scores_with_the_fallback_offline(offline_policy, keys, tmp_path):
    from generators.callable import CallableGenerator
    from guard.pipeline.guard import Guard

    guard = Guard(str(offline_policy), log=tmp_path / "log.db", keys=keys)
    kind, toxic = guard.run(CallableGenerator(lambda p: {"kind": "have a nice day", "toxic": "you stupid idiot"}[p]),
                            ["kind", "toxic"])
    assert kind.verdict == "allow" and toxic.verdict == "block"
    assert {s["detector"] for s in kind.scores} == {"toxicity-offline"}
    assert not kind.errors or all(e["detector"] == "toxicity" for e in kind.errors)
