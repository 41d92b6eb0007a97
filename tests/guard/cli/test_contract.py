"""The CLI's contract: --json, exit codes 0 / 1 / 2, one-line errors, and bad input never changes the log."""

from __future__ import annotations

import json

import pytest

from guard.pipeline.guard import Guard
from guard.policy import parse


@pytest.fixture
def logged(tmp_path, keys):
    """A log with three signed text outputs and a saved envelope for the first."""
    guard = Guard(parse("name: cli\nprompt_storage: plain\nlog: {checkpoint_every: 2}\n"), log=tmp_path / "log.db",
                  keys=keys)
    results = guard.wrap(lambda p: f"Answer about {p}.").batch(["cats", "dogs", "owls"])
    out = tmp_path / "answer.txt"
    out.write_text(results[0].text)
    (tmp_path / "answer.txt.dsse.json").write_text(json.dumps(results[0].signature))
    return guard.log, out, results


def _args(log, keys):
    return ["--log", log.url, "--keys", str(keys.directory)]


def test_keys_init_writes_private_keys_0600(tmp_path, cli):
    result = cli("keys", "init", "--keys", tmp_path / "k", "--json")
    assert result.exit_code == 0, result.stderr
    files = result.json["files"]
    assert len(files) == 8
    for name in ("log.key", "ca.key", "signer.key", "watermark.key"):
        assert (tmp_path / "k" / name).stat().st_mode & 0o777 == 0o600
    again = cli("keys", "init", "--keys", tmp_path / "k")
    assert again.exit_code == 2 and "already exist" in again.stderr


def test_verify_text_and_find_its_record(logged, keys, cli):
    log, out, results = logged
    result = cli("verify", out, *_args(log, keys), "--trust", keys.path("ca.pem"), "--json")
    assert result.exit_code == 0, result.stdout + result.stderr
    assert result.json["signature"] == "trusted" and result.json["index"] == results[0].index


def test_verify_edited_text_is_a_finding(logged, keys, cli):
    log, out, _ = logged
    out.write_text(out.read_text() + " (edited)")
    result = cli("verify", out, *_args(log, keys), "--json")
    assert result.exit_code == 1
    assert "subject digest" in result.json["problems"][0]


def test_verify_text_without_envelope_finds_record_by_hash(logged, keys, cli, tmp_path):
    log, _, results = logged
    bare = tmp_path / "bare.txt"
    bare.write_text(results[2].text)
    result = cli("verify", bare, *_args(log, keys), "--json")
    assert result.exit_code == 0 and result.json["index"] == results[2].index


def test_log_show_proof_export(logged, keys, cli, tmp_path):
    log, _, _ = logged
    shown = cli("log", "show", "--log", log.url, "--json")
    assert shown.exit_code == 0 and shown.json["size"] == 3
    one = cli("log", "show", "--log", log.url, "--index", "1", "--json")
    assert one.json["record"]["index"] == 1 and one.json["private"] == {"prompt": "dogs"}
    proof = cli("log", "proof", "--log", log.url, "--index", "2", "--json")
    assert proof.exit_code == 0 and proof.json["tree_size"] == 3
    exported = cli("log", "export", "--log", log.url, "--format", "jsonl")
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [r["index"] for r in lines] == [0, 1, 2] and all(len(r["leaf_hash"]) == 64 for r in lines)


def test_witness_checkpoint_then_consistency(logged, keys, cli, tmp_path):
    log, _, _ = logged
    saved = tmp_path / "seen.note"
    assert cli("log", "checkpoint", *_args(log, keys), "--out", saved).exit_code == 0
    Guard(parse("name: more\n"), log=log, keys=keys).wrap(lambda p: "more").batch(["a", "b", "c", "d"])
    result = cli("log", "consistency", "--from", saved, *_args(log, keys), "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json["from_size"] == 3 and result.json["to_size"] == 7


def test_consistency_with_a_forked_checkpoint_fails(logged, keys, cli, tmp_path):
    from guard.provenance import merkle
    from guard.provenance.checkpoint import Checkpoint

    log, _, _ = logged
    fork = Checkpoint(log.origin, 2, merkle.leaf_hash(b"fork")).sign(log.origin, keys.log_private_key())
    saved = tmp_path / "fork.note"
    saved.write_text(fork.note)
    result = cli("log", "consistency", "--from", saved, *_args(log, keys))
    assert result.exit_code == 1 and "consistency proof does not lead" in result.stderr


def test_erase_cli_keeps_verification(logged, keys, cli):
    log, _, _ = logged
    result = cli("log", "erase", "--index", "1", "--field", "prompt", "--log", log.url, "--json")
    assert result.exit_code == 0 and result.json["erased"] is True
    assert cli("log", "verify", *_args(log, keys)).exit_code == 0
    assert log.get(1).private == {}


def _db_bytes(log):
    from pathlib import Path

    path = Path(log.url.removeprefix("sqlite:///"))
    return path.read_bytes()


@pytest.mark.parametrize("case", ["missing_policy", "malformed_yaml", "unknown_detector", "non_utf8_text",
                                  "missing_key", "missing_file", "missing_log"])
def test_bad_input_is_one_line_exit_2_and_leaves_log_unchanged(case, logged, keys, cli, tmp_path, monkeypatch):
    log, out, _ = logged
    size_before, root_before = log.size(), log.root()
    if case == "missing_policy":
        args = ["policy", "check", tmp_path / "nope.yaml"]
    elif case == "malformed_yaml":
        bad = tmp_path / "bad.yaml"
        bad.write_text("name: x\nstages: [\n")
        args = ["policy", "check", bad]
    elif case == "unknown_detector":
        bad = tmp_path / "bad.yaml"
        bad.write_text("name: x\nstages:\n  output:\n    - detector: nosuchthing\n")
        args = ["policy", "check", bad]
    elif case == "non_utf8_text":
        binary = tmp_path / "latin1.txt"
        binary.write_bytes("caf\xe9".encode("latin-1"))
        args = ["verify", binary, *_args(log, keys)]
    elif case == "missing_key":
        args = ["log", "verify", "--log", log.url, "--keys", tmp_path / "no-keys"]
    elif case == "missing_file":
        args = ["verify", tmp_path / "nothing.txt", *_args(log, keys)]
    else:
        args = ["log", "verify", "--log", tmp_path / "no-such.db", "--keys", keys.directory]
    result = cli(*args)
    assert result.exit_code == 2, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert (log.size(), log.root()) == (size_before, root_before)


def test_erase_of_a_field_the_record_does_not_have_is_bad_input(logged, cli):
    log, _, _ = logged
    result = cli("log", "erase", "--index", "1", "--field", "promt", "--log", log.url)
    assert result.exit_code == 2
    assert result.stderr.strip() == "error: record 1 has no private field 'promt' (it has: prompt)"
    again = cli("log", "erase", "--index", "1", "--field", "prompt", "--log", log.url)
    assert again.exit_code == 0 and cli("log", "erase", "--index", "1", "--field", "prompt", "--log", log.url,
                                        "--json").json["erased"] is False
