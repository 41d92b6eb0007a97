"""The OpenAI wire format, as the gateway reads and writes it.

Requests to ``/v1/chat/completions`` and ``/v1/completions`` are read into a ``CompletionRequest``: the prompt the
policy checks (a message list or a string), the flags the gateway acts on, and the body as sent, which goes to the
upstream unchanged but for the prompt (redacted, if the policy says so). Responses, stream chunks and errors are
written in the shapes the official client libraries parse; every error is ``{"error": {"message", "type",
"param", "code"}}``, and a policy refusal is a 400 with code ``content_policy_violation`` (``openai`` raises
``BadRequestError``; mid-stream, an error event, which it raises as ``APIError``). The gateway's own additions
ride in a ``guard`` object (record id, log index, verdict), which clients keep as an extra field.
"""

from __future__ import annotations

import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Literal

from core import chat
from core.errors import InputError

Kind = Literal["chat", "completion"]

# Request fields kept in the provenance record (with the upstream's answer id, model and finish reason): the ones
# that decide what was generated. The prompt is kept only as the policy's prompt_storage says, never here.
RECORDED_FIELDS = ("model", "temperature", "top_p", "max_tokens", "max_completion_tokens", "seed", "stop",
                   "presence_penalty", "frequency_penalty", "logit_bias", "response_format", "reasoning_effort")

DONE = b"data: [DONE]\n\n"


class ErrorResponse(Exception):
    """An OpenAI-style error the gateway answers with: HTTP ``status`` and ``{"error": {...}}``."""

    def __init__(self, status: int, message: str, *, type: str = "invalid_request_error", code: str | None = None,
                 param: str | None = None, guard: dict[str, Any] | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers or {}
        self.error: dict[str, Any] = {"message": message, "type": type, "param": param, "code": code}
        if guard is not None:
            self.error["guard"] = guard

    def body(self) -> dict[str, Any]:
        return {"error": self.error}


@dataclass(frozen=True)
class CompletionRequest:
    """One completion request: what the gateway needs of it, and the body as the caller sent it."""

    kind: Kind
    prompt: chat.Prompt  # the message list (chat) or the prompt string (completion)
    model: str | None
    stream: bool
    include_usage: bool
    body: dict[str, Any] = field(repr=False)

    def recorded(self) -> dict[str, Any]:
        """The generation parameters a record keeps."""
        return {k: self.body[k] for k in RECORDED_FIELDS if k in self.body}

    def upstream_body(self, prompt: chat.Prompt, *, stream: bool) -> dict[str, Any]:
        """The body for the upstream: as sent, with the (possibly redacted) prompt."""
        body = {**self.body, "messages" if self.kind == "chat" else "prompt": prompt, "stream": stream}
        if not stream:
            body.pop("stream_options", None)
        return body


def parse(kind: Kind, raw: bytes) -> CompletionRequest:
    """Read and check a request body; ``ErrorResponse`` (400) names the field that is wrong."""
    try:
        body = json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ErrorResponse(400, f"the request body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise ErrorResponse(400, "the request body must be a JSON object")
    if kind == "chat":
        try:
            prompt: chat.Prompt = chat.validate(body.get("messages"))
        except InputError as exc:
            raise ErrorResponse(400, str(exc), param="messages") from None
    else:
        prompt = body.get("prompt")
        if isinstance(prompt, list) and len(prompt) == 1 and isinstance(prompt[0], str):
            prompt = prompt[0]
        if not isinstance(prompt, str):
            raise ErrorResponse(400, "'prompt' must be a string (one prompt per request)", param="prompt")
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise ErrorResponse(400, "'model' must be a string", param="model")
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise ErrorResponse(400, "'stream' must be true or false", param="stream")
    if body.get("n", 1) != 1:
        raise ErrorResponse(400, "only n=1 is supported: the policy judges one output per request", param="n")
    options = body.get("stream_options") or {}
    include_usage = bool(options.get("include_usage")) if isinstance(options, dict) else False
    return CompletionRequest(kind, prompt, model, stream, include_usage, body)


def guard_info(result: Any) -> dict[str, Any]:
    """The ``guard`` object of a response: where its provenance record is."""
    return {"record_id": result.record_id, "log_index": result.index, "verdict": result.verdict,
            "record_url": f"/v1/guard/records/{result.record_id}"}


def guard_headers(result: Any) -> dict[str, str]:
    return {"x-guard-record-id": result.record_id, "x-guard-log-index": str(result.index),
            "x-guard-verdict": result.verdict}


def refusal(result: Any, *, output: bool) -> ErrorResponse:
    """A policy refusal of the prompt, or of the output (``output``), naming the record that logs it."""
    what = "the output was withheld" if output else "the prompt was refused"
    return ErrorResponse(400, f"{what} by the gateway's policy (record {result.record_id}, log index "
                              f"{result.index})", code="content_policy_violation", guard=guard_info(result),
                         headers=guard_headers(result))


def response(request: CompletionRequest, upstream: dict[str, Any] | None, text: str, result: Any,
             model: str) -> dict[str, Any]:
    """The response body: the upstream's own, with its text replaced by what the policy hands back (redacted,
    maybe), or a new one for a local model."""
    if upstream is None:
        choice: dict[str, Any] = {"index": 0, "finish_reason": "stop", "logprobs": None}
        if request.kind == "chat":
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        upstream = {"id": new_id(request.kind), "object": _OBJECT[request.kind], "created": int(time.time()),
                    "model": model, "choices": [choice], "usage": None}
    body = dict(upstream)
    choice = dict(body["choices"][0])
    if request.kind == "chat":
        choice["message"] = {**choice.get("message", {}), "content": text}
    else:
        choice["text"] = text
    body["choices"] = [choice]
    body["guard"] = guard_info(result)
    return body


@dataclass
class ChunkWriter:
    """Writes one stream's chunks (server-sent events), with the ids and model the upstream gave, if any."""

    kind: Kind
    id: str
    model: str
    created: int = field(default_factory=lambda: int(time.time()))
    _first: bool = True

    def piece(self, text: str) -> bytes:
        if self.kind == "chat":
            delta: dict[str, Any] = {"content": text}
            if self._first:
                delta = {"role": "assistant", **delta}
            self._first = False
            return self._chunk({"index": 0, "delta": delta, "logprobs": None, "finish_reason": None})
        return self._chunk({"index": 0, "text": text, "logprobs": None, "finish_reason": None})

    def finish(self, reason: str, result: Any) -> bytes:
        choice: dict[str, Any] = {"index": 0, "logprobs": None, "finish_reason": reason}
        choice.update({"delta": {}} if self.kind == "chat" else {"text": ""})
        return self._chunk(choice, guard=guard_info(result))

    def usage(self, usage: dict[str, Any] | None) -> bytes:
        return event({"id": self.id, "object": _CHUNK_OBJECT[self.kind], "created": self.created,
                      "model": self.model, "choices": [], "usage": usage})

    def _chunk(self, choice: dict[str, Any], **extra: Any) -> bytes:
        return event({"id": self.id, "object": _CHUNK_OBJECT[self.kind], "created": self.created,
                      "model": self.model, "choices": [choice], **extra})


def event(data: dict[str, Any]) -> bytes:
    """One server-sent event carrying ``data`` as JSON."""
    return b"data: " + json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"


def new_id(kind: Kind) -> str:
    return ("chatcmpl-" if kind == "chat" else "cmpl-") + secrets.token_hex(12)


_OBJECT = {"chat": "chat.completion", "completion": "text_completion"}
_CHUNK_OBJECT = {"chat": "chat.completion.chunk", "completion": "text_completion"}
