"""Reviewer accounts and sessions.

Passwords are stored as argon2id hashes (argon2-cffi, its RFC 9106 defaults), rehashed on sign-in when the
parameters change. A session is a random 256-bit token in an HttpOnly, SameSite=Strict cookie; the server keeps
only its SHA-256, the user and a per-session CSRF token, so a stolen database holds no usable session, and
disabling a user or signing out ends their sessions at once.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from core.errors import InputError
from guard.review.store import ReviewStore

ROLES = ("reviewer", "admin")
USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
MIN_PASSWORD = 12
SESSION_HOURS = 8


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


DEFAULT_PROFILE = "RFC_9106_LOW_MEMORY"  # argon2id, t=3, 64 MiB, p=4: argon2-cffi's default


def _hasher(profile: str):
    from argon2 import PasswordHasher, profiles

    return PasswordHasher.from_parameters(getattr(profiles, profile))


@dataclass(frozen=True)
class User:
    username: str
    role: str
    active: bool
    created_at: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Session:
    user: User
    csrf: str


class Accounts:
    """Users and sessions in the review tables of one log database."""

    def __init__(self, store: ReviewStore, *, profile: str = DEFAULT_PROFILE) -> None:
        """``profile`` names an ``argon2.profiles`` parameter set; tests use ``CHEAPEST``, nothing else should."""
        self.store = store
        self.profile = profile
        self.users = store.t["guard_review_users"]
        self.sessions = store.t["guard_review_sessions"]
        self._dummy_hash: str | None = None

    # -- users -------------------------------------------------------------------------------------------

    def add(self, username: str, password: str, role: str = "reviewer", *, replace: bool = False) -> User:
        """Create a user (or, with ``replace``, set a new password and role). Raises ``InputError`` on bad input."""
        from sqlalchemy import select

        username = username.strip().lower()
        if not USERNAME.match(username):
            raise InputError(f"user name {username!r}: use 1-64 lower-case letters, digits, '.', '_' or '-'")
        if role not in ROLES:
            raise InputError(f"role {role!r}: expected one of {', '.join(ROLES)}")
        if len(password) < MIN_PASSWORD:
            raise InputError(f"the password is {len(password)} characters; use at least {MIN_PASSWORD}")
        row = {"username": username, "password_hash": _hasher(self.profile).hash(password), "role": role, "active": 1,
               "created_at": _iso(_now())}
        with self.store.engine.begin() as conn:
            exists = conn.execute(select(self.users.c.username).where(self.users.c.username == username)).first()
            if exists and not replace:
                raise InputError(f"user {username!r} exists; pass --replace to set a new password or role")
            if exists:
                conn.execute(self.users.update().where(self.users.c.username == username).values(
                    password_hash=row["password_hash"], role=role, active=1))
                conn.execute(self.sessions.delete().where(self.sessions.c.username == username))
            else:
                conn.execute(self.users.insert().values(**row))
        return self.get(username)

    def get(self, username: str) -> User | None:
        from sqlalchemy import select

        u = self.users
        with self.store.engine.connect() as conn:
            row = conn.execute(select(u.c.username, u.c.role, u.c.active, u.c.created_at)
                               .where(u.c.username == username)).first()
        return None if row is None else User(row.username, row.role, bool(row.active), row.created_at)

    def list(self) -> list[User]:
        from sqlalchemy import select

        u = self.users
        with self.store.engine.connect() as conn:
            rows = conn.execute(select(u.c.username, u.c.role, u.c.active, u.c.created_at).order_by(u.c.username))
            return [User(r.username, r.role, bool(r.active), r.created_at) for r in rows]

    def set_active(self, username: str, active: bool) -> None:
        with self.store.engine.begin() as conn:
            if conn.execute(self.users.update().where(self.users.c.username == username)
                            .values(active=int(active))).rowcount == 0:
                raise InputError(f"no user {username!r}")
            if not active:
                conn.execute(self.sessions.delete().where(self.sessions.c.username == username))

    def remove(self, username: str) -> None:
        with self.store.engine.begin() as conn:
            conn.execute(self.sessions.delete().where(self.sessions.c.username == username))
            if conn.execute(self.users.delete().where(self.users.c.username == username)).rowcount == 0:
                raise InputError(f"no user {username!r}")

    def authenticate(self, username: str, password: str) -> User | None:
        """The active user with this password, else None; the same work whether or not the user exists."""
        from argon2.exceptions import InvalidHashError, VerificationError
        from sqlalchemy import select

        hasher = _hasher(self.profile)
        username = username.strip().lower()
        with self.store.engine.connect() as conn:
            row = conn.execute(select(self.users.c.password_hash, self.users.c.active)
                               .where(self.users.c.username == username)).first()
        if row is None:
            if self._dummy_hash is None:
                self._dummy_hash = hasher.hash(secrets.token_hex(16))
            try:
                hasher.verify(self._dummy_hash, password)
            except VerificationError:
                pass
            return None
        try:
            hasher.verify(row.password_hash, password)
        except (VerificationError, InvalidHashError):
            return None
        if not row.active:
            return None
        if hasher.check_needs_rehash(row.password_hash):
            with self.store.engine.begin() as conn:
                conn.execute(self.users.update().where(self.users.c.username == username)
                             .values(password_hash=hasher.hash(password)))
        return self.get(username)

    # -- sessions ----------------------------------------------------------------------------------------

    def open_session(self, user: User) -> str:
        """A new session for ``user``; returns the token for the cookie (only its hash is stored)."""
        token = secrets.token_urlsafe(32)
        now = _now()
        with self.store.engine.begin() as conn:
            conn.execute(self.sessions.delete().where(self.sessions.c.expires_at < _iso(now)))
            conn.execute(self.sessions.insert().values(
                token_sha256=_digest(token), username=user.username, csrf=secrets.token_urlsafe(32),
                created_at=_iso(now), expires_at=_iso(now + timedelta(hours=SESSION_HOURS))))
        return token

    def session(self, token: str | None) -> Session | None:
        """The live session for a cookie token, with its active user; None when absent, expired or disabled."""
        from sqlalchemy import select

        if not token or len(token) > 100:
            return None
        s, u = self.sessions, self.users
        with self.store.engine.connect() as conn:
            row = conn.execute(
                select(s.c.csrf, s.c.expires_at, u.c.username, u.c.role, u.c.active, u.c.created_at)
                .select_from(s.join(u, u.c.username == s.c.username))
                .where(s.c.token_sha256 == _digest(token))).first()
        if row is None or not row.active or row.expires_at < _iso(_now()):
            return None
        return Session(User(row.username, row.role, True, row.created_at), row.csrf)

    def close_session(self, token: str | None) -> None:
        if token:
            with self.store.engine.begin() as conn:
                conn.execute(self.sessions.delete().where(self.sessions.c.token_sha256 == _digest(token)))


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def same_token(a: str | None, b: str | None) -> bool:
    """Constant-time comparison of two CSRF tokens; False when either is missing."""
    return bool(a) and bool(b) and hmac.compare_digest(str(a).encode(), str(b).encode())
