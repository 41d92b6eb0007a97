"""A provenance log with mixed outcomes, built once per session through the real Guard pipeline.

- text outputs under three policies that run the ``copyright`` detector against a registry holding the opening
  of *A Tale of Two Cities* (public domain): one blocks reproductions, one flags near copies, and one points
  at a registry that does not exist, so the detector fails and the policy (``fail: open``) flags and logs it;
- image outputs (watermarked and C2PA-signed by the pipeline), one of them a registered image, which is blocked;
- back-dated text records appended directly with the signals the pipeline is to store in ``extra``
  (``minhash`` from ``guard.trace.text_signals``, ``bias`` from ``guard.bias.logged.bias_signals``) and real
  copyright scores, spread over four days so the volume chart has a shape; they are not signed, as outputs of
  a path without signing would not be.
"""

from __future__ import annotations

import inspect
import textwrap
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

DATA = Path(__file__).parent / "data"
TALE = (DATA / "tale_of_two_cities.txt").read_text(encoding="utf-8")


def benign_texts() -> list[str]:
    """Unrelated prose: docstrings of standard-library modules."""
    import argparse
    import collections
    import json
    import logging
    import sqlite3

    docs = [inspect.getdoc(m) or "" for m in (json, argparse, logging, collections, sqlite3)]
    return [" ".join(d.split()[:80]) for d in docs if d]


def lightly_edited(text: str) -> str:
    return (text.replace("best of times", "finest of times").replace("Heaven", "heaven!")
            .replace("England", "Britain").replace("loaves", "bread"))


@dataclass
class MixedLog:
    path: Path
    keys: object
    works: Path
    registered_image: object
    image_outputs: list  # GuardedResult of delivered images
    text_outputs: list  # (text, GuardedResult)
    backdated: list  # (text, index)


def _policy(text: str):
    from guard.policy import parse

    return parse(textwrap.dedent(text))


@pytest.fixture(scope="session")
def mixed_log(tmp_path_factory) -> MixedLog:
    from PIL import Image
    from skimage import data as skdata

    from detectors.copyright import CopyrightDetector, WorksStore
    from guard.provenance.artifact import text_digest
    from guard.bias.logged import bias_signals
    from guard.signing.keys import KeyStore
    from guard.pipeline.guard import Guard
    from guard.provenance.log import ProvenanceLog
    from guard.provenance.record import ProvenanceRecord
    from guard.audit.trace import text_signals

    root = tmp_path_factory.mktemp("mixed")
    keys = KeyStore(root / "keys")
    keys.init()
    works = root / "works"
    store = WorksStore(works, create=True)
    store.add_text("A Tale of Two Cities (opening)", TALE, source="tale_of_two_cities.txt")
    rocket = Image.fromarray(skdata.rocket()).resize((160, 240))
    store.add_image("rocket.png", rocket, source="skimage rocket")
    store.close()
    log = ProvenanceLog(root / "log.db")

    block = _policy(f"""
        name: copyright-block
        stages:
          output:
            - detector: copyright
              options: {{works: "{works}"}}
              thresholds: {{verbatim: 1.0, near_duplicate: 0.8}}
              action: block
        """)
    flag = _policy(f"""
        name: copyright-flag
        stages:
          output:
            - detector: copyright
              options: {{works: "{works}", verbatim_words: 20}}
              thresholds: {{verbatim: 0.9, near_duplicate: 0.6}}
              action: flag
        """)
    broken = _policy(f"""
        name: broken-registry
        stages:
          output:
            - detector: copyright
              options: {{works: "{root / 'missing-works'}"}}
              thresholds: {{near_duplicate: 0.8}}
              action: block
              fail: open
        """)
    images = _policy(f"""
        name: images
        stages:
          output:
            - detector: copyright
              options: {{works: "{works}"}}
              thresholds: {{near_duplicate: 0.9}}
              action: block
        """)

    texts = benign_texts()
    outputs = {"benign": texts, "copy": [TALE[:700]], "edited": [lightly_edited(TALE)]}
    text_results = []
    for policy in (block, flag, broken):
        guard = Guard(policy, log=log, keys=keys)
        gen = guard.wrap(lambda prompt: prompt)
        for text in outputs["benign"] + outputs["copy"] + outputs["edited"]:
            text_results.append((text, gen(text)))

    pictures = {"astronaut": Image.fromarray(skdata.astronaut()).resize((384, 384)),
                "coffee": Image.fromarray(skdata.coffee()).resize((400, 300)),
                "chelsea": Image.fromarray(skdata.chelsea()).resize((450, 300)),
                "rocket": rocket.resize((200, 300)).convert("RGB")}
    image_gen = Guard(images, log=log, keys=keys).wrap(lambda prompt: pictures[prompt])
    image_results = [image_gen(name) for name in pictures]

    detector = CopyrightDetector(str(works))
    now = datetime.now(timezone.utc)
    bias_texts = ["Muslims and Christians shared the market square every Sunday.",
                  "The women in the team shipped the release on time.",
                  "Older people and young people both enjoyed the concert.",
                  "The weather report said rain would come in the evening.",
                  lightly_edited(TALE)]
    records, backdated = [], []
    for k in range(40):
        text = bias_texts[k % len(bias_texts)] + ("" if k < 5 else f" (note {k})")
        scores = [{**s.to_dict(), "stage": "output"} for s in detector.score([text])[0]]
        copied = any(s["value"] >= 1.0 for s in scores)
        records.append(ProvenanceRecord(
            media_type="text/plain; charset=utf-8",
            generator={"name": "callable", "model_id": "backfill.chat", "revision": "v2", "weights_sha256": None},
            verdict="block" if copied else "allow",
            policy={"name": block.name, "sha256": block.sha256},
            created_at=(now - timedelta(hours=96 - 2.3 * k)).isoformat(timespec="microseconds").replace("+00:00", "Z"),
            artifact=text_digest(text),
            scores=scores,
            actions=["output:block"] if copied else [],
            extra={"minhash": text_signals(text), "bias": bias_signals(text, scores)},
        ))
        backdated.append(text)
    entries = log.append_batch(records)
    log.checkpoint(keys.log_private_key())
    log.close()
    return MixedLog(root / "log.db", keys, works, rocket, [r for r in image_results if not r.blocked],
                    text_results, list(zip(backdated, [e.index for e in entries])))
