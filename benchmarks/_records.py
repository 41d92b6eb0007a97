"""Synthetic provenance records of realistic size (about 1 KB of canonical JSON) for the log benchmarks."""

from __future__ import annotations

from guard.provenance.record import ProvenanceRecord


def record(i: int) -> ProvenanceRecord:
    return ProvenanceRecord(
        media_type="text/plain; charset=utf-8",
        generator={"name": "transformers", "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct",
                   "revision": "a" * 40, "weights_sha256": f"{i * 7919:064x}"},
        verdict="allow" if i % 11 else "flag",
        policy={"name": "default", "sha256": "b" * 64},
        artifact={"sha256": f"{i:064x}", "hash_of": "utf-8", "size": 512 + i % 300},
        params={"seed": i, "temperature": 0.7, "top_p": 0.95, "max_new_tokens": 200},
        prompt={"storage": "plain"},
        scores=[{"detector": "toxicity", "label": label, "value": round((i % 97) / 997 + k / 1000, 6),
                 "model": "detoxify-original@5e3e6b1c", "stage": "output"}
                for k, label in enumerate(["toxicity", "severe_toxicity", "obscene", "threat", "insult",
                                           "identity_attack"])],
        watermark={"scheme": "kgw-transformers", "key_id": "29896cf7", "greenlist_ratio": 0.25, "bias": 2.0},
        signature={"type": "dsse", "envelope_sha256": f"{i * 31:064x}", "keyid": "c" * 64},
        private={"prompt": f"Write a short story about lighthouse number {i}."},
    )
