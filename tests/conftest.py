"""Fixtures shared by the whole suite: a fresh key folder, a fresh log on each backend, and an in-process CLI."""

from __future__ import annotations

import io
import json
import os
import secrets
import sys
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
import pytest

# Fixtures used by tests in more than one folder live in tests/fixtures/, one module per subject.
pytest_plugins = [f"tests.fixtures.{name}" for name in (
    "bias", "deepfake", "images", "mixed_log", "network", "offline_toxicity", "text_models", "watermark")]

BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own GUARD_HOME, so nothing touches the user's keys or log."""
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "guard-home"))
    monkeypatch.delenv("GUARD_LOG", raising=False)
    monkeypatch.delenv("GUARD_KEYS", raising=False)


@pytest.fixture
def keys(tmp_path):
    from guard.signing.keys import KeyStore

    store = KeyStore(tmp_path / "keys")
    store.init()
    return store


def _postgres_database():
    """A new, empty PostgreSQL database on the test server; dropped afterwards."""
    base = os.environ.get("GUARD_TEST_POSTGRES_URL")
    if not base:
        if os.environ.get("GUARD_REQUIRE_POSTGRES"):
            pytest.fail("GUARD_REQUIRE_POSTGRES is set but GUARD_TEST_POSTGRES_URL is not")
        pytest.skip("no PostgreSQL server (set GUARD_TEST_POSTGRES_URL)")
    from sqlalchemy import create_engine, text

    from guard.provenance.log import normalize_url

    admin = create_engine(normalize_url(base), isolation_level="AUTOCOMMIT")
    name = f"guard_test_{secrets.token_hex(6)}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = base.rsplit("/", 1)[0] + "/" + name
    return admin, name, url


@pytest.fixture(params=BACKENDS)
def log_url(request, tmp_path):
    """A URL for an empty log, once on SQLite and once on a real PostgreSQL server."""
    if request.param == "sqlite":
        yield str(tmp_path / "provenance.db")
        return
    from sqlalchemy import text

    admin, name, url = _postgres_database()
    yield url
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def log(log_url):
    from guard.provenance.log import ProvenanceLog

    plog = ProvenanceLog(log_url)
    yield plog
    plog.close()


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def json(self):
        return json.loads(self.stdout)


def run_cli(*args: str) -> CliResult:
    """Run ``guard`` in-process through its real entry point (error handling and exit codes included)."""
    from guard.cli import main

    # Text streams over bytes, like real stdout/stderr (commands that write binary use ``.buffer``).
    out = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    err = io.TextIOWrapper(io.BytesIO(), encoding="utf-8", write_through=True)
    old_argv = sys.argv
    sys.argv = ["guard", *map(str, args)]
    code = 0
    try:
        with redirect_stdout(out), redirect_stderr(err):
            main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = old_argv
    return CliResult(code, out.buffer.getvalue().decode(), err.buffer.getvalue().decode())


@pytest.fixture
def cli():
    return run_cli
