"""GGUF files load into ``TransformersText`` (recorded by the file's hash) and convert once into a plain folder."""

from __future__ import annotations

import hashlib
import json

import pytest

pytest.importorskip("gguf")
pytest.importorskip("accelerate")

from generators.transformers_text import TransformersText, convert_gguf  # noqa: E402


@pytest.fixture(scope="module")
def gguf_path(tmp_path_factory):
    from guard.demo.tiny_models import build_tiny_gguf

    return build_tiny_gguf(tmp_path_factory.mktemp("gguf"))


def test_a_gguf_file_generates_and_is_recorded_by_its_hash(gguf_path):
    gen = TransformersText(gguf_path, device="cpu", chat_template=False)
    out = gen.generate(["The city council met"], do_sample=False, max_new_tokens=6)[0]
    assert out.content and out.params["chat_template"] is False
    assert gen.info.model_id == str(gguf_path)
    assert gen.info.weights_sha256 == hashlib.sha256(gguf_path.read_bytes()).hexdigest()


def test_conversion_gives_the_same_model_in_a_plain_folder(gguf_path, tmp_path):
    folder = convert_gguf(gguf_path, tmp_path / "converted")
    source = json.loads((folder / "gguf_source.json").read_text())
    assert source == {"file": gguf_path.name, "sha256": hashlib.sha256(gguf_path.read_bytes()).hexdigest(),
                      "dequantized_to": "float32"}
    assert [p.name for p in tmp_path.iterdir()] == ["converted"]  # nothing partial left beside it
    prompts = ["The city council met", "A language model predicts"]
    direct = TransformersText(gguf_path, device="cpu", chat_template=False)
    plain = TransformersText(folder, device="cpu", chat_template=False)
    same = [g.content for g in direct.generate(prompts, do_sample=False, max_new_tokens=8)]
    assert same == [g.content for g in plain.generate(prompts, do_sample=False, max_new_tokens=8)]
    assert plain.info.weights_sha256 == hashlib.sha256((folder / "model.safetensors").read_bytes()).hexdigest()


def test_a_second_conversion_into_a_finished_folder_keeps_it(gguf_path, tmp_path):
    # what the slower of two processes converting the same file at once meets; before: OSError, folder not empty
    folder = convert_gguf(gguf_path, tmp_path / "converted")
    stamp = (folder / "model.safetensors").stat().st_mtime_ns
    assert convert_gguf(gguf_path, tmp_path / "converted") == folder
    assert (folder / "model.safetensors").stat().st_mtime_ns == stamp
    assert [p.name for p in tmp_path.iterdir()] == ["converted"]


def test_a_missing_gguf_file_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="no-such.gguf: no such GGUF file"):
        TransformersText(tmp_path / "no-such.gguf")
