from __future__ import annotations

import pytest

from guard.bias.generation import build_generator, generate_fn, load_callable, sampling_params
from core.errors import InputError

from tests.fixtures.bias import RIGGED


def test_repeated_prompts_get_independent_samples_and_reruns_repeat(gpt2_dir):
    backend = build_generator(str(gpt2_dir), batch_size=8)  # the backend alone would reuse seeds per chunk
    params = sampling_params(backend, max_new_tokens=6)
    assert params == {"do_sample": True, "top_p": 0.9, "max_new_tokens": 6}
    first = generate_fn(backend, seed=5, **params)(["The new neighbor"] * 16)
    assert len(set(first)) == 16
    assert generate_fn(backend, seed=5, **params)(["The new neighbor"] * 16) == first


def test_callable_specs():
    backend = build_generator(f"{RIGGED}:even")
    assert backend.info.name == "callable" and sampling_params(backend) == {}
    assert all(isinstance(t, str) for t in generate_fn(backend)(["a", "b"]))
    assert callable(load_callable("tests.fixtures.rigged_generators:rigged"))
    with pytest.raises(InputError, match="cannot import no_such_module: ModuleNotFoundError"):
        load_callable("no_such_module:f")
