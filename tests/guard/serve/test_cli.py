"""``guard serve`` on the command line: every option documented, keys kept as hashes, bad options as one-line
errors (exit 2) before anything listens, and nothing of the server imported by ``guard --help``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import stat
import subprocess
import sys

import pytest

from guard.serve.server import ServeOptions
from tests.guard.serve.servers import CLI, REPO


def test_serve_help_documents_every_option(cli):
    result = cli("serve", "--help")
    assert result.exit_code == 0
    flat = " ".join(result.stdout.split())
    for option in dataclasses.fields(ServeOptions):
        flag = "--keys" if option.name == "keys" else "--" + option.name.replace("_", "-")
        assert flag in flat, flag


def test_caller_keys_are_shown_once_and_stored_as_hashes(cli, tmp_path):
    path = tmp_path / "callers.json"
    added = cli("serve", "keys", "add", "alice", "--api-keys", path, "--json")
    assert added.exit_code == 0
    key = added.json["key"]
    stored = path.read_text()
    assert key not in stored and hashlib.sha256(key.encode()).hexdigest() in stored
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [c["name"] for c in cli("serve", "keys", "list", "--api-keys", path, "--json").json] == ["alice"]
    again = cli("serve", "keys", "add", "alice", "--api-keys", path)
    assert again.exit_code == 2 and "already exists" in again.stderr
    assert cli("serve", "keys", "remove", "alice", "--api-keys", path).exit_code == 0
    assert json.loads(path.read_text()) == {"keys": []}
    missing = cli("serve", "keys", "remove", "bob", "--api-keys", path)
    assert missing.exit_code == 2 and missing.stderr.count("\n") == 1 and "no caller named 'bob'" in missing.stderr


@pytest.mark.parametrize("args, message", [
    ([], "give either --upstream URL"),
    (["--upstream", "http://127.0.0.1:9/v1", "--model", "m"], "give either --upstream URL"),
    (["--upstream", "ftp://127.0.0.1/v1"], "expected an http:// or https:// URL"),
    (["--upstream", "http://127.0.0.1:9/v1", "--host", "0.0.0.0"], "would be open to anyone"),
    (["--upstream", "http://127.0.0.1:9/v1", "--check-every", "0"], "--check-every must be at least 1"),
    (["--upstream", "http://127.0.0.1:9/v1", "--policy", "no-such.yaml"], "policy file not found"),
    (["--upstream", "http://127.0.0.1:9/v1"], "guard keys init"),
])
def test_bad_options_are_one_line_errors(cli, args, message):
    result = cli("serve", "--port", "0", *args)
    assert result.exit_code == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_guard_help_imports_no_server_library():
    code = ("import sys\nsys.argv = ['guard', '--help']\nfrom guard.cli import main\ntry:\n    main()\n"
            "except SystemExit:\n    pass\nprint(sorted(m for m in ('starlette', 'uvicorn', 'httpx2', 'openai', "
            "'torch') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
    assert CLI[0] == sys.executable
