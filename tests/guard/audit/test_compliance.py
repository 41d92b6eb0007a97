"""``guard compliance``: duties with status and evidence computed from the log, and what the log cannot show."""

from __future__ import annotations

import pytest

from guard.audit.compliance import checklist
from guard.provenance.log import ProvenanceLog


@pytest.fixture(scope="module")
def eu(mixed_log):
    log = ProvenanceLog(mixed_log.path)
    yield checklist(log, "eu-ai-act-art50", keys=mixed_log.keys)
    log.close()


def test_eu_statuses_follow_the_log(eu):
    duties = {d.id: d for d in eu.duties}
    # Text outputs of the callable generator are signed but not watermarked, and the back-filled ones are
    # neither: marking is partial, and so is in-band detectability.
    assert duties["marking"].status == "partial"
    assert "image: 3/3 (100.0%)" in duties["marking"].evidence[0]
    assert duties["detectability"].status == "partial"
    assert any("measured now" in e for e in duties["detectability"].evidence)
    assert duties["log-integrity"].status == "pass"
    assert duties["retention"].status == "pass"
    assert any("younger than the retention period" in e for e in duties["retention"].evidence)
    # No face detector ran: the log cannot tell which images show people, and says so.
    assert duties["deepfake-disclosure"].status == "partial"
    assert any("cannot tell" in e for e in duties["deepfake-disclosure"].evidence)
    assert all(d.cannot_show for d in eu.duties)
    assert any("Art. 50(1)" in line for line in eu.outside_the_log)
    assert eu.measurements["image_watermark"]["ran"] is True


def test_nist_checklist(mixed_log):
    log = ProvenanceLog(mixed_log.path)
    result = checklist(log, "nist-ai-100-4", keys=None)
    duties = {d.id: d for d in result.duties}
    assert duties["harmful-content"].status == "pass"  # every generated image was scored at the output stage
    assert duties["detection"].status == "partial"  # detector failures were logged
    assert duties["log-integrity"].status == "partial"  # no key given: not verified
    assert duties["provenance-tracking"].status == "partial"  # the callable generator pins no weights
    log.close()


def test_tampered_log_fails_integrity(mixed_log, tmp_path):
    import shutil
    import sqlite3

    copy = tmp_path / "tampered.db"
    shutil.copy(mixed_log.path, copy)
    with sqlite3.connect(copy) as conn:
        body = conn.execute("SELECT body FROM guard_records WHERE idx = 2").fetchone()[0]
        assert b'"verdict":"allow"' in body
        conn.execute("UPDATE guard_records SET body = ? WHERE idx = 2", (body.replace(b'"allow"', b'"alloy"'),))
    log = ProvenanceLog(copy)
    result = checklist(log, "eu-ai-act-art50", keys=mixed_log.keys, self_test=False)
    assert {d.id: d.status for d in result.duties}["log-integrity"] == "fail" and result.worst == "fail"
    log.close()


def test_cli(cli, mixed_log):
    result = cli("compliance", "--framework", "nist-ai-100-4", "--log", mixed_log.path, "--keys",
                 mixed_log.keys.directory, "--no-self-test", "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json["overall"] == "partial"
    assert cli("compliance", "--framework", "iso-42001", "--log", mixed_log.path).exit_code == 2


def test_deepfake_disclosure_counts_faces_the_detector_found(tmp_path):
    from PIL import Image
    from skimage import data as skdata

    from guard.provenance.artifact import image_digest
    from guard.provenance.record import ProvenanceRecord

    def record(faces, signed):
        score = {"detector": "deepfake", "label": "fake", "value": 0.1, "model": "m", "stage": "output",
                 "details": {"faces": faces}}
        return ProvenanceRecord(media_type="image/png", generator={"model_id": "sd"}, verdict="allow",
                                policy={"name": "p", "sha256": "0" * 64},
                                artifact=image_digest(Image.fromarray(skdata.astronaut())), scores=[score],
                                signature={"type": "c2pa"} if signed else None)

    log = ProvenanceLog(tmp_path / "log.db")
    face = [{"box": [10, 10, 90, 90], "value": 0.1}]
    log.append_batch([record(face, True), record([], False)])
    duty = {d.id: d for d in checklist(log, "eu-ai-act-art50").duties}["deepfake-disclosure"]
    assert duty.status == "pass" and "1/1" in duty.evidence[1]
    log.append_batch([record(face, False)])
    duty = {d.id: d for d in checklist(log, "eu-ai-act-art50").duties}["deepfake-disclosure"]
    assert duty.status == "partial" and "1/2" in duty.evidence[1]
    assert "deepfake scores are hints, not proof" in duty.cannot_show  # the detector's measured limits
    log.close()
