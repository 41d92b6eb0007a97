"""Any transformers image-classification model (hub id or local folder) as a deepfake backend.

The model's own image processor prepares each crop (in the decoding workers), so a model fine-tuned on
real-versus-generated images scores exactly as its authors ran it. A label mapping says which of its labels
mean "generated / manipulated"; the fake probability is the softmax mass on those labels (or the sigmoid of a
single logit, or the largest sigmoid for multi-label models).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError, ModelUnavailableError
from core.weights import hub_access, offline, offline_hint, snapshot_folder, weights_sha256
from detectors.deepfake._runtime import TorchRunner

# Labels that mean "not a real photograph" in published detectors ("fake", "AI", "artificial", "deepfake",
# "generated", "synthetic", "Fake_Image", ...). Used only when the policy gives no ``fake_labels``.
FAKE_LABEL = re.compile(r"fake|artificial|generated|synthetic|deepfake|^ai$|^ai[\W_]", re.IGNORECASE)


class ProcessorPrepare:
    """The model's image processor on one RGB crop; runs in the decoding workers, so it must pickle."""

    def __init__(self, processor: Any) -> None:
        self.processor = processor

    def __call__(self, image: np.ndarray) -> np.ndarray:
        out = self.processor(images=image, return_tensors="np", input_data_format="channels_last")
        return np.ascontiguousarray(out["pixel_values"][0], dtype=np.float32)


def fake_label_indices(id2label: dict[int, str], fake_labels: list[str] | None) -> list[int]:
    """Indices of the labels that mean fake: the ones named (case-insensitive), or those matching ``FAKE_LABEL``."""
    labels = {int(i): str(name) for i, name in id2label.items()}
    if fake_labels:
        wanted = {name.lower() for name in fake_labels}
        found = [i for i, name in labels.items() if name.lower() in wanted]
        missing = wanted - {labels[i].lower() for i in found}
        if missing:
            raise InputError(f"fake_labels {sorted(missing)} are not labels of this model ({sorted(labels.values())})")
        return sorted(found)
    if len(labels) == 1:
        return [next(iter(labels))]
    found = sorted(i for i, name in labels.items() if FAKE_LABEL.search(name))
    if not found or len(found) == len(labels):
        raise InputError(
            f"cannot tell which labels mean fake among {sorted(labels.values())}: set fake_labels in the policy"
        )
    return found


@dataclass
class HFClassifier:
    model: Any
    runner: TorchRunner
    prepare: ProcessorPrepare
    fake: list[int]
    multi_label: bool
    model_id: str

    def _fake_probability(self, pixels):
        import torch

        logits = self.model(pixel_values=pixels).logits.float()
        if logits.shape[-1] == 1:
            return torch.sigmoid(logits[:, 0])
        if self.multi_label:
            return torch.sigmoid(logits[:, self.fake]).amax(dim=-1)
        return torch.softmax(logits, dim=-1)[:, self.fake].sum(dim=-1)

    def predict(self, inputs) -> np.ndarray:
        return self.runner(self._fake_probability, inputs)


def load(
    model: str | None,
    *,
    fake_labels: list[str] | None = None,
    revision: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    local_files_only: bool | None = None,
) -> HFClassifier:
    if not model:
        raise InputError("the hf backend needs model: a hub id or a local folder of an image-classification model")
    from transformers import AutoImageProcessor, AutoModelForImageClassification

    runner = TorchRunner.create(device, dtype, channels_last=True)
    local = Path(model).is_dir()
    if not local and (Path(model).exists() or model.startswith((".", "/"))):
        raise ModelUnavailableError(f"{model}: not a model folder (expected config.json and weights inside)")
    local_only = offline(local_files_only)
    try:
        with hub_access(local_only):
            processor = AutoImageProcessor.from_pretrained(model, revision=revision, local_files_only=local_only)
            module = AutoModelForImageClassification.from_pretrained(model, revision=revision,
                                                                     local_files_only=local_only)
    except OSError as exc:
        if local_only and not local:
            hint = offline_hint(model, "config.json, the weights and preprocessor_config.json")
            raise ModelUnavailableError(f"cannot load image classifier: {hint}") from None
        raise ModelUnavailableError(f"cannot load image classifier {model!r}: {exc}") from exc
    config = module.config
    fake = fake_label_indices(config.id2label, fake_labels)
    commit = getattr(config, "_commit_hash", None)
    folder = snapshot_folder(model, commit)
    digest = (weights_sha256(folder) if folder else None) or commit or "unknown"
    return HFClassifier(
        model=runner.prepare_module(module),
        runner=runner,
        prepare=ProcessorPrepare(processor),
        fake=fake,
        multi_label=config.problem_type == "multi_label_classification",
        model_id=f"hf:{model}@{digest[:16]}",
    )
