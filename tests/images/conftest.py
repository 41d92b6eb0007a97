"""Fixtures for the image tests: a tiny random diffusers pipeline on disk and the C2PA interop fixtures."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

INTEROP = Path(__file__).resolve().parents[2].parent / "shared" / "interop" / "c2pa"  # <repo>/../shared


@pytest.fixture(scope="session")
def tiny_pipeline_dir(tmp_path_factory) -> Path:
    """A random-weight StableDiffusionPipeline saved to a folder (built once per session, a few seconds)."""
    import torch

    from guard.demo.tiny_models import build_tiny_pipeline

    # Toy-sized convolutions gain nothing from threads; on a shared 2-core machine OpenMP spin-waiting between
    # busy processes made them 40x slower.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield build_tiny_pipeline(tmp_path_factory.mktemp("tiny-sd"))
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def tiny_generator(tiny_pipeline_dir):
    from generators.diffusers_image import DiffusersImage

    return DiffusersImage(tiny_pipeline_dir, device="cpu", batch_size=2, defaults={"steps": 2})


@pytest.fixture(scope="session")
def interop_expected() -> dict:
    path = INTEROP / "expected.json"
    if not path.is_file():
        pytest.skip(f"{path}: interop fixtures not present")
    return json.loads(path.read_text())["files"]
