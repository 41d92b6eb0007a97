"""Accounts: argon2id hashes, sessions that end, and `guard users` on the command line."""

from __future__ import annotations

import io
import sys

import pytest

from core.errors import InputError
from guard.review.auth import Accounts
from guard.review.store import ReviewStore
from tests.guard.review.helpers import PASSWORD


@pytest.fixture
def accounts(log):
    return Accounts(ReviewStore(log), profile="CHEAPEST")  # argon2id with test-sized parameters


def test_passwords_are_stored_as_argon2id_with_rfc_9106_parameters(log):
    from sqlalchemy import select

    accounts = Accounts(ReviewStore(log))
    accounts.add("ana", PASSWORD)
    with accounts.store.engine.connect() as conn:
        stored = conn.execute(select(accounts.users.c.password_hash)).scalar()
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$") and PASSWORD not in stored
    assert accounts.authenticate("ana", PASSWORD).username == "ana"


def test_sign_in_and_sessions_end(accounts):
    from sqlalchemy import select

    accounts.add("ana", PASSWORD)
    assert accounts.authenticate("ana", "wrong password here") is None
    assert accounts.authenticate("nobody", PASSWORD) is None
    user = accounts.authenticate("ANA ", PASSWORD)
    assert user.username == "ana" and user.role == "reviewer"
    token = accounts.open_session(user)
    session = accounts.session(token)
    assert session.user.username == "ana" and len(session.csrf) >= 40
    with accounts.store.engine.connect() as conn:  # only the token's hash is kept
        assert conn.execute(select(accounts.sessions.c.token_sha256)).scalar() != token
    accounts.set_active("ana", False)
    assert accounts.session(token) is None and accounts.authenticate("ana", PASSWORD) is None
    accounts.set_active("ana", True)
    token = accounts.open_session(user)
    accounts.close_session(token)
    assert accounts.session(token) is None and accounts.session("forged") is None


@pytest.mark.parametrize("name, password, role, message", [
    ("Ana Smith", PASSWORD, "reviewer", "user name"),
    ("ana", "short", "reviewer", "at least 12"),
    ("ana", PASSWORD, "root", "role 'root'"),
])
def test_bad_accounts_are_refused(accounts, name, password, role, message):
    with pytest.raises(InputError, match=message):
        accounts.add(name, password, role)


def test_users_cli(cli, tmp_path, monkeypatch):
    from guard.provenance.log import ProvenanceLog

    db = tmp_path / "log.db"
    ProvenanceLog(db).close()
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    added = cli("users", "add", "rita", "--role", "admin", "--password-stdin", "--log", db, "--json")
    assert added.exit_code == 0, added.stderr
    assert added.json == {"username": "rita", "role": "admin"}
    monkeypatch.setattr(sys, "stdin", io.StringIO(PASSWORD + "\n"))
    again = cli("users", "add", "rita", "--password-stdin", "--log", db)
    assert again.exit_code == 2 and "exists; pass --replace" in again.stderr and "Traceback" not in again.stderr
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    weak = cli("users", "add", "sam", "--password-stdin", "--log", db)
    assert weak.exit_code == 2 and "at least 12" in weak.stderr
    listed = cli("users", "list", "--log", db, "--json")
    assert [u["username"] for u in listed.json] == ["rita"]
    assert cli("users", "disable", "rita", "--log", db).exit_code == 0
    assert cli("users", "list", "--log", db, "--json").json[0]["active"] is False
    missing = cli("users", "list", "--log", tmp_path / "nope.db")
    assert missing.exit_code == 2 and "no provenance log there" in missing.stderr


def test_serve_refuses_bad_settings_in_one_line(cli, tmp_path):
    from guard.provenance.log import ProvenanceLog

    missing = cli("review", "serve", "--log", tmp_path / "nope.db")
    assert missing.exit_code == 2 and "no provenance log there" in missing.stderr
    db = tmp_path / "log.db"
    ProvenanceLog(db).close()
    private = cli("review", "serve", "--log", db, "--public-field", "prompt.hmac_sha256")
    assert private.exit_code == 2 and "never public" in private.stderr and "Traceback" not in private.stderr
