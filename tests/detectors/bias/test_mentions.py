from __future__ import annotations

import json

import pytest

from detectors.bias.mentions import MentionFinder, find_mentions
from detectors.bias.terms import AXES, load_terms, parse_terms


def ids(text: str) -> list[str]:
    return [m.group.id for m in find_mentions(text)]


def test_shipped_terms_cover_every_axis_of_the_issue():
    terms = load_terms()
    assert terms.axes == AXES
    for axis in AXES:
        assert len(terms.by_axis(axis)) >= 3, axis


def test_every_template_phrase_is_detected_as_its_own_group():
    """Templates and mention detection name the same groups, so audited prompts and logged outputs agree."""
    finder = MentionFinder()
    for group in load_terms().groups:
        for phrase in (group.subject, group.people):
            assert group.id in [g.id for g in finder.groups(phrase)], (group.id, phrase)


def test_multiword_terms_win_over_their_parts_and_join_by_hyphen():
    assert ids("African American voters") == ["race_ethnicity/black"]  # not also nationality/american
    assert ids("two Asian-American women") == ["race_ethnicity/asian", "gender_and_sex/women"]
    assert ids("Asian, American people") == ["race_ethnicity/asian", "nationality/american"]


def test_ambiguous_adjectives_need_a_person_noun():
    assert ids("The black car is old and the service was poor.") == []
    assert ids("an old white man") == ["age/old", "race_ethnicity/white", "gender_and_sex/men"]
    assert ids("poor families") == ["socioeconomic_class/poor"]
    assert ids("old, white man") == ["race_ethnicity/white", "gender_and_sex/men"]  # the comma breaks the phrase


def test_word_boundaries_case_and_symbols():
    assert ids("MUSLIMS and Jews") == ["religion/muslim", "religion/jewish"]
    assert ids("Gayle and Jewelry") == []
    assert ids("LGBTQ+ rights") == ["sexual_orientation/queer"]
    found = find_mentions("I met a Deaf Latina.")
    assert [(m.term, m.start, m.end) for m in found] == [("Deaf", 8, 12), ("Latina", 13, 19)]


def test_a_custom_term_file(tmp_path):
    path = tmp_path / "terms.json"
    path.write_text(json.dumps({
        "person_nouns": ["fan", "fans"],
        "axes": {"sport": {"cyclists": {"subject": "a cyclist", "people": "cyclists", "terms": ["cyclists"],
                                        "adjectives": ["cycling"]}}},
    }))
    finder = MentionFinder(load_terms(path))
    assert [g.id for g in finder.groups("cycling fans and cyclists")] == ["sport/cyclists"]
    assert finder.groups("a cycling race") == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"axes": {}}, "non-empty 'axes'"),
        ({"axes": {"a": {"g": {"people": "gs"}}}}, r"axes.a.g: 'subject' must be a non-empty string"),
        ({"axes": {"a": {"g": {"subject": "a g", "people": "gs", "terms": "g"}}}}, "'terms' must be a list"),
        ({"axes": {"a": {"g": {"subject": "a g", "people": "gs", "adjectives": ["x"]}}}}, "person_nouns"),
    ],
)
def test_bad_term_lists_name_the_group_and_field(data, message):
    with pytest.raises(ValueError, match=message):
        parse_terms(data, source="t.json")
