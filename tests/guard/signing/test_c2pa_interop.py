"""Every C2PA reference fixture in ../shared/interop/c2pa reads as the reference implementation reads it:
manifest status, validation state and failure codes, exactly (listed in the folder's expected.json)."""

from __future__ import annotations

import json

import pytest

from guard.signing.c2pa import read_manifest
from tests.fixtures.images import INTEROP


def _names() -> list[str]:
    path = INTEROP / "expected.json"
    return sorted(json.loads(path.read_text())["files"]) if path.is_file() else []


@pytest.mark.parametrize("name", _names())
def test_reader_matches_reference(name, interop_expected):
    expected = interop_expected[name]
    report = read_manifest(INTEROP / name)
    status = {True: "present", False: "absent"}.get(expected["manifest"], expected["manifest"])
    assert report.status == status, report.error
    if status == "present":
        assert report.validation_state == expected["state"]
        assert list(report.failure_codes) == expected["failures"]
    if status == "remote":
        assert report.remote_url and report.remote_url.startswith("https://")
    if status == "unreadable":
        assert report.error


def test_every_fixture_is_listed(interop_expected):
    assert {p.name for p in INTEROP.iterdir() if p.name != "expected.json"} == set(interop_expected)
