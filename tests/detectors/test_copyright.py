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


# -- paraphrase matching with a sentence encoder (a tiny random-weight one; real numbers: docs/evidence.md) --------


@pytest.fixture(scope="module")
def encoder_dir(tmp_path_factory):
    from guard.demo.tiny_models import build_tiny_sentence_encoder

    return build_tiny_sentence_encoder(tmp_path_factory.mktemp("encoder"))


@pytest.fixture
def semantic_registry(tmp_path, cli, encoder_dir):
    work = tmp_path / "tale.txt"
    work.write_text(TALE, encoding="utf-8")
    result = cli("works", "add", work, "--name", "A Tale of Two Cities", "--works", tmp_path / "works",
                 "--semantic-model", encoder_dir, "--json")
    assert result.exit_code == 0, result.stderr
    return tmp_path / "works"


def test_paraphrase_score_names_the_closest_work_window(semantic_registry, encoder_dir):
    from detectors.copyright import SEMANTIC_WINDOW, windows
    from detectors.fingerprints import words
    from detectors.sentence_encoder import SentenceEncoder

    detector = CopyrightDetector(str(semantic_registry), semantic_model=str(encoder_dir))
    second_window = windows(words(TALE), *SEMANTIC_WINDOW)[1][1]  # a work window, word for word
    scores = detector.score([second_window, "Too short to score.", benign_texts()[0]])
    by_label = [{s.label: s for s in row} for row in scores]
    copy = by_label[0]["paraphrase"]
    assert copy.value == pytest.approx(1.0, abs=1e-5)
    starts = [start for start, _ in windows(words(TALE), *SEMANTIC_WINDOW)]
    assert copy.details["work"] == "A Tale of Two Cities" and copy.details["work_word"] in starts
    assert copy.details["cosine"] == pytest.approx(1.0, abs=1e-4)
    assert by_label[1]["paraphrase"].value == 0.0 and not by_label[1]["paraphrase"].details
    assert "paraphrase" in copy.model and "@" in copy.model  # the encoder is named by its weights hash
    # The batched score is the best cosine between the output's windows and the work's, one window at a time.
    one = SentenceEncoder(encoder_dir, batch_size=1)
    work = one.encode([chunk for _, chunk in windows(words(TALE), *SEMANTIC_WINDOW)])
    out = one.encode([chunk for _, chunk in windows(words(benign_texts()[0]), *SEMANTIC_WINDOW)])
    assert by_label[2]["paraphrase"].value == pytest.approx(float((out @ work.T).max()), abs=1e-5)


def test_registry_without_embeddings_for_the_model_is_refused(registry, encoder_dir, tmp_path, cli):
    detector = CopyrightDetector(str(registry), semantic_model=str(encoder_dir))
    with pytest.raises(ValueError, match="no embeddings from .* register them again"):
        detector.score(["any text at all"])
    # Adding the same file again with the model embeds the existing work.
    again = cli("works", "add", tmp_path / "tale.txt", "--works", registry, "--semantic-model", encoder_dir,
                "--json")
    assert again.exit_code == 0 and again.json["works"][0]["new"] is False
    assert detector.score([TALE[:400]])[0][-1].label == "paraphrase"


def test_only_mean_pooling_is_accepted(tmp_path, cli):
    from guard.demo.tiny_models import build_tiny_sentence_encoder

    cls_encoder = build_tiny_sentence_encoder(tmp_path / "cls", pooling_mode="cls")
    work = tmp_path / "tale.txt"
    work.write_text(TALE, encoding="utf-8")
    result = cli("works", "add", work, "--works", tmp_path / "works", "--semantic-model", cls_encoder)
    assert result.exit_code == 2 and "only mean pooling" in result.stderr
