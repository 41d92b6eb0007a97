"""``guard detect-text``: exit 0 when the watermark is found, 1 when not, 2 on bad input."""

from __future__ import annotations

import pytest

from guard.policy import load
from guard.watermark.text import generation_config


@pytest.fixture(scope="module")
def texts(generator, tmp_path_factory):
    from guard.signing.keys import KeyStore

    folder = tmp_path_factory.mktemp("detect-text")
    keys = KeyStore(folder / "keys")
    keys.init()
    keys.path("watermark.key").write_bytes(bytes(range(32)))  # a fixed secret keeps the test deterministic
    hooks = {"text_watermark": generation_config(load("default").watermark.text, keys.watermark_secret())}
    marked = generator.generate(["The city council met"], hooks=hooks, seed=2, max_new_tokens=100,
                                min_new_tokens=100)[0]
    plain = generator.generate(["The city council met"], seed=2, max_new_tokens=100, min_new_tokens=100)[0]
    (folder / "marked.txt").write_text(marked.content, encoding="utf-8")
    (folder / "plain.txt").write_text(plain.content, encoding="utf-8")
    return folder


def test_watermarked_file_is_found(cli, texts, gpt2_dir):
    result = cli("detect-text", texts / "marked.txt", "--model", gpt2_dir, "--keys", texts / "keys", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json
    assert data["detected"] is True and data["z_score"] > 4 and data["scheme"] == "kgw-transformers"
    human = cli("detect-text", texts / "marked.txt", "--model", gpt2_dir, "--keys", texts / "keys")
    assert "watermark found" in human.stdout


def test_plain_file_is_a_finding(cli, texts, gpt2_dir):
    result = cli("detect-text", texts / "plain.txt", "--model", gpt2_dir, "--keys", texts / "keys", "--json")
    assert result.exit_code == 1
    assert result.json["detected"] is False


def test_bad_input_exits_2(cli, texts, gpt2_dir, tmp_path):
    missing = cli("detect-text", tmp_path / "nope.txt", "--model", gpt2_dir, "--keys", texts / "keys")
    assert missing.exit_code == 2 and "no such file" in missing.stderr
    bad_model = cli("detect-text", texts / "marked.txt", "--model", tmp_path / "no-model", "--keys", texts / "keys")
    assert bad_model.exit_code == 2 and "cannot load the model's tokenizer and config" in bad_model.stderr
