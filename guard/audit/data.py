"""What an audit report says, gathered from the log in one streaming pass.

Every figure in the report comes from here and is plain data (``AuditData.to_dict()`` is the ``--json`` output),
so the HTML and Markdown renderers only format it. Memory stays bounded whatever the log's size: counts are kept
per hour, scores as fixed-width histograms, error messages as the first few examples per detector.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from guard.audit.export import Filters, iter_filtered
from guard.provenance.log import ProvenanceLog
from guard.provenance.record import REVIEW_MEDIA_TYPE

SCORE_BINS = 20
ERROR_EXAMPLES = 3
_DIGITS = re.compile(r"\d+")
FACE_LABELS = frozenset({"face", "faces", "realistic_face"})


def category(media_type: str | None) -> str:
    """text, image or other: the categories the report breaks outcomes down by."""
    kind = (media_type or "").split("/", 1)[0]
    return kind if kind in ("text", "image") else "other"


@dataclass
class ScoreStats:
    """Distribution of one detector label at one stage."""

    count: int = 0
    total: float = 0.0
    maximum: float = 0.0
    histogram: list[int] = field(default_factory=lambda: [0] * SCORE_BINS)

    def add(self, value: float) -> None:
        self.count += 1
        self.total += value
        self.maximum = max(self.maximum, value)
        self.histogram[min(SCORE_BINS - 1, max(0, int(value * SCORE_BINS)))] += 1

    def quantile(self, q: float) -> float:
        """Upper edge of the histogram bin holding the ``q`` quantile (resolution 1 / SCORE_BINS)."""
        target, seen = q * self.count, 0
        for i, n in enumerate(self.histogram):
            seen += n
            if seen >= target and n:
                return (i + 1) / SCORE_BINS
        return 1.0

    def to_dict(self) -> dict[str, Any]:
        return {"count": self.count, "mean": round(self.total / self.count, 6) if self.count else None,
                "p50_at_most": self.quantile(0.5), "p95_at_most": self.quantile(0.95),
                "max": round(self.maximum, 6), "histogram": self.histogram}


@dataclass
class Integrity:
    verified: bool | None  # None: no public key to verify with
    report: dict[str, Any] | None
    checkpoint: dict[str, Any] | None  # latest signed checkpoint: size, root, note
    uncovered: int  # records after the latest checkpoint
    note: str  # what was (not) checked, in words

    def to_dict(self) -> dict[str, Any]:
        return {"verified": self.verified, "verify_report": self.report, "latest_checkpoint": self.checkpoint,
                "records_after_latest_checkpoint": self.uncovered, "note": self.note}


@dataclass
class AuditData:
    log: str
    origin: str
    log_size: int
    filters: Filters
    records: int = 0
    first: str | None = None
    last: str | None = None
    by_hour: Counter = field(default_factory=Counter)  # (YYYY-MM-DDTHH, verdict) -> n
    verdicts: Counter = field(default_factory=Counter)  # (category, verdict) -> n
    actions: Counter = field(default_factory=Counter)  # (category, action) -> n
    fired: Counter = field(default_factory=Counter)  # (rule, detector, label, stage, action) -> n: why the verdicts
    scores: dict[tuple[str, str, str], ScoreStats] = field(default_factory=lambda: defaultdict(ScoreStats))
    delivered: Counter = field(default_factory=Counter)  # category -> outputs handed back (not blocked)
    watermarked: Counter = field(default_factory=Counter)  # (category, scheme) -> delivered outputs with a mark
    signed: Counter = field(default_factory=Counter)  # (category, type) -> delivered outputs with a signature
    marked_any: Counter = field(default_factory=Counter)  # category -> delivered with a watermark or signature
    errors: Counter = field(default_factory=Counter)  # (detector, stage) -> n
    error_examples: dict[tuple[str, str], list[str]] = field(default_factory=lambda: defaultdict(list))
    records_with_errors: int = 0
    models: Counter = field(default_factory=Counter)  # (name, model_id, revision, pinned by weights hash) -> n
    policies: Counter = field(default_factory=Counter)  # (name, sha256) -> n
    prompt_storage: Counter = field(default_factory=Counter)
    regenerated: int = 0  # records that are a retry (attempt > 1)
    extra_keys: Counter = field(default_factory=Counter)  # which further signals the records carry
    generated: Counter = field(default_factory=Counter)  # category -> records with an output (blocked or not)
    output_checked: Counter = field(default_factory=Counter)  # category -> outputs with an output-stage score
    face_checked: int = 0  # delivered images a face-capable detector looked at (``face_signal`` not None)
    faces: int = 0  # ... that show a realistic face
    faces_disclosed: int = 0  # ... of which carry a disclosure (C2PA manifest or ``extra.disclosure``)
    reviews: Counter = field(default_factory=Counter)  # (verdict reviewed, decision) -> reviewer decisions
    bias: dict[str, Any] | None = None
    integrity: Integrity | None = None

    # -- derived ----------------------------------------------------------------------------------------------

    def marking(self) -> dict[str, dict[str, Any]]:
        out = {}
        for cat in sorted(self.delivered):
            out[cat] = {
                "delivered": self.delivered[cat],
                "watermarked": sum(n for (c, _), n in self.watermarked.items() if c == cat),
                "signed": sum(n for (c, _), n in self.signed.items() if c == cat),
                "watermarked_or_signed": self.marked_any[cat],
                "watermark_schemes": {s: n for (c, s), n in self.watermarked.items() if c == cat},
                "signature_types": {s: n for (c, s), n in self.signed.items() if c == cat},
            }
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "log": self.log,
            "origin": self.origin,
            "log_size": self.log_size,
            "filters": self.filters.to_dict(),
            "records": self.records,
            "first_record_at": self.first,
            "last_record_at": self.last,
            "volume_by_hour": [{"hour": h, "verdict": v, "count": n} for (h, v), n in sorted(self.by_hour.items())],
            "verdicts": [{"category": c, "verdict": v, "count": n} for (c, v), n in sorted(self.verdicts.items())],
            "actions": [{"category": c, "action": a, "count": n} for (c, a), n in sorted(self.actions.items())],
            "rules_fired": [{"rule": r, "detector": d, "label": label, "stage": s, "action": a, "count": n}
                            for (r, d, label, s, a), n in self.fired.most_common()],
            "scores": [{"detector": d, "label": label, "stage": s, **st.to_dict()}
                       for (d, label, s), st in sorted(self.scores.items())],
            "marking": self.marking(),
            "detector_errors": [{"detector": d, "stage": s, "count": n, "examples": self.error_examples[(d, s)]}
                                for (d, s), n in sorted(self.errors.items())],
            "records_with_errors": self.records_with_errors,
            "models": [{"generator": g, "model_id": m, "revision": r, "weights_pinned": p, "count": n}
                       for (g, m, r, p), n in self.models.most_common()],
            "policies": [{"name": name, "sha256": sha, "count": n} for (name, sha), n in self.policies.most_common()],
            "prompt_storage": dict(self.prompt_storage),
            "regenerated": self.regenerated,
            "extra_signals": dict(self.extra_keys),
            "generated": dict(self.generated),
            "output_checked": dict(self.output_checked),
            "faces": {"images_checked": self.face_checked, "shown": self.faces, "disclosed": self.faces_disclosed},
            "reviews": [{"verdict": v, "decision": d, "count": n} for (v, d), n in sorted(self.reviews.items())],
            "bias": self.bias,
            "integrity": self.integrity.to_dict() if self.integrity else None,
        }


def face_signal(record: dict[str, Any]) -> bool | None:
    """Whether the record says its image shows a realistic face: True, False, or None when nothing looked.

    Looked: ``extra.faces`` is present, or an output-stage score carries ``details.faces`` (the ``deepfake``
    detector's face boxes) or has a label in ``FACE_LABELS``. Shows a face: any of those is non-empty or >= 0.5.
    """
    extra_faces = (record.get("extra") or {}).get("faces")
    looked = extra_faces is not None
    found = bool(extra_faces)
    for s in record.get("scores") or []:
        if s.get("stage") != "output":
            continue
        faces = (s.get("details") or {}).get("faces")
        if faces is not None:
            looked, found = True, found or bool(faces)
        if s.get("label") in FACE_LABELS:
            looked, found = True, found or float(s.get("value", 0)) >= 0.5
    return found if looked else None


def _add(data: AuditData, record: dict[str, Any]) -> bool:
    """Count one record; False when it is a reviewer's decision (counted apart: it is not an output)."""
    if record.get("media_type") == REVIEW_MEDIA_TYPE:
        review = (record.get("extra") or {}).get("review") or {}
        data.reviews[(str(review.get("verdict")), str(review.get("decision")))] += 1
        return False
    cat = category(record.get("media_type"))
    verdict = record.get("verdict", "?")
    created = record.get("created_at") or ""
    data.records += 1
    data.first = created if data.first is None or created < data.first else data.first
    data.last = created if data.last is None or created > data.last else data.last
    data.by_hour[(created[:13], verdict)] += 1
    data.verdicts[(cat, verdict)] += 1
    for action in record.get("actions") or []:
        data.actions[(cat, _DIGITS.sub("N", action))] += 1  # "gave up after 3 attempts" and "after 5" are one kind
    for v in record.get("violations") or []:
        label = v.get("label") if "fail" not in v else f"(failed, fail: {v.get('fail')})"
        data.fired[(v.get("rule", "?"), v.get("detector") or v.get("rule", "?"), label, v.get("stage", "?"),
                    v.get("action", "?"))] += 1
    for s in record.get("scores") or []:
        data.scores[(s.get("detector", "?"), s.get("label", "?"), s.get("stage", "?"))].add(float(s.get("value", 0)))
    errors = record.get("errors") or []
    data.records_with_errors += bool(errors)
    for e in errors:
        key = (e.get("detector", "?"), e.get("stage", "?"))
        data.errors[key] += 1
        message = str(e.get("error", ""))
        if message not in data.error_examples[key] and len(data.error_examples[key]) < ERROR_EXAMPLES:
            data.error_examples[key].append(message)
    if record.get("artifact"):
        data.generated[cat] += 1
        data.output_checked[cat] += any(s.get("stage") == "output" for s in record.get("scores") or [])
    if record.get("artifact") and verdict != "block":
        data.delivered[cat] += 1
        watermark, signature = record.get("watermark"), record.get("signature")
        face = face_signal(record) if cat == "image" else None
        data.face_checked += face is not None
        if face:
            data.faces += 1
            data.faces_disclosed += bool((signature or {}).get("type") == "c2pa" or
                                         (record.get("extra") or {}).get("disclosure"))
        if watermark:
            data.watermarked[(cat, watermark.get("scheme", "?"))] += 1
        if signature:
            data.signed[(cat, signature.get("type", "?"))] += 1
        data.marked_any[cat] += bool(watermark or signature)
    gen = record.get("generator") or {}
    data.models[(gen.get("name"), gen.get("model_id"), gen.get("revision"), bool(gen.get("weights_sha256")))] += 1
    policy = record.get("policy") or {}
    data.policies[(policy.get("name"), policy.get("sha256"))] += 1
    data.prompt_storage[(record.get("prompt") or {}).get("storage", "?")] += 1
    data.regenerated += int(record.get("attempt") or 1) > 1
    data.extra_keys.update((record.get("extra") or {}).keys())
    return True


def check_integrity(log: ProvenanceLog, public_key, progress: Callable[[int, int], None] | None) -> Integrity:
    from guard.provenance.verify import verify_log

    size = log.size()
    latest = log.latest_checkpoint()
    checkpoint = None if latest is None else {"size": latest.checkpoint.size, "root": latest.checkpoint.root.hex(),
                                               "note": latest.note}
    uncovered = size - (latest.checkpoint.size if latest else 0)
    if public_key is None:
        return Integrity(None, None, checkpoint, uncovered,
                         "not verified: no log public key (pass --keys); the checkpoint below is unchecked")
    report = verify_log(log, public_key, progress=progress)
    note = (f"every leaf, node and {report.checkpoints_checked} checkpoint signature(s) recomputed and checked"
            if report.ok else f"FAILED: first bad record {report.first_bad_index}, "
            f"first bad checkpoint {report.first_bad_checkpoint}")
    return Integrity(report.ok, report.to_dict() | {"root": report.root.hex()}, checkpoint, uncovered, note)


def gather(log: ProvenanceLog, filters: Filters = Filters(), *, public_key=None, verify: bool = True,
           progress: Callable[[int, int], None] | None = None) -> AuditData:
    """Verify the whole log (unless ``verify`` is off), then read the records that pass ``filters``.

    Each record's bytes are checked against its leaf hash as it is read, except when verification already
    failed: then the report says so, and counts what the records say."""
    data = AuditData(log=log.display_url, origin=log.origin, log_size=log.size(), filters=filters)
    if verify:
        data.integrity = check_integrity(log, public_key, progress)
    checked = data.integrity is None or data.integrity.verified is not False

    def records():  # one pass: every record is counted here while the bias table consumes the same stream
        for _, record in iter_filtered(log, filters, checked=checked):
            if not _add(data, record):
                continue
            if progress and data.records % 5000 == 0:
                progress(data.records, data.log_size)
            yield record

    try:
        from guard.bias.logged import group_table
    except ImportError:
        for _ in records():
            pass
        data.bias = {"available": False, "note": "the bias module is not installed"}
    else:
        data.bias = {"available": True, **group_table(records()).to_dict()}
    return data
