"""What a hostile or careless user types: numbers no database holds, a file where a folder belongs and the reverse,
empty files and folders, ports that do not exist, names that are not there. Each is bad input: exit 2, one line
that says what is wrong, never a crash (exit 3) and never a silent success."""

from __future__ import annotations

from pathlib import Path

import pytest

HUGE = "99999999999999999999"  # beyond any 64-bit integer


@pytest.fixture(scope="module")
def places(answered_home):
    root, _ = answered_home
    (root / "empty.txt").write_bytes(b"")
    (root / "empty").mkdir()
    (root / "work.txt").write_text("It was the best of times, it was the worst of times, it was the age of wisdom.")
    (root / "notes.txt").write_text("Shopping: bread, milk.\n")
    (root / "gen.py").write_text("def generate(prompt):\n    return 'a calm answer'\n")
    return root


def _cases(root):
    log = ["--log", str(root / "provenance.db")]
    works = ["--works", str(root / "works")]
    audit = ["bias-audit", "--generator", f"{root / 'gen.py'}:generate", "--toxicity", "sentiment:negative",
             "--regard", "vader"]
    return {
        "log show --index huge": (["log", "show", "--index", HUGE, *log], f"no record at index {HUGE}"),
        "log erase --index huge": (["log", "erase", "--index", HUGE, "--field", "prompt", *log],
                                   f"no record at index {HUGE}"),
        "log show --last negative": (["log", "show", "--last", "-1", *log], "'--last'"),
        "keys init on a file": (["keys", "init", "--keys", str(root / "empty.txt")], "is a file, not a key folder"),
        "works remove huge": (["works", "remove", HUGE, *works], f"no work with id {HUGE}"),
        "works list of an empty file": (["works", "list", "--works", str(root / "empty.txt")],
                                        "not a works registry"),
        "works add of an empty folder": (["works", "add", str(root / "empty"), *works], "no files to register"),
        "bias-audit of an empty model folder": (["bias-audit", "--generator", str(root / "empty"), "--toxicity",
                                                 "sentiment:negative", "--regard", "vader"],
                                                "a folder with no model in it"),
        "bias-audit --html a folder": ([*audit, "--html", str(root / "empty")], "--html"),
        "bias-audit --axes unknown": ([*audit, "--axes", "race_ethnicity,nosuch"], "unknown axis 'nosuch'"),
        "scan --resume a file that is no scan's": (["scan", str(root / "work.txt"), "--resume",
                                                   str(root / "notes.txt")], "holds no scan records"),
        "serve --port too large": (["serve", "--port", "70000"], "'--port'"),
        "review serve --port too large": (["review", "serve", "--port", "70000", *log], "'--port'"),
    }


CASES = list(_cases(Path()))  # the names; each test builds its arguments in its own folder


@pytest.mark.parametrize("case", CASES)
def test_bad_input_is_one_line_and_exit_2(cli, places, case):
    if case == "works remove huge":
        assert cli("works", "add", places / "work.txt", "--works", places / "works").exit_code == 0
    args, fragment = _cases(places)[case]
    result = cli(*args)
    lines = result.stderr.strip().splitlines()
    assert (result.exit_code, len(lines)) == (2, 1), result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]
    assert (places / "notes.txt").read_text() == "Shopping: bread, milk.\n"  # nothing was written into it
