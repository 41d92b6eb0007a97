"""A policy can refuse to edit an input image that scores as a deepfake; the refusal is logged with its score."""

from __future__ import annotations

from pathlib import Path

from PIL import Image

from guard.pipeline.guard import Guard
from guard.policy import parse


def _policy(model: Path, threshold: float) -> str:
    return (
        "name: edit\nsigning: {image: none}\nwatermark: {image: {enabled: false}}\nstages:\n  prompt:\n"
        f"    - detector: deepfake\n      options: {{backend: hf, model: '{model}', device: cpu, dtype: fp32, "
        f"workers: 0, faces: false}}\n      thresholds: {{fake: {threshold}}}\n      action: block\n"
    )


def test_input_image_scored_as_fake_is_not_edited(tmp_path, keys, tiny_hf_classifier, photos):
    calls = []

    def edit(prompt: str) -> Image.Image:
        calls.append(prompt)
        return Image.new("RGB", (64, 64), (200, 30, 30))

    upload = Image.fromarray(photos["astronaut"]).resize((128, 128))
    strict = Guard(parse(_policy(tiny_hf_classifier, 0.0)), log=tmp_path / "a.db", keys=keys)
    refused = strict.wrap(edit)("make the sky red", image=upload)
    assert refused.blocked and calls == []
    record = strict.log.get(refused.index).data
    assert [s["stage"] for s in record["scores"]] == ["input"] and record["scores"][0]["detector"] == "deepfake"
    assert record["extra"]["input_image"]["hash_of"] == "rgb-pixels"

    lenient = Guard(parse(_policy(tiny_hf_classifier, 1.0)), log=tmp_path / "b.db", keys=keys)
    edited = lenient.wrap(edit)("make the sky red", image=upload)
    assert edited.verdict == "allow" and calls == ["make the sky red"]
