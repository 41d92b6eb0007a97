"""Prompts as OpenAI-style chat message lists: what the policy reads of them, and how a redaction goes back in.

A prompt is either a string or a conversation: a list of ``{"role": ..., "content": ...}`` messages, where the
content is a string or a list of parts (``{"type": "text", "text": ...}``, image parts, ...). The policy checks
the conversation's last user turn, which is the one new text the caller sends; earlier turns were checked when
they were sent. Generators that take conversations (chat templates, chat APIs) get the list itself; the others
get the user turn.
"""

from __future__ import annotations

from typing import Any

from core.errors import InputError

Prompt = str | list[dict[str, Any]]


def is_chat(prompt: Any) -> bool:
    """Whether ``prompt`` is a message list (validated by ``user_turn``), not a string."""
    return isinstance(prompt, list)


def validate(messages: Any) -> list[dict[str, Any]]:
    """``messages`` if it is a non-empty list of messages with a string role and a user turn, else InputError."""
    if not isinstance(messages, list) or not messages:
        raise InputError("a chat prompt must be a non-empty list of messages")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise InputError(f"message {i}: expected an object with a string 'role'")
        content = message.get("content")
        if content is not None and not isinstance(content, str | list):
            raise InputError(f"message {i}: 'content' must be a string or a list of parts")
        if isinstance(content, list) and not all(isinstance(part, dict) for part in content):
            raise InputError(f"message {i}: every content part must be an object")
    if _last_user(messages) is None:
        raise InputError("a chat prompt needs a message with role 'user'")
    return messages


def user_turn(prompt: Prompt) -> str:
    """The text the policy checks: the prompt itself, or the text of the conversation's last user message."""
    if not is_chat(prompt):
        return prompt
    messages = validate(prompt)
    return content_text(messages[_last_user(messages)].get("content"))


def with_user_turn(prompt: Prompt, text: str) -> Prompt:
    """``prompt`` with its checked text replaced by ``text`` (a redaction); other messages are left as they are.

    A user turn made of parts keeps its non-text parts and gets ``text`` as its one text part.
    """
    if not is_chat(prompt):
        return text
    messages = [dict(m) for m in validate(prompt)]
    last = _last_user(messages)
    content = messages[last].get("content")
    if isinstance(content, list):
        others = [p for p in content if p.get("type") != "text"]
        messages[last]["content"] = [{"type": "text", "text": text}, *others]
    else:
        messages[last]["content"] = text
    return messages


def content_text(content: Any) -> str:
    """The text of a message content: the string, or its text parts joined by newlines."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "\n".join(str(p.get("text", "")) for p in content if p.get("type") == "text")


def _last_user(messages: list[dict[str, Any]]) -> int | None:
    return next((i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "user"), None)
