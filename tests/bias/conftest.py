"""Fixtures for the bias tests: real scorers (VADER through the sentiment detector, a tiny detoxify model) and
the published data sets' copies in ../shared/data."""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[2] / "shared" / "data"
RIGGED = HERE / "rigged_generators.py"


@pytest.fixture(scope="session")
def vader():
    """VADER negativity as a label scorer: real, offline, and predictable on the rigged generators' text."""
    from guard.pipeline import registry as detection
    from guard.bias.audit import DetectorScorer

    return DetectorScorer(detection.create("sentiment"))


@pytest.fixture(scope="session")
def tiny_detoxify(tmp_path_factory):
    from guard.demo.tiny_models import build_tiny_detoxify

    return build_tiny_detoxify(tmp_path_factory.mktemp("detoxify"))


@pytest.fixture(scope="session")
def holistic_bias_dir() -> Path:
    folder = DATA / "holistic_bias"
    if not (folder / "descriptors.json").is_file():
        pytest.skip(f"no HolisticBias copy at {folder}")
    return folder


@pytest.fixture(scope="session")
def bold_dir() -> Path:
    folder = DATA / "bold"
    if not any(folder.glob("*_prompt.json")):
        pytest.skip(f"no BOLD copy at {folder}")
    return folder
