"""Attack: a policy file built to exhaust memory or time: a 300-byte "billion laughs" of nested YAML aliases, a
policy far larger than any real one, a document nested a million deep. Each is a policy error at once."""

from __future__ import annotations

import time

import pytest

from core.errors import PolicyError
from guard import policy as policies

LAUGHS = "\n".join(
    ["name: lol", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    + [f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},"
       f"*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)},*{chr(97 + i)}]" for i in range(8)]
) + "\n"


def _refused(tmp_path, text: str, words: str) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text, encoding="utf-8")
    start = time.perf_counter()
    with pytest.raises(PolicyError, match=words):
        policies.load(path)
    assert time.perf_counter() - start < 20  # generous: the machine may be loaded; unbounded work takes minutes


def test_billion_laughs(tmp_path):
    assert len(LAUGHS) < 600
    _refused(tmp_path, LAUGHS, "alias")


def test_cli_billion_laughs(tmp_path, cli):
    path = tmp_path / "hostile.yaml"
    path.write_text(LAUGHS, encoding="utf-8")
    result = cli("policy", "check", path)
    assert result.exit_code == 2 and "alias" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_few_anchors_are_fine(tmp_path):
    path = tmp_path / "anchors.yaml"
    path.write_text("name: anchors\nstages:\n  prompt:\n    - &rule\n      detector: sentiment\n"
                    "      thresholds: {negative: 0.9}\n  output:\n    - *rule\n", encoding="utf-8")
    policy = policies.load(path)
    assert policy.stages.prompt == policy.stages.output


def test_policy_over_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(policies, "MAX_POLICY_BYTES", 2000)
    _refused(tmp_path, "name: big\ndescription: " + "x" * 3000 + "\n", "larger than")


def test_deeply_nested_document(tmp_path):
    _refused(tmp_path, "name: deep\ndescription: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested")
