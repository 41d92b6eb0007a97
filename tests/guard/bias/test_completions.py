from __future__ import annotations

import json

import pytest

from core.errors import InputError
from guard.bias.completions import MAX_LINE, CompletionWriter, read_completions
from guard.bias.prompts import load_prompt_set

GENERATOR = {"name": "callable", "model_id": "api:generate", "revision": None, "weights_sha256": None}


@pytest.fixture()
def saved(tmp_path):
    prompt_set = load_prompt_set("templates", per_group=1, axes=["religion"])
    path = tmp_path / "completions.jsonl"
    with CompletionWriter(path, prompt_set, GENERATOR, {"top_p": 0.9}, 4) as write:
        write([(0, 0, "they came home."), (0, 1, None)])
        write([(1, 0, "they left."), (1, 1, "they stayed.")])
        for i in range(2, len(prompt_set.prompts)):
            write([(i, 0, f"completion {i}"), (i, 1, f"another {i}")])
    return prompt_set, path


def test_written_lines_read_back_in_order(saved):
    prompt_set, path = saved
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["seed"] for line in lines[:4]] == [4, 4, 5, 5]
    assert lines[1]["completion"] is None and lines[0]["text"] == prompt_set.prompts[0].text
    back = read_completions(path, prompt_set)
    assert back.generated[:3] == [(0, 0, "they came home."), (0, 1, None), (1, 0, "they left.")]
    assert len(back.generated) == 2 * len(prompt_set.prompts)
    assert back.generator == GENERATOR


def test_a_file_that_does_not_cover_the_prompt_set_evenly_is_refused(saved):
    prompt_set, path = saved
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:-2]) + "\n")  # the last prompt's completions are missing
    last = len(prompt_set.prompts) - 1
    with pytest.raises(InputError, match=rf"^{path}: completions for {last} of the {last + 1} prompts \(none for "
                                         rf"prompt {last}, .*a run cut short"):
        read_completions(path, prompt_set)
    path.write_text("\n".join(lines[:-1]) + "\n")  # its second sample is missing
    with pytest.raises(InputError, match=rf"^{path}: prompt {last} has 1 samples but prompt 0 has 2"):
        read_completions(path, prompt_set)


@pytest.mark.parametrize(("edit", "message"), [
    (lambda line: [1, 2], r": line 2: expected a JSON object, got list"),
    (lambda line: {k: v for k, v in line.items() if k != "seed"}, r": line 2: not a completion record \(missing seed\)"),
    (lambda line: {**line, "sample": True}, r": line 2: 'sample' must be a non-negative integer"),
    (lambda line: {**line, "completion": 7}, r": line 2: 'completion' must be a string, or null"),
    (lambda line: {**line, "sample": 0}, r": line 2: prompt 0 sample 0 repeats line 1"),
    (lambda line: {**line, "generator": {**GENERATOR, "model_id": "other"}}, r": line 2: generator 'other' differs"),
    (lambda line: {**line, "prompt": 10**6}, r": line 2: written for another prompt set \(prompt 1000000, but"),
])
def test_bad_lines_are_refused_naming_the_line(saved, edit, message):
    prompt_set, path = saved
    lines = path.read_text().splitlines()
    lines[1] = json.dumps(edit(json.loads(lines[1])))
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=f"^{path}{message}"):
        read_completions(path, prompt_set)


def test_an_overlong_line_is_refused_without_reading_it_whole(saved):
    prompt_set, path = saved
    path.write_bytes(b"x" * (MAX_LINE * 3))
    with pytest.raises(InputError, match=f"^{path}: line 1: longer than"):
        read_completions(path, prompt_set)
