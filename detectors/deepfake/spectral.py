"""Frequency-spectrum detector (Durall, Keuper and Keuper, CVPR 2020, "Watch your Up-Convolution"). Experimental:
on public images it was at chance on generators it was not fitted on, before and after inputs were brought to one
scale (docs/evidence.md); use it for one known generator, not as a general detector.

Up-sampling layers in generators (transposed convolutions, nearest or bilinear up-sampling) cannot reproduce the
high-frequency spectrum of natural images: the azimuthally averaged power spectrum of a generated image falls
off or shows bumps at high frequencies. The paper's features are that 1-D profile, and a logistic regression on
it separates real from generated images of one source with little data. Training takes seconds to minutes on a
CPU (``train``), so a user builds one for the generators they actually meet.

Features: greyscale; a centred square crop of at most ``max_side`` pixels (bounded cost, same geometry for every
image); ``20 log |FFT|`` shifted so frequency 0 is in the centre; the mean over each integer radius up to the
inscribed circle (the corners hold too few samples to average); resampled to ``bins`` points; min-max
normalised as in the paper. The model file is small JSON (scaler, coefficients, intercept): no pickle to trust.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from core.errors import InputError
from core.weights import json_load

FORMAT = "genguard.spectral/v1"
LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


@lru_cache(maxsize=8)
def _radii(side: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Integer radius of each pixel of a ``side`` x ``side`` centred spectrum, the mask of the inscribed disc,
    and the number of radii."""
    centre = side // 2
    y, x = np.indices((side, side))
    radius = np.hypot(x - centre, y - centre).astype(np.int64)
    inside = radius <= side // 2
    return radius[inside], inside, side // 2 + 1


def spectrum_profile(image: np.ndarray, *, bins: int = 128, max_side: int = 512) -> np.ndarray:
    """The azimuthally averaged log power spectrum of an RGB or greyscale ``uint8`` image, ``bins`` values in [0, 1]."""
    grey = image.astype(np.float32) @ LUMA if image.ndim == 3 else image.astype(np.float32)
    height, width = grey.shape
    side = min(height, width, max_side)
    if side < 8:
        raise InputError(f"image of {width}x{height} pixels is too small for a spectrum")
    top, left = (height - side) // 2, (width - side) // 2
    grey = grey[top : top + side, left : left + side]
    magnitude = 20.0 * np.log(np.abs(np.fft.fftshift(np.fft.fft2(grey))) + 1e-8)
    radius, inside, count = _radii(side)
    profile = np.bincount(radius, weights=magnitude[inside], minlength=count) / np.bincount(radius, minlength=count)
    resampled = np.interp(np.linspace(0, count - 1, bins), np.arange(count), profile)
    span = resampled.max() - resampled.min()
    return ((resampled - resampled.min()) / span if span > 0 else np.zeros(bins)).astype(np.float32)


@dataclass(frozen=True)
class SpectralPrepare:
    """Feature extraction as the engine's per-crop preprocessing (runs in the decoding workers)."""

    bins: int = 128
    max_side: int = 512

    def __call__(self, image: np.ndarray) -> np.ndarray:
        return spectrum_profile(image, bins=self.bins, max_side=self.max_side)


@dataclass(frozen=True)
class SpectralModel:
    """Standardisation + logistic regression, evaluated in numpy."""

    mean: np.ndarray
    scale: np.ndarray
    coef: np.ndarray
    intercept: float
    bins: int = 128
    max_side: int = 512
    trained_on: dict | None = None
    model_id: str = "spectral:unsaved"
    preprocess: dict | None = None  # engine.CropPlan.to_json() of the crops it was trained on

    @property
    def prepare(self) -> SpectralPrepare:
        return SpectralPrepare(self.bins, self.max_side)

    def predict(self, inputs) -> np.ndarray:
        features = np.asarray(inputs, dtype=np.float64)
        z = ((features - self.mean) / self.scale) @ self.coef + self.intercept
        return 1.0 / (1.0 + np.exp(-z))

    def to_json(self) -> dict:
        return {
            "format": FORMAT,
            "method": "durall2020: azimuthal log power spectrum + logistic regression",
            "bins": self.bins,
            "max_side": self.max_side,
            "mean": self.mean.tolist(),
            "scale": self.scale.tolist(),
            "coef": self.coef.tolist(),
            "intercept": float(self.intercept),
            "trained_on": self.trained_on or {},
            **({"preprocess": self.preprocess} if self.preprocess is not None else {}),
        }

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_json(), indent=1) + "\n")
        return path


def load(path: str | Path | None) -> SpectralModel:
    if path is None:
        raise InputError("the spectral backend needs checkpoint: a model file from `guard detector train`")
    path = Path(path)
    data, sha256 = json_load(path, "spectral model file", "make one with `guard detector train`")
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(f"{path}: not a spectral model file (format is not {FORMAT!r})")
    try:
        bins = int(data["bins"])
        arrays = [np.asarray(data[key], dtype=np.float64) for key in ("mean", "scale", "coef")]
        intercept = float(data["intercept"])
        max_side = int(data.get("max_side", 512))
        preprocess = data.get("preprocess")
        if preprocess is not None and not isinstance(preprocess, dict):
            raise TypeError("preprocess must be a mapping of options")
    except (KeyError, TypeError, ValueError) as exc:
        raise InputError(f"{path}: malformed spectral model ({exc})") from None
    if any(a.shape != (bins,) for a in arrays):
        raise InputError(f"{path}: mean, scale and coef must each hold {bins} values")
    digest = sha256[:16]
    return SpectralModel(*arrays, intercept, bins, max_side, data.get("trained_on"), f"spectral:{path.name}@{digest}",
                         preprocess)


def train(real: np.ndarray, fake: np.ndarray, *, c: float = 1.0, bins: int = 128, max_side: int = 512,
          preprocess: dict | None = None) -> SpectralModel:
    """Fit the scaler and logistic regression on spectrum profiles (rows) of real and generated images."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    if len(real) < 2 or len(fake) < 2:
        raise InputError(f"need at least 2 real and 2 generated images, got {len(real)} and {len(fake)}")
    x = np.concatenate([real, fake]).astype(np.float64)
    y = np.concatenate([np.zeros(len(real)), np.ones(len(fake))])
    scaler = StandardScaler().fit(x)
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    classifier = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit((x - scaler.mean_) / scale, y)
    return SpectralModel(
        mean=scaler.mean_,
        scale=scale,
        coef=classifier.coef_[0],
        intercept=float(classifier.intercept_[0]),
        bins=bins,
        max_side=max_side,
        trained_on={"real": int(len(real)), "fake": int(len(fake))},
        preprocess=preprocess,
    )
