"""A third party who received an output has no log and no keys of their own, only the operator's published
certificates. ``guard verify`` must still check the DSSE envelope or C2PA manifest against ``--trust`` and say
that the record lookup was skipped, instead of refusing for want of a log."""

from __future__ import annotations

import json
import shutil

import pytest


@pytest.fixture
def received(tmp_path, keys):
    """What the third party holds: the text, its envelope, the image, and the operator's chain and CA."""
    from PIL import Image
    from skimage import data as skdata

    from guard.pipeline.guard import Guard
    from guard.policy import parse

    guard = Guard(parse("name: plain\n"), log=tmp_path / "operator" / "log.db", keys=keys)
    text = guard.wrap(lambda prompt: f"Answer to {prompt}.")("a question")
    image = guard.wrap(lambda prompt: Image.fromarray(skdata.coffee()).resize((200, 150)))("coffee")
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "answer.txt").write_text(text.text, encoding="utf-8")
    (inbox / "answer.txt.dsse.json").write_text(json.dumps(text.signature), encoding="utf-8")
    (inbox / "coffee.png").write_bytes(image.file_bytes)
    shutil.copy(keys.path("chain.pem"), inbox / "operator-chain.pem")
    shutil.copy(keys.path("ca.pem"), inbox / "operator-ca.pem")
    return inbox


def test_text_checked_against_trust_without_log_or_keys(cli, received):
    result = cli("verify", received / "answer.txt", "--trust", received / "operator-chain.pem", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    report = result.json
    assert report["signature"] == "trusted" and report["record_lookup"] == "skipped"
    assert any("no provenance log" in n for n in report["notes"])


def test_text_changed_after_signing_is_a_finding(cli, received):
    (received / "answer.txt").write_text("A different answer.", encoding="utf-8")
    result = cli("verify", received / "answer.txt", "--trust", received / "operator-chain.pem", "--json")
    assert result.exit_code == 1 and result.json["ok"] is False


def test_text_signed_by_someone_else_is_a_finding(cli, received, tmp_path):
    from guard.signing.keys import KeyStore

    other = KeyStore(tmp_path / "other")
    other.init()
    result = cli("verify", received / "answer.txt", "--trust", other.path("chain.pem"), "--json")
    assert result.exit_code == 1 and result.json["ok"] is False


def test_text_without_any_certificate_says_what_to_pass(cli, received):
    result = cli("verify", received / "answer.txt")
    assert result.exit_code == 2 and "--trust" in result.stderr, result.stderr


def test_image_checked_against_trust_without_log_or_keys(cli, received):
    result = cli("verify", received / "coffee.png", "--trust", received / "operator-ca.pem", "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    report = result.json
    assert report["signature"] == "c2pa trusted" and report["record_lookup"] == "skipped"


def test_a_named_log_that_is_missing_is_still_an_error(cli, received):
    result = cli("verify", received / "answer.txt", "--trust", received / "operator-chain.pem",
                 "--log", received / "nope.db")
    assert result.exit_code == 2 and "nope.db" in result.stderr
