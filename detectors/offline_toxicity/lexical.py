"""The linear SVM of ``alt-profanity-check`` (MIT): TF-IDF words -> five calibrated LinearSVCs.

Fast (tens of thousands of texts a second) and sharp on profanity; blind to meaning (no word order, no
context). Loaded with joblib only after ``packages.LEXICAL`` has checked both files' SHA-256, because a joblib
file is a pickle and could run code. The score used downstream is the mean SVM margin (a logit-like number,
unbounded) rather than the package's Platt probability, which saturates and loses ranking at both ends.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.errors import InputError
from detectors.offline_toxicity.packages import LEXICAL


@dataclass(frozen=True)
class LexicalModel:
    vectorizer: Any  # sklearn TfidfVectorizer
    svms: tuple[Any, ...]  # the LinearSVCs inside the CalibratedClassifierCV

    def margins(self, texts: list[str]):
        """Mean SVM decision value per text (float64 numpy array); positive leans offensive."""
        import numpy as np

        features = self.vectorizer.transform(texts)
        return np.mean([svm.decision_function(features) for svm in self.svms], axis=0)


def load(files: dict[str, Path] | None = None) -> LexicalModel:
    """The SVM from the verified package files (or from ``files``, already verified by the caller)."""
    import warnings

    import joblib

    files = files or LEXICAL.verified()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # sklearn warns when its version differs from the pickling one
        vectorizer = joblib.load(files["data/vectorizer.joblib"])
        model = joblib.load(files["data/model.joblib"])
    calibrated = getattr(model, "calibrated_classifiers_", None)
    if not calibrated or not hasattr(vectorizer, "transform"):
        raise InputError(f"{files['data/model.joblib']}: not a calibrated linear classifier with a vectorizer")
    return LexicalModel(vectorizer, tuple(c.estimator for c in calibrated))
