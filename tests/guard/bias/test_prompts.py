from __future__ import annotations

import dataclasses
import json
from collections import Counter, defaultdict

import pytest

from detectors.bias.terms import AXES, load_terms
from guard.bias import datasets
from guard.bias.prompts import load_bold, load_holistic_bias, load_prompt_set, shipped_templates
from core.errors import InputError


def test_shipped_templates_are_a_counterfactual_grid_over_every_axis():
    prompt_set = shipped_templates()
    assert prompt_set.axes == list(AXES)
    groups = load_terms().groups
    assert len(prompt_set.groups) == len(groups)
    by_template = defaultdict(list)
    for p in prompt_set.prompts:
        by_template[p.template].append(p)
    for template, prompts in by_template.items():
        assert sorted(p.group_id for p in prompts) == sorted(g.id for g in groups), template
        assert len({p.text for p in prompts}) == len(prompts)  # the group phrase is the only difference


def test_sampling_keeps_the_grid_and_is_stable():
    first = load_prompt_set("templates", per_group=3, axes=["religion", "age"], seed=7)
    again = load_prompt_set("templates", per_group=3, axes=["religion", "age"], seed=7)
    assert first.prompts == again.prompts
    assert set(Counter(p.group_id for p in first.prompts).values()) == {3}
    templates = {g: {p.template for p in first.prompts if p.group_id == g} for g in first.groups}
    assert len({frozenset(t) for t in templates.values()}) == 1  # every group got the same three templates


def test_holistic_bias_loads_and_expands(holistic_bias_dir):
    raw = json.loads((holistic_bias_dir / "descriptors.json").read_text())
    nouns = json.loads((holistic_bias_dir / "nouns.json").read_text())
    templates = json.loads((holistic_bias_dir / "sentence_templates.json").read_text())
    standalone = json.loads((holistic_bias_dir / "standalone_noun_phrases.json").read_text())
    axes = ["religion", "sexual_orientation"]
    full = load_holistic_bias(holistic_bias_dir, per_group=None, axes=axes)
    assert full.license == "CC BY-SA 4.0" and full.axes == axes

    # Every descriptor is a group of its axis.
    def word(item):
        return item if isinstance(item, str) else item["descriptor"]

    expected = {f"{a}/{word(d)}" for a in axes for bucket in raw[a].values() for d in bucket}
    assert expected <= set(full.groups)

    # The grid size follows the dataset's rules: a descriptor alone takes the templates that need no noun; before
    # a noun (of a matching gender, if the descriptor has one) it takes every template; standalone phrases with
    # a {noun} slot take every noun and template, fixed ones only the no-noun templates.
    free = sum(1 for options in templates.values() if not options.get("must_be_noun"))
    all_nouns = [n for pairs in nouns.values() for n in pairs]
    size = 0
    for a in axes:
        for bucket in raw[a].values():
            for d in bucket:
                gender = None if isinstance(d, str) else d.get("gender")
                size += free + len(all_nouns if gender is None else nouns[gender]) * len(templates)
        for phrase in standalone.get(a, []):
            text = phrase if isinstance(phrase, str) else phrase["noun_phrase"]
            size += len(all_nouns) * len(templates) if "{noun}" in text else free
    assert len(full.prompts) == size

    texts = {p.text for p in full.prompts}
    assert "I'm a lesbian grandmother." in texts and "What do you think about gay dads?" in texts
    assert not any(p.group == "lesbian" and p.template.endswith(("|man", "|boy", "|dad")) for p in full.prompts)
    must = {t for t, options in templates.items() if options.get("must_be_noun")}
    assert not any(p.template.split("|")[0] in must and p.template.endswith("|") for p in full.prompts)

    sampled = load_prompt_set(f"holistic-bias:{holistic_bias_dir}", per_group=4, axes=axes)
    assert set(Counter(p.group_id for p in sampled.prompts).values()) == {4}
    assert {p.text for p in sampled.prompts} <= texts


def test_bold_loads_every_domain_and_prompt(bold_dir):
    full = load_bold(bold_dir, per_group=None)
    assert full.axes == ["gender", "political_ideology", "profession", "race", "religious_ideology"]
    total = blank = 0
    for path in bold_dir.glob("*_prompt.json"):
        for people in json.loads(path.read_text()).values():
            for prompts in people.values():
                total += len(prompts)
                blank += sum(not p.strip() for p in prompts)
    assert total == 23_679  # the count BOLD's authors publish
    assert len(full.prompts) == total - blank
    assert "gender/American_actresses" in full.groups and "race/African_Americans" in full.groups
    assert all(p.text == p.text.strip() for p in full.prompts)
    one = load_prompt_set(str(bold_dir / "race_prompt.json"), per_group=5)
    assert one.axes == ["race"] and len(one.prompts) == 20


def test_own_template_file_with_own_groups(tmp_path):
    path = tmp_path / "set.yaml"
    path.write_text(
        "templates:\n  - '{Subject} asked for directions and'\n  - 'We met {people} who'\n"
        "groups:\n  axes:\n    profession:\n"
        "      nurses: {subject: a nurse, people: nurses}\n      pilots: {subject: a pilot, people: pilots}\n"
    )
    prompt_set = load_prompt_set(str(path))
    assert [p.text for p in prompt_set.prompts] == [
        "A nurse asked for directions and", "We met nurses who",
        "A pilot asked for directions and", "We met pilots who",
    ]


def test_jsonl_prompts(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"text": "Tell me about Sikhs.", "axis": "religion", "group": "sikh"}\n\n'
                    '{"text": "Tell me about Hindus.", "axis": "religion", "group": "hindu"}\n')
    assert load_prompt_set(str(path)).groups == ["religion/sikh", "religion/hindu"]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.json", '{"templates": ["{Subject} went",]}', r"bad.json: line 1: malformed JSON"),
        ("bad.json", '{"templates": ["{Subject} met {group}"]}', r"templates\[0\]: unknown placeholder 'group'"),
        ("bad.json", '{"templates": ["no slot here"]}', r"templates\[0\]: template 'no slot here' has no"),
        ("bad.json", '{"prompts": []}', r"bad.json: unknown field 'prompts'"),
        ("bad.json", '{"templates": []}', r"'templates' must be a non-empty list"),
        ("bad.yaml", "templates: [a\n", r"bad.yaml: line 2: malformed YAML"),
        ("bad.jsonl", '{"text": "x", "axis": "a", "group": "g"}\n{"text": "y", "axis": "a"}\n',
         r"bad.jsonl: line 2: 'group' must be a non-empty string"),
        ("bad.txt", "hello", r"unknown prompt file type"),
    ],
)
def test_bad_prompt_files_say_what_and_where(tmp_path, name, content, message):
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        load_prompt_set(str(path))


def test_bad_dataset_folders(tmp_path):
    with pytest.raises(InputError, match="no such prompt set"):
        load_prompt_set(str(tmp_path / "missing.json"))
    with pytest.raises(InputError, match=r"not a HolisticBias v1.1 folder \(missing descriptors.json"):
        load_prompt_set(f"holistic-bias:{tmp_path}")
    (tmp_path / "gender_prompt.json").write_text('{"American_actors": ["not a mapping"]}')
    with pytest.raises(InputError, match="American_actors: expected a mapping of names to prompt lists"):
        load_prompt_set(f"bold:{tmp_path}")


def _local_copy(bold_dir, monkeypatch, **changes):
    """Point the BOLD entry at file:// URLs of the local copy: the real download code, no network."""
    entry = dataclasses.replace(datasets.DATASETS["bold"], base_url=bold_dir.as_uri() + "/", **changes)
    monkeypatch.setitem(datasets.DATASETS, "bold", entry)


def test_download_checks_checksums_and_caches(bold_dir, monkeypatch, tmp_path):
    with pytest.raises(InputError, match="not in the cache .* pass --allow-downloads"):
        load_prompt_set("bold")
    _local_copy(bold_dir, monkeypatch)
    prompt_set = load_prompt_set("bold", per_group=2, download=True)
    assert prompt_set.axes and datasets.cache_dir().joinpath("bold", "race_prompt.json").is_file()
    assert load_prompt_set("bold", per_group=2).prompts == prompt_set.prompts  # now served from the cache


def test_download_refuses_a_changed_file(bold_dir, monkeypatch):
    files = dict(datasets.DATASETS["bold"].files, **{"race_prompt.json": "0" * 64})
    _local_copy(bold_dir, monkeypatch, files=files)
    with pytest.raises(InputError, match="race_prompt.json: checksum .* does not match the pinned 0000"):
        datasets.fetch("bold", download=True)
    assert not datasets.cache_dir().joinpath("bold", "race_prompt.json").exists()
