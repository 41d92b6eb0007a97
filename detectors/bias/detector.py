"""The ``bias`` detector: which groups an output mentions, how it regards them, and identity attack.

Scores per text: ``negative_regard`` in [0, 1] (VADER by default, or a regard classifier), with the mentioned
groups in its ``details``; and ``identity_attack`` when a toxicity model is configured (``toxicity:`` takes the
same options as the ``toxicity`` detector). When the policy already runs the ``toxicity`` detector, leave
``toxicity`` unset: its ``identity_attack`` label is logged anyway, and the model would run twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from detectors.base import Detector, Score
from detectors.bias.mentions import MentionFinder
from detectors.bias.regard import regard_scorer
from detectors.bias.terms import load_terms


class BiasDetector(Detector):
    """Options: ``regard_model`` (None/"vader" or a hub id or path), ``regard_label_map``, ``terms`` (a term
    list file replacing the shipped one), ``toxicity`` (options for the toxicity model, to add identity attack)."""

    name = "bias"

    @classmethod
    def emitted_labels(cls, options: Mapping[str, Any]) -> frozenset[str]:
        return frozenset({"negative_regard", *(["identity_attack"] if options.get("toxicity") is not None else [])})

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        super().validate_options(options)
        if options.get("terms") is not None and not Path(options["terms"]).is_file():
            raise FileNotFoundError(f"{options['terms']}: term list not found")
        if options.get("toxicity") is not None:
            from detectors.toxicity import ToxicityDetector

            ToxicityDetector.validate_options(options["toxicity"])

    def __init__(
        self,
        regard_model: str | None = None,
        *,
        regard_label_map: Mapping[str, str] | None = None,
        terms: str | None = None,
        toxicity: Mapping[str, Any] | None = None,
    ) -> None:
        self._finder = MentionFinder(load_terms(terms))
        options = {"label_map": regard_label_map} if regard_label_map else {}
        self._regard = regard_scorer(regard_model, **options)
        self._toxicity: Detector | None = None
        if toxicity is not None:
            from detectors.toxicity import ToxicityDetector

            self._toxicity = ToxicityDetector(**dict(toxicity))

    @property
    def model_id(self) -> str:
        parts = [self._regard.model_id, f"terms.sha256:{self._finder.terms.sha256[:16]}"]
        if self._toxicity is not None:
            parts.append(self._toxicity.model_id)
        return " + ".join(parts)

    def score(self, items: list[Any]) -> list[list[Score]]:
        texts = [str(item) for item in items]
        regards = self._regard(texts)
        attacks: list[float | None] = [None] * len(texts)
        if self._toxicity is not None:
            for i, scores in enumerate(self._toxicity.score(texts)):
                attacks[i] = next((s.value for s in scores if s.label == "identity_attack"), None)
        out = []
        for text, regard, attack in zip(texts, regards, attacks):
            groups = [g.id for g in self._finder.groups(text)]
            scores = [Score(self.name, "negative_regard", regard.negative, self._regard.model_id,
                            {"label": regard.label, "groups": groups})]
            if attack is not None:
                scores.append(Score(self.name, "identity_attack", attack, self._toxicity.model_id))
            out.append(scores)
        return out
