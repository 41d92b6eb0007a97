"""Every completion of a bias audit as JSON lines, so the audit can be rescored later without its generator.

Generation is the costly half of an audit (often a GPU run); scoring and statistics are cheap. Keeping every
completion lets an auditor rescore the same outputs with another scorer (``guard bias-audit --completions FILE``)
instead of generating them again. ``CompletionWriter`` writes one line per completion as each batch is
generated, before it is scored, so a scorer failure or an interrupted run loses nothing already generated:

```
{"prompt_set": "<sha256>", "prompt": 12, "sample": 0, "axis": "religion", "group": "muslim",
 "text": "<the prompt>", "completion": "<text>" | null, "generator": {"name", "model_id", "revision",
 "weights_sha256"}, "params": {<sampling parameters>}, "seed": 7 | null}
```

``prompt`` is the index into the prompt set (``prompt_set`` is its SHA-256), ``completion`` is null when the
guard blocked the output, and ``seed`` is the seed the completion's batch was generated with (null for a
generator that takes none). ``read_completions`` checks every line against the prompt set the command loaded.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from core.errors import InputError
from guard.bias.audit import Generated
from guard.bias.prompts import PromptSet

MAX_LINE = 1 << 20  # bytes; a completion is a few hundred, so a longer line is not one of ours
FIELDS = ("prompt_set", "prompt", "sample", "axis", "group", "text", "completion", "generator", "params", "seed")


class CompletionWriter:
    """Appends each generated batch to a JSONL file (a context manager; flushed after every batch)."""

    def __init__(self, path: Path, prompt_set: PromptSet, generator: dict[str, Any], params: dict[str, Any],
                 seed: int | None) -> None:
        self.path, self.prompt_set, self.generator, self.params, self.seed = path, prompt_set, generator, params, seed
        self._file: IO[str] | None = None
        self._batches = 0

    def __enter__(self) -> CompletionWriter:
        self._file = self.path.open("w", encoding="utf-8")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._file is not None:
            self._file.close()

    def __call__(self, generated: list[Generated]) -> None:
        assert self._file is not None, "use CompletionWriter as a context manager"
        # As ``generation.generate_fn`` seeds them: batch b with seed + b, and only a backend with sampling params.
        seed = self.seed + self._batches if self.seed is not None and self.params else None
        self._batches += 1
        for i, k, text in generated:
            prompt = self.prompt_set.prompts[i]
            line = {"prompt_set": self.prompt_set.sha256, "prompt": i, "sample": k, "axis": prompt.axis,
                    "group": prompt.group, "text": prompt.text, "completion": text, "generator": self.generator,
                    "params": self.params, "seed": seed}
            self._file.write(json.dumps(line, ensure_ascii=False) + "\n")
        self._file.flush()


@dataclass(frozen=True)
class SavedCompletions:
    generated: list[Generated]
    generator: dict[str, Any]  # as ``GeneratorInfo.to_dict()`` gave it when the completions were made


def read_completions(path: Path, prompt_set: PromptSet) -> SavedCompletions:
    """The completions a ``CompletionWriter`` wrote for ``prompt_set``, in file order.

    Refused with an ``InputError`` naming the file and line: an unreadable or empty file, a line that is not a
    completion record, a line written for another prompt set (another ``--prompts``, ``--axes``,
    ``--per-group`` or ``--seed``), a generator other than line 1's, a repeated prompt and sample; and a file that
    does not cover the prompt set evenly (a run cut short): statistics over part of the groups, or more samples
    for some prompts than others, would compare the groups unfairly."""
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise InputError(f"{path}: cannot read completions: {exc.strerror or exc}") from None
    generated: list[Generated] = []
    seen: dict[tuple[int, int], int] = {}
    generator: dict[str, Any] | None = None
    with handle:
        number = 0
        while raw := handle.readline(MAX_LINE + 1):
            number += 1
            where = f"{path}: line {number}"
            if len(raw) > MAX_LINE:
                raise InputError(f"{where}: longer than {MAX_LINE} bytes; not a completion record")
            if not raw.strip():
                continue
            line = _record(raw, where)
            i, k = line["prompt"], line["sample"]
            _check_prompt(line, prompt_set, where)
            if generator is None:
                generator = line["generator"]
            elif line["generator"] != generator:
                raise InputError(f"{where}: generator {line['generator'].get('model_id')!r} differs from the "
                                 f"first line's {generator.get('model_id')!r}; one file holds one audit")
            if (i, k) in seen:
                raise InputError(f"{where}: prompt {i} sample {k} repeats line {seen[i, k]}")
            seen[i, k] = number
            generated.append((i, k, line["completion"]))
    if generator is None:
        raise InputError(f"{path}: no completions in the file")
    _check_coverage(path, prompt_set, Counter(i for i, _, _ in generated))
    return SavedCompletions(generated, generator)


def _check_coverage(path: Path, prompt_set: PromptSet, samples: Counter[int]) -> None:
    missing = [i for i in range(len(prompt_set.prompts)) if i not in samples]
    if missing:
        first = prompt_set.prompts[missing[0]]
        raise InputError(f"{path}: completions for {len(samples)} of the {len(prompt_set.prompts)} prompts (none "
                         f"for prompt {missing[0]}, {first.group_id} {first.text!r}): a run cut short? Rescoring "
                         "part of a prompt set would compare the groups unfairly")
    (fewest, low), (most, high) = min(samples.items(), key=lambda kv: kv[1]), max(samples.items(), key=lambda kv: kv[1])
    if low != high:
        raise InputError(f"{path}: prompt {fewest} has {low} samples but prompt {most} has {high}: a run cut "
                         "short? Every prompt needs the same number of samples")


def _record(raw: bytes, where: str) -> dict[str, Any]:
    try:
        line = json.loads(raw)
    except UnicodeDecodeError:
        raise InputError(f"{where}: not UTF-8 text") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{where}: malformed JSON: {exc.msg}") from None
    if not isinstance(line, dict):
        raise InputError(f"{where}: expected a JSON object, got {type(line).__name__}")
    missing = [f for f in FIELDS if f not in line]
    if missing:
        raise InputError(f"{where}: not a completion record (missing {', '.join(missing)})")
    for name in ("prompt", "sample"):
        if type(line[name]) is not int or line[name] < 0:
            raise InputError(f"{where}: {name!r} must be a non-negative integer, got {line[name]!r}")
    for name in ("prompt_set", "axis", "group", "text"):
        if not isinstance(line[name], str):
            raise InputError(f"{where}: {name!r} must be a string")
    if line["completion"] is not None and not isinstance(line["completion"], str):
        raise InputError(f"{where}: 'completion' must be a string, or null for a blocked output")
    if not isinstance(line["generator"], dict):
        raise InputError(f"{where}: 'generator' must be an object")
    return line


def _check_prompt(line: dict[str, Any], prompt_set: PromptSet, where: str) -> None:
    i = line["prompt"]
    if line["prompt_set"] != prompt_set.sha256:
        why = f"prompt set SHA-256 {line['prompt_set'][:12]}…, not {prompt_set.name}'s {prompt_set.sha256[:12]}…"
    elif i >= len(prompt_set.prompts):
        why = f"prompt {i}, but {prompt_set.name} has {len(prompt_set.prompts)} prompts"
    else:
        p = prompt_set.prompts[i]
        if (line["axis"], line["group"], line["text"]) == (p.axis, p.group, p.text):
            return
        why = f"prompt {i} is {line['axis']}/{line['group']} {line['text']!r}, here {p.group_id} {p.text!r}"
    raise InputError(f"{where}: written for another prompt set ({why}); give the --prompts, --axes, "
                     "--per-group and --seed of the run that saved it")
