"""Usage mistakes (no command, an unknown command, a missing argument, a value of the wrong type) are one line on
stderr and exit 2, never a traceback: the README's CLI contract."""

from __future__ import annotations

import subprocess
import sys

from tests.fixtures.shared import REPO


def assert_usage_error(result, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 2, (result.exit_code, result.stderr)
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert "Traceback" not in result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_guard_alone(cli):
    assert_usage_error(cli(), "missing command", "verify", "guard --help")


def test_group_alone(cli):
    assert_usage_error(cli("log"), "missing command", "verify", "guard log --help")


def test_unknown_command(cli):
    assert_usage_error(cli("frobnicate"), "No such command 'frobnicate'")


def test_trace_without_file(cli):
    assert_usage_error(cli("trace"), "guard trace", "Missing argument 'file'")


def test_log_show_index_not_a_number(cli):
    assert_usage_error(cli("log", "show", "--index", "abc"), "guard log show", "--index")


def test_watermark_embed_without_out(cli, tmp_path):
    assert_usage_error(cli("watermark", "embed", tmp_path / "X.png"), "Missing option '--out'")


def test_usage_error_from_a_real_process_exits_2():
    """Through ``python -m guard.cli``, as a shell runs it: the exit status reaches the shell."""
    done = subprocess.run([sys.executable, "-m", "guard.cli", "frobnicate"], cwd=REPO, capture_output=True,
                          text=True, env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)}, timeout=120)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == ["error: guard: No such command 'frobnicate'; see 'guard --help'"]


def test_downloads_are_allowed_by_one_flag_everywhere(cli):
    """``--allow-downloads`` is the only spelling; the old ``--download`` is refused, naming the new one."""
    import typer

    from guard.cli import app

    def options(command, path=()):
        for name, sub in getattr(command, "commands", {}).items():
            yield from options(sub, (*path, name))
        for param in command.params:
            yield from (((*path,), opt) for opt in param.opts if "download" in opt)

    found = sorted(options(typer.main.get_command(app)))
    assert found == [(("bias-audit",), "--allow-downloads"), (("demo",), "--allow-downloads"),
                     (("toxicity", "audit"), "--allow-downloads")]
    for command in (("bias-audit",), ("toxicity", "audit")):
        assert_usage_error(cli(*command, "--download"), "No such option: --download", "--allow-downloads")
