"""Compliance checklists: each duty of a framework, its status from the log, the evidence, and what the log
cannot show.

Frameworks:

- ``eu-ai-act-art50``: Regulation (EU) 2024/1689, Article 50 (transparency for providers and deployers of
  generative systems), plus the log integrity and retention that make the answers provable.
- ``nist-ai-100-4``: NIST AI 100-4 (2024), *Reducing Risks Posed by Synthetic Content*: provenance data tracking,
  watermarking, metadata and signatures, detection, testing, harmful-content filtering, auditability.

Status is ``pass`` (the log shows the duty met for every relevant output), ``partial`` (met for some, or the
evidence is incomplete: no key to verify with, no detector to tell) or ``fail`` (the log shows it not met).
Statuses are computed from ``guard.audit.gather`` plus one measurement made now: the image watermark's
detection rate after JPEG re-encoding and downscaling, with the deployment's own key, on bundled photographs.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from guard.audit.data import AuditData, gather
from core.errors import GuardError, InputError
from guard.audit.export import Filters
from guard.provenance.log import ProvenanceLog

FRAMEWORKS = ("eu-ai-act-art50", "nist-ai-100-4")
STATUSES = ("pass", "partial", "fail")
SELF_TEST_IMAGES = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field")
SELF_TEST_ATTACKS = {"JPEG q75": 1.0, "JPEG q75 after 3/4 downscale": 0.75}  # attack -> scale


@dataclass(frozen=True)
class Duty:
    id: str
    title: str
    reference: str
    status: str  # pass | partial | fail
    evidence: list[str]
    cannot_show: str  # what the log cannot show about this duty, in plain words

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "title": self.title, "reference": self.reference, "status": self.status,
                "evidence": self.evidence, "cannot_show": self.cannot_show}


@dataclass
class Checklist:
    framework: str
    log: str
    records: int
    period: dict[str, Any]
    duties: list[Duty] = field(default_factory=list)
    outside_the_log: list[str] = field(default_factory=list)
    measurements: dict[str, Any] = field(default_factory=dict)

    @property
    def worst(self) -> str:
        statuses = {d.status for d in self.duties}
        return next((s for s in ("fail", "partial") if s in statuses), "pass")

    def to_dict(self) -> dict[str, Any]:
        return {"framework": self.framework, "log": self.log, "records": self.records, "period": self.period,
                "overall": self.worst, "duties": [d.to_dict() for d in self.duties],
                "outside_the_log": self.outside_the_log, "measurements": self.measurements}


def _share(part: int, whole: int) -> str:
    return f"{part}/{whole} ({100 * part / whole:.1f}%)" if whole else "0/0"


def _coverage(part: int, whole: int) -> str:
    """pass when every one is covered, fail when none is, partial in between."""
    if whole == 0 or part == whole:
        return "pass"
    return "fail" if part == 0 else "partial"


# -- measurements ------------------------------------------------------------------------------------------------


def watermark_self_test(keys) -> dict[str, Any]:
    """Embed this deployment's image watermark into bundled photographs, re-encode them as JPEG (quality 75) at
    full and at 3/4 size, and detect: the detection rates are the mark's measured power under those attacks;
    the unmarked originals measure false alarms."""
    try:
        secret, key_id = keys.watermark_secret(), keys.watermark_key_id()
    except GuardError as exc:
        return {"ran": False, "reason": str(exc)}
    try:
        from guard.watermark.image import WatermarkPayload, detect, embed
    except ImportError:
        return {"ran": False, "reason": "the image watermark module is not installed"}
    from PIL import Image
    from skimage import data as bundled

    from core.imageio import jpeg_roundtrip

    def jpeg(image, scale: float):
        size = (round(image.width * scale), round(image.height * scale))
        return jpeg_roundtrip(image.resize(size, Image.Resampling.LANCZOS), 75)

    payload = WatermarkPayload.for_record("0123456789abcdef", key_id)
    found = dict.fromkeys(SELF_TEST_ATTACKS, 0)
    false_alarms = 0
    for name in SELF_TEST_IMAGES:
        image = Image.fromarray(getattr(bundled, name)()).convert("RGB")
        image.thumbnail((512, 512))
        marked = embed(image, payload, secret)
        for attack, scale in SELF_TEST_ATTACKS.items():
            result = detect(jpeg(marked, scale), secret)
            found[attack] += result.found and result.payload == payload
        false_alarms += detect(image, secret).found
    n = len(SELF_TEST_IMAGES)
    return {"ran": True, "images": n, "detected": found, "detection_rate": {a: k / n for a, k in found.items()},
            "false_alarms": false_alarms, "measured_at": _now()}


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _age_days(created_at: str | None) -> float | None:
    if not created_at:
        return None
    moment = datetime.fromisoformat(created_at.replace("Z", "+00:00"))
    return (datetime.now(timezone.utc) - moment).total_seconds() / 86400


# -- duties shared by both frameworks ----------------------------------------------------------------------------


def _marking(data: AuditData, ref: str) -> Duty:
    m = data.marking()
    delivered = sum(v["delivered"] for v in m.values())
    marked = sum(v["watermarked_or_signed"] for v in m.values())
    evidence = [f"{cat}: {_share(v['watermarked_or_signed'], v['delivered'])} watermarked or signed "
                f"(watermark {v['watermarked']}, signature {v['signed']}: "
                f"{', '.join(f'{k} {n}' for k, n in v['signature_types'].items()) or 'none'})" for cat, v in m.items()]
    if not delivered:
        evidence = ["no output was delivered in this period"]
    return Duty("marking", "Outputs are marked in a machine-readable format", ref, _coverage(marked, delivered),
                evidence, "Whether a mark is still present after the output left the system (metadata stripped, "
                "image re-encoded); check files with `guard verify`.")


def _detectability(data: AuditData, test: dict[str, Any], ref: str) -> Duty:
    m = data.marking()
    delivered = sum(v["delivered"] for v in m.values())
    watermarked = sum(v["watermarked"] for v in m.values())
    evidence = [f"in-band watermark on {_share(watermarked, delivered)} delivered outputs "
                "(a signature alone is lost when metadata is stripped)"]
    status = _coverage(watermarked, delivered)
    if m.get("image", {}).get("delivered"):
        if test.get("ran"):
            rates = ", ".join(f"{k}/{test['images']} after {attack}" for attack, k in test["detected"].items())
            evidence.append(f"image watermark detector measured now with this deployment's key: detected {rates}; "
                            f"{test['false_alarms']} false alarms on the unmarked originals")
            if min(test["detection_rate"].values()) < 0.9 or test["false_alarms"]:
                status = "partial" if status == "pass" else status
        else:
            evidence.append(f"image watermark detector not measured: {test.get('reason')}")
            status = "partial" if status == "pass" else status
    if m.get("text", {}).get("delivered"):
        evidence.append("text watermark power depends on the generating model and output length; it is not "
                        "measured here (see the text watermark benchmark)")
    return Duty("detectability", "Outputs are detectable as artificially generated", ref, status, evidence,
                "Detection by third parties: they need the watermark key or a detection service.")


def _integrity(data: AuditData, ref: str) -> Duty:
    i = data.integrity
    if i is None:
        return Duty("log-integrity", "The provenance log is complete and tamper-evident", ref, "partial",
                    ["verification was not run"], "Events that were never logged.")
    evidence = [i.note]
    if i.checkpoint:
        evidence.append(f"latest signed checkpoint covers {i.checkpoint['size']} records; "
                        f"{i.uncovered} appended after it")
    else:
        evidence.append("no signed checkpoint")
    if i.verified is False:
        status = "fail"
    elif i.verified is None or not i.checkpoint or i.uncovered:
        status = "partial"
    else:
        status = "pass"
    return Duty("log-integrity", "The provenance log is complete and tamper-evident", ref, status, evidence,
                "Generations that bypassed the guard; whether an earlier copy of the log was replaced wholesale "
                "(compare checkpoints witnessed elsewhere with `guard log consistency`).")


def _retention(data: AuditData, log: ProvenanceLog, days: int, ref: str) -> Duty:
    first = log.get(0).data.get("created_at") if log.size() else None
    age = _age_days(first)
    evidence = [f"oldest record {first} ({age:.0f} days old); required retention {days} days"
                if age is not None else "the log is empty"]
    verified = data.integrity is not None and data.integrity.verified
    if age is not None and verified:
        evidence.append("no record has been removed since the log began (verified, indices gap-free)")
    status = "pass" if verified else "partial"
    if age is not None and age < days:
        evidence.append("the log is younger than the retention period: it shows records kept so far, not yet the "
                        "full period")
    return Duty("retention", "Records are retained for the required period", ref, status, evidence,
                "Future retention and backups: the log shows what it holds today, not that it will be kept.")


def _faces(data: AuditData, ref: str) -> Duty:
    from detectors.deepfake import LIMITS as DEEPFAKE_LIMITS
    images = data.delivered.get("image", 0)
    checked = data.output_checked.get("image", 0)
    generated = data.generated.get("image", 0)
    if not images:
        return Duty("deepfake-disclosure", "Realistic depictions of people are disclosed as AI-generated", ref,
                    "pass", ["no image output was delivered in this period (not applicable)"],
                    "Audio and video deep fakes made outside the guard.")
    evidence = [f"a face-capable detector looked at {_share(data.face_checked, images)} delivered images",
                f"{data.faces} show a realistic face; {_share(data.faces_disclosed, data.faces)} carry a disclosure "
                "(C2PA manifest declaring trainedAlgorithmicMedia, or extra.disclosure)" if data.faces else
                "none was recorded as showing a realistic face",
                f"{_share(checked, generated)} generated images were scored at the output stage"]
    if data.faces:
        status = _coverage(data.faces_disclosed, data.faces)
        if status == "pass" and data.face_checked < images:
            status = "partial"
    elif data.face_checked < images:
        evidence.append("no face or deepfake detector looked at every image, so the log cannot tell which images "
                        "show people")
        status = "partial"
    else:
        status = "pass"
    return Duty("deepfake-disclosure", "Realistic depictions of people are disclosed as AI-generated", ref, status,
                evidence, "Whether the deployer showed the disclosure where the content was published. Whether the "
                "images a deepfake detector passed were real: " + DEEPFAKE_LIMITS)


# -- frameworks -------------------------------------------------------------------------------------------------


def _eu(data: AuditData, log: ProvenanceLog, test: dict[str, Any], retention_days: int) -> tuple[list[Duty], list[str]]:
    duties = [
        _marking(data, "Art. 50(2): outputs marked in a machine-readable format"),
        _detectability(data, test, "Art. 50(2): detectable as artificially generated; solutions effective, "
                       "interoperable, robust and reliable as far as technically feasible"),
        _faces(data, "Art. 50(4): deployers disclose deep fakes"),
        _integrity(data, "Art. 12 and 19 (record-keeping), evidence for Art. 50 duties"),
        _retention(data, log, retention_days, "Art. 19(1) and 26(6): logs kept at least six months"),
    ]
    outside = [
        "Art. 50(1): whether people were informed that they were interacting with an AI system.",
        "Art. 50(3): emotion recognition and biometric categorisation systems are outside this toolkit.",
        "Art. 50(4), second subparagraph: disclosure of AI-generated text published to inform the public, "
        "unless it underwent human review or editorial control — editorial review happens outside the log.",
        "Art. 50(5): that the information was given clearly at the first interaction, accessibly.",
    ]
    return duties, outside


def _nist(data: AuditData, log: ProvenanceLog, test: dict[str, Any],
          retention_days: int) -> tuple[list[Duty], list[str]]:
    models = data.to_dict()["models"]
    total = sum(m["count"] for m in models)
    named = sum(m["count"] for m in models if m["model_id"])
    pinned = sum(m["count"] for m in models if m["weights_pinned"] or m["revision"])
    policies = sum(n for (name, sha), n in data.policies.items() if name and sha)
    provenance_status = "fail" if named < total or policies < total else ("pass" if pinned == total else "partial")
    provenance = Duty(
        "provenance-tracking", "Provenance data is recorded for every output", "NIST AI 100-4: provenance data "
        "tracking (recording origin and history)", provenance_status,
        [f"{_share(named, total)} records name the generating model; {_share(pinned, total)} pin it by revision or "
         f"weights hash", f"{_share(policies, total)} records name the policy by hash",
         "every record is a leaf of an RFC 6962 Merkle tree with signed checkpoints"],
        "Provenance of training data and of inputs supplied by users.")
    generated = sum(data.generated.values())
    checked = sum(data.output_checked.values())
    errors = sum(data.errors.values())
    detection = Duty(
        "detection", "Outputs are screened by detectors, and detector failures are visible",
        "NIST AI 100-4: synthetic content detection; testing and evaluation",
        "partial" if errors and _coverage(checked, generated) == "pass" else _coverage(checked, generated),
        [f"{_share(checked, generated)} generated outputs carry an output-stage score",
         f"{errors} detector failures in {data.records_with_errors} records (each logged with its message)"],
        "How accurate the detectors are on this deployment's traffic: that needs labelled samples.")
    image_generated = data.generated.get("image", 0)
    image_checked = data.output_checked.get("image", 0)
    harmful = Duty(
        "harmful-content", "Image outputs are screened before release (CSAM, NCII and other harmful content)",
        "NIST AI 100-4: preventing AI-generated CSAM and NCII",
        _coverage(image_checked, image_generated),
        [f"{_share(image_checked, image_generated)} generated images were scored at the output stage"
         if image_generated else "no image was generated in this period (not applicable)"],
        "Which harms the configured detectors cover: see the policy named in each record.")
    duties = [
        provenance,
        _marking(data, "NIST AI 100-4: digital watermarking; metadata recording (signed: C2PA, DSSE)"),
        _detectability(data, test, "NIST AI 100-4: watermark robustness; testing and evaluation"),
        detection,
        harmful,
        _faces(data, "NIST AI 100-4: impersonation and non-consensual imagery"),
        _integrity(data, "NIST AI 100-4: auditing and maintaining (tamper-evident records)"),
        _retention(data, log, retention_days, "NIST AI 100-4: auditing and maintaining (records kept)"),
    ]
    outside = [
        "Training data provenance and consent, and model documentation.",
        "Human review, red-teaming and incident response processes.",
        "Whether content credentials were preserved by the platforms where outputs were published.",
    ]
    return duties, outside


def checklist(
    log: ProvenanceLog,
    framework: str,
    *,
    keys=None,
    filters: Filters = Filters(),
    retention_days: int = 180,
    self_test: bool = True,
) -> Checklist:
    """Compute the checklist of ``framework`` over the records that pass ``filters``."""
    _check_arguments(framework, retention_days)
    data = gather(log, filters, public_key=log_public_key(keys))
    return checklist_from(data, log, framework, keys=keys, retention_days=retention_days, self_test=self_test)


def log_public_key(keys):
    """The log's public key from a key folder, or None (no folder, or no key in it): the log is then not verified."""
    if keys is None:
        return None
    try:
        return keys.log_public_key()
    except GuardError:
        return None


def _check_arguments(framework: str, retention_days: int) -> None:
    if framework not in FRAMEWORKS:
        raise InputError(f"unknown framework {framework!r} (known: {', '.join(FRAMEWORKS)})")
    if retention_days < 1:
        raise InputError(f"--retention-days must be positive, got {retention_days}")


def checklist_from(data: AuditData, log: ProvenanceLog, framework: str, *, keys=None, retention_days: int = 180,
                   self_test: bool = True) -> Checklist:
    """The checklist of ``framework`` from audit data already gathered (``gather`` with the log's public key)."""
    _check_arguments(framework, retention_days)
    test = watermark_self_test(keys) if (self_test and keys is not None and data.delivered.get("image")) else \
        {"ran": False, "reason": "no key folder" if keys is None else "not requested or no image outputs"}
    build = _eu if framework == "eu-ai-act-art50" else _nist
    duties, outside = build(data, log, test, retention_days)
    filters = data.filters
    return Checklist(framework=framework, log=log.display_url, records=data.records,
                     period={"since": filters.since, "until": filters.until, "first": data.first, "last": data.last},
                     duties=duties, outside_the_log=outside, measurements={"image_watermark": test})
