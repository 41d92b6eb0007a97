"""The README's "guard any API client in three lines", run as written: the official OpenAI client, in each shape
the README shows, against a real OpenAI-compatible server (``guard serve --model``, a tiny local model)."""

from __future__ import annotations

import ast
import asyncio

from guard.signing.keys import KeyStore
from tests.guard.serve.conftest import GATEWAY_POLICY
from tests.guard.serve.servers import readme_block


def test_the_readme_guards_an_api_client_sync_async_and_streaming(upstream, monkeypatch, tmp_path):
    upstream.wait()
    monkeypatch.setenv("OPENAI_BASE_URL", upstream.url + "/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "my-policy.yaml").write_text(GATEWAY_POLICY)
    KeyStore().init()  # what `guard keys init` does, in this test's GUARD_HOME

    namespace: dict = {}
    exec(readme_block("clients"), namespace)
    exec(readme_block("three-lines"), namespace)
    assert namespace["result"].verdict in ("allow", "flag") and namespace["result"].text
    calls = compile(readme_block("calls"), "README.md", "exec", flags=ast.PyCF_ALLOW_TOP_LEVEL_AWAIT)
    asyncio.run(eval(calls, namespace))  # the block awaits at top level, as it would inside async code
    assert namespace["result"].verdict in ("allow", "flag")
    stream = namespace["stream"]
    assert stream.result.text and stream.result.verdict in ("allow", "flag")
    guard = namespace["guard"]
    assert guard.log.size() == 4 and guard.log.get(3).data["prompt"]["format"] == "chat"  # 1 + 3 calls
