from __future__ import annotations

import pytest

from guard.bias.generation import build_generator, generate_fn, load_callable, sampling_params
from core.errors import InputError

from .conftest import RIGGED


@pytest.fixture(scope="module")
def tiny_gpt2(tmp_path_factory):
    from guard.demo.tiny_models import build_tiny_gpt2

    return build_tiny_gpt2(tmp_path_factory.mktemp("gpt2"))


def test_repeated_prompts_get_independent_samples_and_reruns_repeat(tiny_gpt2):
    backend = build_generator(str(tiny_gpt2), batch_size=8)  # the backend alone would reuse seeds per chunk
    params = sampling_params(backend, max_new_tokens=6)
    assert params == {"do_sample": True, "top_p": 0.9, "max_new_tokens": 6}
    first = generate_fn(backend, seed=5, **params)(["The new neighbor"] * 16)
    assert len(set(first)) == 16
    assert generate_fn(backend, seed=5, **params)(["The new neighbor"] * 16) == first


def test_callable_specs():
    backend = build_generator(f"{RIGGED}:even")
    assert backend.info.name == "callable" and sampling_params(backend) == {}
    assert all(isinstance(t, str) for t in generate_fn(backend)(["a", "b"]))
    assert callable(load_callable("tests.bias.rigged_generators:rigged"))
    with pytest.raises(InputError, match="cannot import no_such_module: ModuleNotFoundError"):
        load_callable("no_such_module:f")
