"""Slip: ``guard verify`` told to use an envelope that is a folder or does not exist (it answered "verified",
exit 0, from the log alone), or a trust anchor that is not PEM. Each is one line on stderr and exit 2."""

from __future__ import annotations

import json

import pytest


@pytest.fixture
def answer(tmp_path, keys):
    from guard.pipeline.guard import Guard
    from guard.policy import parse

    guard = Guard(parse("name: plain\n"), log=tmp_path / "log.db", keys=keys)
    result = guard.wrap(lambda prompt: f"Answer to {prompt}.")("a question")
    path = tmp_path / "answer.txt"
    path.write_text(result.text, encoding="utf-8")
    (tmp_path / "answer.txt.dsse.json").write_text(json.dumps(result.signature), encoding="utf-8")
    return path


def _verify(cli, answer, keys, *args):
    result = cli("verify", answer, "--log", answer.parent / "log.db", "--keys", keys.directory, *args)
    assert "Traceback" not in result.stderr
    return result


def _one_line_exit_2(result, words: str):
    assert result.exit_code == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr


def test_genuine_answer_verifies(cli, answer, keys):
    assert _verify(cli, answer, keys, "--trust", keys.path("ca.pem")).exit_code == 0


def test_envelope_that_is_a_folder(cli, answer, keys, tmp_path):
    (tmp_path / "envdir").mkdir()
    _one_line_exit_2(_verify(cli, answer, keys, "--envelope", tmp_path / "envdir"), "envdir")


def test_envelope_that_does_not_exist(cli, answer, keys, tmp_path):
    _one_line_exit_2(_verify(cli, answer, keys, "--envelope", tmp_path / "missing.json"), "missing.json")


def test_envelope_that_is_not_an_object(cli, answer, keys, tmp_path):
    bad = tmp_path / "list.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    _one_line_exit_2(_verify(cli, answer, keys, "--envelope", bad), "list.json")


def test_trust_anchor_that_is_not_pem(cli, answer, keys, tmp_path):
    bad = tmp_path / "not.pem"
    bad.write_text("not a certificate\n", encoding="utf-8")
    _one_line_exit_2(_verify(cli, answer, keys, "--trust", bad), "not.pem")
