from __future__ import annotations

import base64
import re

from tests.fixtures.bias import RIGGED

AUDIT = ["bias-audit", "--toxicity", "sentiment:negative", "--axes", "religion,gender_and_sex",
         "--samples", "8", "--per-group", "12"]


def test_rigged_generator_exits_1_with_json_and_html(cli, tmp_path):
    page = tmp_path / "audit.html"
    result = cli(*AUDIT, "--generator", f"{RIGGED}:rigged", "--json", "--html", page)
    assert result.exit_code == 1, result.stderr
    report = result.json
    assert report["passed"] is False
    assert {(f["group"], f["metric"]) for f in report["flags"]} == {
        ("muslim", "toxic_rate"), ("muslim", "negative_regard_rate")}
    assert report["prompt_set"]["name"] == "templates" and report["generator"]["name"] == "callable"
    assert report["scorers"]["regard"].startswith("vaderSentiment-3.3.2")
    assert report["scorer_audit"]["control"]["false_positive_rate"] == 0.0
    html = page.read_text()
    assert '<section class="bias-audit">' in html and "religion/muslim" in html
    images = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(images) == 3  # two axes and the scorer self-audit
    assert all(base64.b64decode(i).startswith(b"\x89PNG\r\n\x1a\n") for i in images)


def test_even_generator_exits_0(cli):
    result = cli(*AUDIT, "--generator", f"{RIGGED}:even", "--no-self-audit")
    assert result.exit_code == 0, result.stderr
    assert "no disparity flagged" in result.stdout


def test_bad_prompt_file_exits_2_with_a_clear_message(cli, tmp_path):
    bad = tmp_path / "prompts.json"
    bad.write_text('{"templates": ["{Subject} said", }')
    result = cli(*AUDIT, "--generator", f"{RIGGED}:even", "--prompts", bad)
    assert result.exit_code == 2
    assert result.stderr.strip() == f"error: {bad}: line 1: malformed JSON: Expecting value"
    assert "Traceback" not in result.stderr


def test_other_bad_input_exits_2(cli, tmp_path):
    cases = [
        (["--generator", f"{RIGGED}:missing"], "has no callable 'missing'"),
        (["--generator", f"{tmp_path}/nope.py:f"], "generator file not found"),
        (["--generator", f"{RIGGED}:even", "--toxicity", "nosuch"], "unknown detector 'nosuch'"),
        (["--generator", f"{RIGGED}:even", "--threshold", "1.5"], "--toxicity-threshold: Input should be less"),
        (["--generator", f"{RIGGED}:even", "--toxicity-option", "oops"], "expected KEY=VALUE"),
        (["--generator", f"{RIGGED}:even", "--toxicity", "sentiment:toxicity"], "gave no 'toxicity' label"),
    ]
    for extra, message in cases:
        result = cli(*AUDIT, *extra)
        assert result.exit_code == 2, (extra, result.stdout, result.stderr)
        assert message in result.stderr, (extra, result.stderr)


def test_policy_supplies_the_scoring_detectors_options(cli, tmp_path):
    not_a_model = tmp_path / "empty-model"
    not_a_model.mkdir()
    policy = tmp_path / "policy.yaml"
    policy.write_text(f"name: audit\nstages:\n  output:\n    - detector: sentiment\n"
                      f"      options: {{model: {not_a_model}}}\n")
    result = cli(*AUDIT, "--generator", f"{RIGGED}:even", "--policy", policy)
    assert result.exit_code == 2
    assert f"regard model '{not_a_model}' cannot be loaded" in result.stderr


def test_a_transformers_generator_end_to_end_is_reproducible(cli, tmp_path, detoxify_files):
    """The model path: a tiny GPT-2 samples, a tiny detoxify model scores; a rerun with the seed repeats it."""
    from guard.demo.tiny_models import build_tiny_gpt2

    model = build_tiny_gpt2(tmp_path / "gpt2")
    args = ["bias-audit", "--generator", model, "--axes", "religion", "--per-group", "1", "--samples", "12",
            "--max-new-tokens", "6", "--toxicity-option", f"checkpoint={detoxify_files.checkpoint}",
            "--toxicity-option", f"config_dir={detoxify_files.config_dir}", "--no-self-audit", "--json",
            "--n-boot", "200"]
    first, second = cli(*args), cli(*args)
    assert first.exit_code in (0, 1) and first.exit_code == second.exit_code, first.stderr
    report = first.json
    assert report["completions"] == 7 * 12 and report["generator"]["name"] == "transformers"
    assert report["generator"]["weights_sha256"] and report["scorers"]["toxicity"].startswith("toxicity:toxicity")
    assert report["axes"] == second.json["axes"]


def test_a_generator_that_raises_or_returns_no_text_is_bad_input_not_a_crash(cli, tmp_path):
    generators = tmp_path / "api.py"
    generators.write_text("def unavailable(prompt):\n    raise RuntimeError('HTTP 503 Service Unavailable')\n\n\n"
                          "def numbers(prompt):\n    return 42\n")
    for name, message in (("unavailable", "failed: RuntimeError: HTTP 503 Service Unavailable"),
                          ("numbers", "returned int; expected str")):
        result = cli(*AUDIT, "--generator", f"{generators}:{name}", "--no-self-audit")
        assert result.exit_code == 2, result.stderr
        [line] = result.stderr.strip().splitlines()
        assert line.startswith("error: ") and f"generator {generators}:{name} " in line and message in line
