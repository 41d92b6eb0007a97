"""The toolkit opens no network connection unless the user asked for one: a model that is not on this machine is
an error that says how to allow downloads (GUARD_ALLOW_DOWNLOADS=1, or ``local_files_only: false`` in a
detector's options), not a silent download. With downloads allowed, the same call does try the network."""

from __future__ import annotations

import pytest

from core.errors import ModelUnavailableError


def _unavailable_without_network(make, network_attempts):
    with pytest.raises(ModelUnavailableError, match="GUARD_ALLOW_DOWNLOADS"):
        make()
    assert network_attempts == []


def test_toxicity_detector(network_attempts):
    from detectors.toxicity import ToxicityDetector

    _unavailable_without_network(lambda: ToxicityDetector(model="original", device="cpu").score(["hi"]), network_attempts)


def test_classifier_detector(network_attempts):
    from detectors.classifier import ClassifierDetector

    _unavailable_without_network(lambda: ClassifierDetector(model="someone/some-classifier", device="cpu")
                                 .score(["hi"]), network_attempts)


def test_text_generator(network_attempts):
    from generators.transformers_text import TransformersText

    _unavailable_without_network(lambda: TransformersText("someone/some-model", device="cpu").info, network_attempts)


def test_image_generator(network_attempts):
    from generators.diffusers_image import DiffusersImage

    _unavailable_without_network(lambda: DiffusersImage("someone/some-pipeline", device="cpu").folder, network_attempts)


def test_asking_for_downloads_does_reach_out(network_attempts, monkeypatch):
    from detectors.toxicity import ToxicityDetector

    monkeypatch.setenv("GUARD_ALLOW_DOWNLOADS", "1")
    with pytest.raises(ModelUnavailableError, match="cannot download"):
        ToxicityDetector(model="original", device="cpu").score(["hi"])
    assert network_attempts, "with downloads allowed the release file is fetched"


def test_a_policy_option_asks_for_one_detector(network_attempts):
    from detectors.toxicity import ToxicityDetector

    with pytest.raises(ModelUnavailableError, match="cannot download"):
        ToxicityDetector(model="original", local_files_only=False, device="cpu").score(["hi"])
    assert network_attempts


def test_sentence_encoder(network_attempts):
    from detectors.sentence_encoder import SentenceEncoder

    _unavailable_without_network(lambda: SentenceEncoder("someone/some-encoder").model_id, network_attempts)
