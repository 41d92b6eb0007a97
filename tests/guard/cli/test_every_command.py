"""Every command, driven three ways a user gets wrong: with no arguments, with an option that does not exist, and
with an input that is missing. Each time: the contract's exit code, one line on stderr, no traceback.

``CASES`` names every command; one added without a row fails ``test_the_table_names_every_command``.
"""

from __future__ import annotations

import pytest

ABSENT = "{absent}"  # a path that does not exist
OUT = "{out}"  # a path in an existing folder, for outputs

# command -> (exit code with no arguments, or None where the command runs without any;
#             arguments that name a missing input, or None where the command reads none)
CASES: dict[str, tuple[int | None, list[str] | None]] = {
    "audit": (2, ["--log", ABSENT]),
    "bias-audit": (2, ["--generator", f"{ABSENT}.py:generate"]),
    "compliance": (2, ["--framework", "eu-ai-act-art50", "--log", ABSENT]),
    "demo": (None, None),  # with no arguments it runs the demo (tests/guard/demo); it reads no input
    "detect-text": (2, [ABSENT, "--model", ABSENT]),
    "detector calibrate": (2, ["--real", ABSENT, "--backend", "spectral", "--checkpoint", f"{ABSENT}.json"]),
    "detector eval": (2, ["--real", ABSENT, "--fake", ABSENT, "--backend", "spectral", "--checkpoint",
                          f"{ABSENT}.json"]),
    "detector train": (2, ["--real", ABSENT, "--fake", ABSENT, "--backend", "spectral", "--out", OUT]),
    "evidence": (2, ["--index", "0", "--out", OUT, "--log", ABSENT]),
    "keys init": (0, None),  # writes new keys into $GUARD_HOME
    "keys show": (2, ["--keys", ABSENT]),
    "log checkpoint": (2, ["--log", ABSENT]),
    "log consistency": (2, ["--from", ABSENT]),
    "log erase": (2, ["--index", "0", "--field", "prompt", "--log", ABSENT]),
    "log export": (2, ["--log", ABSENT]),
    "log proof": (2, ["--index", "0", "--log", ABSENT]),
    "log show": (2, ["--log", ABSENT]),
    "log verify": (2, ["--log", ABSENT]),
    "models install": (None, None),  # no arguments installs the default packages (network); it reads no file
    "models list": (0, None),
    "models path": (2, None),  # it names a package, not a file
    "models verify": (None, None),  # no arguments: 0 or 1 by what this machine has installed
    "policy check": (2, [ABSENT]),
    "policy list": (0, None),
    "review serve": (2, ["--log", ABSENT]),  # with no arguments: the default log, absent in a fresh $GUARD_HOME
    "scan": (2, [ABSENT]),
    "serve keys add": (2, None),  # a missing key file is a new one
    "serve keys list": (0, None),  # a missing key file holds no keys
    "serve keys remove": (2, ["alice", "--api-keys", ABSENT]),
    "toxicity audit": (2, ["--holistic-bias", ABSENT]),  # no arguments: HolisticBias is not in the cache
    "toxicity train": (2, ["--data", ABSENT, "--out", f"{OUT}.json"]),
    "trace": (2, [ABSENT]),
    "users add": (2, ["ana", "--password-stdin", "--log", ABSENT]),
    "users disable": (2, ["ana", "--log", ABSENT]),
    "users list": (2, ["--log", ABSENT]),
    "users remove": (2, ["ana", "--log", ABSENT]),
    "verify": (2, [ABSENT]),
    "verify-bundle": (2, [ABSENT]),
    "watermark detect": (2, [ABSENT]),
    "watermark embed": (2, [ABSENT, "--out", OUT]),
    "works add": (2, [ABSENT]),
    "works list": (2, ["--works", ABSENT]),
    "works remove": (2, ["1", "--works", ABSENT]),
}


def _commands() -> list[str]:
    """Every command of the app, as its words after ``guard``, read from the app itself."""
    import typer.main

    from guard.cli import app

    def walk(command, words):
        subcommands = getattr(command, "commands", None)
        if subcommands is None:
            return [" ".join(words)]
        return [name for sub in sorted(subcommands) for name in walk(subcommands[sub], [*words, sub])]

    return walk(typer.main.get_command(app), [])


def assert_one_line(result, code: int, *fragments: str) -> None:
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == code, (code, result.exit_code, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_the_table_names_every_command():
    assert sorted(CASES) == _commands()


@pytest.mark.parametrize("command", sorted(c for c, (code, _) in CASES.items() if code is not None))
def test_no_arguments(cli, command):
    code = CASES[command][0]
    result = cli(*command.split())
    if code == 0:
        assert result.exit_code == 0 and "Traceback" not in result.stderr, result.stderr
    else:
        assert_one_line(result, code)


@pytest.mark.parametrize("command", sorted(CASES))
def test_an_option_that_does_not_exist(cli, command):
    assert_one_line(cli(*command.split(), "--no-such-option"), 2, f"guard {command}", "--no-such-option")


@pytest.mark.parametrize("command", sorted(c for c, (_, args) in CASES.items() if args is not None))
def test_a_missing_input(cli, command, tmp_path):
    absent = tmp_path / "absent-input"
    args = [a.replace(ABSENT, str(absent)).replace(OUT, str(tmp_path / "output")) for a in CASES[command][1]]
    assert_one_line(cli(*command.split(), *args), 2, str(absent))


def test_the_readme_table_states_these_codes():
    """The README's contract table lists each exit code with the stderr prefix main() prints for it."""
    import re

    from guard.cli import EXIT_CRASH, EXIT_FINDING, EXIT_OK, EXIT_USAGE
    from tests.fixtures.shared import REPO

    rows = dict(re.findall(r"^\| \*\*(\d)\*\* \|[^|]*\| ([^|]*) \|", (REPO / "README.md").read_text(), re.M))
    assert sorted(map(int, rows)) == [EXIT_OK, EXIT_FINDING, EXIT_USAGE, EXIT_CRASH]
    for code, prefix in ((EXIT_FINDING, "`finding: "), (EXIT_USAGE, "`error: "), (EXIT_CRASH, "`crash: ")):
        assert rows[str(code)].startswith(prefix), rows[str(code)]
