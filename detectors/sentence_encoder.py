"""Sentence embeddings from a sentence-transformers folder, with plain transformers.

A sentence-transformers model such as all-MiniLM-L6-v2 is a transformer followed by mean pooling over the
non-padding tokens and L2 normalisation (its ``modules.json``). That is a few lines on top of ``AutoModel``, so
sentence-transformers itself is not needed; the pooling config is read and anything but mean pooling is
refused rather than silently computed differently. Texts are sorted by length and batched, run in float32 (so
numbers do not depend on whether the CPU has bf16 units), and longer texts are truncated at the model's
``max_seq_length`` as sentence-transformers does.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import InputError, ModelUnavailableError
from core.weights import DOWNLOADS_OFF, hub_access, offline, weights_sha256


class SentenceEncoder:
    """``encode(texts) -> (n, dim)`` unit vectors; cosine similarity is their dot product.

    ``model`` is a local folder, or a hub id found in the Hugging Face cache (downloaded only when downloads are
    asked for: ``GUARD_ALLOW_DOWNLOADS=1``; see ``core.weights.offline``).
    """

    def __init__(self, model: str | Path, *, batch_size: int = 32, device: str = "cpu") -> None:
        if batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {batch_size}")
        self.model_name = str(model)
        self.batch_size = batch_size
        self.device = device
        self._lock = threading.Lock()
        self._loaded: tuple[Any, Any, int, str] | None = None

    def _load(self) -> tuple[Any, Any, int, str]:
        with self._lock:
            if self._loaded is None:
                from transformers import AutoModel, AutoTokenizer

                folder = Path(self.model_name)
                local = folder.is_dir()
                pooling = folder / "1_Pooling" / "config.json"
                if local and pooling.is_file():
                    config = json.loads(pooling.read_text(encoding="utf-8"))
                    if not config.get("pooling_mode_mean_tokens", False):
                        raise InputError(f"{pooling}: only mean pooling is supported, got {config}")
                max_length = 512
                bert_config = folder / "sentence_bert_config.json"
                if local and bert_config.is_file():
                    max_length = int(json.loads(bert_config.read_text(encoding="utf-8")).get("max_seq_length", 512))
                local_only = offline()
                try:
                    with hub_access(local_only):
                        tokenizer = AutoTokenizer.from_pretrained(self.model_name, local_files_only=local_only)
                        model = AutoModel.from_pretrained(self.model_name, dtype="float32",
                                                          local_files_only=local_only).to(self.device).eval()
                except OSError as exc:  # not a folder, not cached, and no download allowed or possible
                    hint = f"; it is not on this machine and {DOWNLOADS_OFF}" if local_only else ""
                    raise ModelUnavailableError(f"{self.model_name}: cannot load this sentence encoder ({exc}){hint}"
                                                ) from exc
                max_length = min(max_length, getattr(tokenizer, "model_max_length", max_length) or max_length)
                self._loaded = (tokenizer, model, max_length, _model_id(self.model_name, folder if local else None))
            return self._loaded

    @property
    def model_id(self) -> str:
        """The folder or hub id and the first 16 hex digits of its weights' SHA-256 (when local)."""
        return self._load()[3]

    @property
    def dim(self) -> int:
        return int(self._load()[1].config.hidden_size)

    def encode(self, texts: list[str]) -> np.ndarray:
        import torch

        tokenizer, model, max_length, _ = self._load()
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        if not texts:
            return out
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for begin in range(0, len(texts), self.batch_size):
            idx = order[begin:begin + self.batch_size]
            enc = tokenizer([texts[i] for i in idx], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt").to(self.device)
            with torch.inference_mode():
                hidden = model(**enc).last_hidden_state
            mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        return out


def _model_id(name: str, folder: Path | None) -> str:
    """``parent/folder@sha256[:16]`` of the weights for a local folder (packaged models live in a folder named
    ``model``, so the parent names them); the hub id otherwise."""
    digest = weights_sha256(folder) if folder is not None else None
    return f"{folder.parent.name}/{folder.name}@{digest[:16]}" if digest else name
