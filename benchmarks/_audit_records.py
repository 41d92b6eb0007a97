"""Synthetic mixed provenance records (about 1 KB of canonical JSON each) for the trace and report benchmarks.

60 % text, 40 % images; verdicts, actions, detector scores and errors, watermarks, signatures, bias signals
and MinHash signals in realistic proportions; times spread over 30 days. Perceptual hashes and MinHash
signatures of filler records are random bytes (computing 10^6 real ones would only time the hashing, not the
index); the records a benchmark looks up are real (``real_text_record``, ``real_image_record``).
"""

from __future__ import annotations

import base64
import random
from datetime import datetime, timedelta, timezone

from detectors import fingerprints as fp
from guard.provenance.record import ProvenanceRecord

START = datetime(2025, 5, 1, tzinfo=timezone.utc)
GROUPS = [{"axis": "religion", "group": "muslim", "terms": ["Muslims"]},
          {"axis": "gender_and_sex", "group": "women", "terms": ["women"]},
          {"axis": "age", "group": "old", "terms": ["older people"]}]


def _time(i: int, n: int) -> str:
    moment = START + timedelta(seconds=30 * 86400 * i / max(n, 1))
    return moment.isoformat(timespec="microseconds").replace("+00:00", "Z")


def synth_record(i: int, n: int, rng: random.Random) -> ProvenanceRecord:
    image = rng.random() < 0.4
    roll = rng.random()
    verdict = "block" if roll < 0.04 else "flag" if roll < 0.10 else "redact" if roll < 0.11 else "allow"
    actions = {"block": ["output:block"], "flag": ["output:flag"], "redact": ["output:redact"]}.get(verdict, [])
    tox = rng.betavariate(0.6, 8)
    scores = [{"detector": "toxicity", "label": label, "value": round(min(1.0, tox * f), 6),
               "model": "detoxify-original@5e3e6b1c", "stage": "output"}
              for label, f in (("toxicity", 1.0), ("insult", 0.7), ("threat", 0.2))]
    errors = [{"detector": "deepfake", "stage": "output", "error": "RuntimeError: model timed out"}] \
        if rng.random() < 0.005 else []
    extra = {}
    if image:
        artifact = {"sha256": rng.randbytes(32).hex(), "hash_of": "rgb-pixels", "width": 1024, "height": 1024,
                    "phash": rng.randbytes(8).hex()}
        scores.append({"detector": "copyright", "label": "near_duplicate", "value": round(rng.random() * 0.6, 6),
                       "model": "copyright/works-registry@0f3c (12 works)", "stage": "output"})
        watermark = {"scheme": "genguard-dft-ring/v1", "key_id": "d1b61334", "payload": rng.randbytes(10).hex()}
        signature = {"type": "c2pa", "format": "image/png", "file_sha256": rng.randbytes(32).hex()}
        generator = {"name": "diffusers", "model_id": "stabilityai/sdxl-turbo", "revision": "f4c5" * 10,
                     "weights_sha256": "e" * 64}
    else:
        artifact = {"sha256": rng.randbytes(32).hex(), "hash_of": "utf-8", "size": rng.randrange(80, 3000)}
        extra["minhash"] = {"scheme": fp.TEXT_SCHEME, "sig": base64.b64encode(rng.randbytes(fp.NUM_PERM)).decode()}
        extra["bias"] = {"v": 1, "groups": rng.sample(GROUPS, rng.choice((0, 0, 0, 1, 2))),
                         "toxicity": scores[0]["value"], "identity_attack": None, "regard": None}
        watermark = {"scheme": "kgw-transformers", "key_id": "29896cf7", "greenlist_ratio": 0.25, "bias": 2.0,
                     "seeding_scheme": "lefthash", "context_width": 1} if rng.random() < 0.7 else None
        signature = {"type": "dsse", "envelope_sha256": rng.randbytes(32).hex(), "keyid": "c" * 64}
        generator = {"name": "transformers", "model_id": rng.choice(["HuggingFaceTB/SmolLM2-135M-Instruct",
                                                                     "Qwen/Qwen2.5-0.5B-Instruct"]),
                     "revision": "a" * 40, "weights_sha256": "d" * 64}
    blocked = verdict == "block"
    return ProvenanceRecord(
        media_type="image/png" if image else "text/plain; charset=utf-8",
        generator=generator, verdict=verdict, policy={"name": "default", "sha256": "b" * 64},
        created_at=_time(i, n), artifact=artifact, params={"seed": i, "temperature": 0.7, "max_new_tokens": 200},
        prompt={"storage": "hash", "hmac_sha256": rng.randbytes(32).hex()}, scores=scores, errors=errors,
        actions=actions, watermark=None if blocked else watermark, signature=None if blocked else signature,
        extra=extra,
    )


def real_text_record(text: str, created_at: str) -> ProvenanceRecord:
    from guard.provenance.artifact import text_digest
    from guard.pipeline.signals import minhash_signals

    return ProvenanceRecord(
        media_type="text/plain; charset=utf-8",
        generator={"name": "transformers", "model_id": "HuggingFaceTB/SmolLM2-135M-Instruct", "revision": "a" * 40,
                   "weights_sha256": "d" * 64},
        verdict="allow", policy={"name": "default", "sha256": "b" * 64}, created_at=created_at,
        artifact=text_digest(text), extra={"minhash": minhash_signals(text)},
    )


def real_image_record(image, created_at: str) -> ProvenanceRecord:
    from guard.provenance.artifact import image_digest

    return ProvenanceRecord(
        media_type="image/png",
        generator={"name": "diffusers", "model_id": "stabilityai/sdxl-turbo", "revision": "f4c5" * 10,
                   "weights_sha256": "e" * 64},
        verdict="allow", policy={"name": "default", "sha256": "b" * 64}, created_at=created_at,
        artifact=image_digest(image),
    )
