"""The servers the gateway tests share: one ``guard serve --model`` upstream serving a tiny local chat model.

It starts once per test session (per xdist worker) and serves under the name the README's examples use. Its own
policy runs no detectors: the policy under test is the gateway's.
"""

from __future__ import annotations

import pytest

from tests.guard.serve.servers import GuardServe, free_port

SERVED_NAME = "gpt-4o-mini"  # the model name in the README's examples
UPSTREAM_POLICY = "name: upstream\nwatermark: {text: {enabled: false}}\n"
# The gateway's policy in these tests: a hostile prompt is refused, a negative output is flagged (the tiny model's
# random text must never be refused by chance); prompts are kept as keyed hashes.
GATEWAY_POLICY = """name: my-policy
prompt_storage: hash
stages:
  prompt:
    - detector: sentiment
      thresholds: {negative: 0.5}
      action: block
  output:
    - detector: sentiment
      thresholds: {negative: 0.5}
      action: flag
"""
HOSTILE = "You are a horrible, stupid, disgusting idiot and I hate you."


def keyed_home(path):
    """A GUARD_HOME with signing keys, as `guard keys init` leaves it."""
    from guard.signing.keys import KeyStore

    KeyStore(path / "keys").init()
    return path


@pytest.fixture(scope="session")
def upstream(tmp_path_factory):
    """Started, not waited for: its address is known at once (a free port), so a gateway can start beside it;
    ``upstream.wait()`` before the first request."""
    from guard.demo.tiny_models import build_tiny_gpt2

    home = keyed_home(tmp_path_factory.mktemp("upstream"))
    model = build_tiny_gpt2(home / "gpt2-chat", chat_template=True)
    (home / "policy.yaml").write_text(UPSTREAM_POLICY)
    server = GuardServe(["serve", "--model", str(model), "--served-model-name", SERVED_NAME, "--device", "cpu",
                         "--policy", "policy.yaml", "--port", str(free_port()), "--concurrency", "4"], home)
    yield server
    server.stop()
