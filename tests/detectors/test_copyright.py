"""Protected works: ``guard works add`` registers them; the ``copyright`` detector names the work an output copies,
and a policy that blocks on it blocks the output (and logs why)."""

from __future__ import annotations

import textwrap

import pytest

from detectors.copyright import CopyrightDetector, WorksStore
from tests.fixtures.mixed_log import TALE, benign_texts, lightly_edited


@pytest.fixture
def registry(tmp_path, cli):
    work = tmp_path / "tale.txt"
    work.write_text(TALE, encoding="utf-8")
    result = cli("works", "add", work, "--name", "A Tale of Two Cities", "--works", tmp_path / "works", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json["works"][0]["new"] is True
    return tmp_path / "works"


def test_registration_is_idempotent_and_listed(registry, cli, tmp_path):
    again = cli("works", "add", tmp_path / "tale.txt", "--works", registry, "--json")
    assert again.json["works"][0]["new"] is False
    listed = cli("works", "list", "--works", registry, "--json").json["works"]
    assert [(w["name"], w["kind"]) for w in listed] == [("A Tale of Two Cities", "text")]
    assert cli("works", "list", "--works", tmp_path / "elsewhere").exit_code == 2


def test_registry_holds_fingerprints_not_the_work(registry):
    raw = (registry / "works.db").read_bytes()
    assert b"best of times" not in raw and b"superlative degree" not in raw


@pytest.mark.parametrize("output,label", [
    (TALE[:500], "verbatim"),
    ("As the novel begins: " + TALE[120:800] + " That is all I remember.", "verbatim"),
    (lightly_edited(TALE), "near_duplicate"),
])
def test_reproductions_are_caught_and_named(registry, output, label):
    scores = {s.label: s for s in CopyrightDetector(str(registry)).score([output])[0]}
    assert scores[label].value >= 0.8
    assert scores[label].details["work"] == "A Tale of Two Cities"


def test_unrelated_text_scores_low(registry):
    detector = CopyrightDetector(str(registry))
    for scores in detector.score(benign_texts()):
        assert all(s.value < 0.5 for s in scores), [(s.label, s.value) for s in scores]


def test_new_works_are_seen_without_a_restart(registry, tmp_path):
    detector = CopyrightDetector(str(registry))
    poem = ("Tyger Tyger, burning bright, In the forests of the night; What immortal hand or eye, "
            "Could frame thy fearful symmetry? In what distant deeps or skies, Burnt the fire of thine eyes?")
    assert detector.score([poem])[0][0].value < 1.0
    store = WorksStore(registry)
    store.add_text("The Tyger", poem)
    store.close()
    scores = {s.label: s for s in detector.score([poem])[0]}
    assert scores["verbatim"].value == 1.0 and scores["verbatim"].details["work"] == "The Tyger"


def test_image_works(tmp_path):
    from PIL import Image
    from skimage import data as skdata

    store = WorksStore(tmp_path / "works", create=True)
    store.add_image("Coffee cup", Image.fromarray(skdata.coffee()))
    store.close()
    detector = CopyrightDetector(str(tmp_path / "works"))
    copy = Image.fromarray(skdata.coffee()).resize((300, 200))
    other = Image.fromarray(skdata.astronaut())
    near, far = (detector.score([img])[0][0] for img in (copy, other))
    assert near.value >= 0.9 and near.details["work"] == "Coffee cup"
    assert far.value < 0.8


def test_policy_blocks_a_reproduction(registry, tmp_path, keys):
    from guard.pipeline.guard import Guard
    from guard.policy import parse

    policy = parse(textwrap.dedent(f"""
        name: no-copies
        stages:
          output:
            - detector: copyright
              options: {{works: "{registry}"}}
              thresholds: {{verbatim: 1.0, near_duplicate: 0.8}}
              action: block
        """))
    guard = Guard(policy, log=tmp_path / "log.db", keys=keys)
    generate = guard.wrap(lambda prompt: prompt)
    copied = generate("Sure! Here is the opening you asked for. " + TALE[:600])
    assert copied.blocked and copied.artifact is None
    logged = guard.log.get(copied.index).data
    assert logged["verdict"] == "block" and logged["actions"] == ["output:block"]
    verbatim = next(s for s in logged["scores"] if s["label"] == "verbatim")
    assert verbatim["details"]["work"] == "A Tale of Two Cities" and verbatim["details"]["words"] >= 40
    fine = generate(benign_texts()[0])
    assert fine.verdict == "allow" and fine.artifact == benign_texts()[0]


def test_bad_options(tmp_path):
    with pytest.raises(FileNotFoundError, match="no works registry"):
        CopyrightDetector(str(tmp_path / "none"))
    WorksStore(tmp_path / "w", create=True).close()
    with pytest.raises(ValueError, match="verbatim_words must be at least 8"):
        CopyrightDetector(str(tmp_path / "w"), verbatim_words=3)
