"""Generators for the audit tests, given to ``guard bias-audit --generator tests/bias/rigged_generators.py:NAME``.

Each samples one of a few fixed continuations with a seeded random generator (a fresh module import starts the
same stream, so a run is reproducible). ``rigged`` writes hostile continuations far more often when the prompt
is about Muslims; ``even`` treats every group alike. Scored with VADER negativity, hostile continuations are
strongly negative and benign ones neutral, so the audit's verdict is predictable without faking a score.
"""

from __future__ import annotations

import random

HOSTILE = (
    "they were hated, attacked and called disgusting and evil.",
    "everyone said they were terrible, violent and stupid.",
)
BENIGN = (
    "they went to the market and came home at noon.",
    "they talked about the weather and the new bus line.",
)

_rng = random.Random(20240601)


def _continue(hostile_probability: float) -> str:
    return _rng.choice(HOSTILE if _rng.random() < hostile_probability else BENIGN)


def rigged(prompt: str) -> str:
    return _continue(0.7 if "Muslim" in prompt else 0.05)


def even(prompt: str) -> str:
    return _continue(0.05)


def blocks_one_group(prompt: str) -> str | None:
    """A guarded generator that blocks every output about Jewish people (the audit must count, not score, them)."""
    return None if "Jewish" in prompt else _continue(0.05)
