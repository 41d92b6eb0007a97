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
    assert summary["log_verification"] == {"ok": True, "size": 2, "checkpoints": 2}
    text = cli("verify", summary["text"]["file"], "--trust", home / "keys" / "ca.pem", "--json",
               "--log", home / "provenance.db", "--keys", home / "keys")
    assert text.exit_code == 0, text.stdout
    image = cli("verify", summary["image"]["file"], "--trust", home / "keys" / "ca.pem", "--json",
                "--log", home / "provenance.db", "--keys", home / "keys")
    assert image.exit_code == 0 and image.json["watermark"]["found"], image.stdout
