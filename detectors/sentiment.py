"""The ``sentiment`` detector: how negative or positive a text is, in [0, 1].

VADER by default (offline, a lexicon, no model download); any transformers sentiment or regard classifier by
hub id or local path when ``model`` is set. A policy can threshold ``negative`` to flag hostile outputs, and the
bias audit reads the same scores as each output's regard.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detectors.base import Detector, Score
from detectors.bias.regard import regard_scorer


class SentimentDetector(Detector):
    """Labels ``negative`` and ``positive`` in [0, 1]; ``details["label"]`` is the predicted class.

    Options: ``model`` (None or "vader" for VADER, else a hub id or path), ``label_map`` (model label ->
    negative/neutral/positive/other), ``revision``, ``batch_size``, and ``threshold`` (VADER's neutral band).
    """

    name = "sentiment"
    emits = frozenset({"negative", "positive"})

    def __init__(
        self,
        model: str | None = None,
        *,
        label_map: Mapping[str, str] | None = None,
        revision: str | None = None,
        batch_size: int = 32,
        threshold: float = 0.05,
    ) -> None:
        if model is None or model.lower() == "vader":
            self._scorer = regard_scorer(None, threshold=threshold)
        else:
            self._scorer = regard_scorer(model, label_map=label_map, revision=revision, batch_size=batch_size)

    @property
    def model_id(self) -> str:
        return self._scorer.model_id

    def score(self, items: list[Any]) -> list[list[Score]]:
        texts = [str(item) for item in items]
        model = self.model_id
        return [
            [
                Score(self.name, "negative", r.negative, model, {"label": r.label}),
                Score(self.name, "positive", r.positive, model),
            ]
            for r in self._scorer(texts)
        ]
