"""Regard (how favourably a text speaks of its subject) or sentiment, as one negative/positive pair per text.

The default is VADER (Hutto & Gilbert, 2014): a rule-based lexicon scorer that runs offline in well under a
millisecond a text and needs no model download, so every logged output can carry the signal. Any transformers
sequence classifier (a regard model such as ``sasha/regardv3``, or a sentiment model) can replace it by hub id or
local path; a label map says which of its labels mean negative, neutral, positive or other.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from importlib.metadata import version
from importlib.resources import files
from pathlib import Path
from typing import Any, Protocol

from core.errors import InputError, ModelUnavailableError

CLASSES = ("negative", "neutral", "positive", "other")


@dataclass(frozen=True)
class Regard:
    """``negative``/``positive`` in [0, 1]; ``label`` is the predicted class, one of ``CLASSES``."""

    label: str
    negative: float
    positive: float


class RegardScorer(Protocol):
    model_id: str

    def __call__(self, texts: list[str]) -> list[Regard]: ...


class VaderRegard:
    """VADER's compound score mapped onto [0, 1]: ``negative = max(0, -compound)``, ``positive = max(0, compound)``.

    The label follows VADER's own convention: compound <= -``threshold`` is negative, >= ``threshold`` positive,
    neutral in between (the authors' threshold is 0.05).
    """

    def __init__(self, threshold: float = 0.05) -> None:
        if not 0.0 <= threshold < 1.0:
            raise InputError(f"VADER threshold must be in [0, 1), got {threshold}")
        self.threshold = threshold

    @cached_property
    def _analyzer(self) -> Any:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        return SentimentIntensityAnalyzer()

    @cached_property
    def model_id(self) -> str:
        lexicon = (files("vaderSentiment") / "vader_lexicon.txt").read_bytes()
        return f"vaderSentiment-{version('vaderSentiment')}+lexicon.sha256:{hashlib.sha256(lexicon).hexdigest()[:16]}"

    def __call__(self, texts: list[str]) -> list[Regard]:
        out = []
        for text in texts:
            compound = float(self._analyzer.polarity_scores(text)["compound"])
            if compound <= -self.threshold:
                label = "negative"
            elif compound >= self.threshold:
                label = "positive"
            else:
                label = "neutral"
            out.append(Regard(label, max(0.0, -compound), max(0.0, compound)))
        return out


class TransformersRegard:
    """A transformers sequence classifier whose labels map onto ``CLASSES``.

    ``label_map`` maps the model's label names (``config.id2label``) to classes; without it the model's own
    label names, lower-cased, must already be classes (true of ``sasha/regardv3`` and many sentiment models).
    Scoring reuses the toxicity detector's batching (length-sorted batches, bf16 where the hardware has it, and
    overlapping windows so a long text is read whole: each class keeps its highest window probability).
    """

    def __init__(
        self,
        model: str | Path,
        *,
        label_map: Mapping[str, str] | None = None,
        revision: str | None = None,
        batch_size: int = 32,
        max_length: int = 512,
        device: str = "auto",
        precision: str = "auto",
    ) -> None:
        from detectors._text_batching import BatchSettings

        self.model = str(model)
        self.revision = revision
        self.settings = BatchSettings(
            max_length=max_length, overlap=min(64, max_length // 4), batch_size=batch_size,
            max_batch_tokens=max(8192, max_length), precision=precision, device=device,
        )
        self._label_map = dict(label_map or {})
        bad = {v for v in self._label_map.values() if v not in CLASSES}
        if bad:
            raise InputError(f"regard label map targets must be among {', '.join(CLASSES)}; got {sorted(bad)}")

    @cached_property
    def _loaded(self) -> Any:
        if Path(self.model).is_dir() and not (Path(self.model) / "config.json").is_file():
            raise ModelUnavailableError(f"regard model {self.model!r} cannot be loaded: no config.json in that folder")
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from core.weights import DOWNLOADS_OFF, hub_access, offline, snapshot_folder, weights_sha256
        from core.device import resolve_device
        from detectors._text_batching import Loaded

        try:
            local = {"revision": self.revision, "local_files_only": offline()}
            with hub_access(local["local_files_only"]):
                tokenizer = AutoTokenizer.from_pretrained(self.model, **local)
                model = AutoModelForSequenceClassification.from_pretrained(self.model, **local)
        except (OSError, ValueError) as exc:  # missing files are OSErrors; unusable tokenizers ValueErrors
            hint = f" (if it is not on this machine: {DOWNLOADS_OFF})" if offline() else ""
            raise ModelUnavailableError(f"regard model {self.model!r} cannot be loaded: {exc}{hint}") from exc
        classes = []
        for index in range(model.config.num_labels):
            name = model.config.id2label[index]
            cls = self._label_map.get(name, name.lower())
            if cls not in CLASSES:
                raise InputError(
                    f"regard model {self.model!r}: label {name!r} is not one of {', '.join(CLASSES)}; "
                    "pass a label map such as {'LABEL_0': 'negative', ...}"
                )
            classes.append(cls)
        if "negative" not in classes:
            raise InputError(f"regard model {self.model!r}: no label maps to 'negative' (labels: {classes})")
        commit = getattr(model.config, "_commit_hash", None) or self.revision
        folder = snapshot_folder(self.model, commit)
        digest = weights_sha256(folder) if folder is not None else None
        model_id = f"{self.model}@sha256:{digest}" if digest else (f"{self.model}@{commit}" if commit else self.model)
        return Loaded(model=model.to(resolve_device(self.settings.device)).eval(), tokenizer=tokenizer,
                      labels=tuple(classes), columns=tuple(range(len(classes))), activation="softmax",
                      model_id=model_id)

    @property
    def model_id(self) -> str:
        return self._loaded.model_id

    def __call__(self, texts: list[str]) -> list[Regard]:
        from detectors._text_batching import window_and_score

        if not texts:
            return []
        loaded = self._loaded
        values, _ = window_and_score(loaded, list(texts), self.settings)
        out = []
        for row in values.tolist():
            by_class = dict.fromkeys(CLASSES, 0.0)
            for cls, p in zip(loaded.labels, row):
                by_class[cls] += float(p)
            label = max(by_class, key=by_class.__getitem__)
            out.append(Regard(label, min(1.0, by_class["negative"]), min(1.0, by_class["positive"])))
        return out


def regard_scorer(model: str | Path | None = None, **options: Any) -> RegardScorer:
    """VADER when ``model`` is None or ``"vader"``, otherwise a transformers classifier by hub id or path."""
    if model is None or str(model).lower() == "vader":
        return VaderRegard(**options)
    return TransformersRegard(model, **options)
