"""Sync and async code, whole outputs and streams, run one sequence of steps (``guard.pipeline.steps``): the same
call logs the same records, in the same order, and a stream behaves the same whichever loop reads it.
Scored by a real detector (VADER sentiment)."""

from __future__ import annotations

import asyncio

import pytest

from guard.pipeline.guard import Guard
from guard.policy import parse

HOSTILE = "you are a horrible , stupid , disgusting idiot and I hate you ."
KIND_TEXT = "thank you for the lovely question , here is a kind answer ."
RULE = "    - detector: sentiment\n      thresholds: {negative: 0.5}\n      action: block\n"
CHECKED = f"name: t\nprompt_storage: plain\nstages:\n  prompt:\n{RULE}  output:\n{RULE}"
UNCHECKED = f"name: t\nprompt_storage: plain\nstages:\n  prompt:\n{RULE}"
DIFFERS = {"record_id", "created_at", "index", "signature", "commitments"}  # unique to each record


def _guard(tmp_path, keys, policy: str, name: str) -> Guard:
    return Guard(parse(policy), log=tmp_path / f"{name}.db", keys=keys)


def _records(guard: Guard) -> list[dict]:
    """The log's records without what is unique to each, and without the name of the function (``stream`` here
    is a plain and there an async generator)."""
    return [{**{k: v for k, v in r.data.items() if k not in DIFFERS}, "generator": r.data["generator"]["name"]}
            for r in guard.log.iter_records()]


def _answer(prompt):
    return KIND_TEXT


def _broken(prompt):
    raise ConnectionError("upstream went away")


def _pieces(text):
    def stream(prompt):
        for word in text.split():
            yield word + " "
    return stream


def _apieces(text):
    async def stream(prompt):
        for word in text.split():
            await asyncio.sleep(0)
            yield word + " "
    return stream


@pytest.mark.parametrize("fn", [_answer, _broken], ids=["answers", "fails"])
def test_run_and_arun_log_the_same_records_in_the_same_order(tmp_path, keys, fn):
    prompts = ["a calm question", HOSTILE, "another calm question"]
    sync, aio = _guard(tmp_path, keys, CHECKED, "sync"), _guard(tmp_path, keys, CHECKED, "aio")
    outcomes = []
    for call in (lambda: sync.wrap(fn).batch(prompts), lambda: asyncio.run(aio.wrap(fn).abatch(prompts))):
        try:
            outcomes.append([r.verdict for r in call()])
        except ConnectionError as exc:
            outcomes.append(str(exc))
    assert outcomes[0] == outcomes[1]
    assert [r["verdict"] for r in _records(sync)] == (["allow", "block", "allow"] if fn is _answer else ["block"] * 3)
    assert _records(sync) == _records(aio)


@pytest.mark.parametrize("policy, text", [(CHECKED, KIND_TEXT), (CHECKED, "the river is calm . " + HOSTILE),
                                          (UNCHECKED, HOSTILE)], ids=["clean", "stopped", "no-output-rules"])
def test_sync_and_async_streams_show_and_log_the_same(tmp_path, keys, policy, text):
    sync, aio = _guard(tmp_path, keys, policy, "sync"), _guard(tmp_path, keys, policy, "aio")
    stream = sync.wrap(_pieces(text)).stream("q", check_every=2)
    shown = [(piece, stream.result is not None) for piece in stream]

    async def read():
        astream = aio.wrap(_apieces(text)).astream("q", check_every=2)
        return [(piece, astream.result is not None) async for piece in astream]

    assert shown == asyncio.run(read())
    assert _records(sync) == _records(aio)
    if text == KIND_TEXT and policy == CHECKED:  # 13 pieces checked in twos: the last is held to the end
        assert shown[-1] == (". ", True)  # and the record is there before it, for a server to name it with it


def test_without_output_rules_a_stream_holds_nothing_back(tmp_path, keys):
    made = []

    def counted(prompt):
        for word in KIND_TEXT.split():
            made.append(word)
            yield word + " "

    stream = _guard(tmp_path, keys, UNCHECKED, "sync").wrap(counted).stream("q", check_every=8)
    assert [len(made) for _ in stream] == list(range(1, len(KIND_TEXT.split()) + 1))
