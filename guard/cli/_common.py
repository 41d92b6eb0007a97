"""Options every command shares, so they are spelled and documented once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

JsonOpt = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON on stdout.")]
LogOpt = Annotated[
    Optional[str],
    typer.Option("--log", envvar="GUARD_LOG", help="Log: a SQLite file path or SQLAlchemy URL "
                 "(postgresql://…). Default: $GUARD_HOME/provenance.db."),
]
KeysOpt = Annotated[
    Optional[Path],
    typer.Option("--keys", envvar="GUARD_KEYS", help="Key folder. Default: $GUARD_HOME/keys."),
]


def open_existing_log(url: str | None):
    """Open a log that must already exist: a mistyped path is an error, not a new empty log."""
    from core.errors import LogError
    from guard.provenance.log import ProvenanceLog, normalize_url

    normalized = normalize_url(url)
    if normalized.startswith("sqlite:///"):
        path = Path(normalized.removeprefix("sqlite:///"))
        if not path.is_file():
            raise LogError(f"{path}: no provenance log there (pass --log or set GUARD_LOG)")
    return ProvenanceLog(normalized)


def keystore(path: Path | None):
    from guard.signing.keys import KeyStore

    return KeyStore(path)
