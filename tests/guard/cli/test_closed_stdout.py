"""A reader that closes stdout early (``guard log export | head -1``) ends the output quietly: no traceback, no
error line, exit 0; and a report cut short keeps the command's own exit code (1 for a finding).

Real processes and real pipes: the runner's captured output cannot be closed."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.fixtures.shared import REPO
from tests.guard.provenance.helpers import fill


@pytest.fixture(scope="module")
def home(answered_home):
    """A signed output whose file was edited since, and enough records (about 200 KB of JSON Lines) to fill any
    pipe's buffer."""
    from guard.provenance.log import ProvenanceLog

    home, text = answered_home
    (home / "answer.txt").write_text(text + " (edited)")
    log = ProvenanceLog(home / "provenance.db")
    fill(log, 600)
    log.close()
    return home


def _env(home) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": str(REPO), "GUARD_HOME": str(home)}


def _closed_at_once(home, *args: str) -> subprocess.CompletedProcess:
    """Run ``guard ARGS`` with its stdout a pipe whose reader has already gone: its first write fails."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "guard.cli", *args], stdout=write, stderr=subprocess.PIPE,
                              text=True, env=_env(home), cwd=home, timeout=120)
    finally:
        os.close(write)


def test_export_into_head_exits_0_quietly(home):
    """The shell pipeline itself, with pipefail so the exporter's status is the pipeline's."""
    done = subprocess.run(["bash", "-c", f"set -o pipefail; {sys.executable} -m guard.cli log export | head -1"],
                          capture_output=True, text=True, env=_env(home), cwd=home, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout)["index"] == 0


@pytest.mark.parametrize("args", [
    ("log", "export"),  # streamed JSON Lines
    ("log", "show", "--last", "600"),  # rich text
])
def test_a_closed_stdout_ends_the_command_quietly(home, args):
    done = _closed_at_once(home, *args)
    assert (done.returncode, done.stderr) == (0, "")


def test_a_finding_keeps_exit_1_when_its_json_report_cannot_be_written(home):
    done = _closed_at_once(home, "verify", "answer.txt", "--json")
    assert done.returncode == 1
    assert done.stderr.startswith("finding: ") and "Traceback" not in done.stderr


def test_an_error_keeps_exit_2_when_its_json_cannot_be_written(home):
    done = _closed_at_once(home, "log", "export", "--verdict", "maybe", "--json")
    assert done.returncode == 2
    assert done.stderr.startswith("error: --verdict 'maybe'")
