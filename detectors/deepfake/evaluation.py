"""Detector evaluation: AUC, AP, accuracy at the detector's threshold and TPR at 1% FPR, clean and under the
robustness protocol of the published detectors (JPEG re-encoding at quality 30..100, Gaussian blur sigma 0..3).

The sweep reads each image once: it is decoded, brought to the detector's scale and searched for faces once,
and every condition is derived from that (``DeepfakeDetector.iter_conditions``): the degradation is applied to
the image at the scale the detector reads, and the faces found on the clean image are cut from each degraded
copy, so a condition measures what the degradation does to the score, not to the face finder.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from core.errors import InputError
from detectors.deepfake import images

JPEG_QUALITIES = (30, 40, 50, 60, 70, 80, 90, 100)
BLUR_SIGMAS = (0.0, 1.0, 2.0, 3.0)


@dataclass(frozen=True)
class Metrics:
    n_real: int
    n_fake: int
    auc: float
    ap: float
    accuracy: float  # at the detector's threshold (calibrated, else 0.5)
    real_accuracy: float
    fake_accuracy: float
    tpr_at_1pct_fpr: float
    threshold: float
    errors: int = 0  # images that could not be scored

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def tpr_at_fpr(labels: np.ndarray, scores: np.ndarray, fpr: float = 0.01) -> float:
    """The highest true-positive rate whose false-positive rate does not exceed ``fpr`` (ROC, no interpolation)."""
    from sklearn.metrics import roc_curve

    fprs, tprs, _ = roc_curve(labels, scores)
    return float(tprs[fprs <= fpr + 1e-12].max())


def metrics(labels: Any, raw: Any, values: Any, threshold: float, *, errors: int = 0) -> Metrics:
    """Ranking metrics on ``raw`` scores (any monotone calibration leaves them unchanged up to ties), accuracy on
    the calibrated ``values`` flagged at ``value >= threshold``."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    labels = np.asarray(labels, dtype=int)
    raw = np.asarray(raw, dtype=np.float64)
    flagged = np.asarray(values, dtype=np.float64) >= threshold
    real, fake = labels == 0, labels == 1
    if not real.any() or not fake.any():
        raise InputError(f"need both real and generated images that could be scored, got {real.sum()} and {fake.sum()}")
    return Metrics(
        n_real=int(real.sum()),
        n_fake=int(fake.sum()),
        auc=float(roc_auc_score(labels, raw)),
        ap=float(average_precision_score(labels, raw)),
        accuracy=float((flagged == fake).mean()),
        real_accuracy=float((~flagged[real]).mean()),
        fake_accuracy=float(flagged[fake].mean()),
        tpr_at_1pct_fpr=tpr_at_fpr(labels, raw, 0.01),
        threshold=float(threshold),
        errors=errors,
    )


def score_sets(detector, real: Sequence[Any], fake: Sequence[Any], *, conditions=(None,),
               progress=None) -> list[Metrics]:
    """Run ``detector`` over both sets (one pass, batched) and compute ``Metrics`` under each condition."""
    sources = list(real) + list(fake)
    labels, errors = [], 0
    raw: list[list[float]] = [[] for _ in conditions]
    values: list[list[float]] = [[] for _ in conditions]
    for result in detector.iter_conditions(sources, conditions, progress=progress):
        if result.error is not None:
            errors += 1
            continue
        labels.append(0 if result.index < len(real) else 1)
        for k, score in enumerate(result.scores):
            raw[k].append(score.details["raw"])
            values[k].append(score.value)
    return [metrics(labels, raw[k], values[k], detector.threshold, errors=errors) for k in range(len(conditions))]


def robustness(
    detector,
    real: Sequence[Any],
    fake: Sequence[Any],
    *,
    jpeg_qualities: Sequence[int] = JPEG_QUALITIES,
    blur_sigmas: Sequence[float] = BLUR_SIGMAS,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Clean metrics, and metrics under each JPEG quality and each blur sigma (each degradation applied alone, to
    the real and the generated images alike), in one pass over the images. ``jpeg`` and ``blur`` are lists in
    increasing quality and sigma. ``progress`` is called with the number of images done."""
    qualities = sorted({int(q) for q in jpeg_qualities})
    sigmas = sorted({float(s) for s in blur_sigmas})
    conditions = [None]
    conditions += [functools.partial(images.jpeg, quality=q) for q in qualities]
    conditions += [functools.partial(images.blur, sigma=s) for s in sigmas]
    results = [m.to_dict() for m in score_sets(detector, real, fake, conditions=conditions, progress=progress)]
    return {
        "clean": results[0],
        "jpeg": [{"quality": q, **m} for q, m in zip(qualities, results[1 : 1 + len(qualities)])],
        "blur": [{"sigma": s, **m} for s, m in zip(sigmas, results[1 + len(qualities) :])],
    }
