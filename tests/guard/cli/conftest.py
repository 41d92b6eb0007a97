"""Fixtures of the command-line tests."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def answered_home(tmp_path_factory):
    """A $GUARD_HOME-shaped folder (``keys/``, ``provenance.db``) whose log holds one signed text output, whose
    text is returned beside it: ``(home, text)``. Built once per test module; the tests add their own files."""
    from guard.pipeline.guard import Guard
    from guard.policy import parse
    from guard.signing.keys import KeyStore

    home = tmp_path_factory.mktemp("home")
    keys = KeyStore(home / "keys")
    keys.init()
    guard = Guard(parse("name: cli\nprompt_storage: plain\n"), log=home / "provenance.db", keys=keys)
    text = guard.wrap(lambda p: f"Answer about {p}.")("cats").text
    guard.log.close()
    return home, text
