"""Slip: a write command whose output cannot be written (``--out`` names a folder, or a file in a folder that does
not exist). It must fail with exit 2 before anything changes: no checkpoint appended, no report half-written."""

from __future__ import annotations

import pytest

from tests.guard.provenance.helpers import fill


@pytest.fixture
def small_log(tmp_path):
    from guard.provenance.log import ProvenanceLog

    log = ProvenanceLog(tmp_path / "provenance.db")
    fill(log, 3)
    yield log
    log.close()


def _checkpoints(log) -> int:
    return len(log.checkpoints())


def _outs(tmp_path):
    folder = tmp_path / "a-folder"
    folder.mkdir()
    return {"folder": folder, "missing parent": tmp_path / "missing" / "out.file"}


COMMANDS = {
    "log checkpoint": lambda out, keys: ["log", "checkpoint", "--out", out, "--keys", keys],
    "evidence": lambda out, keys: ["evidence", "--index", "1", "--out", out, "--keys", keys],
    "log export": lambda out, keys: ["log", "export", "--out", out],
    "audit": lambda out, keys: ["audit", "--out", out, "--keys", keys],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("where", ["folder", "missing parent"])
def test_unwritable_out_fails_before_the_log_changes(cli, keys, small_log, tmp_path, command, where):
    out = _outs(tmp_path)[where]
    result = cli(*COMMANDS[command](out, keys.directory), "--log", small_log.url)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert str(out.name) in result.stderr and "Traceback" not in result.stderr
    assert _checkpoints(small_log) == 0
    assert not (tmp_path / "missing").exists()
