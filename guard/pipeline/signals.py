"""Signals of a text output kept in its record, because the text itself never enters the log.

Two readers need something of the text long after it is gone: ``guard trace`` (a MinHash sketch, to find a
record from an edited copy of the text) and the logged-outputs bias table (which groups the text mentions). Both
are computed here, at record time, from the fingerprint and mention code in ``detectors/``, and stored under
``record.extra``. The arrows point one way: the pipeline writes these formats and depends only on ``detectors/``;
``guard.audit.trace`` and ``guard.bias.logged`` read them and import this module, never the other way round.

``extra["minhash"]``: ``{"scheme": fingerprints.TEXT_SCHEME, "sig": base64 of the 128-byte b-bit signature}``.

``extra["bias"]`` (version 1)::

    {"v": 1,
     "groups": [{"axis": "religion", "group": "muslim", "terms": ["Muslims"]}, ...],   # [] if none
     "toxicity": 0.03 | null,           # toxicity detector, label "toxicity"
     "identity_attack": 0.01 | null,    # highest "identity_attack" score of any detector
     "regard": {"negative": 0.4, "positive": 0.0, "label": "negative", "detector": "sentiment"} | null}

The groups come from the text; toxicity, identity attack and regard are read from the output-stage scores the
policy's detectors produced.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping
from typing import Any

from detectors import fingerprints as fp
from detectors.base import Score
from detectors.bias.mentions import MentionFinder, default_finder

BIAS_VERSION = 1


def text_signals(generated: str, scores: Iterable[Score | Mapping[str, Any]], *,
                 named: str | None = None) -> dict[str, Any]:
    """What the pipeline puts in ``record.extra`` for a text output.

    ``bias`` is computed on the text as generated, so an output whose biased sentence was redacted still counts
    under the group it named; ``minhash`` on ``named``, the text the record's artifact hash names (what was
    handed back, e.g. after redaction; by default the generated text), so ``guard trace`` finds the text users got.
    """
    return {"bias": bias_signals(generated, scores), "minhash": minhash_signals(generated if named is None else named)}


def minhash_signals(text: str) -> dict[str, str]:
    """The ``record.extra["minhash"]`` sketch of a text (about 220 bytes of JSON)."""
    return {"scheme": fp.TEXT_SCHEME, "sig": base64.b64encode(fp.bbit_signature(text)).decode("ascii")}


def minhash_signature(signals: Any) -> bytes | None:
    """The signature a stored ``extra["minhash"]`` holds, or None when it is absent, of another scheme, or bad."""
    if not isinstance(signals, dict) or signals.get("scheme") != fp.TEXT_SCHEME:
        return None
    try:
        sig = base64.b64decode(signals["sig"], validate=True)
    except (KeyError, ValueError, TypeError):
        return None
    return sig if len(sig) == fp.NUM_PERM else None


def bias_signals(
    text: str, scores: Iterable[Score | Mapping[str, Any]] = (), *, finder: MentionFinder | None = None
) -> dict[str, Any]:
    """The ``record.extra["bias"]`` dictionary for one text output (see the module docstring)."""
    mentions = (finder or default_finder()).find(text)
    groups: dict[str, dict[str, Any]] = {}
    for m in mentions:
        entry = groups.setdefault(m.group.id, {"axis": m.group.axis, "group": m.group.key, "terms": []})
        if m.term not in entry["terms"]:
            entry["terms"].append(m.term)
    return {"v": BIAS_VERSION, "groups": list(groups.values()), **score_signals(scores)}


def _as_dict(score: Score | Mapping[str, Any]) -> Mapping[str, Any]:
    return score.to_dict() if isinstance(score, Score) else score


def score_signals(scores: Iterable[Score | Mapping[str, Any]]) -> dict[str, Any]:
    """Toxicity, identity attack and regard from output-stage scores (prompt-stage scores are ignored).

    Regard comes from the ``bias`` detector's ``negative_regard`` when it ran (a configured regard model),
    else from the ``sentiment`` detector's ``negative``/``positive``.
    """
    found: dict[tuple[str, str], Mapping[str, Any]] = {}
    identity_attack = None
    for raw in scores:
        s = _as_dict(raw)
        if s.get("stage", "output") != "output":
            continue
        if s.get("label") == "identity_attack":
            identity_attack = max(float(s["value"]), identity_attack or 0.0)
        found.setdefault((s.get("detector"), s.get("label")), s)
    toxicity = next((float(s["value"]) for (_, label), s in found.items() if label == "toxicity"), None)
    negative = found.get(("bias", "negative_regard")) or found.get(("sentiment", "negative"))
    positive = found.get(("sentiment", "positive"))
    regard = None
    if negative is not None:
        regard = {
            "negative": float(negative["value"]),
            "positive": None if positive is None else float(positive["value"]),
            "label": (negative.get("details") or {}).get("label"),
            "detector": negative.get("detector"),
        }
    return {"toxicity": toxicity, "identity_attack": identity_attack, "regard": regard}
