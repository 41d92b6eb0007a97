"""UniversalFakeDetect (Ojha, Li and Lee, CVPR 2023): CLIP ViT-L/14 image embeddings + one linear layer.

A frozen CLIP image encoder already separates real photographs from generated images of many families; a
linear probe trained on one generator generalises to others. This module loads the released probe
(``pretrained_weights/fc_weights.pth``, MIT: a ``state_dict`` of ``nn.Linear(768, 1)``, keys ``weight`` [1, 768]
and ``bias`` [1]) on top of transformers' ``CLIPVisionModelWithProjection``, whose ``image_embeds`` are exactly
OpenAI CLIP's ``encode_image`` output (class token, ``ln_post``, projection) that the probe was trained on.

Preprocessing follows the project's ``validate.py``: a 224 x 224 centre crop *without resizing* and CLIP's
mean/std; resizing would smooth away the traces the probe reads. ``train`` fits a new probe on the user's own
folders and ``save`` writes it in the same released format, so either file works in either tool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError, ModelUnavailableError
from core.hashing import sha256_file
from core.weights import hub_access, offline, offline_hint, snapshot_folder, torch_load, weights_sha256
from detectors.deepfake._runtime import TorchRunner
from detectors.deepfake.images import CropNormalize

DEFAULT_MODEL = "openai/clip-vit-large-patch14"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)  # OpenAI CLIP's normalisation, as in validate.py
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


def load_probe(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """The released ``fc_weights.pth`` format: ``{"weight": [1, D], "bias": [1]}`` (float tensors)."""
    state = torch_load(path, "linear-probe weights (UniversalFakeDetect's fc_weights.pth)")
    if not isinstance(state, dict) or set(state) != {"weight", "bias"}:
        keys = sorted(state) if isinstance(state, dict) else type(state).__name__
        raise InputError(f"{path}: expected a linear layer's state dict with keys weight and bias, got {keys}")
    weight, bias = state["weight"].float().numpy(), state["bias"].float().numpy()
    if weight.ndim != 2 or weight.shape[0] != 1 or bias.shape != (1,):
        raise InputError(f"{path}: expected weight [1, D] and bias [1], got {list(weight.shape)} and {list(bias.shape)}")
    return weight, bias


def save_probe(path: str | Path, weight: np.ndarray, bias: np.ndarray) -> Path:
    """Write a probe in the released format (a plain state dict, loadable with ``weights_only=True``)."""
    import torch

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "weight": torch.as_tensor(np.asarray(weight, dtype=np.float32).reshape(1, -1)),
        "bias": torch.as_tensor(np.asarray(bias, dtype=np.float32).reshape(1)),
    }
    torch.save(state, path)
    return path


def train_probe(real: np.ndarray, fake: np.ndarray, *, c: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """A logistic-regression probe on CLIP embeddings (real = 0, fake = 1), returned as (weight, bias).

    The released probe was trained with SGD on raw embeddings; L-BFGS logistic regression reaches the same kind
    of linear boundary in seconds on a CPU. No feature scaling, so the result is a plain ``nn.Linear``.
    """
    from sklearn.linear_model import LogisticRegression

    x = np.concatenate([real, fake]).astype(np.float64)
    y = np.concatenate([np.zeros(len(real)), np.ones(len(fake))])
    model = LogisticRegression(C=c, max_iter=5000, class_weight="balanced").fit(x, y)
    return model.coef_.astype(np.float32), model.intercept_.astype(np.float32)


def _load_vision(name: str, revision: str | None, local_only: bool):
    """The vision tower with its projection, from a full CLIP checkpoint (the hub's openai/clip-vit-large-patch14)
    or a vision-only one.

    transformers takes the vision tower's ``projection_dim`` from ``vision_config``, where full CLIP configs may
    not carry it (it lives at the top level): the projection would then be re-initialised at the default size.
    So the config is built here, and a load that leaves any vision weight missing is refused instead of being
    silently random. The text tower's weights are expected to be unused and are not reported.
    """
    import logging

    from transformers import AutoConfig, CLIPVisionModelWithProjection

    with hub_access(local_only):
        config = AutoConfig.from_pretrained(name, revision=revision, local_files_only=local_only)
    if config.model_type == "clip":
        vision_config = config.vision_config
        vision_config.projection_dim = config.projection_dim
    elif config.model_type == "clip_vision_model":
        vision_config = config
    else:
        raise InputError(f"{name}: not a CLIP model (model_type {config.model_type!r})")
    report = logging.getLogger("transformers.modeling_utils")
    level = report.level
    report.setLevel(logging.ERROR)  # the load report lists every unused text-tower weight
    try:
        with hub_access(local_only):
            vision, info = CLIPVisionModelWithProjection.from_pretrained(
                name, config=vision_config, revision=revision, output_loading_info=True, local_files_only=local_only
            )
    finally:
        report.setLevel(level)
    problems = list(info.get("missing_keys", [])) + [str(k) for k in info.get("mismatched_keys", [])]
    if problems:
        raise InputError(f"{name}: CLIP vision weights missing or of the wrong shape: {sorted(problems)[:5]}")
    return vision


@dataclass
class ClipProbe:
    vision: Any  # CLIPVisionModelWithProjection
    runner: TorchRunner
    prepare: CropNormalize
    weight: np.ndarray | None
    bias: np.ndarray | None
    model_id: str

    def _embed(self, pixels):
        return self.vision(pixel_values=pixels).image_embeds

    def embed(self, inputs) -> np.ndarray:
        """CLIP image embeddings (what the probe reads), float32, one row per input."""
        return self.runner(self._embed, inputs)

    def predict(self, inputs) -> np.ndarray:
        if self.weight is None:
            raise InputError("no linear probe loaded: set checkpoint to a fc_weights.pth file")
        logits = self.embed(inputs).astype(np.float32) @ self.weight.T + self.bias
        return 1.0 / (1.0 + np.exp(-logits[:, 0]))


def load(
    model: str | None = None,
    checkpoint: str | Path | None = None,
    *,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    require_probe: bool = True,
    local_files_only: bool | None = None,
) -> ClipProbe:
    """CLIP vision tower by hub id or local folder (a full CLIP checkpoint works) plus the probe file."""
    if require_probe and checkpoint is None:
        raise InputError("the probe backend needs checkpoint: a linear-probe file (UniversalFakeDetect fc_weights.pth)")
    name = model or DEFAULT_MODEL
    weight, bias = load_probe(checkpoint) if checkpoint is not None else (None, None)
    runner = TorchRunner.create(device, dtype)
    local_only = offline(local_files_only)
    try:
        vision = _load_vision(name, revision, local_only)
    except OSError as exc:
        if local_only and not Path(name).is_dir():
            raise ModelUnavailableError(f"cannot load CLIP model: {offline_hint(name)}") from None
        raise ModelUnavailableError(f"cannot load CLIP model {name!r}: {exc}") from exc
    dim = vision.config.projection_dim
    if weight is not None and weight.shape[1] != dim:
        raise InputError(f"{checkpoint}: probe expects {weight.shape[1]}-dim embeddings, {name} gives {dim}")
    folder = snapshot_folder(name, getattr(vision.config, "_commit_hash", None))
    digest = (weights_sha256(folder) if folder else None) or getattr(vision.config, "_commit_hash", None) or "unknown"
    probe_digest = f"+{sha256_file(Path(checkpoint))[:16]}" if checkpoint is not None else ""
    return ClipProbe(
        vision=runner.prepare_module(vision),
        runner=runner,
        prepare=CropNormalize(vision.config.image_size, CLIP_MEAN, CLIP_STD),
        weight=weight,
        bias=bias,
        model_id=f"probe:{name}@{digest[:16]}{probe_digest}",
    )
