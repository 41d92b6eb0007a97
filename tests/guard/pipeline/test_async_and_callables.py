"""Every kind of callable (plain, async, generator, async generator) through every way of calling (call, stream,
agenerate, astream); generator failures and streams left early are logged attempts. Scored by a real detector
(VADER sentiment)."""

from __future__ import annotations

import asyncio
import threading

import pytest

from core.errors import InputError
from guard.pipeline.guard import Guard
from guard.policy import parse

HOSTILE = "you are a horrible , stupid , disgusting idiot and I hate you ."
KIND_TEXT = "thank you for the lovely question , here is a kind answer ."
POLICY = ("name: t\nprompt_storage: plain\nstages:\n  prompt:\n    - detector: sentiment\n      thresholds: "
          "{negative: 0.5}\n      action: block\n  output:\n    - detector: sentiment\n      thresholds: "
          "{negative: 0.5}\n      action: block\n")


@pytest.fixture
def guard(tmp_path, keys):
    return Guard(parse(POLICY), log=tmp_path / "log.db", keys=keys)


def plain(prompt):
    return KIND_TEXT


def pieces(prompt):
    for word in KIND_TEXT.split():
        yield word + " "


async def aplain(prompt):
    await asyncio.sleep(0)
    return KIND_TEXT


async def apieces(prompt):
    for word in KIND_TEXT.split():
        await asyncio.sleep(0)
        yield word + " "


ALL = [plain, pieces, aplain, apieces]
SYNC = [plain, pieces]


def _same_text(text: str) -> bool:
    return text.split() == KIND_TEXT.split()


@pytest.mark.parametrize("fn", SYNC, ids=lambda f: f.__name__)
def test_sync_kinds_called_and_streamed(guard, fn):
    result = guard.wrap(fn)("a question")
    assert result.verdict == "allow" and _same_text(result.text)
    stream = guard.wrap(fn).stream("a question")
    assert _same_text("".join(stream)) and stream.result.verdict == "allow" and stream.result.signature


@pytest.mark.parametrize("fn", ALL, ids=lambda f: f.__name__)
def test_every_kind_from_async_code(guard, fn):
    async def main():
        result = await guard.wrap(fn).agenerate("a question")
        stream = guard.wrap(fn).astream("a question")
        streamed = "".join([piece async for piece in stream])
        return result, streamed, stream.result

    result, streamed, streamed_result = asyncio.run(main())
    assert result.verdict == "allow" and _same_text(result.text)
    assert _same_text(streamed) and streamed_result.text == streamed
    assert guard.log.get(streamed_result.index).data["verdict"] == "allow"


def test_async_clients_run_on_the_callers_loop_and_plain_ones_in_a_thread(guard):
    seen = {}

    async def on_loop(prompt):
        seen["async"] = threading.current_thread()
        return KIND_TEXT

    def blocking(prompt):
        seen["plain"] = threading.current_thread()
        return KIND_TEXT

    async def main():
        await guard.wrap(on_loop).agenerate("q")
        await guard.wrap(blocking).agenerate("q")

    asyncio.run(main())
    assert seen["async"] is threading.main_thread() and seen["plain"] is not threading.main_thread()


@pytest.mark.parametrize("fn", [aplain, apieces], ids=lambda f: f.__name__)
def test_async_kinds_called_from_sync_code_say_how_to_call_them(guard, fn, recwarn):
    with pytest.raises(InputError, match="agenerate"):
        guard.wrap(fn)("q")
    with pytest.raises(InputError, match="astream"):
        list(guard.wrap(fn).stream("q"))
    assert not [w for w in recwarn if "never awaited" in str(w.message)]


def test_a_lambda_returning_a_coroutine_is_awaited(guard):
    assert asyncio.run(guard.wrap(lambda p: aplain(p)).agenerate("q")).verdict == "allow"


def test_a_streaming_function_must_yield_text(guard):
    with pytest.raises(TypeError, match="must yield str pieces"):
        guard.wrap(lambda p: iter([b"bytes"]))("q")


def test_held_back_stream_never_shows_the_failing_text(guard):
    async def hostile_after_a_while(prompt):
        for word in ("the weather is calm today and the river is quiet . " + HOSTILE + " more " * 30).split():
            yield word + " "

    async def main():
        stream = guard.wrap(hostile_after_a_while).astream("q", check_every=2, window=60)
        return "".join([p async for p in stream]), stream

    shown, stream = asyncio.run(main())
    assert "idiot" not in shown and "hate" not in shown and stream.stopped
    record = guard.log.get(stream.result.index).data
    assert record["verdict"] == "block" and "stream stopped by an output check" in record["actions"]


def test_a_failing_generator_is_logged_then_raised(guard):
    async def broken(prompt):
        raise ConnectionError("upstream went away")

    with pytest.raises(ConnectionError):
        asyncio.run(guard.wrap(broken).agenerate("q"))
    record = guard.log.get(guard.log.size() - 1).data
    assert record["verdict"] == "block" and record["artifact"] is None and "generate:error" in record["actions"]
    assert record["errors"] == [{"stage": "generate", "generator": record["generator"]["model_id"],
                                 "error": "ConnectionError: upstream went away"}]


def test_a_stream_that_fails_midway_logs_what_was_released(guard):
    async def breaks(prompt):
        for word in KIND_TEXT.split()[:4]:
            yield word + " "
        raise ConnectionError("dropped")

    async def main():
        stream = guard.wrap(breaks).astream("q", check_every=2)
        shown = []
        with pytest.raises(ConnectionError):
            async for piece in stream:
                shown.append(piece)
        return "".join(shown), stream

    shown, stream = asyncio.run(main())
    record = guard.log.get(stream.result.index).data
    assert shown == "thank you for the " and stream.result.text == shown  # the record names what was shown
    assert "generate:error" in record["actions"] and record["errors"][0]["error"] == "ConnectionError: dropped"


def test_a_stream_closed_early_by_its_consumer_is_logged(guard):
    async def main():
        stream = guard.wrap(apieces).astream("q", check_every=1)
        first = await anext(stream)
        await stream.aclose()
        return first, stream

    first, stream = asyncio.run(main())
    record = guard.log.get(stream.result.index).data
    assert record["verdict"] == "allow" and "stream ended early: the consumer stopped reading" in record["actions"]
    assert stream.result.text == first  # what was handed back is what the record's artifact names


def test_a_cancelled_stream_is_logged(guard):
    async def endless(prompt):
        yield "calm "
        await asyncio.sleep(3600)
        yield "never"

    async def main():
        stream = guard.wrap(endless).astream("q", check_every=1)
        first = asyncio.Event()

        async def consume():
            async for _ in stream:
                first.set()

        task = asyncio.create_task(consume())
        await first.wait()  # the first piece is out; the stream now waits on the backend
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return stream

    stream = asyncio.run(main())
    record = guard.log.get(stream.result.index).data
    assert "stream ended early: the consumer stopped reading" in record["actions"] and stream.result.text == "calm "


def test_a_refused_prompt_never_reaches_the_generator(guard):
    called = []

    async def client(prompt):
        called.append(prompt)
        return KIND_TEXT

    async def main():
        result = await guard.wrap(client).agenerate(HOSTILE)
        stream = guard.wrap(client).astream(HOSTILE)
        return result, [p async for p in stream], stream.result

    result, pieces_shown, streamed = asyncio.run(main())
    assert result.blocked and streamed.blocked and pieces_shown == [] and called == []
