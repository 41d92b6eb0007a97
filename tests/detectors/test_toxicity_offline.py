"""The offline toxicity scorer: the Keras BiLSTM read without Keras, the SVM behind a hash check, the combiner
and the detector. The tiny packages come from ``tests/fixtures/offline_toxicity.py``; one optional test
(``weights``) loads the real ones."""

from __future__ import annotations

import json
import pickle
import sys

import numpy as np
import pytest

h5py = pytest.importorskip("h5py")
pytest.importorskip("joblib")

from core.errors import ModelUnavailableError  # noqa: E402
from detectors.offline_toxicity import bilstm, combiner as combiners, identity, packages, training  # noqa: E402
from detectors.offline_toxicity.detector import OfflineToxicityDetector  # noqa: E402
from tests.fixtures.offline_toxicity import KERAS_MODULE, KIND, TOXIC, keras_weights, tokenizer_pickle  # noqa: E402


# -- the Keras tokenizer and network, read without Keras ---------------------------------------------------


def test_word_index_splits_like_keras(tmp_path):
    path = tmp_path / "tok.pickle"
    tokenizer_pickle(path, {"the": 1, "cat": 2, "sat": 3, "rare": 7}, num_words=5)
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

    arrays = keras_weights(tmp_path / "w.h5", np.random.default_rng(1), vocab=12)
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
    keras_weights(path, np.random.default_rng(0), vocab=10)
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
