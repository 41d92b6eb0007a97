"""The Jigsaw BiLSTM of ``toxic-comment-classifier`` (MIT), run in torch without TensorFlow or Keras.

The package ships Keras 3 weights (``model.weights.h5``) and a pickled Keras ``Tokenizer``. Both are read here
without importing Keras: the weights with ``h5py``, the tokenizer with an unpickler that admits only the four
classes the file is made of (Keras' ``Tokenizer`` is replaced by a plain attribute holder; anything else in the
pickle is refused, so a tampered file cannot run code). The tokenizer and the network are reproduced exactly:
Keras' word splitting (lower-case, punctuation filters, the 20,000 most frequent words, unknown words
dropped), sequences pre-padded and pre-truncated to 100 tokens, Embedding(20000, 50) -> BiLSTM(50) -> global
max pool -> Dense(50, relu) -> Dense(6, sigmoid). A text longer than 100 known words is cut into overlapping
windows and each label keeps its maximum, so nothing past the hundredth word goes unread.
"""

from __future__ import annotations

import collections
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import InputError

if TYPE_CHECKING:
    import numpy as np
    import torch

# The labels in the order of the network's outputs, renamed as detoxify names them.
LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack")
MAXLEN = 100
_H5_LAYERS = {
    "embedding": "layers/embedding/vars/0",
    "forward": "layers/bidirectional/forward_layer/cell/vars",
    "backward": "layers/bidirectional/backward_layer/cell/vars",
    "dense": "layers/dense/vars",
    "out": "layers/dense_1/vars",
}


@dataclass(frozen=True)
class WordIndex:
    """Keras ``Tokenizer.texts_to_sequences`` for a tokenizer without an out-of-vocabulary token."""

    index: dict[str, int]  # word -> id, only ids below ``num_words`` (the others are dropped anyway)
    filters: str
    lower: bool
    split: str
    num_words: int

    def sequence(self, text: str) -> list[int]:
        if self.lower:
            text = text.lower()
        text = text.translate(str.maketrans({c: self.split for c in self.filters}))
        return [i for i in (self.index.get(w) for w in text.split(self.split) if w) if i is not None]


class _KerasTokenizer:
    """Stands in for ``keras...Tokenizer`` while unpickling: keeps the attributes, runs nothing."""

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)


class _TokenizerUnpickler(pickle.Unpickler):
    _ALLOWED = {
        ("collections", "OrderedDict"): collections.OrderedDict,
        ("collections", "defaultdict"): collections.defaultdict,
        ("builtins", "int"): int,
    }

    def find_class(self, module: str, name: str) -> Any:
        if name == "Tokenizer" and module.startswith("keras.") and module.endswith("preprocessing.text"):
            return _KerasTokenizer
        if (module, name) in self._ALLOWED:
            return self._ALLOWED[(module, name)]
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only a Keras Tokenizer is expected)")


def read_word_index(path: Path) -> WordIndex:
    """The word index of a pickled Keras ``Tokenizer``, read without Keras and without running foreign code."""
    try:
        with open(path, "rb") as fh:
            tok = _TokenizerUnpickler(fh).load()
    except (pickle.UnpicklingError, EOFError, AttributeError, ValueError, TypeError) as exc:
        raise InputError(f"{path}: not a Keras Tokenizer pickle: {exc}") from exc
    state = getattr(tok, "__dict__", {})
    missing = [k for k in ("word_index", "num_words", "filters", "lower", "split") if k not in state]
    if not isinstance(tok, _KerasTokenizer) or missing:
        raise InputError(f"{path}: not a Keras Tokenizer pickle (missing {', '.join(missing) or 'Tokenizer'})")
    if state.get("char_level") or state.get("oov_token") is not None or state.get("analyzer") is not None:
        raise InputError(f"{path}: only word-level tokenizers without an OOV token are supported")
    num_words = int(state["num_words"] or 10**9)
    index = {str(w): int(i) for w, i in state["word_index"].items() if int(i) < num_words}
    return WordIndex(index, str(state["filters"]), bool(state["lower"]), str(state["split"]), num_words)


def read_weights(path: Path) -> dict[str, np.ndarray]:
    """The network's arrays from a Keras 3 ``.weights.h5`` file, checked for the expected shapes."""
    import h5py
    import numpy as np

    try:
        with h5py.File(path, "r") as f:
            arrays = {
                "embedding": np.asarray(f[_H5_LAYERS["embedding"]]),
                **{f"{side}_{k}": np.asarray(f[f"{_H5_LAYERS[side]}/{i}"])
                   for side in ("forward", "backward") for i, k in enumerate(("kernel", "recurrent", "bias"))},
                **{f"{layer}_{k}": np.asarray(f[f"{_H5_LAYERS[layer]}/{i}"])
                   for layer in ("dense", "out") for i, k in enumerate(("kernel", "bias"))},
            }
    except (OSError, KeyError) as exc:
        raise InputError(f"{path}: not the BiLSTM's Keras weights file: {exc}") from exc
    vocab, dim = arrays["embedding"].shape
    units = arrays["forward_recurrent"].shape[0]
    expected = {
        "forward_kernel": (dim, 4 * units), "forward_recurrent": (units, 4 * units), "forward_bias": (4 * units,),
        "dense_kernel": (2 * units, arrays["dense_bias"].shape[0]),
        "out_kernel": (arrays["dense_bias"].shape[0], len(LABELS)), "out_bias": (len(LABELS),),
    }
    for name, shape in expected.items():
        for key in (name, name.replace("forward", "backward")):
            if arrays[key].shape != shape:
                raise InputError(f"{path}: {key} has shape {arrays[key].shape}, expected {shape}")
    return arrays


def build_network(arrays: dict[str, np.ndarray]) -> torch.nn.Module:
    """The torch network with the Keras weights in place (Keras and torch both order LSTM gates i, f, c/g, o)."""
    import torch

    class BiLSTM(torch.nn.Module):
        def __init__(self, vocab: int, dim: int, units: int, hidden: int, labels: int) -> None:
            super().__init__()
            self.embedding = torch.nn.Embedding(vocab, dim)
            self.lstm = torch.nn.LSTM(dim, units, batch_first=True, bidirectional=True)
            self.dense = torch.nn.Linear(2 * units, hidden)
            self.out = torch.nn.Linear(hidden, labels)

        def forward(self, ids: torch.Tensor) -> torch.Tensor:
            """Logits (batch x labels) for pre-padded id sequences (batch x length)."""
            states, _ = self.lstm(self.embedding(ids))
            return self.out(torch.relu(self.dense(states.amax(dim=1))))

    vocab, dim = arrays["embedding"].shape
    units = arrays["forward_recurrent"].shape[0]
    net = BiLSTM(vocab, dim, units, arrays["dense_bias"].shape[0], len(LABELS))
    t = lambda a: torch.from_numpy(a.copy())  # noqa: E731
    with torch.no_grad():
        net.embedding.weight.copy_(t(arrays["embedding"]))
        for side, suffix in (("forward", ""), ("backward", "_reverse")):
            getattr(net.lstm, f"weight_ih_l0{suffix}").copy_(t(arrays[f"{side}_kernel"].T))
            getattr(net.lstm, f"weight_hh_l0{suffix}").copy_(t(arrays[f"{side}_recurrent"].T))
            getattr(net.lstm, f"bias_ih_l0{suffix}").copy_(t(arrays[f"{side}_bias"]))
            getattr(net.lstm, f"bias_hh_l0{suffix}").zero_()  # Keras has one bias per gate
        net.dense.weight.copy_(t(arrays["dense_kernel"].T))
        net.dense.bias.copy_(t(arrays["dense_bias"]))
        net.out.weight.copy_(t(arrays["out_kernel"].T))
        net.out.bias.copy_(t(arrays["out_bias"]))
    return net.eval()


def windows(ids: list[int], *, length: int = MAXLEN, overlap: int = 20) -> list[list[int]]:
    """Overlapping windows of at most ``length`` ids covering the whole sequence (one, maybe empty, when short)."""
    if len(ids) <= length:
        return [ids]
    step = length - overlap
    starts = list(range(0, len(ids) - length, step)) + [len(ids) - length]
    return [ids[s:s + length] for s in starts]


def pad(rows: list[list[int]], length: int = MAXLEN) -> np.ndarray:
    """Keras ``pad_sequences`` defaults: zeros before the ids, keep the last ``length`` ids."""
    import numpy as np

    out = np.zeros((len(rows), length), dtype=np.int64)
    for r, ids in enumerate(rows):
        ids = ids[-length:]
        if ids:
            out[r, length - len(ids):] = ids
    return out
