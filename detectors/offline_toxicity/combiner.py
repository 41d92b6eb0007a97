"""How the offline models' outputs become one calibrated ``toxicity`` score, stored as a small JSON file.

Two kinds, fitted by ``fit`` (``guard toxicity train`` calls it; the shipped ``data/default.json`` was made the
same way, see docs/toxicity-offline.md):

- ``rank-mean``: each model's score becomes its position in a reference distribution (a quantile table), the
  positions are averaged, and a logistic (Platt) map turns the average into a probability. It learns almost
  nothing from the data beyond the two quantile tables and two calibration numbers, which is why it holds up on
  text unlike the data it was fitted on; it is the shipped default.
- ``logistic``: a regularised logistic regression over all six BiLSTM logits and the SVM margin. It fits the
  data it is given more closely; use it on your own labelled data, where that data is the domain you will score.

Scores are calibrated with balanced class weights: 0.5 means even odds whatever the share of toxic texts in the
training data. ``thresholds`` holds the score at which the training negatives' false-positive rate is 1% and 5%
(or the target rate asked for), the number to put in a policy.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.errors import InputError, ModelUnavailableError

FORMAT = "genguard-offline-toxicity/1"
Kind = Literal["rank-mean", "logistic"]
BILSTM_FEATURES = ("bilstm_toxicity", "bilstm_severe_toxicity", "bilstm_obscene", "bilstm_threat", "bilstm_insult",
                   "bilstm_identity_attack")
RANK_FEATURES = ("bilstm_toxicity", "lexical")
LOGISTIC_FEATURES = (*BILSTM_FEATURES, "lexical")
_QUANTILES = 201


@dataclass(frozen=True)
class Combiner:
    kind: Kind
    features: tuple[str, ...]
    calibration: tuple[float, float]  # (slope, intercept) of the Platt map on the raw combined score
    quantiles: dict[str, list[float]] = field(default_factory=dict)  # rank-mean: reference quantiles per feature
    weights: tuple[float, ...] = ()  # logistic: one per feature, on standardised features
    center: tuple[float, ...] = ()
    scale: tuple[float, ...] = ()
    intercept: float = 0.0
    thresholds: dict[str, float] = field(default_factory=dict)  # target FPR (as text) -> score threshold
    trained_on: tuple[dict[str, Any], ...] = ()  # what it was fitted on: files, hashes, rows, split

    def raw(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        """The uncalibrated combined score (higher is more toxic)."""
        missing = [f for f in self.features if f not in feats]
        if missing:
            raise InputError(f"combiner needs features {missing}")
        if self.kind == "rank-mean":
            levels = np.linspace(0.0, 1.0, _QUANTILES)
            return np.mean([np.interp(feats[f], self.quantiles[f], levels) for f in self.features], axis=0)
        x = np.column_stack([feats[f] for f in self.features])
        return (x - np.asarray(self.center)) / np.asarray(self.scale) @ np.asarray(self.weights) + self.intercept

    def __call__(self, feats: dict[str, np.ndarray]) -> np.ndarray:
        """Calibrated toxicity in [0, 1]."""
        slope, intercept = self.calibration
        return 1.0 / (1.0 + np.exp(-(slope * self.raw(feats) + intercept)))

    def to_json(self) -> str:
        data = {"format": FORMAT, **asdict(self)}
        return json.dumps(data, indent=1, sort_keys=True) + "\n"

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")


def load(path: Path) -> Combiner:
    """A combiner file; errors name the file and what is wrong."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ModelUnavailableError(f"{path}: cannot read the toxicity combiner: {exc.strerror}") from exc
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(f"{path}: not a toxicity combiner (bad JSON: {exc})") from exc
    if not isinstance(data, dict) or data.pop("format", None) != FORMAT:
        raise InputError(f"{path}: not a toxicity combiner (expected \"format\": \"{FORMAT}\")")
    try:
        combiner = Combiner(
            kind=data["kind"],
            features=tuple(data["features"]),
            calibration=(float(data["calibration"][0]), float(data["calibration"][1])),
            quantiles={k: [float(v) for v in q] for k, q in data.get("quantiles", {}).items()},
            weights=tuple(float(w) for w in data.get("weights", ())),
            center=tuple(float(c) for c in data.get("center", ())),
            scale=tuple(float(s) for s in data.get("scale", ())),
            intercept=float(data.get("intercept", 0.0)),
            thresholds={str(k): float(v) for k, v in data.get("thresholds", {}).items()},
            trained_on=tuple(data.get("trained_on", ())),
        )
    except (KeyError, TypeError, ValueError, IndexError) as exc:
        raise InputError(f"{path}: malformed toxicity combiner ({type(exc).__name__}: {exc})") from exc
    _check(combiner, path)
    return combiner


def _check(c: Combiner, path: Path) -> None:
    known = set(LOGISTIC_FEATURES)
    if c.kind not in ("rank-mean", "logistic"):
        raise InputError(f"{path}: kind must be rank-mean or logistic, got {c.kind!r}")
    if not c.features or set(c.features) - known:
        raise InputError(f"{path}: features must be among {', '.join(LOGISTIC_FEATURES)}")
    if c.kind == "rank-mean":
        for f in c.features:
            q = c.quantiles.get(f, [])
            if len(q) != _QUANTILES or any(b < a for a, b in zip(q, q[1:])):
                raise InputError(f"{path}: quantiles.{f} must be {_QUANTILES} non-decreasing numbers")
    elif not (len(c.weights) == len(c.center) == len(c.scale) == len(c.features)) or min(c.scale) <= 0:
        raise InputError(f"{path}: weights, center and scale need one value per feature (scale > 0)")
    if not all(math.isfinite(v) for v in (*c.calibration, c.intercept, *c.weights)):
        raise InputError(f"{path}: non-finite numbers in the combiner")


def fit(
    feats: dict[str, np.ndarray],
    labels: np.ndarray,
    *,
    kind: Kind = "rank-mean",
    target_fprs: tuple[float, ...] = (0.01, 0.05),
    trained_on: tuple[dict[str, Any], ...] = (),
    c: float = 0.01,
) -> Combiner:
    """Fit a combiner on labelled texts' features (1 = toxic); needs both classes."""
    from sklearn.linear_model import LogisticRegression

    labels = np.asarray(labels).astype(int)
    if len(np.unique(labels)) != 2:
        raise InputError("training data needs both toxic (1) and non-toxic (0) examples")
    if kind == "rank-mean":
        names = RANK_FEATURES
        combiner = Combiner(kind, names, (1.0, 0.0), quantiles={
            f: np.quantile(feats[f], np.linspace(0.0, 1.0, _QUANTILES)).tolist() for f in names})
    elif kind == "logistic":
        names = LOGISTIC_FEATURES
        x = np.column_stack([feats[f] for f in names])
        center, scale = x.mean(axis=0), x.std(axis=0) + 1e-9
        model = LogisticRegression(C=c, class_weight="balanced", max_iter=5000).fit((x - center) / scale, labels)
        combiner = Combiner(kind, names, (1.0, 0.0), weights=tuple(model.coef_[0].tolist()),
                            center=tuple(center.tolist()), scale=tuple(scale.tolist()),
                            intercept=float(model.intercept_[0]))
    else:
        raise InputError(f"kind must be rank-mean or logistic, got {kind!r}")
    raw = combiner.raw(feats)
    platt = LogisticRegression(C=1e6, class_weight="balanced", max_iter=5000).fit(raw[:, None], labels)
    combiner = Combiner(**{**_fields(combiner), "calibration": (float(platt.coef_[0, 0]), float(platt.intercept_[0])),
                           "trained_on": trained_on})
    scores = combiner(feats)
    thresholds = {f"{fpr:g}": threshold_at_fpr(scores[labels == 0], fpr) for fpr in target_fprs}
    return Combiner(**{**_fields(combiner), "thresholds": thresholds})


def threshold_at_fpr(negatives: np.ndarray, fpr: float) -> float:
    """The smallest score threshold at which at most ``fpr`` of ``negatives`` score at or above it."""
    if not 0 < fpr < 1:
        raise InputError(f"target false-positive rate must be between 0 and 1, got {fpr}")
    ordered = np.sort(np.asarray(negatives, dtype=np.float64))[::-1]
    allowed = int(math.floor(fpr * len(ordered)))  # negatives that may score at or above the threshold
    if allowed >= len(ordered):
        return float(ordered[-1])
    return float(np.nextafter(ordered[allowed], np.inf))


def _fields(c: Combiner) -> dict[str, Any]:
    return {k: getattr(c, k) for k in c.__dataclass_fields__}
