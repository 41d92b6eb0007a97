"""The gateway end to end: the official ``openai`` client → ``guard serve`` (started by the README's command) →
``guard serve --model`` serving a tiny local model. Both are real HTTP servers on loopback."""

from __future__ import annotations

import asyncio
import hashlib
import json

import httpx2
import openai
import pytest

from guard.provenance.log import ProvenanceLog
from guard.serve.callers import CallerKeys
from guard.signing import dsse
from guard.signing.keys import KeyStore
from tests.guard.serve.conftest import GATEWAY_POLICY, HOSTILE, SERVED_NAME, keyed_home
from tests.guard.serve.servers import GuardServe, readme_block

CHAT = [{"role": "system", "content": "Answer briefly."}, {"role": "user", "content": "Tell me about gardens."}]


@pytest.fixture(scope="module")
def gateway(upstream, tmp_path_factory):
    """The README's `guard serve` command, with the test upstream's address and a free port; one caller key."""
    home = keyed_home(tmp_path_factory.mktemp("gateway"))
    (home / "my-policy.yaml").write_text(GATEWAY_POLICY)
    key = CallerKeys(home / "callers.json").add("tests")
    command = readme_block("serve").split()
    assert command[:2] == ["guard", "serve"]
    args = [upstream.url + "/v1" if a == "http://localhost:8000/v1" else a for a in command[1:]]
    args[args.index("--port") + 1] = "0"
    server = GuardServe(args, home, env={"GUARD_SERVE_KEYS": str(home / "callers.json")})
    upstream.wait()
    server.wait()
    server.key = key
    yield server
    assert server.stop() == 0, server.log


@pytest.fixture
def client(gateway):
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0)


def _record(gateway, record_id: str) -> dict:
    response = httpx2.get(f"{gateway.url}/v1/guard/records/{record_id}",
                          headers={"authorization": f"Bearer {gateway.key}"})
    assert response.status_code == 200, response.text
    return response.json()


def test_chat_completion_is_checked_signed_logged_and_named_in_headers(gateway, client):
    raw = client.chat.completions.with_raw_response.create(model=SERVED_NAME, messages=CHAT, max_tokens=8, seed=3)
    completion = raw.parse()
    text = completion.choices[0].message.content
    record_id = raw.headers["x-guard-record-id"]
    assert completion.model_extra["guard"]["record_id"] == record_id
    assert raw.headers["x-guard-verdict"] in ("allow", "flag")  # the tiny model's words may read as negative

    found = _record(gateway, record_id)
    record = found["record"]
    assert found["log_index"] == int(raw.headers["x-guard-log-index"])
    assert record["artifact"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert record["prompt"]["format"] == "chat" and record["prompt"]["hmac_sha256"]  # the whole conversation
    assert record["generator"] == {"name": "openai-compatible", "model_id": SERVED_NAME, "revision": None,
                                   "weights_sha256": None}
    assert record["params"]["max_tokens"] == 8 and record["params"]["upstream"]["id"] == completion.id
    assert {s["stage"] for s in record["scores"]} == {"prompt", "output"}
    keys = KeyStore(gateway.home / "keys")
    statement = dsse.verify(found["envelope"], keys.content_signer().certificate_chain_pem,
                            trust_anchor_pem=keys.ca_certificate_pem())
    assert statement["predicate"]["record_id"] == record_id


def test_streamed_chat_arrives_whole_and_its_last_chunk_names_the_record(gateway, client):
    chunks = list(client.chat.completions.create(model=SERVED_NAME, messages=CHAT, max_tokens=12, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    finish = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert len(finish) == 1 and chunks[-1].choices == []  # the usage chunk comes last, as OpenAI sends it
    guard = finish[0].model_extra["guard"]
    record = _record(gateway, guard["record_id"])["record"]
    assert record["artifact"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert guard["log_index"] == _record(gateway, guard["record_id"])["log_index"]


def test_completions_streamed_and_not(gateway, client):
    once = client.completions.create(model=SERVED_NAME, prompt="The city council", max_tokens=6)
    assert once.model_extra["guard"]["verdict"] in ("allow", "flag")
    streamed = list(client.completions.create(model=SERVED_NAME, prompt="The city council", max_tokens=6,
                                              stream=True))
    text = "".join(c.choices[0].text for c in streamed)
    record = _record(gateway, streamed[-1].model_extra["guard"]["record_id"])["record"]
    assert record["artifact"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    assert "format" not in record["prompt"]  # a plain prompt, not a conversation


@pytest.mark.parametrize("stream", [False, True])
def test_a_refused_prompt_is_an_openai_error_and_a_logged_attempt(gateway, client, stream):
    hostile = [{"role": "user", "content": HOSTILE}]
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=SERVED_NAME, messages=hostile, max_tokens=8, stream=stream)
    error = caught.value
    assert error.code == "content_policy_violation" and "prompt was refused" in error.message
    assert error.response.headers["x-guard-verdict"] == "block"
    record = _record(gateway, error.body["guard"]["record_id"])["record"]
    assert record["verdict"] == "block" and record["artifact"] is None  # the upstream was never called
    assert any(s["stage"] == "prompt" and s["label"] == "negative" and s["value"] >= 0.5 for s in record["scores"])


def test_upstream_errors_pass_through_and_are_logged(gateway, client):
    with pytest.raises(openai.NotFoundError) as caught:
        client.chat.completions.create(model="no-such-model", messages=CHAT, max_tokens=4)
    assert caught.value.code == "model_not_found"
    record = _record(gateway, caught.value.body["guard"]["record_id"])["record"]
    assert record["verdict"] == "block" and record["errors"][0]["stage"] == "generate"
    assert "HTTP 404" in record["errors"][0]["error"] or "does not exist" in record["errors"][0]["error"]


def test_callers_need_a_key_and_requests_have_a_size_limit(gateway):
    anonymous = openai.OpenAI(base_url=gateway.url + "/v1", api_key="gsk-wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        anonymous.chat.completions.create(model=SERVED_NAME, messages=CHAT)
    assert caught.value.code == "invalid_api_key"
    big = json.dumps({"model": SERVED_NAME, "messages": [{"role": "user", "content": "x" * (1 << 20)}]})
    response = httpx2.post(f"{gateway.url}/v1/chat/completions", content=big,
                           headers={"authorization": f"Bearer {gateway.key}", "content-type": "application/json"})
    assert response.status_code == 413 and response.json()["error"]["code"] == "request_too_large"
    bad = httpx2.post(f"{gateway.url}/v1/chat/completions", json={"model": SERVED_NAME, "messages": []},
                      headers={"authorization": f"Bearer {gateway.key}"})
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "messages"
    assert httpx2.get(f"{gateway.url}/health").json() == {"status": "ok"}


def test_64_concurrent_streams_each_get_their_own_record(gateway):
    async def one(client: openai.AsyncOpenAI, i: int) -> tuple[str, dict]:
        stream = await client.chat.completions.create(
            model=SERVED_NAME, messages=[{"role": "user", "content": f"Question number {i}, please."}],
            max_tokens=6, stream=True)
        pieces, guard = [], None
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.choices and chunk.choices[0].finish_reason:
                guard = chunk.model_extra["guard"]
        return "".join(pieces), guard

    async def main() -> list[tuple[str, dict]]:
        async with openai.AsyncOpenAI(base_url=gateway.url + "/v1", api_key=gateway.key, max_retries=0) as client:
            return await asyncio.gather(*(one(client, i) for i in range(64)))

    results = asyncio.run(main())
    indices = {guard["log_index"] for _, guard in results}
    assert len(indices) == 64 and len({guard["record_id"] for _, guard in results}) == 64
    log = ProvenanceLog(gateway.home / "provenance.db")
    try:
        for text, guard in results[:8]:
            stored = log.get(guard["log_index"]).data
            assert stored["record_id"] == guard["record_id"]
            assert stored["artifact"]["sha256"] == hashlib.sha256(text.encode()).hexdigest()
    finally:
        log.close()
