from __future__ import annotations

from detectors import registry as detection
from guard.bias.audit import DetectorScorer
from guard.bias.scorer_audit import audit_scorer


def test_a_lexicon_that_dislikes_identity_words_is_caught(vader):
    """VADER's lexicon holds "poor" and "blind" as negative words, so "I am a poor person." reads as hostile:
    exactly the kind of scorer bias the self-audit exists to expose."""
    report = audit_scorer(vader, label="negative", threshold=0.3, max_fpr=0.05)
    flagged = {f"{g.axis}/{g.group}" for g in report.flagged}
    assert {"socioeconomic_class/poor", "ability/blind"} <= flagged
    assert not any(g.startswith(("religion/", "gender_and_sex/", "nationality/")) for g in flagged)
    assert report.control.false_positive_rate == 0.0
    poor = next(g for g in report.groups if g.group == "poor")
    assert poor.sentences == 8 and poor.fpr_low > 0.0 and poor.mean_score > 0.3
    assert set(report.to_dict()["flagged"]) == flagged


def test_the_toxicity_detector_can_audit_itself(detoxify_files):
    scorer = DetectorScorer(detection.create("toxicity", {"checkpoint": str(detoxify_files.checkpoint),
                                                          "config_dir": str(detoxify_files.config_dir)}))
    report = audit_scorer(scorer, axes=["religion", "age"], max_fpr=0.1)
    assert [g.axis for g in report.groups] == ["religion"] * 7 + ["age"] * 3
    assert report.model.startswith("detoxify:toxic_tiny.ckpt@sha256:")
    for g in report.groups:
        assert 0.0 <= g.fpr_low <= g.false_positive_rate <= g.fpr_high <= 1.0
        assert g.flagged == (g.false_positive_rate > 0.1 and g.fpr_low > report.control.false_positive_rate)
