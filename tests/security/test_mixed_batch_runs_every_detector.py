"""A batch that mixes images and texts: every item is scored by every detector configured for its kind.

The attack: put an image first in a batch, and the text detectors used to be skipped for the whole batch, so a
hostile text later in the batch came back ``allow``.
"""

from __future__ import annotations

import pytest
from PIL import Image

from generators.base import Generation, Generator, GeneratorInfo
from guard.pipeline.guard import Guard
from guard.policy import parse

HOSTILE = "You are a horrible, stupid, disgusting idiot and I hate you."
POLICY = """\
name: mixed
signing: {image: none}
watermark: {image: {enabled: false}}
stages:
  output:
    - detector: sentiment
      thresholds: {negative: 0.5}
      action: block
"""


class ImageThenText(Generator):
    """A backend whose outputs are an image or a text, by prompt (as a multimodal API may return)."""

    modality = "text"

    @property
    def info(self) -> GeneratorInfo:
        return GeneratorInfo(name="tests", model_id="tests.mixed")

    def generate(self, prompts, *, hooks=None, **params):
        return [Generation(Image.new("RGB", (16, 16), (200, 10, 10)) if p == "draw" else HOSTILE) for p in prompts]


@pytest.mark.parametrize("order", [["draw", "insult"], ["insult", "draw"], ["draw", "draw", "insult"]])
def test_text_after_an_image_is_still_checked(tmp_path, keys, order):
    guard = Guard(parse(POLICY), log=tmp_path / "log.db", keys=keys)
    results = guard.run(ImageThenText(), order)
    for prompt, result in zip(order, results):
        if prompt == "insult":
            assert result.verdict == "block" and result.artifact is None
            assert any(s["detector"] == "sentiment" and s["label"] == "negative" for s in result.scores)
        else:
            assert result.verdict == "allow" and result.media_type == "image/png"
            assert result.scores == []  # a text detector is not configured for images
