"""Any transformers sequence-classification model as a scorer, so users can bring their own classifier.

The policy maps the model's labels to its own (``labels: {LABEL_1: toxicity, hate: identity_attack}``); only
mapped labels are reported then, which is how a "neutral" or "non-toxic" class is left out. Scores are sigmoids
for multi-label models and softmax probabilities otherwise, as the model's ``problem_type`` says.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from core.device import Precision
from core.errors import InputError, ModelUnavailableError
from core.weights import DOWNLOADS_OFF, hub_access, offline, snapshot_folder, weights_sha256
from detectors._text_batching import Activation, BatchSettings, Loaded, WindowedClassifierDetector

__all__ = ["ClassifierDetector", "ModelUnavailableError"]


class ClassifierDetector(WindowedClassifierDetector):
    """Options: ``model`` (hub id or local folder), ``revision``, ``labels`` (model label -> reported label),
    ``activation`` (``auto`` | ``sigmoid`` | ``softmax``), ``local_files_only``, and the batching options of
    ``BatchSettings``. Long texts are windowed like the toxicity detector's and keep each label's maximum."""

    name: ClassVar[str] = "classifier"

    @classmethod
    def emitted_labels(cls, options: Mapping[str, Any]) -> frozenset[str] | None:
        if options.get("labels"):
            return frozenset(options["labels"].values())
        model_labels = config_labels(options["model"], options.get("revision"))
        return None if model_labels is None else frozenset(model_labels)

    @classmethod
    def validate_options(cls, options: Mapping[str, Any]) -> None:
        from detectors.base import OptionError

        super().validate_options(options)
        model = str(options["model"])
        if _looks_like_path(model) and not Path(model).expanduser().is_dir():
            raise OptionError(f"{model}: no such model folder", "model")
        labels = options.get("labels")
        if labels is not None and not labels:
            raise OptionError("labels is empty: map at least one model label, or leave it out to report all",
                              "labels")
        model_labels = config_labels(model, options.get("revision"))
        unknown = sorted(set(labels or ()) - set(model_labels or labels or ()))
        if unknown:
            raise OptionError(f"labels {unknown} are not labels of {model} (it has {sorted(model_labels)})", "labels")


    def __init__(
        self,
        *,
        model: str,
        revision: str | None = None,
        labels: dict[str, str] | None = None,
        activation: Literal["auto", "sigmoid", "softmax"] = "auto",
        local_files_only: bool | None = None,
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
        self.local_files_only = offline(local_files_only)

    def _load(self, device) -> Loaded:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        kwargs = {"revision": self.revision, "local_files_only": self.local_files_only}
        try:
            with hub_access(self.local_files_only):
                tokenizer = AutoTokenizer.from_pretrained(self.model, **kwargs)
                model = AutoModelForSequenceClassification.from_pretrained(self.model, **kwargs)
        except OSError as exc:  # not local, not cached, and no download possible (or no such repository)
            hint = f"; it is not on this machine and {DOWNLOADS_OFF}" if self.local_files_only else ""
            raise ModelUnavailableError(f"classifier {self.model!r}: cannot load ({exc}){hint}") from exc
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


def _looks_like_path(model: str) -> bool:
    """A local path rather than a hub id (``name`` or ``org/name``)."""
    return model.startswith(("/", ".", "~")) or model.count("/") > 1 or Path(model).exists()


def config_labels(model: str, revision: str | None = None) -> list[str] | None:
    """The model's labels from its ``config.json`` (a local folder, or the hub cache), without loading weights;
    None when the config is not on this machine."""
    folder = Path(model).expanduser()
    path: Any = folder / "config.json"
    if not folder.is_dir():
        try:
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(model, "config.json", revision=revision)
        except Exception:  # noqa: BLE001 - not a valid hub id: nothing cached under it
            return None
        if not isinstance(path, str):
            return None
    try:
        config = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if isinstance(config.get("id2label"), dict):
        return [str(v) for _, v in sorted(config["id2label"].items(), key=lambda kv: int(kv[0]))]
    return [f"LABEL_{i}" for i in range(int(config.get("num_labels", 2)))]  # transformers' default names
