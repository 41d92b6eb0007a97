"""The transformers text generator: records what made each output, batches, streams, uses chat templates."""

from __future__ import annotations

import hashlib

import pytest

from generators.transformers_text import TransformersText


def test_info_pins_local_model_by_weights_hash(generator, gpt2_dir):
    info = generator.info
    assert info.name == "transformers" and info.model_id == str(gpt2_dir)
    assert info.revision is None  # a local folder has no hub commit
    assert info.weights_sha256 == hashlib.sha256((gpt2_dir / "model.safetensors").read_bytes()).hexdigest()


def test_params_and_seed_are_recorded_and_reproduce(generator):
    a = generator.generate(["Hello there"], seed=11, temperature=0.8, top_p=0.9, max_new_tokens=12)[0]
    b = generator.generate(["Hello there"], seed=11, temperature=0.8, top_p=0.9, max_new_tokens=12)[0]
    assert a.content == b.content
    assert a.params["seed"] == 11 and a.params["temperature"] == 0.8 and a.params["top_p"] == 0.9
    assert a.params["max_new_tokens"] == 12 and a.params["do_sample"] is True
    assert not a.watermarked


def test_seed_is_drawn_and_recorded_when_not_given(generator):
    first = generator.generate(["Hello there"], max_new_tokens=8)[0]
    again = generator.generate(["Hello there"], seed=first.params["seed"], max_new_tokens=8)[0]
    assert isinstance(first.params["seed"], int)
    assert first.content == again.content


def test_batched_generation_left_pads_and_matches_one_at_a_time(generator):
    prompts = ["Hi", "The city council met on Tuesday to discuss", "A language model"]
    batched = generator.generate(prompts, do_sample=False, max_new_tokens=10, batch_size=2)
    single = [generator.generate([p], do_sample=False, max_new_tokens=10)[0] for p in prompts]
    assert [g.content for g in batched] == [g.content for g in single]
    assert [g.params["batch"] for g in batched] == [{"size": 2, "index": 0}, {"size": 2, "index": 0},
                                                    {"size": 1, "index": 1}]
    assert generator.tokenizer.padding_side == "left"


def test_chat_template_is_used_when_the_tokenizer_has_one(gpt2_chat_dir, gpt2_dir):
    chat = TransformersText(gpt2_chat_dir, max_new_tokens=4)
    assert chat.generate(["Hi"], seed=1)[0].params["chat_template"] is True
    rendered = chat._prompt_text("Hi", True)
    assert rendered == "<|user|>Hi\n<|assistant|>"
    assert TransformersText(gpt2_chat_dir, chat_template=False, max_new_tokens=4).generate(
        ["Hi"], seed=1)[0].params["chat_template"] is False
    with pytest.raises(ValueError, match="no chat template"):
        TransformersText(gpt2_dir, chat_template=True).generate(["Hi"])


def test_stream_yields_the_same_text_as_generate(generator):
    whole = generator.generate(["Once upon a time"], seed=4, max_new_tokens=15)[0]
    stream = generator.stream("Once upon a time", seed=4, max_new_tokens=15)
    pieces = list(stream)
    assert len(pieces) > 1
    assert "".join(pieces) == stream.text == whole.content
    assert stream.params["seed"] == 4 and stream.watermarked is False


def test_closing_a_stream_stops_generation(generator):
    with generator.stream("Once upon a time", seed=4, max_new_tokens=400) as stream:
        first = next(stream)
    assert stream.text == first
    assert not stream._thread.is_alive()


def test_stream_reports_generation_errors(generator):
    stream = generator.stream("Hi", seed=1, max_new_tokens=5, no_such_parameter=3)
    with pytest.raises(ValueError, match="no_such_parameter"):
        list(stream)
