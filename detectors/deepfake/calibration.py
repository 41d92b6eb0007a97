"""Turning raw detector scores into calibrated values and a threshold with a known false-positive rate.

A detector's raw output is not a probability anyone can act on: it shifts with the camera, the compression and
the subject of the user's own images. Calibration is measured on the user's real images and stored beside the
detector, and every later score is reported on the calibrated scale.

Two methods, chosen by what the user has:

* **conformal** (real images only). The value of a raw score ``s`` is ``1 - p(s)`` where
  ``p(s) = (1 + #{real scores >= s}) / (n + 1)`` is the conformal p-value: the chance that a real image of the
  same kind scores at least as high. Flagging at ``value >= 1 - target_fpr`` has a false-positive rate of at
  most ``target_fpr`` on new real images exchangeable with the calibration set (finite-sample guarantee; it
  needs ``n >= 1/target_fpr - 1`` images: 99 for 1%). The value is *not* P(fake | image): without generated
  examples nothing can estimate that; it is how unusual the image is among real ones.
* **platt** (real and generated images). A logistic fit on the logit of the raw score gives P(fake | score)
  with the two classes weighted equally (so the value does not depend on how many of each the user had). The
  threshold is the calibrated value at the conformal cut-off for ``target_fpr`` on the real images, so both
  methods flag the same images; Platt adds a value that reads as a probability.

The file is JSON: method, parameters, threshold, target FPR, the weights it was made for (``weights``: the
backend and the weights hash, so a byte-identical checkpoint under another file name is accepted; ``model``, the
full model id, is kept for people), the preprocessing that changes raw scores (``engine.CropPlan.to_json``: scale,
faces, aggregate), and ``reference``: small summaries of the real images (resolution, JPEG quality, raw scores;
see ``shift``) that let a scan say when its images do not look like these. Loading it for other weights or other
preprocessing fails.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.errors import InputError
from core.weights import json_load

FORMAT = "genguard.deepfake-calibration/v2"
OLD_FORMATS = ("genguard.deepfake-calibration/v1",)
Method = Literal["conformal", "platt"]
_EPS = 1e-6


@dataclass(frozen=True)
class Calibration:
    method: Method
    target_fpr: float
    raw_threshold: float  # raw scores strictly above this are flagged
    threshold: float  # the same cut-off on the calibrated scale: flag when value >= threshold
    model: str  # the full model id, for people
    weights: str  # what the calibration is tied to: backend and weights hash (DeepfakeDetector.weights_key)
    preprocess: dict[str, Any]
    n_real: int
    n_fake: int
    params: dict[str, Any] = field(default_factory=dict)
    reference: dict[str, Any] = field(default_factory=dict)  # shift.reference of the real images
    sha256: str = field(default="", compare=False)

    def apply(self, raw: Any) -> np.ndarray:
        """Calibrated values of raw scores (array in, array out)."""
        scores = np.asarray(raw, dtype=np.float64)
        if self.method == "conformal":
            real = np.asarray(self.params["real_scores"], dtype=np.float64)
            at_least = len(real) - np.searchsorted(real, scores, side="left")
            return 1.0 - (1.0 + at_least) / (len(real) + 1.0)
        a, b = self.params["a"], self.params["b"]
        return 1.0 / (1.0 + np.exp(-(a * _logit(scores) + b)))

    def check(self, weights: str, preprocess: dict[str, Any]) -> None:
        """Refuse to calibrate scores of other weights or of other preprocessing."""
        if weights != self.weights:
            raise InputError(f"calibration was made for the weights {self.weights} ({self.model}), not {weights}: "
                             "run `guard detector calibrate` again")
        keys = set(self.preprocess) | set(preprocess)
        differing = sorted(k for k in keys if preprocess.get(k) != self.preprocess.get(k))
        if differing:
            made = ", ".join(f"{k}={self.preprocess.get(k)!r}" for k in differing)
            now = ", ".join(f"{k}={preprocess.get(k)!r}" for k in differing)
            raise InputError(f"calibration was made with {made}; the detector now uses {now}: use the same "
                             "options, or run `guard detector calibrate` again")

    def shift(self, inputs: Any, raw: Any):
        """``shift.ShiftReport``: whether images (``describe_input`` records and their raw scores) look like the
        calibration set, so that its false-positive rate can be trusted for them."""
        from detectors.deepfake import shift

        return shift.check(self.reference, inputs, raw, raw_threshold=self.raw_threshold, target_fpr=self.target_fpr)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("sha256")
        return {"format": FORMAT, **data}

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path

    @classmethod
    def load(cls, path: str | Path) -> Calibration:
        path = Path(path)
        data, digest = json_load(path, "calibration file", "make one with `guard detector calibrate`")
        found = data.pop("format", None) if isinstance(data, dict) else None
        if found in OLD_FORMATS:
            raise InputError(f"{path}: made by an older version ({found}) that did not record the weights hash and "
                             "preprocessing: run `guard detector calibrate` again")
        if found != FORMAT:
            raise InputError(f"{path}: not a calibration file (format is not {FORMAT!r})")
        try:
            calibration = cls(**data, sha256=digest)
        except TypeError as exc:
            raise InputError(f"{path}: malformed calibration file ({exc})") from None
        if calibration.method not in ("conformal", "platt"):
            raise InputError(f"{path}: unknown calibration method {calibration.method!r}")
        reference = calibration.reference
        if not isinstance(reference, dict) or not all(
            isinstance(reference.get(k, []), list) and all(isinstance(v, int | float) for v in reference.get(k, []))
            for k in ("resolution", "jpeg_quality", "scores")
        ):
            raise InputError(f"{path}: malformed calibration file (reference must hold lists of numbers)")
        if not isinstance(calibration.preprocess, dict):
            raise InputError(f"{path}: malformed calibration file (preprocess must be a mapping)")
        return calibration

    def summary(self) -> dict[str, Any]:
        """What a score records about the calibration behind its value."""
        return {"method": self.method, "target_fpr": self.target_fpr, "sha256": self.sha256[:16] or None}


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, _EPS, 1.0 - _EPS)
    return np.log(p) - np.log1p(-p)


def conformal_cutoff(real: np.ndarray, target_fpr: float) -> float:
    """The raw score above which at most ``target_fpr`` of new real images fall (conformal, finite-sample).

    Flag ``s`` when ``p(s) <= target_fpr``, i.e. when at most ``k = floor(target_fpr (n + 1)) - 1`` real scores
    are ``>= s``: exactly when ``s`` exceeds the ``(k + 1)``-th largest real score.
    """
    if not 0.0 < target_fpr < 1.0:
        raise InputError(f"target FPR must be between 0 and 1, got {target_fpr}")
    real = np.sort(np.asarray(real, dtype=np.float64))
    n = len(real)
    k = math.floor(target_fpr * (n + 1) + 1e-9) - 1
    if k < 0:
        need = math.ceil(1.0 / target_fpr) - 1
        raise InputError(f"a target FPR of {target_fpr:g} needs at least {need} real images, got {n}")
    return float(real[n - 1 - k])


def fit(
    real: Any,
    fake: Any = None,
    *,
    target_fpr: float = 0.01,
    method: Literal["auto", "conformal", "platt"] = "auto",
    model: str,
    weights: str | None = None,
    preprocess: dict[str, Any] | None = None,
    inputs: Any = None,
) -> Calibration:
    """Calibrate from raw scores of real images (and, for Platt scaling, of generated ones). ``inputs`` are the
    real images' ``images.describe_input`` records, kept in summary for the shift check."""
    from detectors.deepfake import shift

    reference = shift.reference(list(inputs or []), real)
    real = np.sort(np.asarray(real, dtype=np.float64))
    fake = np.asarray(fake if fake is not None else [], dtype=np.float64)
    if method == "auto":
        method = "platt" if len(fake) else "conformal"
    if method == "platt" and len(fake) < 2:
        raise InputError("Platt scaling needs raw scores of generated images too (--fake DIR)")
    cutoff = conformal_cutoff(real, target_fpr)
    common = dict(
        target_fpr=float(target_fpr),
        raw_threshold=cutoff,
        model=model,
        weights=weights or model,
        preprocess=dict(preprocess or {}),
        reference=reference,
        n_real=int(len(real)),
        n_fake=int(len(fake)),
    )
    if method == "conformal":
        # the cut-off value: 1 - p at a score just above the cut-off, i.e. the smallest flagged value
        provisional = Calibration("conformal", threshold=0.0, params={"real_scores": real.tolist()}, **common)
        threshold = float(provisional.apply(np.nextafter(cutoff, np.inf)))
        return Calibration("conformal", threshold=threshold, params={"real_scores": real.tolist()}, **common)
    from sklearn.linear_model import LogisticRegression

    x = _logit(np.concatenate([real, fake]))[:, None]
    y = np.concatenate([np.zeros(len(real)), np.ones(len(fake))])
    lr = LogisticRegression(C=1e6, class_weight="balanced", max_iter=1000).fit(x, y)
    a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
    if a <= 0:
        raise InputError("the detector scores generated images no higher than real ones: nothing to calibrate")
    provisional = Calibration("platt", threshold=0.0, params={"a": a, "b": b}, **common)
    threshold = float(provisional.apply(np.nextafter(cutoff, np.inf)))
    return Calibration("platt", threshold=threshold, params={"a": a, "b": b}, **common)
