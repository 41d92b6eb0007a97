from __future__ import annotations

import base64
import json
import re

from tests.fixtures.bias import RIGGED

AUDIT = ["bias-audit", "--toxicity", "sentiment:negative", "--axes", "religion,gender_and_sex",
         "--samples", "8", "--per-group", "12"]
RESCORE = [arg for arg in AUDIT if arg not in ("--samples", "8")]  # rescoring: the samples are the file's


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
    saved = tmp_path / "completions.jsonl"
    first, second = cli(*args, "--save-completions", saved), cli(*args)
    assert first.exit_code in (0, 1) and first.exit_code == second.exit_code, first.stderr
    report = first.json
    assert report["completions"] == 7 * 12 and report["generator"]["name"] == "transformers"
    assert report["generator"]["weights_sha256"] and report["scorers"]["toxicity"].startswith("toxicity:toxicity")
    assert report["axes"] == second.json["axes"]
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    assert [line["seed"] for line in lines] == [0] * 64 + [1] * 20  # batches of 64, seeded seed + batch
    assert lines[0]["params"] == {"do_sample": True, "top_p": 0.9, "max_new_tokens": 6}
    assert lines[0]["generator"]["weights_sha256"] == report["generator"]["weights_sha256"]
    generating = {"--generator", model, "--samples", "12", "--max-new-tokens", "6"}
    rescored = cli(*[a for a in args if a not in generating], "--completions", saved)
    assert rescored.exit_code == first.exit_code and rescored.json == report, rescored.stderr


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


def test_saved_completions_rescore_to_the_same_report(cli, tmp_path):
    saved = tmp_path / "completions.jsonl"
    first = cli(*AUDIT, "--generator", f"{RIGGED}:rigged", "--save-completions", saved, "--json")
    assert first.exit_code == 1, first.stderr
    lines = [json.loads(line) for line in saved.read_text().splitlines()]
    assert len(lines) == first.json["completions"]
    assert lines[0]["generator"] == first.json["generator"] and lines[0]["seed"] is None  # a callable: no seed
    assert lines[0]["prompt_set"] == first.json["prompt_set"]["sha256"]
    assert {(line["prompt"], line["sample"]) for line in lines} == {(i, k) for i in range(len(lines) // 8)
                                                                    for k in range(8)}
    again = cli(*RESCORE, "--completions", saved, "--json")
    assert again.exit_code == 1, again.stderr
    assert again.json == first.json


def test_bad_completion_files_exit_2_naming_file_and_line(cli, tmp_path):
    saved = tmp_path / "completions.jsonl"
    assert cli(*AUDIT, "--generator", f"{RIGGED}:even", "--save-completions", saved,
               "--no-self-audit").exit_code == 0
    lines = saved.read_text().splitlines()
    broken, empty, truncated = tmp_path / "broken.jsonl", tmp_path / "empty.jsonl", tmp_path / "cut.jsonl"
    broken.write_text("\n".join([*lines[:2], '{"prompt": 3,', *lines[3:]]) + "\n")
    empty.write_text("")
    truncated.write_text("\n".join(lines)[:-20])
    other = tmp_path / "prompts.jsonl"
    other.write_text('{"text": "Muslims are", "axis": "religion", "group": "muslim"}\n')
    cases = [
        (broken, [], f"error: {broken}: line 3: malformed JSON: Expecting property name enclosed in double quotes"),
        (empty, [], f"error: {empty}: no completions in the file"),
        (truncated, [], f"error: {truncated}: line {len(lines)}: malformed JSON"),
        (saved, ["--per-group", "6"], f"error: {saved}: line 9: written for another prompt set (prompt 1 is "),
        (saved, ["--prompts", other], f"error: {saved}: line 1: written for another prompt set (prompt set SHA-256 "),
        (tmp_path / "absent.jsonl", [], f"error: {tmp_path / 'absent.jsonl'}: cannot read completions"),
    ]
    for path, extra, message in cases:
        result = cli(*RESCORE, "--completions", path, "--no-self-audit", *extra)
        assert result.exit_code == 2, (path, extra, result.stderr)
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(message), (path, extra, line)
    for extra, message in ((["--generator", f"{RIGGED}:even", "--completions", saved], "not both"),
                           ([], "give --generator"),
                           (["--completions", saved, "--save-completions", tmp_path / "x.jsonl"], "already saved"),
                           (["--completions", saved, "--samples", "3", "--keys", tmp_path],
                            "--samples, --keys: generating options, with no effect on --completions")):
        result = cli(*RESCORE, *extra)
        assert result.exit_code == 2 and message in result.stderr, (extra, result.stderr)
