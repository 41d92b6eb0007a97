from __future__ import annotations

import numpy as np
import pytest

from detectors.bias.regard import VaderRegard
from guard.bias.audit import Completion, analyse, collect, run_audit
from guard.bias.generation import load_callable
from guard.bias.prompts import AuditPrompt, load_prompt_set
from guard.policy import BiasPolicy

from tests.fixtures.bias import RIGGED


def _small_case():
    """Two groups, two prompts each, two samples per prompt; toxicity and regard written out by hand."""
    prompts = [AuditPrompt("A1", "x", "a", "t1"), AuditPrompt("A2", "x", "a", "t2"),
               AuditPrompt("B1", "x", "b", "t1"), AuditPrompt("B2", "x", "b", "t2")]
    rows = {0: [(0.9, "negative"), (0.1, "neutral")], 1: [(0.6, "negative"), (0.7, "negative")],
            2: [(0.2, "neutral"), (0.0, "neutral")], 3: [(0.4, "positive"), (0.5, "negative")]}
    completions = [Completion(i, k, f"text {i}.{k}", tox, None, 0.5 if label == "negative" else 0.0, label)
                   for i, samples in rows.items() for k, (tox, label) in enumerate(samples)]
    return prompts, completions


def test_metrics_match_a_hand_computation():
    prompts, completions = _small_case()
    result = analyse(prompts, completions, BiasPolicy(n_boot=2000))
    [axis] = result.axes
    a, b = axis.groups
    value = {g.group: {m: e.value for m, e in g.metrics.items()} for g in (a, b)}
    # a: prompt toxic fractions 1/2 and 2/2; b: 0/2 and 1/2 (0.5 counts: toxic means >= threshold).
    assert value["a"]["toxic_rate"] == pytest.approx(0.75) and value["b"]["toxic_rate"] == pytest.approx(0.25)
    assert value["a"]["mean_toxicity"] == pytest.approx((0.5 + 0.65) / 2)
    assert value["b"]["mean_toxicity"] == pytest.approx((0.1 + 0.45) / 2)
    # RealToxicityPrompts: mean over prompts of the max of K, and share of prompts with any toxic sample.
    assert value["a"]["expected_max_toxicity"] == pytest.approx((0.9 + 0.7) / 2)
    assert value["b"]["expected_max_toxicity"] == pytest.approx((0.2 + 0.5) / 2)
    assert value["a"]["toxicity_probability"] == 1.0 and value["b"]["toxicity_probability"] == 0.5
    assert value["a"]["negative_regard_rate"] == pytest.approx(0.75) and value["b"]["negative_regard_rate"] == 0.25
    parity = axis.parity["toxic_rate"]
    assert parity.overall == pytest.approx(0.5)
    assert parity.difference.value == pytest.approx(0.5) and parity.ratio.value == pytest.approx(1 / 3)
    assert axis.parity["expected_max_toxicity"].ratio.value == pytest.approx(0.35 / 0.8)
    assert a.disparity["toxic_rate"].difference.value == pytest.approx(0.5)
    assert b.disparity["toxic_rate"].difference.value == pytest.approx(-0.5)
    assert a.disparity["toxic_rate"].ratio == pytest.approx(1 / 3)
    # Two prompts a group cannot rule out parity: a resample draws a's 0.5 twice and b's 0.5 twice one time in
    # sixteen, so the interval's lower end is exactly 0 and nothing is flagged, however large the gap looks.
    assert a.disparity["toxic_rate"].difference.low == 0.0
    assert result.passed and a.flagged == ()
    assert (a.prompts, a.completions) == (2, 4)


def test_toxic_rate_difference_is_fairlearns_demographic_parity_difference():
    from fairlearn.metrics import demographic_parity_difference, demographic_parity_ratio

    prompts, completions = _small_case()
    [axis] = analyse(prompts, completions).axes
    y_pred = [int(c.toxicity >= 0.5) for c in completions]
    groups = [prompts[c.prompt].group for c in completions]
    zeros = np.zeros(len(y_pred))
    assert axis.parity["toxic_rate"].difference.value == pytest.approx(
        demographic_parity_difference(zeros, y_pred, sensitive_features=groups))
    assert axis.parity["toxic_rate"].ratio.value == pytest.approx(
        demographic_parity_ratio(zeros, y_pred, sensitive_features=groups))


def test_bootstrap_intervals_agree_with_fairlearns_bootstrap():
    """Our vectorised bootstrap against fairlearn's own MetricFrame(n_boot=...) on the same data."""
    from fairlearn.metrics import MetricFrame, selection_rate

    rng = np.random.default_rng(3)
    n = 160
    prompts = [AuditPrompt(f"p{i}", "x", "a" if i < n else "b") for i in range(2 * n)]
    toxic = np.concatenate([rng.random(n) < 0.3, rng.random(n) < 0.5])
    completions = [Completion(i, 0, "t", float(t)) for i, t in enumerate(toxic)]
    # 80% intervals: their ends are stable with the hundred resamples fairlearn can afford in a test.
    [axis] = analyse(prompts, completions, BiasPolicy(n_boot=4000, confidence=0.8)).axes
    frame = MetricFrame(metrics=selection_rate, y_true=np.zeros(2 * n), y_pred=toxic.astype(int),
                        sensitive_features=[p.group for p in prompts], n_boot=100, ci_quantiles=[0.1, 0.9],
                        random_state=0)
    low, high = frame.by_group_ci
    for g in axis.groups:
        ours = g.metrics["toxic_rate"]
        assert ours.value == pytest.approx(frame.by_group[g.group])
        assert ours.low == pytest.approx(low[g.group], abs=0.03) and ours.high == pytest.approx(high[g.group], abs=0.03)


@pytest.fixture
def religion_and_gender():
    return load_prompt_set("templates", axes=["religion", "gender_and_sex"], per_group=12).prompts


def _audit(name, prompts, vader, **settings):
    fn = load_callable(f"{RIGGED}:{name}")  # a fresh import: the generator's random stream starts over
    return run_audit(prompts, lambda batch: [fn(p) for p in batch], samples=8, toxicity=vader,
                     toxicity_label="negative", regard=VaderRegard(), settings=BiasPolicy(**settings))


def test_a_generator_rigged_against_one_group_is_flagged(religion_and_gender, vader):
    result = _audit("rigged", religion_and_gender, vader)
    assert not result.passed
    assert {(f.axis, f.group, f.metric) for f in result.flags} == {
        ("religion", "muslim", "toxic_rate"), ("religion", "muslim", "negative_regard_rate")}
    flag = result.flags[0]
    assert flag.difference.low > result.settings.max_difference  # clearly beyond the tolerance, not just noise
    assert result.completions == len(religion_and_gender) * 8
    assert [x["prompt"] for x in result.examples["religion/muslim"]][0].count("Muslim") == 1


def test_an_even_generator_is_not_flagged(religion_and_gender, vader):
    result = _audit("even", religion_and_gender, vader)
    assert result.passed
    for axis in result.axes:
        for group in axis.groups:
            d = group.disparity["toxic_rate"].difference
            assert abs(d.value) < result.settings.max_difference
            assert d.low <= d.value <= d.high


def test_outputs_the_guard_blocked_are_counted_not_scored(religion_and_gender, vader):
    result = _audit("blocks_one_group", religion_and_gender, vader, flag_metrics=("blocked_rate",))
    assert "blocked_rate" in result.metrics
    religion = next(a for a in result.axes if a.axis == "religion")
    jewish = next(g for g in religion.groups if g.group == "jewish")
    assert jewish.metrics["blocked_rate"].value == 1.0
    assert np.isnan(jewish.metrics["toxic_rate"].value)
    assert [(f.group, f.metric) for f in result.flags] == [("jewish", "blocked_rate")]


def test_collect_rejects_a_broken_generator_or_scorer(vader):
    prompts = [AuditPrompt("Hello", "x", "a")]
    with pytest.raises(ValueError, match="returned 0 completions for 2 prompts"):
        collect(prompts, lambda batch: [], samples=2, toxicity=vader, toxicity_label="negative")
    with pytest.raises(TypeError, match="returned int"):
        collect(prompts, lambda batch: [1 for _ in batch], samples=1, toxicity=vader, toxicity_label="negative")
    with pytest.raises(ValueError, match="gave no 'toxicity' label"):
        collect(prompts, lambda batch: ["hi" for _ in batch], samples=1, toxicity=vader)
