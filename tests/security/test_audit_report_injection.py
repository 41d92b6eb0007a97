"""Attack: strings in the log (a model id, a detector label, a policy name) written to become markup in the audit
report: ``<script>`` in the Markdown report, matplotlib mathtext (``$\\frac{...$``) that crashed the chart
rendering. The report escapes them and renders."""

from __future__ import annotations

import pytest

from guard.provenance.record import ProvenanceRecord

SCRIPT = "<script>alert(1)</script>"
MATH = r"$\frac{1}$"


@pytest.fixture
def hostile_log(tmp_path, keys):
    from guard.provenance.log import ProvenanceLog

    log = ProvenanceLog(tmp_path / "log.db")
    log.append_batch([ProvenanceRecord(
        media_type="text/plain; charset=utf-8",
        generator={"name": "callable", "model_id": SCRIPT + " [click](javascript:alert(1))"},
        verdict="flag", policy={"name": SCRIPT, "sha256": "0" * 64},
        artifact={"sha256": f"{i:064x}", "hash_of": "utf-8", "size": 1},
        scores=[{"detector": MATH, "label": MATH + "_" + SCRIPT, "value": 0.7, "model": "m", "stage": "output"}],
        errors=[{"detector": MATH, "stage": "output", "error": SCRIPT}],
        actions=[MATH],
    ) for i in range(3)])
    log.checkpoint(keys.log_private_key())
    log.close()
    return tmp_path / "log.db"


def test_markdown_report_escapes_user_strings(cli, hostile_log, keys, tmp_path):
    out = tmp_path / "report.md"
    result = cli("audit", "--log", hostile_log, "--keys", keys.directory, "--md", "--out", out,
                 "--title", "Audit " + SCRIPT)
    assert result.exit_code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "](javascript:" not in text


def test_html_report_with_mathtext_in_labels(cli, hostile_log, keys, tmp_path):
    out = tmp_path / "report.html"
    result = cli("audit", "--log", hostile_log, "--keys", keys.directory, "--out", out)
    assert result.exit_code == 0, result.stderr
    text = out.read_text(encoding="utf-8")
    assert "<script>" not in text and "data:image/png;base64," in text
