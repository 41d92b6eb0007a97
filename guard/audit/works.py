"""The registry of protected works, as ``guard works`` and policies name it.

The fingerprints themselves (and the ``copyright`` detector that reads them) live in ``detectors.copyright``;
this module turns files and folders into registrations, puts the registry at ``$GUARD_HOME/works`` unless told
otherwise, and turns problems into ``InputError`` messages that name the file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from detectors.copyright import Work, WorksStore, resolve_store
from core.errors import InputError
from core.imageio import image_suffixes, load_image
from guard.home import guard_home

# Fingerprinting costs about 70 MB of memory and 15 s per MB of text: a novel fits (War and Peace is 3.2 MB), a
# corpus is registered as several works.
MAX_WORK_BYTES = 4 << 20


def default_location() -> Path:
    return guard_home() / "works"


def open_store(location: str | Path | None = None, *, create: bool = False) -> WorksStore:
    path = Path(location) if location else default_location()
    registry = resolve_store(path)
    if registry.is_file() and (registry.stat().st_size or not create):
        _check_registry(registry)
    try:
        return WorksStore(path, create=create)
    except FileNotFoundError as exc:
        raise InputError(str(exc)) from None
    except OSError as exc:
        raise InputError(f"{resolve_store(path)}: cannot open works registry: {exc}") from None


def _check_registry(registry: Path) -> None:
    """An existing file must be a works registry: nothing is read from, or written into, any other file."""
    import sqlite3
    from contextlib import closing
    from urllib.parse import quote

    try:
        with closing(sqlite3.connect(f"file:{quote(str(registry))}?mode=ro", uri=True)) as conn:
            found = conn.execute("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'works'").fetchone()
    except sqlite3.DatabaseError as exc:
        raise InputError(f"{registry}: not a works registry ({exc})") from None
    if not found:
        raise InputError(f"{registry}: not a works registry (an SQLite file without a works table)")


def _files(paths: list[Path]) -> Iterator[Path]:
    for path in paths:
        if path.is_dir():
            yield from sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith("."))
        elif path.is_file():
            yield path
        else:
            raise InputError(f"{path}: no such file or folder")


def add_paths(store: WorksStore, paths: list[Path], *, name: str | None = None,
              encoder=None) -> list[tuple[Work, bool]]:
    """Register every file (folders recursively): images by suffix, everything else as UTF-8 text.

    ``name`` labels a single file; otherwise each work is named after its file. ``encoder`` (a
    ``SentenceEncoder``) also stores text windows' embeddings for paraphrase matching. Returns (work, newly added).
    """
    files = list(_files(paths))
    if not files:
        raise InputError(f"{', '.join(map(str, paths))}: no files to register")
    if name is not None and len(files) != 1:
        raise InputError(f"--name labels one work, but {len(files)} files were given")
    added = []
    for path in files:
        label = name or path.name
        if path.suffix.lower() in image_suffixes():
            added.append(store.add_image(label, load_image(path), source=str(path)))
            continue
        try:
            size = path.stat().st_size
            if size > MAX_WORK_BYTES:
                raise InputError(f"{path}: {size} bytes, more than the {MAX_WORK_BYTES} a protected text may have; "
                                 "register a larger corpus as several works")
            text = path.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise InputError(f"{path}: not UTF-8 text (byte {exc.start}) and not an image suffix") from None
        except OSError as exc:
            raise InputError(f"{path}: cannot read: {exc.strerror}") from None
        try:
            added.append(store.add_text(label, text, source=str(path), encoder=encoder))
        except ValueError as exc:
            raise InputError(str(exc)) from None
    return added
