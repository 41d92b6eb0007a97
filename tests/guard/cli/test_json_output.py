"""With ``--json`` stdout is JSON: the report, or for bad input and crashes ``{"error": ..., "exit_code": ...}``;
``log export --json`` is accepted like ``--json`` everywhere else."""

from __future__ import annotations

import json

import pytest

from tests.guard.provenance.helpers import fill


@pytest.fixture
def small_log(tmp_path):
    from guard.provenance.log import ProvenanceLog

    log = ProvenanceLog(tmp_path / "log.db")
    fill(log, 5)
    log.close()
    return tmp_path / "log.db"


def test_policy_check_json_reports_the_error_as_json(cli, tmp_path):
    bad = tmp_path / "policy.yaml"
    bad.write_text("name: x\nstages:\n  output:\n    - detector: toxicity\n      thresholds: {toxicity: 2}\n")
    result = cli("policy", "check", bad, "--json")
    assert result.exit_code == 2
    error = result.json
    assert error["exit_code"] == 2 and str(bad) in error["error"] and "line 5" in error["error"]
    assert result.stderr.strip() == f"error: {error['error']}"


def test_usage_error_with_json_is_json(cli):
    result = cli("log", "show", "--index", "abc", "--json")
    assert result.exit_code == 2 and "--index" in result.json["error"]


def test_finding_with_json_keeps_the_report(cli, tmp_path, small_log):
    text = tmp_path / "unrelated.txt"
    text.write_text("A text that no logged record made.\n")
    result = cli("trace", text, "--log", small_log, "--json")
    assert result.exit_code == 1 and result.json["matches"] == []
    assert result.stderr.startswith("finding: ") and len(result.stderr.strip().splitlines()) == 1


def test_log_export_json_to_stdout(cli, small_log):
    result = cli("log", "export", "--log", small_log, "--json")
    assert result.exit_code == 0, result.stderr
    assert [json.loads(line)["artifact"]["size"] for line in result.stdout.splitlines()] == [0, 1, 2, 3, 4]


def test_log_export_json_with_out_prints_a_summary(cli, small_log, tmp_path):
    out = tmp_path / "records.csv"
    result = cli("log", "export", "--log", small_log, "--format", "csv", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    assert result.json == {"exported": 5, "format": "csv", "out": str(out)}
    assert len(out.read_text().splitlines()) == 6


def test_log_export_json_refuses_csv_on_stdout(cli, small_log):
    result = cli("log", "export", "--log", small_log, "--format", "csv", "--json")
    assert result.exit_code == 2 and "pass --out for csv" in result.json["error"]
