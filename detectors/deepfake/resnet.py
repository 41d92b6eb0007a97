"""CNNDetection (Wang et al., CVPR 2020, "CNN-generated images are surprisingly easy to spot... for now"):
a ResNet-50 with one output logit, loaded from that project's checkpoint format ``{"model": state_dict}``
with torchvision key names (``conv1.weight``, ``layer1.0.bn2.running_var``, ``fc.weight`` [1, 2048], ...).

Why not torchvision: its wheels are built against one exact torch, and no torchvision imports beside the torch
this project pins. transformers' ``ResNetForImageClassification`` is the same network (torchvision's "v1.5":
stride in the 3x3 convolution, 1x1 projection shortcuts, 7x7 stem and 3x3 max-pool, BatchNorm eps 1e-5), so
the published weights load into it through a key renaming (``torchvision_to_transformers``), checked by a
strict ``load_state_dict``. The depth and widths are read from the checkpoint, so ResNet-101/152 load too.

Preprocessing: ImageNet mean/std on a 224 x 224 centre crop without resizing (the project's ``--crop``
option; its default of whole images at native size cannot be batched).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError
from core.hashing import sha256_file
from core.weights import torch_load
from detectors.deepfake._runtime import TorchRunner
from detectors.deepfake.images import CropNormalize

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
_BLOCK = re.compile(r"^layer(\d+)\.(\d+)\.(conv|bn)(\d)\.(.+)$")
_DOWNSAMPLE = re.compile(r"^layer(\d+)\.(\d+)\.downsample\.([01])\.(.+)$")


def torchvision_to_transformers(state: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Rename a torchvision bottleneck-ResNet state dict for ``ResNetForImageClassification``.

    Returns (config keyword arguments, renamed state dict). Raises ``InputError`` on keys it does not know.
    """
    state = {key.removeprefix("module."): value for key, value in state.items()}  # DataParallel checkpoints
    if "conv1.weight" not in state or "fc.weight" not in state:
        raise InputError("not a torchvision ResNet state dict (no conv1.weight / fc.weight)")
    renamed: dict[str, Any] = {}
    depths: dict[int, int] = {}
    for key, value in state.items():
        if key.startswith("conv1."):
            renamed["resnet.embedder.embedder.convolution." + key[6:]] = value
        elif key.startswith("bn1."):
            renamed["resnet.embedder.embedder.normalization." + key[4:]] = value
        elif key.startswith("fc."):
            renamed["classifier.1." + key[3:]] = value
        elif match := _BLOCK.match(key):
            layer, block, kind, position, rest = match.groups()
            depths[int(layer)] = max(depths.get(int(layer), 0), int(block) + 1)
            part = "convolution" if kind == "conv" else "normalization"
            prefix = f"resnet.encoder.stages.{int(layer) - 1}.layers.{block}"
            renamed[f"{prefix}.layer.{int(position) - 1}.{part}.{rest}"] = value
        elif match := _DOWNSAMPLE.match(key):
            layer, block, position, rest = match.groups()
            part = "convolution" if position == "0" else "normalization"
            renamed[f"resnet.encoder.stages.{int(layer) - 1}.layers.{block}.shortcut.{part}.{rest}"] = value
        else:
            raise InputError(f"unexpected key {key!r} in a torchvision ResNet state dict")
    layers = sorted(depths)
    if layers != [1, 2, 3, 4]:
        raise InputError(f"expected layer1..layer4, found layers {layers}")
    if "layer1.0.conv3.weight" not in state:
        raise InputError("only bottleneck ResNets (50, 101, 152) are supported: no layer1.0.conv3")
    config = {
        "embedding_size": int(state["conv1.weight"].shape[0]),
        "hidden_sizes": [int(state[f"layer{i}.0.conv3.weight"].shape[0]) for i in layers],
        "depths": [depths[i] for i in layers],
        "layer_type": "bottleneck",
        "hidden_act": "relu",
        "downsample_in_first_stage": False,
        "downsample_in_bottleneck": False,
        "num_labels": int(state["fc.weight"].shape[0]),
    }
    return config, renamed


def load_checkpoint(path: str | Path):
    """A ``ResNetForImageClassification`` holding the weights of a CNNDetection checkpoint."""
    from transformers import ResNetConfig, ResNetForImageClassification

    checkpoint = torch_load(path, "CNNDetection checkpoint")
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("model"), dict):
        raise InputError(f'{path}: expected CNNDetection\'s format {{"model": state_dict}}')
    try:
        config, state = torchvision_to_transformers(checkpoint["model"])
    except ValueError as exc:
        raise InputError(f"{path}: {exc}") from None
    if config["num_labels"] != 1:
        raise InputError(f"{path}: expected one output logit (fc.weight [1, D]), got {config['num_labels']}")
    model = ResNetForImageClassification(ResNetConfig(**config))
    model.load_state_dict(state, strict=True)
    return model


@dataclass
class CNNDetection:
    model: Any
    runner: TorchRunner
    prepare: CropNormalize
    model_id: str

    def _probability(self, pixels):
        import torch

        return torch.sigmoid(self.model(pixel_values=pixels).logits.float()[:, 0])

    def predict(self, inputs) -> np.ndarray:
        return self.runner(self._probability, inputs)


def load(
    checkpoint: str | Path | None, *, crop_size: int = 224, device: str = "auto", dtype: str = "auto"
) -> CNNDetection:
    if checkpoint is None:
        raise InputError('the resnet backend needs checkpoint: a CNNDetection file ({"model": state_dict})')
    runner = TorchRunner.create(device, dtype, channels_last=True)
    model = load_checkpoint(checkpoint)
    return CNNDetection(
        model=runner.prepare_module(model),
        runner=runner,
        prepare=CropNormalize(crop_size, IMAGENET_MEAN, IMAGENET_STD),
        model_id=f"resnet:{Path(checkpoint).name}@{sha256_file(Path(checkpoint))[:16]}",
    )
