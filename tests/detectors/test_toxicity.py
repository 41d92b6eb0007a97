"""The detoxify toxicity detector: same scores as detoxify, every label, windows instead of truncation, and
an offline path that never touches the network."""

from __future__ import annotations

import socket

import pytest

from detectors.toxicity import ModelUnavailableError, ToxicityDetector

LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")
WORDS = "good bad new old big small long short high low great little other same different right wrong".split()


@pytest.fixture(scope="module")
def detector(detoxify_files):
    return ToxicityDetector(checkpoint=detoxify_files.checkpoint, config_dir=detoxify_files.config_dir)


def _values(scores):
    return {s.label: s.value for s in scores}


def test_scores_every_detoxify_label_like_detoxify(detoxify_local_files):
    from detoxify import Detoxify

    texts = ["you are a stupid idiot", "have a nice day", "thanks for the help, friend"]
    # fp32 pinned: under "auto" a CPU with AMX runs bf16, and the comparison with detoxify (fp32) is exact.
    ours = ToxicityDetector(checkpoint=detoxify_local_files.checkpoint, config_dir=detoxify_local_files.config_dir,
                            precision="float32")
    peer = Detoxify(checkpoint=str(detoxify_local_files.checkpoint))
    expected = peer.predict(texts)
    scored = ours.score(texts)
    assert sorted(expected) == sorted(LABELS)
    for i, scores in enumerate(scored):
        assert tuple(s.label for s in scores) == LABELS
        for s in scores:
            assert s.detector == "toxicity" and 0.0 <= s.value <= 1.0
            assert s.value == pytest.approx(expected[s.label][i], abs=1e-5)
    assert len({round(_values(s)["toxicity"], 6) for s in scored}) == 3  # the input matters


def test_model_id_names_the_checkpoint_hash(detector, detoxify_files):
    import hashlib

    digest = hashlib.sha256(detoxify_files.checkpoint.read_bytes()).hexdigest()
    assert detector.model_id == f"detoxify:{detoxify_files.checkpoint.name}@sha256:{digest}"
    assert {s.model for s in detector.score(["hello"])[0]} == {detector.model_id}


def test_long_text_is_split_into_windows_keeping_each_labels_maximum(detoxify_files):
    """With 16-token windows (14 words + [CLS] [SEP]) overlapping by 4, the score of a long text is the maximum
    over the scores of its windows, each scored on its own."""
    small = ToxicityDetector(checkpoint=detoxify_files.checkpoint, config_dir=detoxify_files.config_dir,
                             max_length=16, overlap=4, batch_size=4)
    words = [WORDS[(i * 7) % len(WORDS)] for i in range(50)]
    starts = [0, 10, 20, 30, 40]  # windows advance by 14 - 4 tokens; the last one ends the text
    windows = [" ".join(words[s : s + 14]) for s in starts]
    whole = small.score([" ".join(words)])[0]
    parts = small.score(windows)
    assert {s.details.get("windows") for s in whole} == {len(starts)}
    for k, label in enumerate(LABELS):
        assert whole[k].value == pytest.approx(max(p[k].value for p in parts), abs=1e-5)
    assert all(not s.details for p in parts for s in p)  # one window each


def test_text_longer_than_512_tokens_is_scored_whole(detector):
    long_text = " ".join(WORDS * 80)  # 1,360 words, one token each
    scores = detector.score([long_text, "hello"])
    assert scores[0][0].details["windows"] == 3  # 510 content tokens per window, 64 overlapping
    assert "windows" not in scores[1][0].details


def test_bucketed_batches_match_one_text_at_a_time(detoxify_files):
    texts = ["", "hi", " ".join(WORDS), "you are a stupid idiot " * 30, "kind words", " ".join(WORDS * 40)]
    batched = ToxicityDetector(checkpoint=detoxify_files.checkpoint, config_dir=detoxify_files.config_dir,
                               batch_size=3, max_batch_tokens=600)
    one = ToxicityDetector(checkpoint=detoxify_files.checkpoint, config_dir=detoxify_files.config_dir,
                           batch_size=1)
    together = batched.score(texts)
    for text, scores in zip(texts, together):
        alone = one.score([text])[0]
        assert [s.value for s in scores] == pytest.approx([s.value for s in alone], abs=1e-5)
    assert batched.score([]) == []


@pytest.mark.parametrize("precision", ["bfloat16", "int8"])
def test_reduced_precision_scores_stay_close_to_float32(detoxify_files, precision):
    texts = ["you are a stupid idiot", "have a nice day", " ".join(WORDS * 5)]
    kw = {"checkpoint": detoxify_files.checkpoint, "config_dir": detoxify_files.config_dir}
    fp32 = ToxicityDetector(precision="float32", **kw).score(texts)
    reduced = ToxicityDetector(precision=precision, **kw).score(texts)
    for a, b in zip(fp32, reduced):
        assert [s.value for s in b] == pytest.approx([s.value for s in a], abs=0.02)


@pytest.fixture
def no_network(monkeypatch):
    """Offline mode on, and any socket connection or name lookup raises."""
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)


def test_offline_checkpoint_and_config_dir_make_no_network_call(no_network, detoxify_files):
    detector = ToxicityDetector(checkpoint=detoxify_files.checkpoint, config_dir=detoxify_files.config_dir)
    assert len(detector.score(["hello there"])[0]) == len(LABELS)


def test_offline_release_model_not_cached_is_unavailable(no_network, tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    detector = ToxicityDetector(model="unbiased")
    with pytest.raises(ModelUnavailableError, match="not on this machine and downloads are off"):
        detector.score(["hello"])


def test_offline_hub_config_not_cached_is_unavailable(no_network, detoxify_files, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path))
    detector = ToxicityDetector(checkpoint=detoxify_files.checkpoint)  # model_type: bert-base-uncased
    with pytest.raises(ModelUnavailableError, match="bert-base-uncased"):
        detector.score(["hello"])


def test_bad_options_are_refused(tmp_path):
    with pytest.raises(ValueError, match="unknown detoxify model"):
        ToxicityDetector(model="huge")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        ToxicityDetector(checkpoint=tmp_path / "missing.ckpt")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        ToxicityDetector(checkpoint=__file__, config_dir=tmp_path)
    with pytest.raises(ValueError, match="overlap"):
        ToxicityDetector(overlap=400)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a readable detoxify checkpoint"):
        ToxicityDetector(checkpoint=tmp_path / "junk.ckpt").score(["x"])


def test_found_by_name_through_the_entry_point(detoxify_files):
    from detectors import registry as detection

    detector = detection.create("toxicity", {"checkpoint": str(detoxify_files.checkpoint),
                                             "config_dir": str(detoxify_files.config_dir)})
    assert isinstance(detector, ToxicityDetector)
    assert detector.score(["a"])[0][0].label == "toxicity"
