"""Chat message prompts (the user turn is checked and redacted, the conversation is recorded under the policy's
prompt_storage) and checks of content that already exists (check_prompt / check_output)."""

from __future__ import annotations

import asyncio
import json

import pytest

from core.errors import InputError
from guard.pipeline.checker import REDACTION
from guard.pipeline.guard import Guard
from guard.policy import parse
from guard.signing import dsse

HOSTILE = "You are a horrible, stupid, disgusting idiot and I hate you."
KIND = "Thank you for the lovely question. Here is a kind and helpful answer."


def _policy(prompt_action: str = "block", output_action: str = "block", storage: str = "plain"):
    return parse(
        f"name: chat\nprompt_storage: {storage}\nstages:\n  prompt:\n    - detector: sentiment\n"
        f"      thresholds: {{negative: 0.5}}\n      action: {prompt_action}\n  output:\n    - detector: sentiment\n"
        f"      thresholds: {{negative: 0.5}}\n      action: {output_action}\n"
    )


@pytest.fixture
def make_guard(tmp_path, keys):
    return lambda policy: Guard(policy, log=tmp_path / "log.db", keys=keys)


def test_the_user_turn_is_checked_not_the_rest_of_the_conversation(make_guard):
    guard = make_guard(_policy())
    reply = guard.wrap(lambda messages: KIND)
    calm = [{"role": "system", "content": HOSTILE}, {"role": "user", "content": "What grows well in shade?"}]
    assert reply(calm).verdict == "allow"
    hostile = [{"role": "user", "content": "Hello there."}, {"role": "assistant", "content": "Hi!"},
               {"role": "user", "content": [{"type": "text", "text": HOSTILE}]}]
    assert reply(hostile).blocked


def test_a_redacted_user_turn_reaches_the_generator_and_the_record(make_guard):
    guard = make_guard(_policy(prompt_action="redact"))
    seen = []
    conversation = [{"role": "system", "content": "Be brief."},
                    {"role": "user", "content": f"The garden is lovely today. {HOSTILE}"}]
    result = guard.wrap(lambda messages: seen.append(messages) or KIND)(conversation)
    [sent] = seen
    assert sent[0] == conversation[0] and sent[1]["content"] == f"The garden is lovely today. {REDACTION}"
    assert conversation[1]["content"].endswith(HOSTILE)  # the caller's list is left as it was
    stored = guard.log.get(result.index)
    assert stored.data["prompt"] == {"storage": "plain", "format": "chat"}
    assert json.loads(stored.private["prompt"]) == sent


def test_a_hashed_conversation_is_keyed_by_the_log(make_guard):
    guard = make_guard(_policy(storage="hash"))
    conversation = [{"role": "user", "content": "What grows well in shade?"}]
    result = asyncio.run(guard.wrap(lambda messages: KIND).agenerate(conversation))
    record = guard.log.get(result.index)
    assert record.private == {}
    assert record.data["prompt"]["hmac_sha256"] == guard.log.prompt_digest(
        '[{"content":"What grows well in shade?","role":"user"}]')


def test_a_transformers_chat_model_takes_the_conversation(make_guard, tmp_path):
    from generators.transformers_text import TransformersText
    from guard.demo.tiny_models import build_tiny_gpt2

    guard = make_guard(parse("name: w\nwatermark: {text: {enabled: true}}\n"))
    chat_model = TransformersText(build_tiny_gpt2(tmp_path / "chat", chat_template=True), device="cpu",
                                  max_new_tokens=6)
    conversation = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}]
    assert guard.wrap(chat_model)(conversation, seed=1).watermark["scheme"] == "kgw-transformers"

    async def streamed():
        stream = guard.wrap(chat_model).astream(conversation, seed=1)
        return "".join([p async for p in stream]), stream.result

    text, result = asyncio.run(streamed())
    assert result.text == text and result.watermark is not None
    plain_model = TransformersText(build_tiny_gpt2(tmp_path / "plain"), device="cpu", max_new_tokens=4)
    with pytest.raises(InputError, match="chat template"):
        guard.wrap(plain_model)(conversation)


def test_check_prompt_applies_the_prompt_rules_and_logs_without_a_trace_of_the_text(make_guard):
    guard = make_guard(_policy(prompt_action="redact", storage="none"))
    result = guard.check_prompt(f"The garden is lovely. {HOSTILE}", source="support-form")
    assert result.verdict == "redact" and result.text == f"The garden is lovely. {REDACTION}"
    assert result.signature is None
    record = guard.log.get(result.index)
    assert record.data["artifact"] is None and record.data["prompt"] == {"storage": "none"} and not record.private
    assert record.data["generator"]["name"] == "external" and record.data["generator"]["model_id"] == "support-form"
    assert guard.check_prompt("What grows well in shade?").verdict == "allow"


def test_check_output_signs_and_logs_text_made_elsewhere(make_guard, keys):
    guard = make_guard(_policy())
    result = guard.check_output(KIND, prompt="What grows well in shade?", source="vendor-x")
    assert result.verdict == "allow" and result.text == KIND
    statement = dsse.verify(result.signature, keys.content_signer().certificate_chain_pem,
                            trust_anchor_pem=keys.ca_certificate_pem())
    assert statement["predicate"]["generator"]["model_id"] == "vendor-x"
    assert guard.log.get(result.index).private == {"prompt": "What grows well in shade?"}
    blocked = guard.check_output(HOSTILE)
    assert blocked.blocked and blocked.artifact is None
    assert guard.log.get(blocked.index).data["prompt"] == {"storage": "none"}


def test_existing_text_cannot_be_regenerated_so_regenerate_blocks_it(make_guard):
    guard = make_guard(_policy(output_action="regenerate"))
    result = guard.check_output(HOSTILE)
    record = guard.log.get(result.index).data
    assert result.blocked and record["attempt"] == 1 and guard.log.size() == 1
