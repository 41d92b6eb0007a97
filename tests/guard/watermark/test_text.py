"""The text watermark: embedded while sampling, found with the right key only, in the continuation only."""

from __future__ import annotations

import pytest

from guard.policy import TextWatermark
from guard.watermark.text import (TextWatermarkDetector, detect_text_watermark, generation_config,
                                  hashing_key)

SECRET = bytes(range(32))
PROMPTS = ["The city council met", "A language model predicts", "She said that the weather"]


def _detector(generator, settings=TextWatermark(), secret=SECRET):
    return TextWatermarkDetector(tokenizer=generator.tokenizer, model_config=generator.config, settings=settings,
                                 secret=secret)


@pytest.fixture(scope="module")
def marked(generator):
    hooks = {"text_watermark": generation_config(TextWatermark(), SECRET)}
    return generator.generate(PROMPTS, hooks=hooks, seed=7, max_new_tokens=60, min_new_tokens=60)


@pytest.fixture(scope="module")
def plain(generator):
    return generator.generate(PROMPTS, seed=7, max_new_tokens=60, min_new_tokens=60)


def test_hashing_key_is_keyed_and_fits_int64():
    key = hashing_key(SECRET, "default")
    assert key == hashing_key(SECRET, "default")
    assert key != hashing_key(SECRET, "other") != hashing_key(b"\x01" * 32, "default")
    assert 0 < key < 2**63
    assert key != 15485863  # never transformers' public default key


def test_short_secret_is_refused():
    with pytest.raises(ValueError, match="too short"):
        hashing_key(b"abc", "default")


def test_watermarked_generation_is_detected(generator, marked):
    detector = _detector(generator)
    for generation in marked:
        assert generation.watermarked
        result = detector.detect(generation.content)
        assert result.detected, result
        assert result.p_value < 1e-4
        assert result.num_tokens_scored >= 30


def test_unwatermarked_generation_is_not_detected(generator, plain):
    detector = _detector(generator)
    for generation in plain:
        assert not generation.watermarked
        result = detector.detect(generation.content)
        assert not result.detected and result.z_score < 4.0


def test_wrong_secret_or_key_id_does_not_detect(generator, marked):
    wrong_secret = _detector(generator, secret=b"\xff" * 32)
    wrong_key_id = _detector(generator, settings=TextWatermark(key_id="another"))
    for generation in marked:
        assert not wrong_secret.detect(generation.content).detected
        assert not wrong_key_id.detect(generation.content).detected


def test_hooks_hold_no_secret_in_recorded_params(marked):
    key = hashing_key(SECRET, "default")
    for generation in marked:
        assert key not in generation.params.values()
        assert "hashing_key" not in str(generation.params)


def test_detection_from_ids_matches_text(generator, marked):
    detector = _detector(generator)
    text = marked[0].content
    assert detector.detect(detector.token_ids(text)) == detector.detect(text)


def test_too_short_text_scores_nothing(generator):
    result = detect_text_watermark("a", generator.tokenizer, generator.config, TextWatermark(), SECRET)
    assert (result.num_tokens_scored, result.z_score, result.p_value, result.detected) == (0, 0.0, 1.0, False)


def test_selfhash_scheme_is_detected_too(generator):
    settings = TextWatermark(seeding_scheme="selfhash", bias=4.0)
    out = generator.generate(PROMPTS[:1], hooks={"text_watermark": generation_config(settings, SECRET)}, seed=3,
                             max_new_tokens=50, min_new_tokens=50)
    assert _detector(generator, settings=settings).detect(out[0].content).detected
    assert not _detector(generator, settings=TextWatermark()).detect(out[0].content).detected


def test_cpu_greenlists_are_transformers_greenlists(generator):
    """Drawing green lists on the CPU changes nothing on a CPU: same tokens as transformers' own config."""
    from transformers import WatermarkingConfig

    ours = generation_config(TextWatermark(), SECRET)
    theirs = WatermarkingConfig(**ours.to_dict())
    a = generator.generate(PROMPTS[:1], hooks={"text_watermark": ours}, seed=5, max_new_tokens=20)
    b = generator.generate(PROMPTS[:1], hooks={"text_watermark": theirs}, seed=5, max_new_tokens=20)
    assert a[0].content == b[0].content
