"""Scorers that judge content. They know nothing of policy: each takes a batch and returns plain scores.

The guard finds a detector by the name a policy uses through the ``genguard.detectors`` entry-point group in
``pyproject.toml`` (see ``guard.detection``), so other packages can add detectors without touching this one.
"""

from detectors.base import Detector, Modality, Score

__all__ = ["Detector", "Modality", "Score"]
