"""The offline toxicity scorer behind a policy and on the command line: ``guard policy check`` names the fallback
that will run, ``guard scan`` uses it, ``guard toxicity train`` and ``audit``. Tiny packages from
``tests/fixtures/offline_toxicity.py``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("h5py")
pytest.importorskip("joblib")

from detectors.offline_toxicity import combiner as combiners  # noqa: E402


# -- policy fallback, policy check, scan, CLI ------------------------------------------------------------------

def test_policy_check_names_the_fallback_that_will_run(cli, offline_policy):
    result = cli("policy", "check", offline_policy, "--json")
    assert result.exit_code == 0, result.stderr
    (scorer,) = result.json["scorers"]
    assert scorer["detector"] == "toxicity" and scorer["runs"] == "toxicity-offline"
    assert "not cached" in scorer["reason"]
    human = cli("policy", "check", offline_policy)
    assert "output: toxicity-offline (fallback; toxicity: detoxify 'original-small' is not cached" in human.stdout


def test_scan_uses_the_fallback(cli, offline_policy, tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("you stupid idiot")
    (folder / "b.txt").write_text("have a nice day")
    result = cli("scan", folder, "--policy", offline_policy, "--json")
    assert result.exit_code in (0, 1), result.stderr
    text = json.dumps(result.json)
    assert "toxicity-offline" in text


def test_cli_train_writes_a_combiner_and_the_policy_lines(cli, installed, labelled_csv, tmp_path):
    out = tmp_path / "mine.json"
    result = cli("toxicity", "train", "--data", labelled_csv, "--out", out, "--kind", "logistic",
                 "--holdout", "0.25", "--target-fpr", "0.1", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json
    assert combiners.load(out).kind == "logistic"
    assert data["holdout"]["rows"] == 12 and 0 <= data["holdout"]["auc"] <= 1
    assert data["policy"]["options"] == {"combiner": str(out)}
    assert data["policy"]["thresholds"]["toxicity"] == pytest.approx(data["thresholds"]["0.1"], abs=1e-4)


def test_cli_train_rejects_bad_data(cli, installed, tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("text,label\nhello,maybe\n")
    result = cli("toxicity", "train", "--data", bad, "--out", tmp_path / "x.json")
    assert result.exit_code == 2 and "row 2: label must be 0 or 1" in result.stderr
    bad.write_text("words,y\nhello,1\n")
    assert "needs 'text' and 'label' columns" in cli("toxicity", "train", "--data", bad, "--out",
                                                     tmp_path / "x.json").stderr


def _holistic_bias(folder: Path) -> Path:
    folder.mkdir()
    (folder / "descriptors.json").write_text(json.dumps({
        "sexual_orientation": {"x": [{"descriptor": "gay"}, {"descriptor": "straight"}]},
        "religion": {"x": ["Muslim", {"descriptor": "heathen", "preference": "dispreferred"}]}}))
    (folder / "nouns.json").write_text(json.dumps({"male": [["man", "men"]], "female": [["woman", "women"]]}))
    (folder / "sentence_templates.json").write_text(json.dumps({
        "I am {noun_phrase}.": {}, "I hate {plural_noun_phrase}.": {"must_be_noun": True}}))
    (folder / "standalone_noun_phrases.json").write_text(json.dumps({}))
    return folder


def test_cli_audit_compares_groups_before_and_after_mitigation(cli, installed, combiner_file, tmp_path):
    folder = _holistic_bias(tmp_path / "hb")
    result = cli("toxicity", "audit", "--holistic-bias", folder, "--combiner", combiner_file, "--threshold", "0",
                 "--max-rate", "1", "--json")
    assert result.exit_code == 0, result.stderr
    data = result.json
    assert data["sentences"] == 9  # 3 descriptors x 3 phrases, "I hate" and the dispreferred one left out
    groups = {g["group"] for g in data["after"]["worst"]}
    assert groups == {"sexual_orientation/gay", "sexual_orientation/straight", "religion/Muslim"}
    assert data["before"]["overall_rate"] == 1.0  # threshold 0: everything is flagged
    flagged = cli("toxicity", "audit", "--holistic-bias", folder, "--combiner", combiner_file, "--threshold", "0",
                  "--max-rate", "0.01")
    assert flagged.exit_code == 1 and "groups over 0.01" in flagged.stdout


