"""The detector interface: batched ``score`` returning one list of ``Score`` per input."""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

Modality = Literal["text", "image"]


@dataclass(frozen=True)
class Score:
    """One label's score for one input. ``value`` is in [0, 1]; higher means more of the label."""

    detector: str
    label: str
    value: float
    model: str  # the model that produced it: name plus revision or weights hash, so the score is reproducible
    details: dict[str, Any] = field(default_factory=dict)  # e.g. face boxes, matched work, window count

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "detector": self.detector,
            "label": self.label,
            "value": round(float(self.value), 6),
            "model": self.model,
        }
        if self.details:
            out["details"] = self.details
        return out


class Detector(abc.ABC):
    """Scores a batch of inputs of one modality.

    Subclasses set ``name`` (what a policy calls it) and ``modalities``, take their options as keyword
    arguments (straight from the policy's ``options:`` mapping), load models lazily, and return one list of
    scores per input, in input order. They raise on failure; the guard applies the policy's ``fail`` setting.
    """

    name: ClassVar[str]
    modalities: ClassVar[frozenset[Modality]] = frozenset({"text"})

    @property
    @abc.abstractmethod
    def model_id(self) -> str:
        """Name and version or weights hash of what produces the scores."""

    def unavailable(self) -> str | None:
        """Why this detector's model cannot load here, found without loading it (a missing package, an uncached
        checkpoint while downloads are off); None when it should load. Lets a policy check name the scorer
        that will run, and lets a caller switch to a rule's fallback before any work."""
        return None

    @abc.abstractmethod
    def score(self, items: list[Any]) -> list[list[Score]]:
        """Score ``items`` (``str`` for text, ``PIL.Image.Image`` for images)."""
