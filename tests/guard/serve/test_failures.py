"""The gateway when things go wrong: an output the policy refuses, an upstream that drops the connection
mid-stream, and SIGTERM with streams in flight. The upstream is a scripted OpenAI-style server on loopback that
says what the test needs and misbehaves on request."""

from __future__ import annotations

import hashlib
import threading

import httpx2
import openai
import pytest

from detectors.sentiment import SentimentDetector
from guard.provenance.log import ProvenanceLog
from guard.provenance.verify import verify_log
from guard.signing.keys import KeyStore
from tests.guard.serve.conftest import keyed_home
from tests.guard.serve.servers import GuardServe, ScriptedUpstream

ASK = [{"role": "user", "content": "How is the river today?"}]
OUTPUT_POLICY = ("name: outputs\nstages:\n  output:\n    - detector: sentiment\n      thresholds: {negative: 0.5}\n"
                 "      action: block\n")


@pytest.fixture(scope="module")
def scripted():
    server = ScriptedUpstream()
    yield server
    server.close()


@pytest.fixture(scope="module")
def gateway(scripted, tmp_path_factory):
    """Negative outputs are blocked, streams are checked every two pieces; a short grace period on SIGTERM."""
    home = keyed_home(tmp_path_factory.mktemp("gateway"))
    (home / "policy.yaml").write_text(OUTPUT_POLICY)
    server = GuardServe(["serve", "--upstream", scripted.url, "--policy", "policy.yaml", "--port", "0",
                         "--check-every", "2", "--graceful-timeout", "3"], home).wait()
    yield server
    server.stop()


def _client(gateway) -> openai.OpenAI:
    return openai.OpenAI(base_url=gateway.url + "/v1", api_key="unused", max_retries=0)


def _record(gateway, record_id: str) -> dict:
    return httpx2.get(f"{gateway.url}/v1/guard/records/{record_id}").json()["record"]


def test_a_refused_output_is_withheld_as_an_openai_error(gateway):
    with pytest.raises(openai.BadRequestError) as caught:
        _client(gateway).chat.completions.create(model="hostile", messages=ASK)
    assert caught.value.code == "content_policy_violation" and "output was withheld" in caught.value.message
    record = _record(gateway, caught.value.response.headers["x-guard-record-id"])
    assert record["verdict"] == "block" and record["artifact"] is not None  # generated, scored, not handed back


def test_a_stream_is_stopped_before_a_refused_output_is_shown(gateway):
    shown = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in _client(gateway).chat.completions.create(model="hostile", messages=ASK, stream=True):
            shown.append(chunk.choices[0].delta.content)
    text = "".join(shown)
    # what was shown passed the rule (a lone "horrible" in calm text does not cross it); the rest never came out
    assert text.startswith("the river is calm") and "idiot" not in text and "hate" not in text
    [scores] = SentimentDetector().score([text])
    assert next(s.value for s in scores if s.label == "negative") < 0.5
    assert caught.value.body["code"] == "content_policy_violation"
    record = _record(gateway, caught.value.body["guard"]["record_id"])
    assert record["verdict"] == "block" and "stream stopped by an output check" in record["actions"]


def test_an_upstream_that_drops_mid_stream_ends_the_stream_with_an_error_and_a_logged_attempt(gateway):
    received = []
    with pytest.raises(openai.APIError) as caught:
        for chunk in _client(gateway).chat.completions.create(model="drop", messages=ASK, stream=True):
            received.append(chunk.choices[0].delta.content)
    assert "".join(received) == "the river is calm today and "  # what came before the drop, and nothing else
    assert caught.value.body["code"] == "upstream_unavailable"
    record = _record(gateway, caught.value.body["guard"]["record_id"])
    assert record["errors"][0]["stage"] == "generate" and "RemoteProtocolError" in record["errors"][0]["error"]
    assert "generate:error" in record["actions"]
    shown = hashlib.sha256("the river is calm today and ".encode()).hexdigest()
    assert record["artifact"]["sha256"] == shown  # the record names the text the client was shown


def test_sigterm_lets_short_streams_finish_logs_cancelled_ones_and_exits_cleanly(gateway):
    outcomes: dict[str, object] = {}
    started = {script: threading.Event() for script in ("slow", "brief")}

    def consume(script: str) -> None:
        pieces = []
        try:
            for chunk in _client(gateway).chat.completions.create(model=script, messages=ASK, stream=True):
                if chunk.choices and chunk.choices[0].delta.content:
                    pieces.append(chunk.choices[0].delta.content)
                    started[script].set()
                if chunk.choices and chunk.choices[0].finish_reason:
                    outcomes[script + ":guard"] = chunk.model_extra["guard"]
        except (openai.APIError, httpx2.HTTPError) as exc:
            outcomes[script + ":error"] = exc
        outcomes[script] = "".join(pieces)

    threads = [threading.Thread(target=consume, args=(s,)) for s in ("slow", "brief")]
    for t in threads:
        t.start()
    for event in started.values():  # both streams are running: the slow one needs ~6 s more, the brief one 0.4 s
        assert event.wait(60)
    assert gateway.stop() == 0, gateway.log
    for t in threads:
        t.join(30)
    assert outcomes["brief"] == "the river " and "brief:guard" in outcomes  # finished within the grace period
    assert "slow:guard" not in outcomes  # cut off when the grace period ran out

    log = ProvenanceLog(gateway.home / "provenance.db")
    try:
        records = [r.data for r in log.iter_records()]
        cancelled = [r for r in records if r["params"].get("model") == "slow"]
        assert len(cancelled) == 1
        assert "stream ended early: the consumer stopped reading" in cancelled[0]["actions"]
        assert log.latest_checkpoint().checkpoint.size == log.size()  # signed over every record at shutdown
        assert verify_log(log, KeyStore(gateway.home / "keys").log_public_key()).ok
    finally:
        log.close()
