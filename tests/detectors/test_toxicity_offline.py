"""The offline toxicity scorer: the Keras BiLSTM read without Keras, the SVM behind a hash check, the combiner,
the detector, its policy fallback, and the ``guard toxicity`` commands.

Tiny stand-ins of both registry packages are built here in the real file formats (a Keras 3 ``.weights.h5``, a
pickled Keras ``Tokenizer``, joblib files of a fitted scikit-learn SVM) and found on ``sys.path`` like installed
packages, so the real loading code runs. One optional test (``weights``) loads the real packages.
"""

from __future__ import annotations

import csv
import hashlib
import json
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
joblib = pytest.importorskip("joblib")

from detectors._hf import ModelUnavailableError  # noqa: E402
from detectors.offline_toxicity import bilstm, combiner as combiners, identity, packages, training  # noqa: E402
from detectors.offline_toxicity.detector import OfflineToxicityDetector  # noqa: E402

TOXIC = ["you are a stupid idiot", "shut up you idiot", "stupid moron go away", "you idiot loser",
         "what a stupid moron", "idiot idiot idiot", "you are trash and stupid", "go away loser"]
KIND = ["have a nice day", "thank you friend", "what a lovely morning", "see you soon friend",
        "the weather is nice", "thanks for the help", "a lovely day to you", "nice to meet you"]
VOCAB = sorted({w for t in TOXIC + KIND for w in t.split()} | {"gay", "man", "muslim", "woman", "i", "am", "a"})
KERAS_MODULE = "keras.src.legacy.preprocessing.text"


# -- fixtures: tiny packages in the real formats -----------------------------------------------------------


def _tokenizer_pickle(path: Path, word_index: dict[str, int], num_words: int) -> None:
    """Pickle an object that unpickles as ``keras...Tokenizer`` (a fake module stands in while pickling)."""
    module = types.ModuleType(KERAS_MODULE)

    class Tokenizer:
        pass

    Tokenizer.__module__, Tokenizer.__qualname__ = KERAS_MODULE, "Tokenizer"
    module.Tokenizer = Tokenizer
    tok = Tokenizer()
    from collections import OrderedDict, defaultdict

    tok.__dict__.update(word_counts=OrderedDict((w, 1) for w in word_index), word_docs=defaultdict(int),
                        filters='!"#$%&()*+,-./:;<=>?@[\\]^_`{|}~\t\n', split=" ", lower=True, num_words=num_words,
                        document_count=1, char_level=False, oov_token=None, index_docs=defaultdict(int),
                        word_index=dict(word_index), index_word={i: w for w, i in word_index.items()}, analyzer=None)
    parts = KERAS_MODULE.split(".")
    fakes = {".".join(parts[:n]): types.ModuleType(".".join(parts[:n])) for n in range(1, len(parts))}
    fakes[KERAS_MODULE] = module
    assert not set(fakes) & set(sys.modules)
    sys.modules.update(fakes)
    try:
        path.write_bytes(pickle.dumps(tok, protocol=5))
    finally:
        for name in fakes:
            del sys.modules[name]


def _keras_weights(path: Path, rng: np.random.Generator, vocab: int, dim: int = 6, units: int = 4,
                   hidden: int = 5) -> dict[str, np.ndarray]:
    """A Keras 3 weights file with the BiLSTM's layout; "stupid"-like words get a toxic direction."""
    arrays = {
        "layers/embedding/vars/0": rng.normal(0, 0.5, (vocab, dim)),
        "layers/dense/vars/0": rng.normal(0, 0.5, (2 * units, hidden)),
        "layers/dense/vars/1": rng.normal(0, 0.1, (hidden,)),
        "layers/dense_1/vars/0": rng.normal(0, 0.5, (hidden, 6)),
        "layers/dense_1/vars/1": rng.normal(0, 0.1, (6,)),
    }
    for side in ("forward_layer", "backward_layer"):
        base = f"layers/bidirectional/{side}/cell/vars"
        arrays[f"{base}/0"] = rng.normal(0, 0.5, (dim, 4 * units))
        arrays[f"{base}/1"] = rng.normal(0, 0.5, (units, 4 * units))
        arrays[f"{base}/2"] = rng.normal(0, 0.1, (4 * units,))
    with h5py.File(path, "w") as f:
        for name, value in arrays.items():
            f.create_dataset(name, data=value.astype(np.float32))
        f.create_group("optimizer/vars")
    return {k: v.astype(np.float32) for k, v in arrays.items()}


@pytest.fixture(scope="module")
def fake_packages(tmp_path_factory):
    """Both registry packages' files, tiny, in a folder to put on ``sys.path``; returns (root, BILSTM, LEXICAL)."""
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.svm import LinearSVC

    root = tmp_path_factory.mktemp("site")
    model = root / "toxic_classifier" / "model"
    model.mkdir(parents=True)
    (root / "toxic_classifier" / "__init__.py").write_text("raise ImportError('never imported')\n")
    word_index = {w: i + 1 for i, w in enumerate(VOCAB)}
    _tokenizer_pickle(model / "tokenizer.pickle", word_index, num_words=len(VOCAB) + 1)
    _keras_weights(model / "model.weights.h5", np.random.default_rng(0), vocab=len(VOCAB) + 1)
    data = root / "profanity_check" / "data"
    data.mkdir(parents=True)
    (root / "profanity_check" / "__init__.py").write_text("raise ImportError('never imported')\n")
    vectorizer = TfidfVectorizer().fit(TOXIC + KIND)
    svm = CalibratedClassifierCV(LinearSVC(), cv=2).fit(vectorizer.transform(TOXIC + KIND), [1] * 8 + [0] * 8)
    joblib.dump(vectorizer, data / "vectorizer.joblib")
    joblib.dump(svm, data / "model.joblib")

    def pinned(pkg: packages.Package, folder: Path) -> packages.Package:
        files = {name: hashlib.sha256((folder / name).read_bytes()).hexdigest() for name in pkg.files}
        return packages.Package(pkg.distribution, pkg.module, pkg.version, pkg.license, files, pkg.install)

    return root, pinned(packages.BILSTM, root / "toxic_classifier"), pinned(packages.LEXICAL, root / "profanity_check")


@pytest.fixture
def installed(fake_packages, monkeypatch):
    """The tiny packages installed: on ``sys.path`` and pinned by their own hashes."""
    root, bilstm_pkg, lexical_pkg = fake_packages
    monkeypatch.syspath_prepend(str(root))
    monkeypatch.setattr(packages, "BILSTM", bilstm_pkg)
    monkeypatch.setattr(packages, "LEXICAL", lexical_pkg)
    return root


@pytest.fixture(scope="module")
def labelled_csv(tmp_path_factory):
    path = tmp_path_factory.mktemp("data") / "labelled.csv"
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["text", "label"])
        for i in range(3):
            writer.writerows([(f"{t} {'now' if i else ''}".strip(), 1) for t in TOXIC])
            writer.writerows([(f"{t} {'now' if i else ''}".strip(), 0) for t in KIND])
    return path


@pytest.fixture
def combiner_file(installed, labelled_csv, tmp_path):
    from detectors.offline_toxicity.detector import load_scorer
    from detectors.offline_toxicity.scorer import Settings

    scorer = load_scorer(None, Settings(precision="float32"))
    # logistic: free to lean on the SVM, which separates the tiny data (the tiny BiLSTM is random)
    report = training.train(scorer, [training.read_labelled(labelled_csv)], kind="logistic", holdout=0.25,
                            seed=0, target_fpr=0.05)
    path = tmp_path / "combiner.json"
    report.combiner.save(path)
    return path


# -- the Keras tokenizer and network, read without Keras ---------------------------------------------------


def test_word_index_splits_like_keras(tmp_path):
    path = tmp_path / "tok.pickle"
    _tokenizer_pickle(path, {"the": 1, "cat": 2, "sat": 3, "rare": 7}, num_words=5)
    index = bilstm.read_word_index(path)
    assert KERAS_MODULE not in sys.modules  # read without the Keras class
    # lower-cased, punctuation is a separator, unknown words and ids >= num_words are dropped
    assert index.sequence("The CAT, sat!the-dog rare") == [1, 2, 3, 1]
    assert index.sequence("") == []


def test_tokenizer_pickle_that_would_run_code_is_refused(tmp_path):
    import os

    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps(os.system))
    with pytest.raises(ValueError, match=r"refusing to load (posix|nt)\.system"):
        bilstm.read_word_index(path)


def _keras_lstm(x: np.ndarray, kernel: np.ndarray, recurrent: np.ndarray, bias: np.ndarray) -> np.ndarray:
    """Keras' LSTM cell in numpy (gates i, f, c, o; one bias), returning every step's output."""
    units = recurrent.shape[0]
    h, c = np.zeros(units), np.zeros(units)
    out = []
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    for step in x:
        z = step @ kernel + h @ recurrent + bias
        i, f, g, o = (z[k * units:(k + 1) * units] for k in range(4))
        c = sig(f) * c + sig(i) * np.tanh(g)
        h = sig(o) * np.tanh(c)
        out.append(h)
    return np.array(out)


def test_network_computes_what_keras_computes(tmp_path):
    """The torch port against Keras' equations written out in numpy, on a padded sequence."""
    import torch

    arrays = _keras_weights(tmp_path / "w.h5", np.random.default_rng(1), vocab=12)
    net = bilstm.build_network(bilstm.read_weights(tmp_path / "w.h5"))
    ids = bilstm.pad([[3, 5, 7, 11, 2]], length=9)
    assert ids.tolist() == [[0, 0, 0, 0, 3, 5, 7, 11, 2]]  # Keras pads before the ids
    x = arrays["layers/embedding/vars/0"][ids[0]].astype(np.float64)
    fw = _keras_lstm(x, *(arrays[f"layers/bidirectional/forward_layer/cell/vars/{i}"] for i in range(3)))
    bw = _keras_lstm(x[::-1], *(arrays[f"layers/bidirectional/backward_layer/cell/vars/{i}"] for i in range(3)))[::-1]
    pooled = np.concatenate([fw, bw], axis=1).max(axis=0)
    hidden = np.maximum(pooled @ arrays["layers/dense/vars/0"] + arrays["layers/dense/vars/1"], 0)
    expected = hidden @ arrays["layers/dense_1/vars/0"] + arrays["layers/dense_1/vars/1"]
    with torch.inference_mode():
        got = net(torch.from_numpy(ids)).double().numpy()[0]
    np.testing.assert_allclose(got, expected, atol=1e-5)


def test_weights_of_another_shape_are_refused(tmp_path):
    path = tmp_path / "w.h5"
    _keras_weights(path, np.random.default_rng(0), vocab=10)
    with h5py.File(path, "a") as f:
        del f["layers/dense_1/vars/1"]
        f.create_dataset("layers/dense_1/vars/1", data=np.zeros(3, dtype=np.float32))
    with pytest.raises(ValueError, match="out_bias has shape"):
        bilstm.read_weights(path)
    with pytest.raises(ValueError, match="not the BiLSTM's Keras weights"):
        bilstm.read_weights(tmp_path / "missing.h5")


def test_long_sequences_are_windowed_to_the_end():
    ids = list(range(1, 251))
    parts = bilstm.windows(ids, length=100, overlap=20)
    assert [p[0] for p in parts] == [1, 81, 151] and parts[-1][-1] == 250
    assert all(len(p) == 100 for p in parts)
    assert bilstm.windows([1, 2], length=100) == [[1, 2]]


# -- package files: located without import, pinned by hash --------------------------------------------------


def test_missing_package_is_reported_with_the_install_command(monkeypatch):
    monkeypatch.setattr(packages, "BILSTM", packages.Package("toxic-comment-classifier", "no_such_module_xyz",
                                                             "0", "MIT", {"a": "0"}, "pip install it"))
    detector = OfflineToxicityDetector()
    assert detector.unavailable() == "toxic-comment-classifier is not installed (pip install it)"
    with pytest.raises(ModelUnavailableError, match="not installed"):
        detector.score(["hello"])


def test_a_changed_file_is_refused_before_it_is_unpickled(installed, fake_packages, monkeypatch):
    _, _, lexical_pkg = fake_packages
    wrong = {**lexical_pkg.files, "data/model.joblib": "0" * 64}
    monkeypatch.setattr(packages, "LEXICAL", packages.Package(lexical_pkg.distribution, lexical_pkg.module,
                                                              lexical_pkg.version, "MIT", wrong, "reinstall"))
    with pytest.raises(ModelUnavailableError, match=r"model\.joblib: SHA-256 .* is not that of alt-profanity-check"):
        OfflineToxicityDetector().score(["hello"])


# -- combiner, training, detector ----------------------------------------------------------------------------


def test_threshold_at_fpr_allows_at_most_that_share_of_negatives():
    negatives = np.arange(100) / 100
    t = combiners.threshold_at_fpr(negatives, 0.05)
    assert np.mean(negatives >= t) == 0.05
    assert np.mean(np.full(10, 0.3) >= combiners.threshold_at_fpr(np.full(10, 0.3), 0.05)) == 0.0


def test_combiner_files_are_validated(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    with pytest.raises(ValueError, match="not a toxicity combiner"):
        combiners.load(bad)
    bad.write_text(json.dumps({"format": combiners.FORMAT, "kind": "rank-mean", "features": ["lexical"],
                               "calibration": [1, 0], "quantiles": {"lexical": [3, 2, 1]}}))
    with pytest.raises(ValueError, match="quantiles.lexical must be 201 non-decreasing"):
        combiners.load(bad)


def test_training_reports_the_held_out_rows_and_round_trips(combiner_file, labelled_csv):
    fitted = combiners.load(combiner_file)
    assert fitted.kind == "logistic" and set(fitted.thresholds) == {"0.01", "0.05"}
    assert fitted.trained_on[0]["file"] == labelled_csv.name and fitted.trained_on[0]["train_rows"] == 36


@pytest.mark.parametrize("kind", ["rank-mean", "logistic"])
def test_detector_scores_six_labels_and_separates_the_training_texts(installed, labelled_csv, tmp_path, kind):
    from detectors.offline_toxicity.detector import load_scorer
    from detectors.offline_toxicity.scorer import Settings

    report = training.train(load_scorer(None, Settings(precision="float32")), [training.read_labelled(labelled_csv)],
                            kind=kind, holdout=0.0, seed=0, target_fpr=0.05)
    report.combiner.save(tmp_path / "c.json")
    detector = OfflineToxicityDetector(combiner=tmp_path / "c.json", precision="float32", batch_size=3)
    scored = detector.score(TOXIC + KIND)
    assert [s.label for s in scored[0]] == list(bilstm.LABELS)
    assert all(s.detector == "toxicity-offline" and 0 <= s.value <= 1 and s.model == detector.model_id
               for row in scored for s in row)
    toxicity = np.array([row[0].value for row in scored])
    if kind == "logistic":  # free to lean on the SVM, which alone separates these (the tiny BiLSTM is random)
        assert toxicity[:8].min() > toxicity[8:].max()
    else:
        assert toxicity[:8].mean() > toxicity[8:].mean() + 0.1
    assert all(row[5].value <= row[0].value + 1e-12 for row in scored)  # identity_attack never exceeds toxicity
    assert detector.model_id.startswith(f"genguard-offline-toxicity:{kind}@sha256:")


def test_batching_and_windows_do_not_change_scores(installed, combiner_file):
    texts = ["you idiot " * 120, "thanks, see you at the lake", "", "stupid"]
    one = OfflineToxicityDetector(combiner=combiner_file, precision="float32", batch_size=1).score(texts)
    many = OfflineToxicityDetector(combiner=combiner_file, precision="float32", batch_size=64).score(texts)
    assert [s.value for row in one for s in row] == pytest.approx([s.value for row in many for s in row], abs=1e-6)


def test_group_words_are_taken_out_before_scoring():
    assert identity.neutralise("I am a gay man.").split() == ["I", "am", "a", "."]
    assert identity.neutralise("Muslims and Jews, LGBTQ+ folks").split() == ["and", ",", "folks"]
    assert identity.neutralise("you retarded idiot") == "you retarded idiot"  # a group word used as an insult


def test_neutralising_makes_group_words_irrelevant(installed, combiner_file):
    on = OfflineToxicityDetector(combiner=combiner_file, precision="float32")
    off = OfflineToxicityDetector(combiner=combiner_file, precision="float32", neutralise=False)
    texts = ["i am a gay man", "i am a muslim woman", "i am a man"]
    with_mitigation = [row[0].value for row in on.score(texts)]
    assert with_mitigation[0] == pytest.approx(with_mitigation[1]) == pytest.approx(with_mitigation[2])
    assert len({round(row[0].value, 6) for row in off.score(texts)}) > 1


# -- policy fallback, policy check, scan, CLI ------------------------------------------------------------------

POLICY = """
name: offline-test
stages:
  output:
    - detector: toxicity
      options: {{model: original-small, local_files_only: true}}
      fallback: {{detector: toxicity-offline, options: {{combiner: "{combiner}", precision: float32}}}}
      thresholds: {{toxicity: 0.5}}
      action: block
"""


@pytest.fixture
def offline_policy(combiner_file, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))  # no detoxify checkpoint cached
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY.format(combiner=combiner_file))
    return path


def test_policy_check_names_the_fallback_that_will_run(cli, offline_policy):
    result = cli("policy", "check", offline_policy, "--json")
    assert result.exit_code == 0, result.stderr
    (scorer,) = result.json["scorers"]
    assert scorer["detector"] == "toxicity" and scorer["runs"] == "toxicity-offline"
    assert "not cached" in scorer["reason"]
    human = cli("policy", "check", offline_policy)
    assert "output: toxicity-offline (fallback; toxicity: detoxify 'original-small' is not cached" in human.stdout


def test_guard_pipeline_scores_with_the_fallback_offline(offline_policy, keys, tmp_path):
    from generators.callable import CallableGenerator
    from guard.pipeline.guard import Guard

    guard = Guard(str(offline_policy), log=tmp_path / "log.db", keys=keys)
    kind, toxic = guard.run(CallableGenerator(lambda p: {"kind": "have a nice day", "toxic": "you stupid idiot"}[p]),
                            ["kind", "toxic"])
    assert kind.verdict == "allow" and toxic.verdict == "block"
    assert {s["detector"] for s in kind.scores} == {"toxicity-offline"}
    assert not kind.errors or all(e["detector"] == "toxicity" for e in kind.errors)


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


# -- the real packages, when installed ------------------------------------------------------------------------


@pytest.mark.weights
def test_real_packages_score_real_text():
    detector = OfflineToxicityDetector(precision="float32")
    if detector.unavailable():
        pytest.skip(detector.unavailable())
    texts = ["Thank you for your help, have a nice day!", "you are a stupid fucking idiot", "I am a gay man."]
    toxicity = [row[0].value for row in detector.score(texts)]
    assert toxicity[0] < 0.3 and toxicity[1] > 0.9
    assert toxicity[2] < 0.5  # the identity-term mitigation at work: the BiLSTM alone gives 0.85
