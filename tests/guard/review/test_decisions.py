"""Reviewer decisions are log records: in the Merkle tree `guard log verify` checks, and in `guard audit`."""

from __future__ import annotations

import pytest

from core.errors import InputError
from guard.audit.data import gather
from guard.provenance.verify import verify_log
from guard.review.decisions import REVIEW_MEDIA_TYPE, decision_record, record_decision


@pytest.fixture(scope="module")
def made(review_log):
    return review_log


def test_a_decision_points_to_the_reviewed_leaf_and_is_verified_with_the_log(made, cli):
    from guard.provenance.log import ProvenanceLog
    from guard.signing.keys import KeyStore

    keys = KeyStore(made.keys_dir)
    log = ProvenanceLog(made.log_url)
    reviewed = log.get(made.indices["blocked"])
    size = log.size()
    at = record_decision(log, reviewed.index, "overturn", "Quoting a film line, not abuse.", reviewer="ana",
                         role="reviewer", checkpoint_key=keys.log_private_key())
    assert at == size
    decision = log.get(at).data
    assert decision["media_type"] == REVIEW_MEDIA_TYPE and decision["parent"] == reviewed.record_id
    assert decision["extra"]["review"] == {
        "decision": "overturn", "comment": "Quoting a film line, not abuse.", "reviewer": "ana", "role": "reviewer",
        "record_id": reviewed.record_id, "index": reviewed.index, "leaf_hash": reviewed.leaf_hash.hex(),
        "verdict": "block"}
    assert log.latest_checkpoint().checkpoint.size == size + 1  # signed at once
    report = verify_log(log, keys.log_public_key())
    assert report.ok and report.size == size + 1
    result = cli("log", "verify", "--log", made.log_url, "--keys", made.keys_dir, "--json")
    assert result.exit_code == 0 and result.json["size"] == size + 1

    data = gather(log, verify=False)
    assert data.reviews == {("block", "overturn"): 1}
    assert data.records == size  # a decision is not an output: the output figures do not count it
    audit = cli("audit", "--log", made.log_url, "--keys", made.keys_dir, "--json")
    assert audit.exit_code == 0, audit.stderr
    assert audit.json["reviews"] == [{"verdict": "block", "decision": "overturn", "count": 1}]
    markdown = cli("audit", "--log", made.log_url, "--keys", made.keys_dir, "--md")
    assert "## Human review" in markdown.stdout and "| block | overturn | 1 |" in markdown.stdout
    log.close()


@pytest.mark.parametrize("decision, comment, message", [
    ("approve", "", "decision must be one of confirm, overturn, escalate"),
    ("overturn", "   ", "a comment is required to overturn"),
    ("escalate", "", "a comment is required to escalate"),
    ("confirm", "x" * 4001, "at most 4000"),
])
def test_bad_decisions_are_refused(made, decision, comment, message):
    from guard.provenance.log import ProvenanceLog

    log = ProvenanceLog(made.log_url)
    with pytest.raises(InputError, match=message):
        decision_record(log.get(made.indices["flagged"]), decision, comment, reviewer="ana", role="reviewer")
    log.close()


def test_a_decision_cannot_be_reviewed(made):
    from guard.provenance.log import ProvenanceLog

    log = ProvenanceLog(made.log_url)
    at = record_decision(log, made.indices["flagged"], "confirm", "", reviewer="ana", role="reviewer")
    with pytest.raises(InputError, match="is itself a review decision"):
        record_decision(log, at, "confirm", "", reviewer="ana", role="reviewer")
    log.close()
