"""A stream that ends early is still logged, with what was shown: when the consumer stops reading, and when the
backend raises mid-stream (the error then reaches the consumer too).

The attack (or accident): text shown to a user leaves no record when the stream does not run to its end.
"""

from __future__ import annotations

import gc
import hashlib

import pytest

from generators.base import Generation, Generator, GeneratorInfo
from guard.pipeline.guard import Guard
from guard.policy import parse

WORDS = "thank you for the lovely question , here is a kind and helpful answer for you today .".split()


class Pieces:
    """A stream with the interface of ``TransformersText.stream`` that can fail after some pieces."""

    def __init__(self, fail_after: int | None) -> None:
        self.fail_after, self.text, self.params, self.watermarked = fail_after, "", {"seed": 1}, False
        self._i = 0

    def __iter__(self):
        return self

    def __next__(self) -> str:
        if self.fail_after is not None and self._i == self.fail_after:
            raise ConnectionError("backend connection reset")
        if self._i == len(WORDS):
            raise StopIteration
        piece = WORDS[self._i] + " "
        self._i += 1
        self.text += piece
        return piece

    def close(self) -> None:
        pass


class Streaming(Generator):
    modality = "text"

    def __init__(self, fail_after: int | None = None) -> None:
        self.fail_after = fail_after

    @property
    def info(self) -> GeneratorInfo:
        return GeneratorInfo(name="tests", model_id="tests.streaming")

    def generate(self, prompts, *, hooks=None, **params):
        return [Generation(" ".join(WORDS)) for _ in prompts]

    def stream(self, prompt, hooks=None, **params):
        return Pieces(self.fail_after)


POLICY = "name: s\nstages:\n  output:\n    - detector: sentiment\n      thresholds: {negative: 0.5}\n      action: block\n"


@pytest.fixture
def guard(tmp_path, keys):
    return Guard(parse(POLICY), log=tmp_path / "log.db", keys=keys)


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_consumer_that_stops_reading_leaves_a_record_of_what_it_was_shown(guard):
    stream = guard.wrap(Streaming()).stream("q", check_every=2)
    shown = []
    for piece in stream:
        shown.append(piece)
        if len(shown) == 4:
            break
    stream.close()
    assert guard.log.size() == 1
    record = guard.log.get(0).data
    assert record["artifact"]["sha256"] == _sha("".join(shown))
    assert "stream ended early: the consumer stopped reading" in record["actions"]
    assert stream.result is not None and stream.result.index == 0


def test_abandoned_stream_is_logged_when_it_is_collected(guard):
    shown = []
    for piece in guard.wrap(Streaming()).stream("q", check_every=3):
        shown.append(piece)
        break
    gc.collect()
    assert guard.log.size() == 1
    assert guard.log.get(0).data["artifact"]["sha256"] == _sha("".join(shown))


def test_backend_error_mid_stream_is_logged_then_raised(guard):
    stream = guard.wrap(Streaming(fail_after=5)).stream("q", check_every=2)
    shown = []
    with pytest.raises(ConnectionError, match="connection reset"):
        for piece in stream:
            shown.append(piece)
    assert shown  # some text was released before the failure
    record = guard.log.get(0).data
    assert record["artifact"]["sha256"] == _sha("".join(shown))
    assert record["errors"][-1] == {"stage": "generate", "generator": "tests.streaming",
                                    "error": "ConnectionError: backend connection reset"}
    assert "generate:error" in record["actions"]
