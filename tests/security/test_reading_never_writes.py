"""Attack (or slip): point a read-only command at a file that is not a genguard log. It must say so (exit 2) and
leave the file exactly as it was: no tables created in someone else's database, no folder created for a typo."""

from __future__ import annotations

import hashlib
import sqlite3
from pathlib import Path

import pytest

READERS = {
    "log verify": ["log", "verify", "--keys", "{keys}"],
    "log show": ["log", "show"],
    "log export": ["log", "export"],
    "log proof": ["log", "proof", "--index", "0"],
    "audit": ["audit", "--keys", "{keys}"],
    "compliance": ["compliance", "--framework", "eu-ai-act-art50", "--no-self-test", "--keys", "{keys}"],
}


def _empty(tmp_path):
    path = tmp_path / "empty.db"
    path.write_bytes(b"")
    return path


def _unrelated(tmp_path):
    path = tmp_path / "notes.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT)")
        conn.execute("INSERT INTO notes (body) VALUES ('keep me')")
    conn.close()
    return path


def _not_sqlite(tmp_path):
    path = tmp_path / "random.db"
    path.write_bytes(b"this is not a database at all\n" * 10)
    return path


def _state(path):
    data = path.read_bytes()
    tables = []
    if data:
        try:
            with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as conn:
                tables = sorted(r[0] for r in conn.execute("SELECT name FROM sqlite_master"))
        except sqlite3.DatabaseError:
            tables = ["<not sqlite>"]
    return hashlib.sha256(data).hexdigest(), tables


def _args(command, keys):
    return [str(a).format(keys=keys.directory) for a in READERS[command]]


@pytest.mark.parametrize("make", [_empty, _unrelated, _not_sqlite], ids=lambda f: f.__name__.strip("_"))
@pytest.mark.parametrize("command", sorted(READERS))
def test_read_command_on_a_foreign_file_changes_nothing(cli, keys, tmp_path, command, make):
    path = make(tmp_path)
    before = _state(path)
    result = cli(*_args(command, keys), "--log", path)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "not a genguard log" in result.stderr and "Traceback" not in result.stderr
    assert _state(path) == before


@pytest.mark.parametrize("command", sorted(READERS))
def test_read_command_never_creates_a_folder(cli, keys, tmp_path, command):
    result = cli(*_args(command, keys), "--log", tmp_path / "typo" / "provenance.db")
    assert result.exit_code == 2 and "no provenance log" in result.stderr, result.stderr
    assert not (tmp_path / "typo").exists()


def test_read_only_open_of_a_real_log_works_and_writes_nothing(log_url, keys):
    from core.errors import LogError
    from guard.provenance.log import ProvenanceLog
    from guard.provenance.verify import verify_log
    from tests.guard.provenance.helpers import fill, make_record

    log = ProvenanceLog(log_url)
    fill(log, 5)
    log.close()
    sqlite_file = None if "://" in log_url else Path(log_url)
    before = _state(sqlite_file) if sqlite_file else None
    reader = ProvenanceLog(log_url, readonly=True)
    assert reader.size() == 5 and reader.get(3).data["index"] == 3
    assert verify_log(reader, keys.log_public_key()).ok
    with pytest.raises(LogError, match="read-only"):
        reader.append(make_record(5))
    reader.close()
    if sqlite_file:
        assert _state(sqlite_file) == before


def test_writer_command_refuses_a_foreign_database(cli, keys, tmp_path):
    path = _unrelated(tmp_path)
    before = _state(path)
    result = cli("log", "checkpoint", "--log", path, "--keys", keys.directory)
    assert result.exit_code == 2 and "not a genguard log" in result.stderr, result.stderr
    assert _state(path) == before
