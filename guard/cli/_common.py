"""Options every command shares, so they are spelled and documented once."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from guard.provenance.log import open_existing as open_existing_log  # noqa: F401  (re-exported for the commands)

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


def keystore(path: Path | None):
    from guard.signing.keys import KeyStore

    return KeyStore(path)
