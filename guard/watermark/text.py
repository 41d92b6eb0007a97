"""Text watermark: Kirchenbauer et al. green lists, embedded while sampling and detected from the text alone.

Embedding and detection both go through transformers' own ``WatermarkingConfig`` / ``WatermarkDetector``; this
module adds the two things they leave to the deployer:

- **a secret key.** transformers seeds its green lists from an integer ``hashing_key`` that defaults to a public
  constant (15485863), so anyone could detect, strip or forge the mark. Here the key is derived from the key
  store's 32-byte watermark secret and the policy's ``key_id`` (HMAC-SHA256), so only key holders can test for
  the mark or imitate it; a new ``key_id`` gives an independent watermark under the same secret.
- **device independence.** transformers draws green lists with a generator on the model's device, and CUDA's
  random streams differ from the CPU's, so text generated on a GPU would only be detectable on a GPU. The
  config built here always draws green lists on the CPU and moves them to the model's device; detection (on a
  CPU, from the text) sees the same lists.

Detection scores only the text given — pass the generated continuation, not the prompt — and counts each
(context, token) pair once (``ignore_repeated_ngrams``), which keeps repetitive human text from scoring as
watermarked. Detection costs memory in proportion to the text (about 0.5 GB per MB of text), so it takes at most
``MAX_TEXT_BYTES``: one generated output, not a corpus.
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Sequence

    from guard.policy import TextWatermark

MAX_TEXT_BYTES = 1 << 20  # ~250k tokens: longer than any one generated continuation
SCHEME = "kgw-transformers"  # Kirchenbauer-Geiping-Wen green lists as implemented by transformers
_KEY_CONTEXT = b"genguard/text-watermark/v1\x00"


def hashing_key(secret: bytes, key_id: str) -> int:
    """The integer key transformers seeds green lists with: HMAC-SHA256(secret, context || key_id), reduced to
    a positive 63-bit integer (transformers multiplies it into int64 tensors)."""
    if len(secret) < 16:
        raise ValueError(f"watermark secret too short ({len(secret)} bytes; need at least 16)")
    mac = hmac.new(secret, _KEY_CONTEXT + key_id.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(mac[:8], "big") % (2**63 - 1) + 1


def generation_config(settings: TextWatermark, secret: bytes):
    """The ``WatermarkingConfig`` a text generator passes to ``model.generate(watermarking_config=...)``."""
    from guard.watermark._text_cpu import CpuGreenlistConfig

    return CpuGreenlistConfig(
        greenlist_ratio=settings.greenlist_ratio,
        bias=settings.bias,
        hashing_key=hashing_key(secret, settings.key_id),
        seeding_scheme=settings.seeding_scheme,
        context_width=settings.context_width,
    )


@dataclass(frozen=True)
class TextWatermarkResult:
    """One detection. ``z_score`` counts standard deviations of green tokens above chance; ``p_value`` is the
    one-sided normal tail (the false-positive rate at this z); ``detected`` is ``z_score > z_threshold``."""

    z_score: float
    p_value: float
    num_tokens_scored: int
    num_green_tokens: int
    z_threshold: float
    detected: bool

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": SCHEME,
            "z_score": round(self.z_score, 4),
            "p_value": self.p_value,
            "num_tokens_scored": self.num_tokens_scored,
            "num_green_tokens": self.num_green_tokens,
            "z_threshold": self.z_threshold,
            "detected": self.detected,
        }


class TextWatermarkDetector:
    """Tests texts for the watermark a ``generation_config`` with the same settings and secret embeds.

    ``tokenizer`` and ``model_config`` must be the generating model's (the vocabulary size fixes the green
    lists); no weights are needed. Green lists are cached, so reuse one detector for many texts.
    """

    def __init__(self, *, tokenizer: Any, model_config: Any, settings: TextWatermark, secret: bytes,
                 ignore_repeated_ngrams: bool = True) -> None:
        from transformers import WatermarkDetector

        self.tokenizer = tokenizer
        self.settings = settings
        config = generation_config(settings, secret)
        if hasattr(model_config, "get_text_config"):  # generation sizes green lists by the text config's vocab
            model_config = model_config.get_text_config()
        # On the CPU, where every generation draws its green lists too (see _text_cpu).
        self._detector = WatermarkDetector(model_config=model_config, device="cpu", watermarking_config=config,
                                           ignore_repeated_ngrams=ignore_repeated_ngrams, max_cache_size=4096)
        self._min_tokens = settings.context_width + (0 if settings.seeding_scheme == "selfhash" else 1)

    def token_ids(self, text: str) -> list[int]:
        """The ids the model would have produced for ``text`` (no special tokens added)."""
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def detect(self, text_or_ids: str | Sequence[int]) -> TextWatermarkResult:
        """Score one generated continuation, as text or as token ids. Too short to score: z 0, p 1."""
        import torch

        if isinstance(text_or_ids, str) and len(text_or_ids) > MAX_TEXT_BYTES:
            from core.errors import InputError

            raise InputError(f"a text of {len(text_or_ids)} characters, more than {MAX_TEXT_BYTES}: the watermark "
                             "is tested on one generated continuation")
        ids = self.token_ids(text_or_ids) if isinstance(text_or_ids, str) else [int(i) for i in text_or_ids]
        threshold = self.settings.z_threshold
        if len(ids) <= self._min_tokens:
            return TextWatermarkResult(0.0, 1.0, 0, 0, threshold, False)
        out = self._detector(torch.tensor([ids], dtype=torch.long), z_threshold=threshold, return_dict=True)
        z = float(out.z_score[0])
        return TextWatermarkResult(
            z_score=z,
            p_value=0.5 * math.erfc(z / math.sqrt(2.0)),  # in float64: transformers' float32 tail underflows
            num_tokens_scored=int(out.num_tokens_scored[0]),
            num_green_tokens=int(out.num_green_tokens[0]),
            z_threshold=threshold,
            detected=z > threshold,
        )


def detect_text_watermark(text_or_ids: str | Sequence[int], tokenizer: Any, model_config: Any,
                          settings: TextWatermark, secret: bytes) -> TextWatermarkResult:
    """One-off detection; build a ``TextWatermarkDetector`` to test many texts."""
    return TextWatermarkDetector(tokenizer=tokenizer, model_config=model_config, settings=settings,
                                 secret=secret).detect(text_or_ids)
