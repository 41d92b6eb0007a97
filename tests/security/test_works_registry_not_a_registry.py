"""Slip: ``--works`` naming a file that is not a works registry crashed with a traceback; it is one line and
exit 2, and the file is neither read as a registry nor written into."""

from __future__ import annotations


def _one_line_exit_2(result, words: str):
    assert result.exit_code == 2, result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and words in result.stderr, result.stderr


def test_works_registry_that_is_not_a_database(cli, tmp_path):
    garbage = tmp_path / "garbage.db"
    garbage.write_text("garbage\n", encoding="utf-8")
    work = tmp_path / "poem.txt"
    work.write_text("the quick brown fox jumps over the lazy dog and runs away", encoding="utf-8")
    _one_line_exit_2(cli("works", "add", work, "--works", garbage), "garbage.db")
    _one_line_exit_2(cli("works", "list", "--works", garbage), "garbage.db")
    assert garbage.read_text(encoding="utf-8") == "garbage\n"
