"""Where the toolkit keeps its state by default: keys, the provenance log, protected works, cached data sets."""

from __future__ import annotations

import os
from pathlib import Path


def guard_home() -> Path:
    """``$GUARD_HOME``, else ``~/.guard``. Every default path hangs off this one folder."""
    return Path(os.environ.get("GUARD_HOME", Path.home() / ".guard")).expanduser()
