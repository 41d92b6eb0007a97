"""Chat message prompts: what the policy reads (the last user turn) and how a redaction goes back in."""

from __future__ import annotations

import pytest

from core import chat
from core.errors import InputError

PARTS = [{"type": "text", "text": "Describe this"}, {"type": "image_url", "image_url": {"url": "data:,"}},
         {"type": "text", "text": "briefly."}]


def test_the_last_user_turn_is_what_is_checked():
    messages = [{"role": "system", "content": "s"}, {"role": "user", "content": "first"},
                {"role": "assistant", "content": "a"}, {"role": "user", "content": PARTS}]
    assert chat.user_turn(messages) == "Describe this\nbriefly."
    assert chat.user_turn("plain text") == "plain text"


def test_a_redaction_replaces_the_text_parts_and_keeps_the_rest():
    messages = [{"role": "user", "content": "old"}, {"role": "user", "content": PARTS}]
    out = chat.with_user_turn(messages, "[redacted]")
    assert out[0] == messages[0] and out[1]["content"] == [{"type": "text", "text": "[redacted]"}, PARTS[1]]
    assert messages[1]["content"] is PARTS  # the caller's list is not changed
    assert chat.with_user_turn("text", "[redacted]") == "[redacted]"


@pytest.mark.parametrize("messages, message", [
    ([], "non-empty list"),
    ("not a list", "non-empty list"),
    ([{"content": "no role"}], "message 0: expected an object with a string 'role'"),
    ([{"role": "user", "content": 3}], "message 0: 'content' must be"),
    ([{"role": "user", "content": ["part"]}], "every content part must be an object"),
    ([{"role": "system", "content": "only a system prompt"}], "needs a message with role 'user'"),
])
def test_malformed_conversations_are_named(messages, message):
    with pytest.raises(InputError, match=message):
        chat.validate(messages)
