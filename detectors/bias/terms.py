"""Demographic group term lists: which words name which group, on which axis.

One JSON file holds every group, so the words that detect a mention in a logged output and the noun phrases that
counterfactual templates put into a prompt name the same groups. The shipped list (``data/groups.json``) covers
ten axes; a project can pass its own file in the same format.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any

from core.errors import InputError, ModelUnavailableError

AXES = (
    "gender_and_sex",
    "race_ethnicity",
    "religion",
    "nationality",
    "age",
    "ability",
    "sexual_orientation",
    "socioeconomic_class",
    "body_type",
    "political_ideology",
)


@dataclass(frozen=True)
class Group:
    """One demographic group.

    ``terms`` name the group wherever they stand; ``adjectives`` name it only right before a person noun
    ("black person", not "black car"). ``subject``/``people`` are the singular and plural noun phrases a
    template sentence uses ("a Muslim person" / "Muslim people").
    """

    axis: str
    key: str
    label: str
    subject: str
    people: str
    terms: tuple[str, ...] = ()
    adjectives: tuple[str, ...] = ()

    @property
    def id(self) -> str:
        """``axis/key``, unique across axes (a word such as "Native" may name groups on two axes)."""
        return f"{self.axis}/{self.key}"


@dataclass(frozen=True)
class TermList:
    """Every group of a term file, the person nouns adjectives need, and the file's SHA-256 (for the record)."""

    groups: tuple[Group, ...]
    person_nouns: tuple[str, ...]
    sha256: str
    source: str

    @property
    def axes(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(g.axis for g in self.groups))

    def by_axis(self, axis: str) -> tuple[Group, ...]:
        return tuple(g for g in self.groups if g.axis == axis)

    def get(self, group_id: str) -> Group:
        for group in self.groups:
            if group.id == group_id:
                return group
        raise KeyError(group_id)


def _text(raw: dict[str, Any], field: str, where: str) -> str:
    value = raw.get(field)
    if not isinstance(value, str) or not value.strip():
        raise InputError(f"{where}: {field!r} must be a non-empty string")
    return value


def _words(raw: dict[str, Any], field: str, where: str) -> tuple[str, ...]:
    value = raw.get(field, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v.strip() for v in value):
        raise InputError(f"{where}: {field!r} must be a list of non-empty strings")
    return tuple(value)


def parse_terms(data: Any, *, source: str = "<memory>", sha256: str = "") -> TermList:
    """Validate a term mapping (the JSON format of ``data/groups.json``); errors name the group and field."""
    if not isinstance(data, dict) or not isinstance(data.get("axes"), dict) or not data["axes"]:
        raise InputError(f"{source}: expected an object with a non-empty 'axes' mapping")
    nouns = _words(data, "person_nouns", source)
    groups = []
    for axis, members in data["axes"].items():
        if not isinstance(members, dict) or not members:
            raise InputError(f"{source}: axes.{axis} must map group keys to groups")
        for key, raw in members.items():
            where = f"{source}: axes.{axis}.{key}"
            if not isinstance(raw, dict):
                raise InputError(f"{where}: must be an object")
            group = Group(
                axis=axis,
                key=key,
                label=raw.get("label") or key,
                subject=_text(raw, "subject", where),
                people=_text(raw, "people", where),
                terms=_words(raw, "terms", where),
                adjectives=_words(raw, "adjectives", where),
            )
            if group.adjectives and not nouns:
                raise InputError(f"{where}: 'adjectives' need a top-level 'person_nouns' list")
            groups.append(group)
    return TermList(groups=tuple(groups), person_nouns=nouns, sha256=sha256, source=source)


def load_terms(path: str | Path | None = None) -> TermList:
    """The shipped term list, or one read from ``path`` (same JSON format)."""
    if path is None:
        return _shipped()
    return _load(str(Path(path)))


@lru_cache(maxsize=8)
def _load(path: str) -> TermList:
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ModelUnavailableError(f"{path}: cannot read term list: {exc.strerror}") from exc
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a JSON term list: {exc}") from exc
    return parse_terms(data, source=path, sha256=hashlib.sha256(raw).hexdigest())


@lru_cache(maxsize=1)
def _shipped() -> TermList:
    resource = files("detectors.bias") / "data" / "groups.json"
    raw = resource.read_bytes()
    return parse_terms(json.loads(raw), source="genguard:groups.json", sha256=hashlib.sha256(raw).hexdigest())
