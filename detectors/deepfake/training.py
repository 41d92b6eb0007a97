"""Training the backends a user can fit on their own folders in minutes: the spectral detector (features are
cheap, the classifier is a logistic regression), and a linear probe on CLIP embeddings (one pass of the encoder
over the images, then a logistic regression): ``clip`` on the ONNX ViT-B/16 encoder, ``probe`` on a
transformers CLIP model (UniversalFakeDetect's format).

Images are read exactly as the detector will read them (``engine.CropPlan``: the same scale, and with
``faces`` each face crop too, each crop a training example with its image's label), and the model file records
that preprocessing, so ``eval``, ``calibrate`` and ``scan`` use it by default and refuse options that contradict
it. A stratified share of the images is held out (scored like the detector scores them: the ``max`` over crops);
the saved model is the one fitted on the rest, so the held-out metrics describe exactly the file that is written.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from core.errors import InputError
from detectors.deepfake import engine
from detectors.deepfake.evaluation import Metrics, metrics

Trainable = Literal["spectral", "clip", "probe"]
TRAINABLE = ("spectral", "clip", "probe")


@dataclass(frozen=True)
class TrainReport:
    backend: str
    out: Path
    n_real: int
    n_fake: int
    errors: list[str]
    holdout: Metrics | None
    options: dict[str, Any]  # the detector options that use the new file

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "out": str(self.out),
            "n_real": self.n_real,
            "n_fake": self.n_fake,
            "errors": self.errors,
            "holdout": self.holdout.to_dict() if self.holdout else None,
            "options": self.options,
        }


def features(
    sources: Sequence[Any],
    prepare: Callable[[np.ndarray], np.ndarray],
    forward: Callable[[Any], np.ndarray],
    *,
    plan: engine.CropPlan,
    batch_size: int,
    workers: int,
    pin_memory: bool = False,
    progress: Callable[[int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[int], list[str]]:
    """Feature rows of every crop of the images that could be read, the index of the image each row came from,
    the indices of those images, and errors for the others."""
    rows, owners, kept, errors = [], [], [], []
    outputs = engine.run(sources, forward, prepare=prepare, plan=plan, batch_size=batch_size, workers=workers,
                         pin_memory=pin_memory)
    for done, out in enumerate(outputs, start=1):
        if out.error is not None or out.outputs is None:
            errors.append(out.error or f"{sources[out.index]}: no output")
        else:
            rows.extend(out.outputs)
            owners.extend([out.index] * len(out.outputs))
            kept.append(out.index)
        if progress is not None:
            progress(done)
    return (np.stack(rows) if rows else np.zeros((0, 0))), np.asarray(owners, dtype=int), kept, errors


def train(
    backend: Trainable,
    real: Sequence[Any],
    fake: Sequence[Any],
    *,
    out: str | Path,
    model: str | None = None,
    holdout: float = 0.2,
    seed: int = 0,
    device: str = "auto",
    dtype: str = "auto",
    batch_size: int = 32,
    workers: int | None = None,
    bins: int = 128,
    plan: engine.CropPlan | None = None,
    progress: Callable[[int], None] | None = None,
) -> TrainReport:
    """Fit a ``spectral`` model (JSON), a ``clip`` head (JSON) or a CLIP linear ``probe`` (``fc_weights.pth``
    format) and write it to ``out``. ``plan`` is the preprocessing (default: the detector's defaults, whole images
    only); the JSON formats record it."""
    from core.device import resolve_device
    from detectors.deepfake._runtime import default_workers

    if not 0.0 <= holdout < 1.0:
        raise InputError(f"holdout must be in [0, 1), got {holdout}")
    sources = list(real) + list(fake)
    if plan is None:
        plan = engine.CropPlan(faces=False)
    preprocess = plan.to_json()
    if plan.faces:
        preprocess["aggregate"] = "max"  # how the detector combines the crops this model is fitted on
    if backend == "spectral":
        from detectors.deepfake.spectral import SpectralPrepare

        prepare, forward, pin = SpectralPrepare(bins=bins), np.asarray, False
        n_workers = default_workers(resolve_device("cpu")) if workers is None else workers
    elif backend == "clip":
        from detectors.deepfake import onnx_clip

        encoder = onnx_clip.load(model, device=device, require_head=False)
        prepare, forward, pin = encoder.prepare, encoder.embed, False
        n_workers = default_workers(encoder.runner.device) if workers is None else workers
    elif backend == "probe":
        from detectors.deepfake import clip_probe

        probe = clip_probe.load(model, None, device=device, dtype=dtype, require_probe=False)
        prepare, forward, pin = probe.prepare, probe.embed, probe.runner.pin_memory
        n_workers = default_workers(probe.runner.device) if workers is None else workers
    else:
        raise InputError(f"only the {', '.join(TRAINABLE)} backends can be trained, not {backend!r}")
    x, owners, kept, errors = features(sources, prepare, forward, plan=plan, batch_size=batch_size,
                                       workers=n_workers, pin_memory=pin, progress=progress)
    y = np.array([0 if i < len(real) else 1 for i in kept])
    if (y == 0).sum() < 2 or (y == 1).sum() < 2:
        raise InputError(f"need at least 2 readable real and 2 generated images, got {(y == 0).sum()} and {(y == 1).sum()}")
    fit_idx, test_idx = _split(y, holdout, seed)
    fit_rows = np.isin(owners, np.asarray(kept)[fit_idx])
    row_label = (owners >= len(real)).astype(int)
    fit_real = x[fit_rows & (row_label == 0)]
    fit_fake = x[fit_rows & (row_label == 1)]
    out = Path(out)
    if backend == "spectral":
        from detectors.deepfake import spectral

        fitted = spectral.train(fit_real, fit_fake, bins=bins, preprocess=preprocess)
        fitted.save(out)
        predict = fitted.predict
        options = {"backend": "spectral", "checkpoint": str(out)}
    elif backend == "clip":
        from detectors.deepfake.heads import fit_linear

        head = fit_linear(fit_real, fit_fake, trained_on={"encoder": encoder.model_id}, preprocess=preprocess)
        head.save(out)
        predict = head.predict
        options = {"backend": "clip", **({"model": str(model)} if model else {}), "checkpoint": str(out)}
    else:
        weight, bias = clip_probe.train_probe(fit_real, fit_fake)
        clip_probe.save_probe(out, weight, bias)

        def predict(rows: np.ndarray) -> np.ndarray:
            return 1.0 / (1.0 + np.exp(-(rows @ weight.T + bias)[:, 0]))

        options = {"backend": "probe", "model": model or clip_probe.DEFAULT_MODEL, "checkpoint": str(out)}
    options.update(preprocess)  # the policy must read images as the model was fitted (a .pth cannot record it)
    report = None
    if len(test_idx):
        crop_scores = predict(x)
        scores = np.array([crop_scores[owners == kept[i]].max() for i in test_idx])
        report = metrics(y[test_idx], scores, scores, 0.5)
    return TrainReport(backend, out, int((y == 0).sum()), int((y == 1).sum()), errors, report, options)


def _split(y: np.ndarray, holdout: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    indices = np.arange(len(y))
    if holdout == 0:
        return indices, indices[:0]
    from sklearn.model_selection import train_test_split

    return train_test_split(indices, test_size=holdout, stratify=y, random_state=seed)
