"""``guard trace``: records found by exact hash, perceptual hash after re-encoding and resizing, image watermark,
and MinHash near-duplicates after light edits; each with a proof that verifies; the index is incremental."""

from __future__ import annotations

import io

import pytest

from guard.provenance.log import InclusionProof, ProvenanceLog
from guard.provenance.merkle import leaf_hash
from guard.audit.trace import TraceIndex, index_records, trace_image, trace_text
from guard.pipeline.signals import minhash_signals as text_signals
from tests.fixtures.mixed_log import TALE, lightly_edited


@pytest.fixture
def mixed(mixed_log):
    plog = ProvenanceLog(mixed_log.path)
    yield plog
    plog.close()


def _check_proof(log, match) -> None:
    proof = InclusionProof.from_dict(match.to_dict()["proof"])
    proof.verify()
    assert proof.leaf_hash == leaf_hash(log.get(match.index).body)
    assert match.to_dict()["proof"]["signed_checkpoint"] is not None  # the mixed log has a covering checkpoint


def _reencoded(image, scale: float, quality: int):
    from PIL import Image

    small = image.resize((int(image.width * scale), int(image.height * scale)), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=quality)
    return Image.open(io.BytesIO(buf.getvalue()))


def test_image_found_after_reencoding_and_resizing(mixed, mixed_log):
    result = mixed_log.image_outputs[0]
    assert result.artifact is not None
    report = trace_image(_reencoded(result.artifact, 0.6, 70), mixed, keys=mixed_log.keys)
    by_method = {m.method: m for m in report.matches if m.index == result.index}
    assert "sha256" not in by_method  # the pixels changed
    assert by_method["phash"].details["hamming_distance"] <= 10
    assert report.matches[0].index == result.index
    for match in by_method.values():
        _check_proof(mixed, match)


def test_image_found_by_its_watermark(mixed, mixed_log):
    result = mixed_log.image_outputs[0]
    report = trace_image(_reencoded(result.artifact, 1.0, 80), mixed, keys=mixed_log.keys)
    marked = [m for m in report.matches if m.method == "image-watermark"]
    assert [m.index for m in marked] == [result.index]
    assert marked[0].details["record_id"] == result.record_id
    _check_proof(mixed, marked[0])


def test_image_exact_match(mixed, mixed_log):
    result = mixed_log.image_outputs[1]
    report = trace_image(result.artifact, mixed)
    exact = [m for m in report.matches if m.method == "sha256"]
    assert [m.index for m in exact] == [result.index] and exact[0].similarity == 1.0
    assert report.checks["image-watermark"].startswith("skipped")  # no keys given


def test_unrelated_image_is_not_matched(mixed):
    from PIL import Image
    from skimage import data as skdata

    report = trace_image(Image.fromarray(skdata.hubble_deep_field()).resize((200, 200)), mixed, max_distance=6)
    assert report.matches == []


def test_text_found_after_light_edits(mixed, mixed_log):
    original, index = mixed_log.backdated[3]
    edited = original.replace("weather report", "weather forecast").replace("evening", "evening!").upper()
    report = trace_text(edited, mixed)
    hits = [m for m in report.matches if m.index == index]
    assert hits and hits[0].method == "minhash" and 0.5 <= hits[0].similarity < 1.0
    _check_proof(mixed, hits[0])
    assert not [m for m in report.matches if m.method == "sha256"]


def test_long_text_found_after_light_edits(mixed, mixed_log):
    edited, index = mixed_log.backdated[4]  # the lightly edited Tale, logged once with its signals
    assert edited == lightly_edited(TALE)
    report = trace_text(TALE, mixed)  # the unedited original is a near-duplicate of what was logged
    assert any(m.index == index and m.method == "minhash" and m.similarity > 0.8 for m in report.matches)
    exact = [m for m in trace_text(edited, mixed).matches if m.method == "sha256"]
    assert index in [m.index for m in exact]  # with the pipeline's outputs of the same text under each policy
    assert len({m.record["artifact"]["sha256"] for m in exact}) == 1 and len(exact) == 4


def test_trailing_newline_still_matches_exactly(mixed, mixed_log):
    original, index = mixed_log.backdated[3]
    assert not original.endswith("\n")
    report = trace_text(original + "\n", mixed)  # as an editor saves it
    assert [m.index for m in report.matches if m.method == "sha256"] == [index]


def test_unrelated_text_is_not_matched(mixed):
    report = trace_text("Quarterly revenue grew in every region except the north, where storms closed shops.",
                        mixed)
    assert [m for m in report.matches if m.method == "minhash"] == []


def test_index_is_incremental(log):
    """On SQLite and, when a server is configured, PostgreSQL (the shared ``log`` fixture)."""
    from PIL import Image
    from skimage import data as skdata

    from guard.provenance.artifact import image_digest, text_digest
    from guard.provenance.record import ProvenanceRecord

    def records(texts):
        return [ProvenanceRecord(media_type="text/plain; charset=utf-8", generator={"model_id": "m"},
                                 verdict="allow", policy={"name": "p", "sha256": "0" * 64},
                                 artifact=text_digest(t), extra={"minhash": text_signals(t)}) for t in texts]

    log.append_batch(records([f"record number {i} talks about topic {i * 7} at some length" for i in range(5)]))
    assert index_records(log) == 5
    assert index_records(log) == 0
    log.append_batch(records(["a completely new sentence about lighthouses and the sea at night"]))
    assert index_records(log) == 1
    assert TraceIndex(log).indexed_size() == 6
    report = trace_text("A completely new sentence about lighthouses and the sea at night!", log)
    assert [m.index for m in report.matches] == [5]
    image = Image.fromarray(skdata.coffee())
    log.append_batch([ProvenanceRecord(media_type="image/png", generator={"model_id": "m"}, verdict="allow",
                                       policy={"name": "p", "sha256": "0" * 64}, artifact=image_digest(image))])
    found = trace_image(image.resize((300, 200)), log)
    assert found.indexed == 1
    assert [(m.index, m.method) for m in found.matches] == [(6, "phash")]


def test_text_signals_are_compact():
    import json

    signals = text_signals(TALE)
    assert len(json.dumps(signals, separators=(",", ":"))) <= 225  # as canonical JSON stores it
    assert signals == text_signals(TALE)  # deterministic: stored signatures stay comparable


def test_cli_trace(cli, mixed_log, tmp_path):
    original, index = mixed_log.backdated[1]
    path = tmp_path / "found.txt"
    path.write_text(original.replace("release", "new release"), encoding="utf-8")
    found = cli("trace", path, "--log", mixed_log.path, "--json")
    assert found.exit_code == 0, found.stderr
    assert found.json["matches"][0]["index"] == index
    missing = tmp_path / "nothing.txt"
    missing.write_text("Nothing in the log resembles this sentence about volcanic glass.", encoding="utf-8")
    assert cli("trace", missing, "--log", mixed_log.path).exit_code == 1
    assert cli("trace", tmp_path / "absent.txt", "--log", mixed_log.path).exit_code == 2


def test_copy_served_at_another_size_found_by_the_mark_alone(mixed, mixed_log):
    from core.imageio import jpeg_roundtrip as jpeg
    from guard.watermark.image_attacks import to_width

    result = mixed_log.image_outputs[0]
    width, height = result.artifact.size
    copy = jpeg(to_width(result.artifact, round(width * 1.25), round(height * 1.1)), 70)  # another size and aspect
    report = trace_image(copy, mixed, keys=mixed_log.keys, max_distance=0)
    marked = [m for m in report.matches if m.method == "image-watermark"]
    assert [m.index for m in marked] == [result.index] and marked[0].details["geometry"] == "frame"
    _check_proof(mixed, marked[0])
