"""The offline scorer: the BiLSTM and the SVM on identity-neutralised text, combined into the detoxify labels.

``features`` gives every model output the combiners use, so training, evaluation and scoring share one code
path. ``labels`` gives the six detoxify labels: ``toxicity`` from the combiner; ``severe_toxicity``,
``obscene``, ``threat`` and ``insult`` from the BiLSTM on the neutralised text; ``identity_attack`` as
``identity.py`` explains.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from core.device import AUTOCAST_PRECISIONS, Precision, autocast_bf16, quantize_linear, resolve_device
from core.errors import InputError
from detectors.offline_toxicity import bilstm, identity, lexical
from detectors.offline_toxicity.combiner import BILSTM_FEATURES, Combiner

LABELS = bilstm.LABELS


@dataclass(frozen=True)
class Settings:
    batch_size: int = 256  # BiLSTM windows per forward pass
    overlap: int = 20  # words shared by consecutive windows of a long text
    precision: Precision | str = Precision.AUTO  # auto | float32 | bfloat16 | int8 (core.device)
    device: str = "cpu"  # a 50-unit LSTM gains nothing from a GPU; "auto" or "cuda" are honoured
    neutralise: bool = True  # take group words out before scoring (identity.py); off only to measure the effect

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise InputError(f"batch_size must be at least 1, got {self.batch_size}")
        if not 0 <= self.overlap < bilstm.MAXLEN // 2:
            raise InputError(f"overlap must be between 0 and {bilstm.MAXLEN // 2 - 1} words, got {self.overlap}")
        object.__setattr__(self, "precision", Precision.parse(self.precision, allowed=AUTOCAST_PRECISIONS))


class OfflineScorer:
    """The loaded models. Build with ``from_files``; thread-safe for scoring (no state changes after loading)."""

    def __init__(self, word_index: bilstm.WordIndex, network: Any, lexical_model: lexical.LexicalModel,
                 combiner: Combiner | None, settings: Settings, model_id: str) -> None:
        self.word_index = word_index
        self.network = network
        self.lexical = lexical_model
        self.combiner = combiner
        self.settings = settings
        self.model_id = model_id

    @classmethod
    def from_files(cls, bilstm_files: dict[str, Path], lexical_files: dict[str, Path], file_sha256: dict[Path, str],
                   combiner: Combiner | None, combiner_sha256: str, settings: Settings) -> "OfflineScorer":
        """Load both models; ``combiner`` may be None when only ``features`` are wanted (training)."""
        device = resolve_device(settings.device)
        network = bilstm.build_network(bilstm.read_weights(bilstm_files["model/model.weights.h5"]))
        if settings.precision is Precision.INT8:
            network = quantize_linear(network, device)
        network = network.to(device)
        resolved = Settings(settings.batch_size, settings.overlap, settings.precision, str(device),
                            settings.neutralise)
        digest = hashlib.sha256()  # over the files' own SHA-256s, each verified against its pin before this
        for path in (*bilstm_files.values(), *lexical_files.values()):
            digest.update(bytes.fromhex(file_sha256[path]))
        kind = combiner.kind if combiner is not None else "features"
        model_id = (f"genguard-offline-toxicity:{kind}@sha256:{combiner_sha256[:16]}"
                    f"+models@sha256:{digest.hexdigest()[:16]}")
        return cls(bilstm.read_word_index(bilstm_files["model/tokenizer.pickle"]), network,
                   lexical.load(lexical_files), combiner, resolved, model_id)

    def bilstm_logits(self, texts: list[str]) -> np.ndarray:
        """BiLSTM logits (texts x 6); a long text keeps each label's maximum over its windows."""
        import torch

        owners, rows = [], []
        for t, text in enumerate(texts):
            for window in bilstm.windows(self.word_index.sequence(text), overlap=self.settings.overlap):
                owners.append(t)
                rows.append(window)
        out = np.full((len(texts), len(LABELS)), -np.inf, dtype=np.float32)
        device = torch.device(self.settings.device)
        bf16 = autocast_bf16(device, self.settings.precision)
        size = self.settings.batch_size
        for start in range(0, len(rows), size):
            ids = torch.from_numpy(bilstm.pad(rows[start:start + size])).to(device)
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                logits = self.network(ids).float().cpu().numpy()
            np.maximum.at(out, np.asarray(owners[start:start + size]), logits)
        return out

    def features(self, texts: list[str]) -> dict[str, np.ndarray]:
        """Every model output a combiner may use, on the neutralised text, plus ``bilstm_original`` (texts x 6,
        the BiLSTM on the text as given)."""
        if self.settings.neutralise:
            neutral = [identity.neutralise(t) for t in texts]
            both = self.bilstm_logits(texts + neutral)
            original, logits = both[: len(texts)], both[len(texts):]
        else:
            neutral = texts
            original = logits = self.bilstm_logits(texts)
        feats = {name: logits[:, i] for i, name in enumerate(BILSTM_FEATURES)}
        feats["lexical"] = self.lexical.margins(neutral)
        feats["bilstm_original"] = original
        return feats

    def labels(self, texts: list[str]) -> np.ndarray:
        """The six detoxify labels per text, in [0, 1] (texts x 6, in ``LABELS`` order)."""
        if self.combiner is None:
            raise InputError("this scorer was loaded without a combiner; it gives features only")
        if not texts:
            return np.zeros((0, len(LABELS)), dtype=np.float64)
        feats = self.features(texts)
        probs = 1.0 / (1.0 + np.exp(-np.column_stack([feats[n] for n in BILSTM_FEATURES]).astype(np.float64)))
        out = probs.copy()
        out[:, 0] = self.combiner(feats)
        original_identity = 1.0 / (1.0 + np.exp(-feats["bilstm_original"][:, 5].astype(np.float64)))
        out[:, 5] = np.minimum(original_identity, out[:, 0])
        return out
