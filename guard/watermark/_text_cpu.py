"""transformers' green-list watermark with the green lists always drawn on the CPU.

transformers seeds a ``torch.Generator`` on the model's device; CUDA and CPU generators give different
permutations for the same seed, so a mark embedded on a GPU would be invisible to a detector on a CPU. These
subclasses draw every green list on the CPU and move it to the model's device. Imported only when a watermark
is built, so ``import guard.watermark.text`` stays free of torch.
"""

from __future__ import annotations

from transformers import WatermarkingConfig
from transformers.generation.logits_process import WatermarkLogitsProcessor


class CpuGreenlistProcessor(WatermarkLogitsProcessor):
    def _get_greenlist_ids(self, input_seq):
        return super()._get_greenlist_ids(input_seq.cpu()).to(input_seq.device)


class CpuGreenlistConfig(WatermarkingConfig):
    def construct_processor(self, vocab_size: int, device) -> WatermarkLogitsProcessor:
        return CpuGreenlistProcessor(
            vocab_size=vocab_size, device="cpu", greenlist_ratio=self.greenlist_ratio, bias=self.bias,
            hashing_key=self.hashing_key, seeding_scheme=self.seeding_scheme, context_width=self.context_width,
        )
