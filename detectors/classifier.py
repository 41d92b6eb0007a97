"""Any transformers sequence-classification model as a scorer, so users can bring their own classifier.

The policy maps the model's labels to its own (``labels: {LABEL_1: toxicity, hate: identity_attack}``); only
mapped labels are reported then, which is how a "neutral" or "non-toxic" class is left out. Scores are sigmoids
for multi-label models and softmax probabilities otherwise, as the model's ``problem_type`` says.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from core.device import Precision
from core.errors import InputError, ModelUnavailableError
from core.weights import offline, snapshot_folder, weights_sha256
from detectors._text_batching import Activation, BatchSettings, Loaded, WindowedClassifierDetector

__all__ = ["ClassifierDetector", "ModelUnavailableError"]


class ClassifierDetector(WindowedClassifierDetector):
    """Options: ``model`` (hub id or local folder), ``revision``, ``labels`` (model label -> reported label),
    ``activation`` (``auto`` | ``sigmoid`` | ``softmax``), ``local_files_only``, and the batching options of
    ``BatchSettings``. Long texts are windowed like the toxicity detector's and keep each label's maximum."""

    name: ClassVar[str] = "classifier"

    def __init__(
        self,
        *,
        model: str,
        revision: str | None = None,
        labels: dict[str, str] | None = None,
        activation: Literal["auto", "sigmoid", "softmax"] = "auto",
        local_files_only: bool = False,
        batch_size: int = 32,
        max_batch_tokens: int = 8192,
        max_length: int = 512,
        overlap: int = 64,
        precision: Precision | str = "auto",
        device: str = "auto",
        num_threads: int | None = None,
    ) -> None:
        if activation not in ("auto", "sigmoid", "softmax"):
            raise InputError(f"activation must be auto, sigmoid or softmax, got {activation!r}")
        if labels is not None and not labels:
            raise InputError("labels is empty: map at least one model label, or leave it out to report all")
        super().__init__(BatchSettings(max_length=max_length, overlap=overlap, batch_size=batch_size,
                                       max_batch_tokens=max_batch_tokens, precision=precision, device=device,
                                       num_threads=num_threads))
        self.model = model
        self.revision = revision
        self.label_map = dict(labels) if labels else None
        self.activation = activation
        self.local_files_only = local_files_only or offline()

    def _load(self, device) -> Loaded:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        kwargs = {"revision": self.revision, "local_files_only": self.local_files_only}
        try:
            tokenizer = AutoTokenizer.from_pretrained(self.model, **kwargs)
            model = AutoModelForSequenceClassification.from_pretrained(self.model, **kwargs)
        except OSError as exc:  # not local, not cached, and no download possible (or no such repository)
            raise ModelUnavailableError(f"classifier {self.model!r}: cannot load ({exc})") from exc
        id2label = {int(i): str(name) for i, name in model.config.id2label.items()}
        columns, labels = self._select(id2label)
        commit = getattr(model.config, "_commit_hash", None)
        folder = snapshot_folder(self.model, commit)
        digest = weights_sha256(folder) if folder else None
        pin = commit if commit and not Path(self.model).is_dir() else f"sha256:{digest}"
        return Loaded(model=model.to(device).eval(), tokenizer=tokenizer, labels=labels, columns=columns,
                      activation=self._activation(model.config), model_id=f"{self.model}@{pin}")

    def _select(self, id2label: dict[int, str]) -> tuple[tuple[int, ...], tuple[str, ...]]:
        if self.label_map is None:
            order = sorted(id2label)
            return tuple(order), tuple(id2label[i] for i in order)
        by_name = {name: i for i, name in id2label.items()}
        unknown = sorted(set(self.label_map) - set(by_name))
        if unknown:
            raise InputError(f"classifier {self.model!r}: labels {unknown} are not model labels "
                             f"(the model has {sorted(by_name)})")
        return (tuple(by_name[name] for name in self.label_map), tuple(self.label_map.values()))

    def _activation(self, config) -> Activation:
        if self.activation != "auto":
            return self.activation
        if config.problem_type == "multi_label_classification" or config.num_labels == 1:
            return "sigmoid"
        return "softmax"
