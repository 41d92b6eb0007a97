"""``guard audit`` from the command line: formats by flag and by suffix, exit codes."""

from __future__ import annotations

import json


def test_html_md_json(cli, mixed_log, tmp_path):
    common = ["--log", mixed_log.path, "--keys", mixed_log.keys.directory]
    html = cli("audit", *common, "--out", tmp_path / "report.html")
    assert html.exit_code == 0, html.stderr
    page = (tmp_path / "report.html").read_text()
    assert page.startswith("<!doctype html>") and page.count("data:image/png;base64,") == 7
    md = cli("audit", *common, "--out", tmp_path / "report.md", "--no-verify")
    assert md.exit_code == 0 and (tmp_path / "report.md").read_text().startswith("# Provenance audit")
    as_json = cli("audit", *common, "--json", "--since", "2000-01-01")
    assert as_json.exit_code == 0 and json.loads(as_json.stdout)["integrity"]["verified"] is True


def test_exit_codes(cli, mixed_log, tmp_path):
    import shutil
    import sqlite3

    assert cli("audit", "--log", tmp_path / "none.db", "--json").exit_code == 2
    assert cli("audit", "--log", mixed_log.path, "--since", "last week").exit_code == 2
    copy = tmp_path / "tampered.db"
    shutil.copy(mixed_log.path, copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("DELETE FROM guard_records WHERE idx = (SELECT MAX(idx) FROM guard_records)")
    failed = cli("audit", "--log", copy, "--keys", mixed_log.keys.directory, "--json")
    assert failed.exit_code == 1 and json.loads(failed.stdout)["integrity"]["verified"] is False
    no_keys = cli("audit", "--log", mixed_log.path, "--keys", tmp_path / "nokeys", "--md")
    assert no_keys.exit_code == 0 and "not verified: no log public key" in no_keys.stdout


def test_a_log_that_does_not_verify_is_one_finding_line_without_doubled_words(cli, mixed_log, tmp_path):
    import shutil
    import sqlite3

    copy = tmp_path / "tampered.db"
    shutil.copy(mixed_log.path, copy)
    with sqlite3.connect(copy) as conn:
        conn.execute("DELETE FROM guard_records WHERE idx = (SELECT MAX(idx) FROM guard_records)")
    failed = cli("audit", "--log", copy, "--keys", mixed_log.keys.directory, "--md")
    assert failed.exit_code == 1
    [line] = failed.stderr.strip().splitlines()
    assert line.startswith("finding: the log does not verify: first bad record ") and "FAILED" not in line
    assert "FAILED: FAILED" not in failed.stdout
