"""Resolve detector names from a policy to detector objects, through the ``genguard.detectors`` entry points."""

from __future__ import annotations

from functools import lru_cache
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


def _freeze(value: Any) -> Any:
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _thaw(value: Any) -> Any:
    if isinstance(value, tuple) and all(isinstance(v, tuple) and len(v) == 2 and isinstance(v[0], str) for v in value):
        return {k: _thaw(v) for k, v in value}
    if isinstance(value, tuple):
        return [_thaw(v) for v in value]
    return value


def create(name: str, options: dict[str, Any] | None = None):
    """Build (or reuse) the detector a policy names; models are cached per name and options."""
    return _create(name, _freeze(options or {}))


@lru_cache(maxsize=32)
def _create(name: str, frozen_options: Any):
    cls = detector_class(name)
    options = _thaw(frozen_options) if frozen_options else {}
    try:
        return cls(**options)
    except TypeError as exc:
        raise DetectorError(f"detector {name!r}: bad options {sorted(options)}: {exc}") from exc
