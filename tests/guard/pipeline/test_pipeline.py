"""The Guard pipeline end to end with a real scorer (VADER sentiment) and plain Python generators."""

from __future__ import annotations

import asyncio

import pytest

from guard.pipeline.checker import REDACTION
from guard.pipeline.guard import Guard
from guard.policy import parse
from guard.provenance.verify import verify_log
from guard.signing import dsse

HOSTILE = "You are a horrible, stupid, disgusting idiot and I hate you."


def _policy(action: str, *, stage: str = "output", fail: str = "closed", extra: str = "", detector: str = "sentiment"):
    return parse(
        f"name: test-{action}\nprompt_storage: plain\nlog: {{checkpoint_every: 5}}\nstages:\n  {stage}:\n"
        f"    - detector: {detector}\n      thresholds: {{negative: 0.5}}\n      action: {action}\n"
        f"      fail: {fail}\n{extra}"
    )


@pytest.fixture
def make_guard(tmp_path, keys):
    def build(policy, log=None):
        return Guard(policy, log=log or tmp_path / "log.db", keys=keys)

    return build


def test_allowed_output_is_signed_logged_and_proven(make_guard, keys):
    guard = make_guard(_policy("block"))

    @guard.wrap
    def polite(prompt: str) -> str:
        return f"Thank you for asking about {prompt}. It is a lovely topic."

    result = polite("gardens")
    assert result.verdict == "allow" and result.text.startswith("Thank you")
    assert {s["label"] for s in result.scores} == {"negative", "positive"}
    assert all(s["detector"] == "sentiment" and s["stage"] == "output" for s in result.scores)
    result.inclusion_proof.verify()
    statement = dsse.verify(result.signature, keys.content_signer().certificate_chain_pem,
                            trust_anchor_pem=keys.ca_certificate_pem())
    assert statement["predicate"]["record_id"] == result.record_id
    stored = guard.log.get(result.index)
    assert stored.private == {"prompt": "gardens"}
    assert stored.data["signature"]["type"] == "dsse"


def test_blocked_output_is_never_returned_but_is_logged(make_guard):
    guard = make_guard(_policy("block"))
    result = guard.wrap(lambda prompt: HOSTILE)("anything")
    assert result.blocked and result.artifact is None and result.signature is None
    record = guard.log.get(result.index).data
    assert record["verdict"] == "block"
    assert any(s["label"] == "negative" and s["value"] >= 0.5 for s in record["scores"])
    assert record["artifact"]["sha256"]  # the attempt's hash is kept for tracing


def test_prompt_block_skips_generation(make_guard):
    calls = []
    guard = make_guard(_policy("block", stage="prompt"))
    result = guard.wrap(lambda p: calls.append(p) or "fine")(HOSTILE)
    assert result.blocked and calls == []
    assert guard.log.get(result.index).data["actions"] == ["prompt:block"]


def test_regenerate_retries_then_logs_each_attempt(make_guard):
    outputs = iter([HOSTILE, HOSTILE, "What a wonderful, kind and helpful answer."])
    guard = make_guard(_policy("regenerate", extra="      max_attempts: 3\n"))
    result = guard.wrap(lambda p: next(outputs))("question")
    assert result.verdict == "allow" and result.attempts == 3
    records = [r.data for r in guard.log.iter_records()]
    assert [r["attempt"] for r in records] == [1, 2, 3]
    assert [r["verdict"] for r in records] == ["block", "block", "allow"]
    assert records[1]["parent"] == records[0]["record_id"] and records[2]["parent"] == records[1]["record_id"]


def test_regenerate_gives_up_and_blocks(make_guard):
    guard = make_guard(_policy("regenerate", extra="      max_attempts: 2\n"))
    result = guard.wrap(lambda p: HOSTILE)("q")
    assert result.blocked and result.attempts == 2
    assert guard.log.size() == 2


def test_redact_replaces_only_the_offending_sentence(make_guard):
    guard = make_guard(_policy("redact"))
    result = guard.wrap(lambda p: f"The weather is mild today. {HOSTILE} Have a nice day.")("q")
    assert result.verdict == "redact"
    assert result.text == f"The weather is mild today. {REDACTION} Have a nice day."


def test_flag_returns_output_and_marks_it(make_guard):
    guard = make_guard(_policy("flag"))
    result = guard.wrap(lambda p: HOSTILE)("q")
    assert result.verdict == "flag" and result.text == HOSTILE


@pytest.mark.parametrize("fail, verdict", [("closed", "block"), ("open", "flag")])
def test_detector_failure_follows_fail_setting(make_guard, fail, verdict, monkeypatch):
    from detectors.sentiment import SentimentDetector

    def explode(self, items):
        raise RuntimeError("model weights unavailable")

    monkeypatch.setattr(SentimentDetector, "score", explode)
    guard = make_guard(_policy("block", fail=fail))
    result = guard.wrap(lambda p: "ok")("q")
    assert result.verdict == verdict
    assert result.errors == [{"detector": "sentiment", "stage": "output",
                              "error": "RuntimeError: model weights unavailable"}]
    assert (result.artifact is None) == (verdict == "block")


def test_batch_and_async(make_guard, keys):
    guard = make_guard(_policy("block"))
    guarded = guard.wrap(lambda p: HOSTILE if p == "bad" else f"Happy to help with {p}.")
    results = guarded.batch(["a", "bad", "c"])
    assert [r.verdict for r in results] == ["allow", "block", "allow"]
    assert sorted(r.index for r in results) == [0, 1, 2]
    result = asyncio.run(guarded.agenerate("d"))
    assert result.verdict == "allow" and result.index == 3
    assert len(guard.log.checkpoints()) >= 1
    assert verify_log(guard.log, keys.log_public_key()).ok


def test_prompt_storage_modes(make_guard, tmp_path):
    for mode in ("hash", "none"):
        policy = parse(f"name: p\nprompt_storage: {mode}\n")
        guard = make_guard(policy, log=tmp_path / f"{mode}.db")
        result = guard.wrap(lambda p: "ok")("my private prompt")
        stored = guard.log.get(result.index)
        assert stored.private == {} and b"my private prompt" not in stored.body
        if mode == "hash":
            assert stored.data["prompt"]["hmac_sha256"] == guard.log.prompt_digest("my private prompt")
        else:
            assert stored.data["prompt"] == {"storage": "none"}


def test_image_output_from_a_callable(make_guard):
    from PIL import Image

    guard = make_guard(parse("name: img\nsigning: {image: none}\nwatermark: {image: {enabled: false}}\n"))
    result = guard.wrap(lambda p: Image.new("RGB", (32, 24), (10, 200, 30)))("a green square")
    assert result.media_type == "image/png" and result.artifact.size == (32, 24)
    assert guard.log.get(result.index).data["artifact"]["hash_of"] == "rgb-pixels"


def test_unavailable_detector_falls_back_to_the_named_scorer(make_guard, tmp_path, monkeypatch):
    """detoxify weights missing offline: the policy's fallback scores instead and the record names it."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf-cache"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "empty-torch-cache"))
    policy = parse(
        "name: fb\nstages:\n  output:\n    - detector: toxicity\n      options: {model: original}\n"
        "      thresholds: {toxicity: 0.5, negative: 0.5}\n      action: block\n      fail: closed\n"
        "      fallback: {detector: sentiment}\n"
    )
    guard = make_guard(policy)
    result = guard.wrap(lambda p: HOSTILE)("q")
    assert result.blocked  # the fallback scored it, and its label crossed the threshold
    assert {s["detector"] for s in result.scores} == {"sentiment"}
    assert result.errors and result.errors[0]["detector"] == "toxicity"


def test_faces_in_an_output_image_are_disclosed_with_a_visible_label(make_guard):
    from skimage import data
    from PIL import Image

    policy = parse("name: d\nsigning: {image: none}\nwatermark: {image: {enabled: false}}\n"
                   "disclosure: {faces: true, visible_label: true}\n")
    guard = make_guard(policy)
    original = Image.fromarray(data.astronaut())
    result = guard.wrap(lambda p: original.copy())("an astronaut")
    record = guard.log.get(result.index).data
    assert record["extra"]["disclosure"]["faces"] >= 1 and record["extra"]["faces"]
    assert record["extra"]["disclosure"]["visible_label"] == "AI-generated"
    assert result.artifact.tobytes() != original.tobytes()  # the label is drawn on what is handed back
    plain = guard.wrap(lambda p: Image.new("RGB", (256, 256), (90, 140, 200)))("sky")
    assert "disclosure" not in guard.log.get(plain.index).data["extra"]
