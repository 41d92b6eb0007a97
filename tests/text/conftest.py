"""Tiny local models for the text tests, built once per session (about a second each)."""

from __future__ import annotations

import pytest

from guard.demo.tiny_models import build_tiny_classifier, build_tiny_detoxify, build_tiny_gpt2


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


@pytest.fixture(scope="session")
def gpt2_chat_dir(tmp_path_factory):
    return build_tiny_gpt2(tmp_path_factory.mktemp("gpt2-chat"), chat_template=True)


@pytest.fixture(scope="session")
def detoxify_files(tmp_path_factory):
    """Checkpoint naming ``bert-base-uncased`` (like the released ones) + its local config folder."""
    return build_tiny_detoxify(tmp_path_factory.mktemp("detoxify"))


@pytest.fixture(scope="session")
def detoxify_local_files(tmp_path_factory):
    """Checkpoint whose model_type is the local folder, which plain ``detoxify.Detoxify`` can load offline."""
    return build_tiny_detoxify(tmp_path_factory.mktemp("detoxify-local"), hub_model_type=False)


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory):
    return build_tiny_classifier(tmp_path_factory.mktemp("classifier"))


@pytest.fixture(scope="session")
def generator(gpt2_dir):
    from generators.transformers_text import TransformersText

    return TransformersText(gpt2_dir, max_new_tokens=40)
