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


def allow_downloads_option(what: str):
    """``--allow-downloads``: the one spelling, in every command, of the user's permission to use the network
    (the toolkit opens no connection otherwise). ``what`` says what this command may fetch."""
    return Annotated[bool, typer.Option("--allow-downloads", help=f"Allow downloading {what}.")]


def check_out(path: Path | None, option: str = "--out") -> None:
    """Refuse an output path that cannot be written, before the command changes anything (a checkpoint signed
    into the log, a report computed for nothing): a folder, a file in a folder that does not exist, or a place
    this user cannot write."""
    import os

    from core.errors import InputError

    if path is None:
        return
    if path.is_dir():
        raise InputError(f"{option} {path}: is a folder; give a file path")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise InputError(f"{option} {path}: folder {parent} does not exist")
    if not os.access(path if path.exists() else parent, os.W_OK):
        raise InputError(f"{option} {path}: not writable")


def keystore(path: Path | None):
    from guard.signing.keys import KeyStore

    return KeyStore(path)
