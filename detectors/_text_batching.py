"""Run a sequence-classification model over many texts quickly and without truncating any of them.

Shared by the toxicity (detoxify) and generic classifier detectors. What makes it fast on a CPU:

- every text is cut into windows of at most ``max_length`` tokens that overlap by ``overlap`` tokens (the fast
  tokenizer's own overflow support), so a long text is scored whole and each label keeps its maximum window;
- windows are sorted by length and packed into batches bounded both in count and in padded tokens, so little
  compute goes to padding and memory stays bounded however many texts come in;
- the model runs under ``torch.inference_mode`` and, where the hardware has bf16 units, bf16 autocast;
  ``precision="int8"`` quantizes the linear layers dynamically (CPU only; about 2x faster on an AVX2 CPU
  without bf16 units, scores within about 1e-3 of float32 on the benchmark model - check yours). Device and
  precision are ``core.device``'s; ``precision`` takes any spelling it knows (``bf16``, ``bfloat16``, ...).
"""

from __future__ import annotations

import abc
import dataclasses
import threading
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from core.device import AUTOCAST_PRECISIONS, Precision, autocast_bf16, quantize_linear, resolve_device
from core.errors import InputError
from detectors.base import Detector, Score

Activation = Literal["sigmoid", "softmax"]


@dataclass(frozen=True)
class BatchSettings:
    """How texts are windowed and batched. ``max_batch_tokens`` bounds memory: batch size x padded length."""

    max_length: int = 512
    overlap: int = 64
    batch_size: int = 32
    max_batch_tokens: int = 8192
    precision: Precision | str = Precision.AUTO  # normalised to a ``Precision`` on construction
    device: str = "auto"
    num_threads: int | None = None  # torch intra-op threads; None keeps torch's default (one per core)

    def __post_init__(self) -> None:
        if self.max_length < 8:
            raise InputError(f"max_length must be at least 8 tokens, got {self.max_length}")
        if not 0 <= self.overlap < self.max_length // 2:
            raise InputError(f"overlap must be between 0 and max_length/2 ({self.max_length // 2}), got {self.overlap}")
        if self.batch_size < 1 or self.max_batch_tokens < self.max_length:
            raise InputError("batch_size must be >= 1 and max_batch_tokens >= max_length")
        object.__setattr__(self, "precision", Precision.parse(self.precision, allowed=AUTOCAST_PRECISIONS))


@dataclass(frozen=True)
class Loaded:
    """A model ready to score: what a detector's ``_load`` returns."""

    model: Any  # a transformers sequence-classification model (eval mode, on its device)
    tokenizer: Any  # a fast tokenizer (overflow windows need one)
    labels: tuple[str, ...]  # output label per logit column, already renamed for the policy
    columns: tuple[int, ...]  # which logit columns to report, aligned with ``labels``
    activation: Activation
    model_id: str


def window_and_score(loaded: Loaded, texts: list[str], settings: BatchSettings):
    """Scores per text (``numpy`` array, texts x reported labels, max over windows) and the window count per
    text."""
    import numpy as np
    import torch

    tok = loaded.tokenizer
    if not getattr(tok, "is_fast", True):
        raise InputError(f"{loaded.model_id}: windowing long texts needs a fast tokenizer, got {type(tok).__name__}")
    max_length = min(settings.max_length, _model_max_length(loaded))
    enc = tok(list(texts), truncation=True, max_length=max_length, stride=settings.overlap,
              return_overflowing_tokens=True, padding=False)
    owner = np.asarray(enc["overflow_to_sample_mapping"], dtype=np.int64)
    keys = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in enc]
    lengths = np.fromiter((len(ids) for ids in enc["input_ids"]), dtype=np.int64, count=len(owner))
    probs = np.zeros((len(owner), len(loaded.columns)), dtype=np.float32)
    device = next(loaded.model.parameters()).device
    use_bf16 = autocast_bf16(device, settings.precision)
    columns = torch.as_tensor(loaded.columns)
    for batch in _batches(lengths, settings):
        feats = tok.pad([{k: enc[k][i] for k in keys} for i in batch], return_tensors="pt")
        feats = {k: v.to(device) for k, v in feats.items()}
        with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
            logits = loaded.model(**feats).logits.float()
        out = torch.sigmoid(logits) if loaded.activation == "sigmoid" else torch.softmax(logits, dim=-1)
        probs[batch] = out[:, columns].cpu().numpy()
    scores = np.zeros((len(texts), len(loaded.columns)), dtype=np.float32)
    np.maximum.at(scores, owner, probs)
    return scores, np.bincount(owner, minlength=len(texts))


def _model_max_length(loaded: Loaded) -> int:
    """The longest window the model accepts: the tokenizer's limit if it knows one, else the position table
    (RoBERTa-style models reserve two positions for padding offsets)."""
    limit = getattr(loaded.tokenizer, "model_max_length", None) or 10**9
    positions = getattr(loaded.model.config, "max_position_embeddings", None)
    if positions:
        reserved = 2 if getattr(loaded.model.config, "model_type", "") in ("roberta", "xlm-roberta", "camembert") else 0
        limit = min(limit, positions - reserved)
    return int(limit)


def _batches(lengths, settings: BatchSettings):
    """Index batches over windows sorted longest first; each holds at most ``batch_size`` windows and
    ``max_batch_tokens`` padded tokens."""
    import numpy as np

    order = np.argsort(-lengths, kind="stable")
    batch: list[int] = []
    width = 0
    for i in order.tolist():
        width = width or int(lengths[i])
        if batch and (len(batch) >= settings.batch_size or (len(batch) + 1) * width > settings.max_batch_tokens):
            yield batch
            batch, width = [], int(lengths[i])
        batch.append(i)
    if batch:
        yield batch


class WindowedClassifierDetector(Detector):
    """A text detector backed by a sequence-classification model; subclasses only say how to load it."""

    modalities: ClassVar[frozenset] = frozenset({"text"})

    def __init__(self, settings: BatchSettings) -> None:
        self.settings = settings
        self._loaded: Loaded | None = None
        self._lock = threading.Lock()

    @abc.abstractmethod
    def _load(self, device) -> Loaded:
        """Load the model and tokenizer (raise ``ModelUnavailableError`` when the weights are not at hand)."""

    @property
    def loaded(self) -> Loaded:
        with self._lock:
            if self._loaded is None:
                import torch

                if self.settings.num_threads:
                    torch.set_num_threads(self.settings.num_threads)
                device = resolve_device(self.settings.device)
                loaded = self._load(device)
                if self.settings.precision is Precision.INT8:
                    loaded = dataclasses.replace(loaded, model=quantize_linear(loaded.model, device))
                self._loaded = loaded
            return self._loaded

    @property
    def model_id(self) -> str:
        return self.loaded.model_id

    @property
    def labels(self) -> tuple[str, ...]:
        return self.loaded.labels

    def score(self, items: list[Any]) -> list[list[Score]]:
        texts = [item if isinstance(item, str) else _not_text(item) for item in items]
        if not texts:
            return []
        loaded = self.loaded
        values, windows = window_and_score(loaded, texts, self.settings)
        out = []
        for row, n in zip(values.tolist(), windows.tolist()):
            details = {"windows": int(n)} if n > 1 else {}
            out.append([Score(self.name, label, float(v), loaded.model_id, dict(details))
                        for label, v in zip(loaded.labels, row)])
        return out


def _not_text(item: Any) -> str:
    raise TypeError(f"text detectors score str items, got {type(item).__name__}")
