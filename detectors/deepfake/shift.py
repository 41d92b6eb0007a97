"""Do the scanned images look like the calibration set? The check behind an honest false-positive rate.

A conformal threshold keeps its false-positive rate only for real images exchangeable with the calibration set.
A detector calibrated on 256 px JPEGs and run on 12 MP camera photos, or on heavily recompressed uploads, flags
real images at a rate nobody measured (docs/evidence.md: 3.6x the target). So a calibration keeps small
summaries of its real images - their shorter side before scaling, their JPEG quality and their raw scores, at
most ``REFERENCE_SIZE`` order statistics each, no pixels - and a scan compares its own images with them:

* ``resolution``: the shorter side of every scanned image;
* ``jpeg_quality``: the estimated JPEG quality of every scanned image (``images.LOSSLESS`` for PNG and the like);
* ``scores``: the raw scores of the scanned images that are *presumed real* (below the calibrated cut-off),
  against the calibration images' raw scores below the same cut-off: if real images score differently here, the
  threshold no longer means the target rate.

Each is a two-sample Kolmogorov-Smirnov test; a check reports a shift when the difference is both significant
(p < ``ALPHA``) and large (statistic > ``MIN_EFFECT``: with thousands of images a trivial difference is
significant). With fewer than ``MIN_IMAGES`` values a check is not made and says so.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

REFERENCE_SIZE = 1000  # order statistics kept per quantity
MIN_IMAGES = 20
ALPHA = 0.01
MIN_EFFECT = 0.2


def _sketch(values: Sequence[float]) -> list[float]:
    """The sorted values, or ``REFERENCE_SIZE`` evenly spaced order statistics of them."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if len(ordered) > REFERENCE_SIZE:
        ordered = ordered[np.linspace(0, len(ordered) - 1, REFERENCE_SIZE).round().astype(int)]
    return [round(float(v), 6) for v in ordered]


def _columns(inputs: Sequence[dict[str, Any]]) -> dict[str, list[float]]:
    sides = [min(i["width"], i["height"]) for i in inputs if i.get("width") and i.get("height")]
    qualities = [i["jpeg_quality"] for i in inputs if i.get("jpeg_quality") is not None]
    return {"resolution": sides, "jpeg_quality": qualities}


def reference(inputs: Sequence[dict[str, Any]], raw: Sequence[float]) -> dict[str, Any]:
    """What a calibration keeps of its real images: ``inputs`` are ``images.describe_input`` records, ``raw``
    their raw scores."""
    columns = _columns(inputs)
    return {"n": len(raw), "resolution": _sketch(columns["resolution"]),
            "jpeg_quality": _sketch(columns["jpeg_quality"]), "scores": _sketch(raw)}


@dataclass(frozen=True)
class Check:
    quantity: str
    n: int  # scanned values compared
    calibration_median: float | None
    scanned_median: float | None
    statistic: float | None = None  # Kolmogorov-Smirnov distance
    p_value: float | None = None
    shifted: bool = False
    note: str = ""


@dataclass(frozen=True)
class ShiftReport:
    """The verdict: ``shifted`` when any check found the scanned images unlike the calibration set."""

    target_fpr: float
    checks: list[Check] = field(default_factory=list)

    @property
    def shifted(self) -> bool:
        return any(c.shifted for c in self.checks)

    @property
    def checked(self) -> bool:
        return any(c.statistic is not None for c in self.checks)

    @property
    def message(self) -> str:
        if self.shifted:
            what = "; ".join(f"{c.quantity.replace('_', ' ')}: median {_num(c.scanned_median)} here, "
                             f"{_num(c.calibration_median)} in calibration" for c in self.checks if c.shifted)
            return (f"these images do not look like the calibration set ({what}): the calibrated false-positive "
                    f"rate of {self.target_fpr:g} is not guaranteed for them; calibrate on real images like these "
                    "(guard detector calibrate)")
        if not self.checked:
            return (f"too few images to check that they look like the calibration set (at least {MIN_IMAGES} "
                    f"needed): the false-positive rate of {self.target_fpr:g} holds only for images like it")
        return (f"these images look like the calibration set in resolution, compression and scores: the "
                f"calibrated false-positive rate of {self.target_fpr:g} applies")

    def to_dict(self) -> dict[str, Any]:
        return {"shifted": self.shifted, "checked": self.checked, "target_fpr": self.target_fpr,
                "message": self.message, "checks": [asdict(c) for c in self.checks]}


def _num(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _median(values: Sequence[float]) -> float | None:
    return float(np.median(values)) if len(values) else None


def _compare(quantity: str, scanned: Sequence[float], stored: Sequence[float]) -> Check:
    median = _median(stored)
    if len(scanned) < MIN_IMAGES or len(stored) < MIN_IMAGES:
        return Check(quantity, len(scanned), median, _median(scanned),
                     note=f"not checked: {len(scanned)} values here, {len(stored)} in calibration "
                          f"(at least {MIN_IMAGES} each needed)")
    from scipy.stats import ks_2samp

    result = ks_2samp(np.asarray(scanned, dtype=np.float64), np.asarray(stored, dtype=np.float64))
    statistic, p_value = float(result.statistic), float(result.pvalue)
    return Check(quantity, len(scanned), median, _median(scanned), round(statistic, 4), p_value,
                 bool(p_value < ALPHA and statistic > MIN_EFFECT))


def check(stored: dict[str, Any], inputs: Sequence[dict[str, Any]], raw: Sequence[float], *,
          raw_threshold: float, target_fpr: float) -> ShiftReport:
    """Compare scanned images (``describe_input`` records and raw scores) with a calibration's ``reference``."""
    columns = _columns(inputs)
    presumed_real = [s for s in raw if s <= raw_threshold]
    stored_real = [s for s in stored.get("scores", []) if s <= raw_threshold]
    checks = [
        _compare("resolution", columns["resolution"], stored.get("resolution", [])),
        _compare("jpeg_quality", columns["jpeg_quality"], stored.get("jpeg_quality", [])),
        _compare("scores", presumed_real, stored_real),
    ]
    return ShiftReport(target_fpr, checks)
