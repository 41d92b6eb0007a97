"""Streaming behind the policy: nothing unchecked is shown, a failing check stops generation, and the final text is
signed and logged like any other output."""

from __future__ import annotations

from typing import Any

import pytest

from generators.base import Generation, Generator, GeneratorInfo
from guard.pipeline.guard import Guard
from guard.policy import parse

HOSTILE = "you are a horrible , stupid , disgusting idiot and I hate you ."


class WordStream:
    """A stream over fixed words with the interface of ``TransformersText.stream``."""

    def __init__(self, words: list[str]) -> None:
        self._words = iter(words)
        self.text = ""
        self.params = {"seed": 0}
        self.watermarked = False
        self.closed_early = False
        self._done = False

    def __iter__(self):
        return self

    def __next__(self) -> str:
        try:
            piece = next(self._words) + " "
        except StopIteration:
            self._done = True
            raise
        self.text += piece
        return piece

    def close(self) -> None:
        self.closed_early = not self._done


class Scripted(Generator):
    """A deterministic text backend that reads its output from a script: it streams word by word."""

    modality = "text"

    def __init__(self, script: str) -> None:
        self.script = script
        self.last: WordStream | None = None

    @property
    def info(self) -> GeneratorInfo:
        return GeneratorInfo(name="scripted", model_id="tests.scripted")

    def generate(self, prompts: list[str], *, hooks: dict[str, Any] | None = None, **params: Any):
        return [Generation(content=self.script, params=params) for _ in prompts]

    def stream(self, prompt: str, hooks: dict[str, Any] | None = None, **params: Any) -> WordStream:
        self.last = WordStream(self.script.split())
        return self.last


POLICY = "name: s\nstages:\n  output:\n    - detector: sentiment\n      thresholds: {negative: 0.5}\n      action: block\n"


@pytest.fixture
def guard(tmp_path, keys):
    return Guard(parse(POLICY), log=tmp_path / "log.db", keys=keys)


def test_clean_stream_is_released_signed_and_logged(guard):
    text = "thank you for the lovely question , here is a kind and helpful answer for you ."
    stream = guard.wrap(Scripted(text)).stream("q", check_every=3)
    pieces = list(stream)
    assert "".join(pieces).split() == text.split()
    result = stream.result
    assert result.verdict == "allow" and result.text == "".join(pieces) and result.signature
    assert guard.log.get(result.index).data["verdict"] == "allow"


def test_failing_check_stops_the_stream_before_the_text_is_shown(guard):
    backend = Scripted("the weather is calm today and the river is quiet . " + HOSTILE + " more words " * 20)
    stream = guard.wrap(backend).stream("q", check_every=2, window=60)
    shown = "".join(stream)
    assert "idiot" not in shown and "hate" not in shown
    assert stream.stopped and backend.last.closed_early
    result = stream.result
    assert result.blocked and result.artifact is None
    record = guard.log.get(result.index).data
    assert record["verdict"] == "block" and "stream stopped by an output check" in record["actions"]


def test_transformers_stream_is_watermarked(tmp_path, keys):
    from generators.transformers_text import TransformersText
    from guard.demo.tiny_models import build_tiny_gpt2

    model_dir = build_tiny_gpt2(tmp_path / "gpt2")
    guard = Guard(parse("name: w\nwatermark: {text: {enabled: true}}\n"), log=tmp_path / "log.db", keys=keys)
    guarded = guard.wrap(TransformersText(model_dir, device="cpu", max_new_tokens=12, do_sample=True))
    stream = guarded.stream("hello", seed=3)
    text = "".join(stream)
    result = stream.result
    assert result.text == text and result.watermark["scheme"] == "kgw-transformers"
    record = guard.log.get(result.index).data
    assert record["params"]["seed"] == 3 and record["generator"]["weights_sha256"]
