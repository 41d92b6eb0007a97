"""A bug (an exception that is not a ``GuardError``) is a crash: exit 3, one line that says so, and the traceback
only when asked for with ``--debug`` or ``GUARD_DEBUG=1``. It must never exit 1, which means "a finding"."""

from __future__ import annotations

import pytest


@pytest.fixture
def broken_policy_loader(monkeypatch):
    import guard.policy

    def load(ref):
        raise KeyError("schema")  # stands in for any bug in the toolkit

    monkeypatch.setattr(guard.policy, "load", load)


def test_crash_exits_3_with_one_line(cli, broken_policy_loader):
    result = cli("policy", "check", "default")
    assert result.exit_code == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("crash: KeyError: 'schema'"), result.stderr
    assert "--debug" in lines[0] and "Traceback" not in result.stderr


def test_debug_flag_shows_the_traceback(cli, broken_policy_loader):
    result = cli("--debug", "policy", "check", "default")
    assert result.exit_code == 3
    assert "Traceback (most recent call last)" in result.stderr and 'raise KeyError("schema")' in result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith("crash: KeyError")


def test_debug_variable_shows_the_traceback(cli, broken_policy_loader, monkeypatch):
    monkeypatch.setenv("GUARD_DEBUG", "1")
    result = cli("policy", "check", "default")
    assert result.exit_code == 3 and "Traceback (most recent call last)" in result.stderr


def test_debug_variable_set_to_zero_is_off(cli, broken_policy_loader, monkeypatch):
    monkeypatch.setenv("GUARD_DEBUG", "0")
    result = cli("policy", "check", "default")
    assert result.exit_code == 3 and "Traceback" not in result.stderr


def test_bad_input_is_not_a_crash(cli, tmp_path):
    result = cli("policy", "check", tmp_path / "nope.yaml")
    assert result.exit_code == 2 and result.stderr.startswith("error: ")
