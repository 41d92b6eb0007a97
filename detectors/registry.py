"""Detectors by the name a policy uses, through the ``genguard.detectors`` entry points (pyproject.toml), so other
packages can add their own.

Building is all this module does; keeping built detectors is the job of whoever uses them (the guard pipeline's
``Checker`` holds the ones its ``Guard`` runs), so no model outlives its user.
"""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

from core.errors import DetectorError

ENTRY_POINT_GROUP = "genguard.detectors"


def available() -> dict[str, str]:
    """Detector names a policy may use, mapped to the class that implements each."""
    return {ep.name: ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)}


def detector_class(name: str) -> type:
    matches = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == name]
    if not matches:
        known = ", ".join(sorted(available())) or "none installed"
        raise DetectorError(f"unknown detector {name!r} (known: {known})")
    return matches[0].load()


def create(name: str, options: dict[str, Any] | None = None):
    """Build the detector a policy names, with its options; each call builds a new one."""
    cls = detector_class(name)
    options = options or {}
    try:
        return cls(**options)
    except TypeError as exc:
        raise DetectorError(f"detector {name!r}: bad options {sorted(options)}: {exc}") from exc
