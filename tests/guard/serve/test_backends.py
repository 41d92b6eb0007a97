"""The gateway's upstream client against real sockets: answers, a refused connection and a stalled stream, each
a logged attempt when it fails."""

from __future__ import annotations

import asyncio
import json

import httpx2
import pytest

from guard.pipeline.aio import AsyncGuardedStream, arun, attempts
from guard.pipeline.guard import Guard
from guard.policy import parse
from guard.serve import protocol
from guard.serve.backends import OpenAIUpstream
from tests.guard.serve.servers import SCRIPT, ScriptedUpstream, free_port


@pytest.fixture(scope="module")
def scripted():
    server = ScriptedUpstream()
    yield server
    server.close()


@pytest.fixture
def guard(tmp_path, keys):
    return Guard(parse("name: relay\n"), log=tmp_path / "log.db", keys=keys)


def _request(model: str, stream: bool = False) -> protocol.CompletionRequest:
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": stream, "temperature": 0.5}
    return protocol.parse("chat", json.dumps(body).encode())


def _run(upstream: OpenAIUpstream, coro):
    async def main():
        try:
            return await coro
        finally:
            await upstream.aclose()

    return asyncio.run(main())


def test_an_answer_keeps_the_upstreams_ids_in_the_record(scripted, guard):
    upstream = OpenAIUpstream(scripted.url, api_key="k", timeout=10)
    request = _request("words")
    call = upstream.call(request)
    [result] = _run(upstream, arun(guard, call, [request.prompt], **request.recorded()))
    assert result.text.split() == SCRIPT.split() and call.response["id"] == "chatcmpl-scripted"
    params = guard.log.get(result.index).data["params"]
    assert params["temperature"] == 0.5 and params["upstream"]["id"] == "chatcmpl-scripted"
    assert scripted.requests[-1]["messages"] == request.prompt and scripted.requests[-1]["stream"] is False


def test_a_refused_connection_is_a_logged_attempt(guard):
    upstream = OpenAIUpstream(f"http://127.0.0.1:{free_port()}/v1", api_key=None, timeout=5)
    request = _request("words")
    [result], error = _run(upstream, attempts(guard, upstream.call(request), [request.prompt]))
    assert isinstance(error, httpx2.ConnectError) and result.blocked
    record = guard.log.get(result.index).data
    assert record["errors"][0]["stage"] == "generate" and record["errors"][0]["error"].startswith("ConnectError")


def test_a_stalled_stream_times_out_and_is_a_logged_attempt(scripted, guard):
    upstream = OpenAIUpstream(scripted.url, api_key=None, timeout=0.1)  # the slow script pauses 0.4 s a word
    request = _request("slow", stream=True)
    stream = AsyncGuardedStream(guard, upstream.call(request), request.prompt, check_every=1, window=100,
                                params={})

    async def consume():
        return [piece async for piece in stream]

    with pytest.raises(httpx2.ReadTimeout):
        _run(upstream, consume())
    assert "ReadTimeout" in guard.log.get(stream.result.index).data["errors"][0]["error"]
