"""Prompt sets for bias audits: the shipped counterfactual templates, HolisticBias v1.1, BOLD, and your own.

Every set becomes a list of ``AuditPrompt``: the text, the axis and group it is about, and a ``template`` key that
prompts differing only in the group share. A set is named on the command line as

- ``templates`` — the shipped templates filled with the shipped groups (every axis);
- ``holistic-bias[:FOLDER]`` — HolisticBias v1.1 (descriptors.json, nouns.json, sentence_templates.json,
  standalone_noun_phrases.json); without a folder, the downloaded copy in the cache;
- ``bold[:PATH]`` — BOLD's ``*_prompt.json`` files (a folder or one file); without a path, the cached copy;
- a ``.json``/``.yaml`` template file (``templates`` plus optional ``groups`` in the term-list format), a
  ``.jsonl`` file of ``{"text", "axis", "group"}`` lines, or a folder holding either dataset.

Large sets are sampled per group (``per_group``) with a fixed seed, so an audit's size stays in hand and a rerun
draws the same prompts.
"""

from __future__ import annotations

import hashlib
import json
import random
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from detectors.bias.terms import TermList, load_terms, parse_terms
from core.errors import InputError

PLACEHOLDERS = {"subject", "Subject", "people", "People"}
HOLISTIC_BIAS_FILES = ("descriptors.json", "nouns.json", "sentence_templates.json", "standalone_noun_phrases.json")
CC_BY_SA = "CC BY-SA 4.0"


@dataclass(frozen=True)
class AuditPrompt:
    """One prompt about one group. ``template`` is shared by prompts that differ only in the group."""

    text: str
    axis: str
    group: str
    template: str = ""

    @property
    def group_id(self) -> str:
        return f"{self.axis}/{self.group}"


@dataclass(frozen=True)
class PromptSet:
    name: str
    source: str  # where it was read from
    sha256: str  # over the files read, so an audit names the exact prompts it used
    prompts: tuple[AuditPrompt, ...]
    license: str | None = None

    @property
    def axes(self) -> list[str]:
        return list(dict.fromkeys(p.axis for p in self.prompts))

    @property
    def groups(self) -> list[str]:
        return list(dict.fromkeys(p.group_id for p in self.prompts))

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "sha256": self.sha256,
            "license": self.license,
            "prompts": len(self.prompts),
            "axes": len(self.axes),
            "groups": len(self.groups),
        }


# -- templates -------------------------------------------------------------------------------------------


def _capitalise(phrase: str) -> str:
    return phrase[:1].upper() + phrase[1:]


def fill(template: str, subject: str, people: str) -> str:
    """Put a group's noun phrases into a template (``{Subject}`` capitalises the first letter)."""
    return template.format(subject=subject, Subject=_capitalise(subject), people=people, People=_capitalise(people))


def _check_templates(value: Any, source: str, field: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise InputError(f"{source}: {field!r} must be a non-empty list of strings")
    for i, template in enumerate(value):
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
        except ValueError as exc:
            raise InputError(f"{source}: {field}[{i}]: malformed template {template!r}: {exc}") from exc
        if not fields:
            raise InputError(f"{source}: {field}[{i}]: template {template!r} has no {{subject}} or {{people}} slot")
        unknown = fields - PLACEHOLDERS
        if unknown:
            raise InputError(
                f"{source}: {field}[{i}]: unknown placeholder {sorted(unknown)[0]!r} "
                f"(use {', '.join(sorted(PLACEHOLDERS))})"
            )
    return tuple(value)


def _shipped_templates() -> tuple[dict[str, Any], bytes]:
    raw = (files("guard.bias") / "data" / "templates.json").read_bytes()
    return json.loads(raw), raw


def neutral_sentences() -> tuple[str, ...]:
    """The shipped harmless sentences (with group slots) used to audit a toxicity scorer."""
    data, _ = _shipped_templates()
    return _check_templates(data["neutral"], "genguard:templates.json", "neutral")


def expand_templates(templates: Iterable[str], terms: TermList, axes: Iterable[str] | None = None) -> list[AuditPrompt]:
    """Every template filled with every group: the counterfactual grid."""
    wanted = set(axes) if axes else None
    return [
        AuditPrompt(fill(t, g.subject, g.people), g.axis, g.key, t)
        for t in templates
        for g in terms.groups
        if wanted is None or g.axis in wanted
    ]


def shipped_templates(axes: Iterable[str] | None = None) -> PromptSet:
    data, raw = _shipped_templates()
    templates = _check_templates(data["templates"], "genguard:templates.json", "templates")
    terms = load_terms()
    known = sorted({g.axis for g in terms.groups})
    unknown = sorted(set(axes or ()) - set(known))
    if unknown:
        raise InputError(f"templates: unknown {'axis' if len(unknown) == 1 else 'axes'} "
                         f"{', '.join(map(repr, unknown))} (the templates' axes: {', '.join(known)})")
    digest = hashlib.sha256(raw + terms.sha256.encode()).hexdigest()
    return PromptSet("templates", "genguard:templates.json", digest, tuple(expand_templates(templates, terms, axes)))


def load_template_file(path: Path, axes: Iterable[str] | None = None) -> PromptSet:
    """A template file (JSON or YAML): ``templates`` and, optionally, ``groups`` in the term-list format."""
    raw = _read(path)
    if path.suffix in (".yaml", ".yml"):
        import yaml

        try:
            data = yaml.safe_load(raw)
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f"line {mark.line + 1}: " if mark else ""
            raise InputError(f"{path}: {where}malformed YAML: {getattr(exc, 'problem', exc)}") from exc
    else:
        data = _json(raw, path)
    if not isinstance(data, dict):
        raise InputError(f"{path}: a template file must be a mapping with a 'templates' list")
    unknown = set(data) - {"templates", "groups", "neutral", "version", "description"}
    if unknown:
        raise InputError(f"{path}: unknown field {sorted(unknown)[0]!r}")
    templates = _check_templates(data.get("templates"), str(path), "templates")
    terms = load_terms()
    if "groups" in data:
        try:
            terms = parse_terms(data["groups"], source=f"{path}: groups")
        except ValueError as exc:
            raise InputError(str(exc)) from exc
    prompts = expand_templates(templates, terms, axes)
    if not prompts:
        raise InputError(f"{path}: no prompts for the axes asked for ({', '.join(axes or [])})")
    return PromptSet(path.name, str(path), hashlib.sha256(raw).hexdigest(), tuple(prompts))


def load_jsonl(path: Path, axes: Iterable[str] | None = None) -> PromptSet:
    """One prompt per line: ``{"text": ..., "axis": ..., "group": ..., "template": optional}``."""
    raw = _read(path)
    wanted = set(axes) if axes else None
    prompts = []
    for number, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{path}: line {number}: not JSON: {exc.msg}") from exc
        if not isinstance(item, dict):
            raise InputError(f"{path}: line {number}: expected an object with text, axis and group")
        for field in ("text", "axis", "group"):
            if not isinstance(item.get(field), str) or not item[field].strip():
                raise InputError(f"{path}: line {number}: {field!r} must be a non-empty string")
        if wanted is None or item["axis"] in wanted:
            prompts.append(AuditPrompt(item["text"], item["axis"], item["group"], str(item.get("template", ""))))
    if not prompts:
        raise InputError(f"{path}: no prompts")
    return PromptSet(path.name, str(path), hashlib.sha256(raw).hexdigest(), tuple(prompts))


# -- HolisticBias v1.1 -----------------------------------------------------------------------------------


def _article(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"


def _holistic_phrases(
    descriptors: Any, nouns: Any, standalone: Any, source: str
) -> Iterator[tuple[str, str, str, str, str]]:
    """(axis, descriptor, noun phrase, plural noun phrase, noun) as the HolisticBias reference code builds them:
    every descriptor alone ("Deaf") and before every noun of a compatible gender ("a Deaf grandmother"), plus
    the standalone noun phrases ("a wheelchair user", "{article} {noun} with a disability"). ``noun`` is empty
    for a descriptor alone and for a fixed phrase; such phrases skip the ``must_be_noun`` templates."""
    try:
        noun_pairs = [(gender, single, plural) for gender, pairs in nouns.items() for single, plural in pairs]
        for axis, buckets in descriptors.items():
            for bucket in buckets.values():
                for item in bucket:
                    item = {"descriptor": item} if isinstance(item, str) else item
                    word = item["descriptor"]
                    gender = item.get("gender")
                    article = item.get("article", _article(word))
                    yield axis, word, word, word, ""
                    for noun_gender, single, plural in noun_pairs:
                        if gender is None or gender == noun_gender:
                            yield axis, word, f"{article} {word} {single}", f"{word} {plural}", single
        for axis, phrases in standalone.items():
            for item in phrases:
                item = {"noun_phrase": item} if isinstance(item, str) else item
                single = item["noun_phrase"]
                plural = item.get("plural_noun_phrase", single)
                if "{noun}" in single:
                    descriptor = single.format(article="", noun="").strip()
                    for _, noun, nouns_plural in noun_pairs:
                        yield (axis, descriptor, single.format(article=_article(noun), noun=noun),
                               plural.format(article="", noun=nouns_plural).strip(), noun)
                else:
                    yield axis, single, single, plural, ""
    except (AttributeError, KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{source}: not in the HolisticBias v1.1 format ({type(exc).__name__}: {exc})") from exc


def load_holistic_bias(
    folder: Path, *, per_group: int | None = 20, axes: Iterable[str] | None = None, seed: int = 0
) -> PromptSet:
    """HolisticBias v1.1 sentences, grouped by descriptor within each axis; ``per_group`` sampled per descriptor.

    Templates marked ``must_be_noun`` only take phrases with a noun ("What do you think about Deaf people?" but
    never "What do you think about Deaf?"). The ``template`` key is the sentence template plus the noun, so
    prompts that share it differ only in the descriptor.
    """
    missing = [name for name in HOLISTIC_BIAS_FILES if not (folder / name).is_file()]
    if missing:
        raise InputError(f"{folder}: not a HolisticBias v1.1 folder (missing {', '.join(missing)})")
    raws = {name: _read(folder / name) for name in HOLISTIC_BIAS_FILES}
    data = {name: _json(raw, folder / name) for name, raw in raws.items()}
    templates = data["sentence_templates.json"]
    if not isinstance(templates, dict) or not templates:
        raise InputError(f"{folder / 'sentence_templates.json'}: expected a mapping of templates to options")
    if not all(isinstance(t, str) for t in templates):
        raise InputError(f"{folder / 'sentence_templates.json'}: template keys must be strings")
    any_phrase = list(templates)
    noun_only = {t for t, o in templates.items() if isinstance(o, dict) and o.get("must_be_noun")}
    with_adjective = [t for t in any_phrase if t not in noun_only]
    wanted = set(axes) if axes else None
    phrases: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
    for axis, descriptor, single, plural, noun in _holistic_phrases(
        data["descriptors.json"], data["nouns.json"], data["standalone_noun_phrases.json"], str(folder)
    ):
        if wanted is None or axis in wanted:
            phrases.setdefault((axis, descriptor), []).append((single, plural, noun))
    if not phrases:
        raise InputError(f"{folder}: no HolisticBias prompts for the axes asked for ({', '.join(wanted or [])})")
    # Choose (phrase, template) pairs first and format only the chosen ones: the full grid has over half a
    # million sentences, and building them all to keep twenty per descriptor would cost seconds.
    by_group: dict[tuple[str, str], list[tuple[str, str, str, str]]] = {
        key: [(single, plural, noun, t)
              for single, plural, noun in group for t in (any_phrase if noun else with_adjective)]
        for key, group in phrases.items()
    }
    prompts = []
    for (axis, descriptor), chosen in zip(by_group, _sample(by_group, per_group, seed)):
        for single, plural, noun, template in chosen:
            try:
                text = template.format(noun_phrase=single, plural_noun_phrase=plural)
            except (KeyError, IndexError, ValueError) as exc:
                raise InputError(f"{folder / 'sentence_templates.json'}: bad template {template!r}: {exc}") from exc
            prompts.append(AuditPrompt(text, axis, descriptor, f"{template}|{noun}"))
    digest = hashlib.sha256(b"".join(raws[name] for name in HOLISTIC_BIAS_FILES)).hexdigest()
    return PromptSet("holistic_bias", str(folder), digest, tuple(prompts), CC_BY_SA)


# -- BOLD ------------------------------------------------------------------------------------------------


def load_bold(path: Path, *, per_group: int | None = 20, axes: Iterable[str] | None = None, seed: int = 0) -> PromptSet:
    """BOLD prompts: the domain (from ``<domain>_prompt.json``) is the axis, the subgroup the group.

    BOLD's prompts are Wikipedia sentence starts about different people per group, so they are not
    counterfactual pairs: the ``template`` key is the person or topic the prompt came from. Trailing spaces are
    stripped (a generator should choose the next word's spacing itself).
    """
    paths = sorted(path.glob("*_prompt.json")) if path.is_dir() else [path]
    if not paths:
        raise InputError(f"{path}: no BOLD *_prompt.json files")
    wanted = set(axes) if axes else None
    by_group: dict[tuple[str, str], list[AuditPrompt]] = {}
    digest = hashlib.sha256()
    for file in paths:
        raw = _read(file)
        digest.update(raw)
        domain = file.name.removesuffix(".json").removesuffix("_prompt")
        if wanted is not None and domain not in wanted:
            continue
        data = _json(raw, file)
        if not isinstance(data, dict) or not data:
            raise InputError(f"{file}: not a BOLD prompt file (expected subgroup -> name -> list of prompts)")
        for subgroup, people in data.items():
            if not isinstance(people, dict):
                raise InputError(f"{file}: {subgroup}: expected a mapping of names to prompt lists")
            for name, prompts in people.items():
                if not isinstance(prompts, list) or not all(isinstance(p, str) for p in prompts):
                    raise InputError(f"{file}: {subgroup}.{name}: expected a list of prompt strings")
                by_group.setdefault((domain, subgroup), []).extend(
                    AuditPrompt(p.strip(), domain, subgroup, name) for p in prompts if p.strip()
                )
    if not by_group:
        raise InputError(f"{path}: no BOLD prompts for the axes asked for ({', '.join(wanted or [])})")
    prompts = [p for chosen in _sample(by_group, per_group, seed) for p in chosen]
    return PromptSet("bold", str(path), digest.hexdigest(), tuple(prompts), CC_BY_SA)


# -- resolving a name ------------------------------------------------------------------------------------


def load_prompt_set(
    spec: str,
    *,
    per_group: int | None = 20,
    axes: Iterable[str] | None = None,
    seed: int = 0,
    download: bool = False,
) -> PromptSet:
    """Resolve a prompt-set name as the command line gives it (see the module docstring)."""
    axes = list(axes) if axes else None
    name, _, where = spec.partition(":")
    key = name.lower().replace("-", "_")
    if key == "templates" and not where:
        return _limit(shipped_templates(axes), per_group, seed)
    if key in ("holistic_bias", "bold"):
        from guard.bias.datasets import fetch

        folder = Path(where).expanduser() if where else fetch(key, download=download)
        if key == "holistic_bias":
            return load_holistic_bias(folder, per_group=per_group, axes=axes, seed=seed)
        return load_bold(folder, per_group=per_group, axes=axes, seed=seed)
    path = Path(spec).expanduser()
    if path.is_dir():
        if all((path / f).is_file() for f in HOLISTIC_BIAS_FILES):
            return load_holistic_bias(path, per_group=per_group, axes=axes, seed=seed)
        if any(path.glob("*_prompt.json")):
            return load_bold(path, per_group=per_group, axes=axes, seed=seed)
        raise InputError(f"{path}: a folder, but neither HolisticBias v1.1 nor BOLD prompts")
    if not path.exists():
        raise InputError(
            f"{spec}: no such prompt set (use templates, holistic-bias[:FOLDER], bold[:PATH], or a file)"
        )
    if path.suffix == ".jsonl":
        return _limit(load_jsonl(path, axes), per_group, seed)
    if path.suffix in (".json", ".yaml", ".yml"):
        if path.name.endswith("_prompt.json"):
            return load_bold(path, per_group=per_group, axes=axes, seed=seed)
        return _limit(load_template_file(path, axes), per_group, seed)
    raise InputError(f"{path}: unknown prompt file type (expected .json, .yaml, .yml or .jsonl)")


def _limit(prompt_set: PromptSet, per_group: int | None, seed: int) -> PromptSet:
    by_group: dict[tuple[str, str], list[AuditPrompt]] = {}
    for p in prompt_set.prompts:
        by_group.setdefault((p.axis, p.group), []).append(p)
    prompts = tuple(p for chosen in _sample(by_group, per_group, seed) for p in chosen)
    return PromptSet(prompt_set.name, prompt_set.source, prompt_set.sha256, prompts, prompt_set.license)


def _sample(by_group: dict[Any, list[Any]], per_group: int | None, seed: int) -> list[list[Any]]:
    """Up to ``per_group`` items from each group (in group order), stable on rerun.

    Every group draws from a fresh generator with the same seed, so groups with equally many prompts keep the
    same positions: a sampled counterfactual grid is still a grid (same templates in every group).
    """
    out = []
    for items in by_group.values():
        if per_group is not None and len(items) > per_group:
            rng = random.Random(seed)
            items = [items[i] for i in sorted(rng.sample(range(len(items)), per_group))]
        out.append(items)
    return out


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError as exc:
        raise InputError(f"{path}: file not found") from exc
    except OSError as exc:
        raise InputError(f"{path}: cannot read: {exc.strerror}") from exc


def _json(raw: bytes, path: Path) -> Any:
    try:
        return json.loads(raw)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: not UTF-8 text (byte {exc.start})") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: line {exc.lineno}: malformed JSON: {exc.msg}") from exc
