"""The seed and latents checks both image backends share."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import InputError
from generators._latents import first_seed, float_latents


def test_first_seed_keeps_every_image_seed_within_torchs_range():
    assert first_seed(7, 3) == 7 and first_seed(np.int64(7), 3) == 7
    assert first_seed(2**64 - 3, 3) == 2**64 - 3  # the last image's seed is 2**64 - 1, still accepted by torch
    with pytest.raises(InputError, match="between 0 and 18446744073709551613 for 3 image"):
        first_seed(2**64 - 2, 3)
    for bad in (True, "7", 7.0, None.__class__):
        with pytest.raises(InputError, match="seed must be a whole number"):
            first_seed(bad, 1)
    assert 0 <= first_seed(None, 5) < 2**63


def test_latents_must_be_finite_numbers():
    assert float_latents([[0.5, 1.0]]).dtype.is_floating_point
    with pytest.raises(InputError, match="initial latents hold NaN"):
        float_latents(np.array([np.nan]), "initial latents")
    with pytest.raises(InputError, match="latents must be numbers"):
        float_latents({"a": 1})
