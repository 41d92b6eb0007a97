from __future__ import annotations

import pytest

from detectors.base import Score
from guard.bias.logged import group_table
from guard.pipeline.signals import bias_signals
from guard.provenance.record import ProvenanceRecord


def test_signals_for_one_output_from_real_detectors(detoxify_files):
    from detectors import registry as detection

    text = "Muslim women and MUSLIMS were attacked, the old man said."
    toxicity = detection.create("toxicity", {"checkpoint": str(detoxify_files.checkpoint),
                                             "config_dir": str(detoxify_files.config_dir)})
    scores = toxicity.score([text])[0] + detection.create("sentiment").score([text])[0]
    signals = bias_signals(text, [{**s.to_dict(), "stage": "output"} for s in scores])
    assert signals["v"] == 1
    assert signals["groups"] == [
        {"axis": "religion", "group": "muslim", "terms": ["Muslim", "MUSLIMS"]},
        {"axis": "gender_and_sex", "group": "women", "terms": ["women"]},
        {"axis": "age", "group": "old", "terms": ["old"]},
        {"axis": "gender_and_sex", "group": "men", "terms": ["man"]},
    ]
    by_label = {s.label: s.value for s in scores}
    assert signals["toxicity"] == pytest.approx(by_label["toxicity"])
    assert signals["identity_attack"] == pytest.approx(by_label["identity_attack"])
    assert signals["regard"] == {"negative": pytest.approx(by_label["negative"]), "positive": 0.0,
                                 "label": "negative", "detector": "sentiment"}


def test_prompt_stage_scores_are_not_the_outputs():
    signals = bias_signals("nothing here", [{"detector": "toxicity", "label": "toxicity", "value": 0.9,
                                             "stage": "prompt"}])
    assert signals == {"v": 1, "groups": [], "toxicity": None, "identity_attack": None, "regard": None}


def _record(text: str, toxicity: float, negative: float, label: str, verdict: str = "allow") -> dict:
    scores = [Score("toxicity", "toxicity", toxicity, "m"), Score("toxicity", "identity_attack", toxicity / 2, "m"),
              Score("bias", "negative_regard", negative, "vader", {"label": label})]
    logged = [{**s.to_dict(), "stage": "output"} for s in scores]
    record = ProvenanceRecord(media_type="text/plain; charset=utf-8", generator={"name": "callable"},
                              verdict=verdict, policy={"name": "p", "sha256": "0"}, scores=logged,
                              extra={"bias": bias_signals(text, logged)})
    return record.leaf_dict()


def test_group_table_over_logged_records():
    records = [
        _record("The Muslim family moved in.", 0.8, 0.6, "negative", verdict="flag"),
        _record("Muslims and Jews met.", 0.2, 0.0, "neutral"),
        _record("A Jewish doctor.", 0.6, 0.1, "positive"),
        _record("Rain again.", 0.1, 0.0, "neutral"),
        {"media_type": "image/png", "scores": [], "extra": {}},  # an image: no bias signals
    ]
    table = group_table(records, threshold=0.5)
    assert (table.records, table.without_signals) == (5, 1)
    rows = {(r["axis"], r["group"]): r for r in table.to_dict()["rows"]}
    assert list(rows) == [("religion", "jewish"), ("religion", "muslim"), ("none", "none")]
    muslim = rows[("religion", "muslim")]
    assert muslim["outputs"] == 2 and muslim["not_allowed"] == 1
    assert muslim["toxic_rate"] == 0.5 and muslim["mean_toxicity"] == pytest.approx(0.5)
    assert muslim["mean_identity_attack"] == pytest.approx(0.25)
    assert muslim["negative_regard_rate"] == 0.5 and muslim["mean_negative_regard"] == pytest.approx(0.3)
    low, high = muslim["toxic_rate_ci"]
    assert 0.0 < low < 0.5 < high < 1.0  # Wilson interval for 1 of 2
    assert rows[("religion", "jewish")]["toxic_rate"] == 0.5
    assert rows[("none", "none")]["outputs"] == 1 and rows[("none", "none")]["toxic_rate"] == 0.0
    assert list(table.to_frame()["group"]) == ["jewish", "muslim", "none"]
