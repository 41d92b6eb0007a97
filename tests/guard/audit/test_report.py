"""``guard audit``: the report's numbers, its three formats, and the HTML page drawn by a real headless Chromium.

How the browser test knows the charts are drawn: the page is rendered twice at the same window size, once as
generated and once with every chart's PNG replaced by an all-white PNG of the same pixel size (the ``<img>``
tags carry width and height, so the layout is identical). The pixels that differ between the two screenshots
are exactly what the charts put on screen; together they must account for at least half of the dark pixels
the chart PNGs hold (a chart that failed to decode would show only a small broken-image icon).
"""

from __future__ import annotations

import base64
import io
import json
import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from guard.audit import gather, render
from guard.audit.export import Filters
from guard.provenance.log import ProvenanceLog

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
WINDOW = (1280, 5000)


@pytest.fixture(scope="module")
def audit_data(mixed_log):
    log = ProvenanceLog(mixed_log.path)
    yield gather(log, public_key=mixed_log.keys.log_public_key())
    log.close()


def test_numbers_match_the_log(audit_data, mixed_log):
    d = audit_data.to_dict()
    log = ProvenanceLog(mixed_log.path)
    records = [r.data for r in log.iter_records()]
    assert d["records"] == len(records) == log.size()
    verdicts = {}
    for r in records:
        verdicts[r["verdict"]] = verdicts.get(r["verdict"], 0) + 1
    assert {v: sum(x["count"] for x in d["verdicts"] if x["verdict"] == v) for v in verdicts} == verdicts
    assert set(verdicts) >= {"allow", "flag", "block"}  # the log really is mixed
    # The broken registry made the detector fail on every output of that policy, and each failure was logged.
    failures = sum(len(r["errors"]) for r in records)
    assert failures > 0 and sum(e["count"] for e in d["detector_errors"]) == failures
    assert "FileNotFoundError" in d["detector_errors"][0]["examples"][0]
    delivered = [r for r in records if r["artifact"] and r["verdict"] != "block"]
    signed = sum(1 for r in delivered if r["signature"])
    assert sum(m["signed"] for m in d["marking"].values()) == signed
    assert d["marking"]["image"]["watermarked"] == d["marking"]["image"]["delivered"] > 0
    assert d["integrity"]["verified"] is True
    assert d["integrity"]["latest_checkpoint"]["size"] == log.size()
    assert {m["model_id"] for m in d["models"]} >= {"backfill.chat"}
    assert {p["name"] for p in d["policies"]} == {"copyright-block", "copyright-flag", "broken-registry", "images"}
    groups = {(r["axis"], r["group"]) for r in d["bias"]["rows"]}
    assert ("religion", "muslim") in groups and ("none", "none") in groups
    log.close()


def test_time_filter_limits_the_records(mixed_log):
    log = ProvenanceLog(mixed_log.path)
    everything = gather(log, verify=False)
    since = min(r.data["created_at"] for r in log.iter_records() if r.data["generator"]["model_id"] == "backfill.chat")
    recent = gather(log, Filters.parse(since="2000-01-01", until=since), verify=False)
    assert recent.records == 0
    later = gather(log, Filters.parse(since=since), verify=False)
    assert later.records == everything.records and everything.integrity is None
    log.close()


def test_markdown_and_json(audit_data):
    md = render(audit_data, "md")
    assert "## Log integrity" in md and "What this report cannot show" in md
    assert re.search(r"\| copyright \| verbatim \| output \| \d+ \|", md)
    parsed = json.loads(render(audit_data, "json"))
    assert parsed["records"] == audit_data.records and parsed["integrity"]["verified"] is True


def test_html_is_self_contained(audit_data):
    page = render(audit_data, "html")
    assert "<script" not in page and "http://" not in page and "https://" not in page
    charts = re.findall(r'<figure data-chart="(\w+)">', page)
    assert set(charts) == {"volume", "verdicts", "actions", "scores", "marking", "errors", "bias"}


def _screenshot(html_path, png_path, profile) -> np.ndarray:
    from PIL import Image

    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
           "--disable-component-update", "--disable-sync", "--no-first-run", "--hide-scrollbars",
           f"--user-data-dir={profile}", f"--screenshot={png_path}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
           html_path.as_uri()]
    subprocess.run(cmd, check=True, capture_output=True, timeout=120)
    return np.asarray(Image.open(png_path).convert("L"), dtype=np.int16)


def _white_like(b64: str) -> str:
    from PIL import Image

    size = Image.open(io.BytesIO(base64.b64decode(b64))).size
    buf = io.BytesIO()
    Image.new("RGB", size, "white").save(buf, "PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _ink(b64: str) -> int:
    from PIL import Image

    return int(np.count_nonzero(np.asarray(Image.open(io.BytesIO(base64.b64decode(b64))).convert("L")) < 200))


def test_html_renders_with_charts_in_chromium(audit_data, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("GUARD_REQUIRE_CHROMIUM"):
            pytest.fail("GUARD_REQUIRE_CHROMIUM is set but no chromium binary is on PATH")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    page = render(audit_data, "html")
    charts = re.findall(r'data-chart="\w+"><img [^>]*src="data:image/png;base64,([^"]+)"', page)
    assert len(charts) == 7
    blank = page
    for b64 in charts:
        blank = blank.replace(b64, _white_like(b64))
    (tmp_path / "report.html").write_text(page, encoding="utf-8")
    (tmp_path / "blank.html").write_text(blank, encoding="utf-8")
    shot = _screenshot(tmp_path / "report.html", tmp_path / "report.png", tmp_path / "profile1")
    empty = _screenshot(tmp_path / "blank.html", tmp_path / "blank.png", tmp_path / "profile2")
    assert shot.shape == empty.shape == (WINDOW[1], WINDOW[0])
    assert (shot[-50:] > 250).all(), "the page is longer than the window: enlarge WINDOW"
    assert (empty < 200).sum() > 20_000, "the page's text and tables were not drawn"
    drawn = int(np.count_nonzero(np.abs(shot - empty) > 40))
    expected = sum(_ink(b64) for b64 in charts)
    assert drawn >= 0.5 * expected, f"charts put {drawn} dark pixels on screen, expected about {expected}"
