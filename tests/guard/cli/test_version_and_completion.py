"""``guard --version`` and shell completion."""

from __future__ import annotations

from importlib.metadata import version


def test_version(cli):
    result = cli("--version")
    assert result.exit_code == 0 and result.stdout == f"guard {version('genguard')}\n" and result.stderr == ""


def test_completion_script(cli, monkeypatch):
    """What ``guard --show-completion`` prints in bash (which detects the shell it runs in)."""
    monkeypatch.setenv("_GUARD_COMPLETE", "source_bash")
    result = cli()
    assert result.exit_code == 0, result.stderr
    assert "_GUARD_COMPLETE=complete_bash" in result.stdout and "complete " in result.stdout


def test_completion_of_command_names(cli, monkeypatch):
    monkeypatch.setenv("_GUARD_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "guard lo")
    monkeypatch.setenv("COMP_CWORD", "1")
    result = cli()
    assert result.exit_code == 0, result.stderr
    assert result.stdout.split() == ["log"]


def test_completion_of_subcommand_names(cli, monkeypatch):
    monkeypatch.setenv("_GUARD_COMPLETE", "complete_bash")
    monkeypatch.setenv("COMP_WORDS", "guard log ver")
    monkeypatch.setenv("COMP_CWORD", "2")
    result = cli()
    assert result.stdout.split() == ["verify"]
