"""The layering contract holds (``[tool.importlinter]`` in pyproject.toml, drawn in docs/architecture.md): core/
imports nothing of ours, detectors/ and generators/ only core/, and inside guard/ every import points down. An
import that points the wrong way, even one inside a function, fails this test and names the chain."""

from __future__ import annotations

import pytest

from tests.fixtures.shared import REPO


def test_imports_point_down_the_layers(capsys):
    lint = pytest.importorskip("importlinter.cli", reason="import-linter is a dev dependency (pip install -e .[dev])")
    code = lint.lint_imports(config_filename=str(REPO / "pyproject.toml"), no_cache=True, no_logo=True)
    report = capsys.readouterr().out
    assert code == 0, report
