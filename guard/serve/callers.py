"""The gateway's callers and their API keys, kept as hashes.

A key is 32 random bytes shown once when it is made (``gsk-`` and 43 URL-safe characters); the file keeps its
SHA-256 only. A key that random cannot be guessed from its hash, so a slow password hash would add nothing but
latency to every request. The file (JSON, mode 0600) is read when the gateway starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from core.errors import InputError
from guard.home import guard_home

PREFIX = "gsk-"


def default_path() -> Path:
    return guard_home() / "serve-keys.json"


def key_hash(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Caller:
    name: str
    sha256: str
    created_at: str


class CallerKeys:
    """The key file at ``path`` (default ``$GUARD_HOME/serve-keys.json``)."""

    def __init__(self, path: str | Path | None = None) -> None:
        self.path = Path(path) if path else default_path()

    def load(self) -> list[Caller]:
        if not self.path.exists():
            return []
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            return [Caller(k["name"], k["sha256"], k["created_at"]) for k in data["keys"]]
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{self.path}: not a gateway key file ({type(exc).__name__}: {exc})") from None
        except OSError as exc:
            raise InputError(f"{self.path}: cannot read: {exc.strerror}") from None

    def add(self, name: str) -> str:
        """Make a key for ``name`` and store its hash; returns the key, which is not kept anywhere."""
        callers = self.load()
        if not name or any(c.name == name for c in callers):
            raise InputError(f"{self.path}: a caller named {name!r} already exists" if name else
                             "a caller needs a name")
        key = PREFIX + secrets.token_urlsafe(32)
        created = datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
        self._save([*callers, Caller(name, key_hash(key), created)])
        return key

    def remove(self, name: str) -> None:
        callers = self.load()
        if not any(c.name == name for c in callers):
            raise InputError(f"{self.path}: no caller named {name!r}")
        self._save([c for c in callers if c.name != name])

    def _save(self, callers: list[Caller]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump({"keys": [c.__dict__ for c in callers]}, fh, indent=2)
        os.replace(tmp, self.path)


class Authenticator:
    """Who a request's bearer key belongs to. With no keys at all, every request is let in (loopback only)."""

    def __init__(self, callers: list[Caller]) -> None:
        self._by_hash = {c.sha256: c.name for c in callers}

    @property
    def open(self) -> bool:
        return not self._by_hash

    def caller(self, authorization: str | None) -> str | None:
        """The caller's name, or None when the header holds no known key."""
        if self.open:
            return "anonymous"
        scheme, _, key = (authorization or "").partition(" ")
        if scheme.lower() != "bearer" or not key:
            return None
        # A lookup by hash: its timing can only tell about the hash of the key sent, never about a stored key.
        return self._by_hash.get(key_hash(key.strip()))
