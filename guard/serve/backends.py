"""Where the gateway's text comes from: an OpenAI-compatible server over HTTP, or a local transformers model.

Each request gets its own ``Call``, a ``Generator`` the guard pipeline drives (``agenerate`` / ``astream``, on the
event loop), which keeps what the response needs beyond the text: the upstream's answer (``response``) or, for a
stream, its id, model, finish reason and usage (``meta``), and whether the backend was called at all.

``OpenAIUpstream`` talks to any server that speaks the OpenAI API (vLLM, Ollama, llama.cpp, a hosted endpoint)
through one pooled ``httpx2`` client: the only connection the gateway opens is to the URL it is given. An error
the upstream answers with, or a stream it ends without ``[DONE]``, raises ``UpstreamError``; a refused connection,
a dropped one or a timeout raises ``httpx2``'s own error. The pipeline logs each as a failed attempt.

``LocalModel`` serves a transformers model from this process: generation runs in worker threads, at most
``concurrency`` at a time, and the model's text watermark is applied while sampling, as the policy says.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from core.errors import GuardError
from generators.base import Generation, Generator, GeneratorInfo, ThreadedStream
from guard.serve.protocol import CompletionRequest, ErrorResponse


class UpstreamError(Exception):
    """The upstream answered with an error (``status``, its ``error`` object in ``body``) or broke the protocol."""

    def __init__(self, status: int, message: str, body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.status, self.body = status, body


class Call(Generator):
    """One request's generation. ``called`` says whether the backend was reached (else the prompt was refused)."""

    modality = "text"

    def __init__(self, request: CompletionRequest) -> None:
        self.request = request
        self.called = False
        self.response: dict[str, Any] | None = None  # the upstream's JSON answer (not streamed)
        self.meta: dict[str, Any] = {}  # id, model, created, finish_reason, usage (streamed)

    def generate(self, prompts: list[Any], *, hooks: dict[str, Any] | None = None, **params: Any) -> list:
        raise GuardError("the gateway's backends are called from async code only")


# -- OpenAI-compatible upstream over HTTP ------------------------------------------------------------------


class OpenAIUpstream:
    """An OpenAI-compatible server at ``base_url`` (ending in ``/v1``), with an optional API key."""

    def __init__(self, base_url: str, *, api_key: str | None, timeout: float) -> None:
        import httpx2

        self.base_url = base_url.rstrip("/")
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        # One pool for every request; no limit on connections beyond the gateway's own concurrency.
        self.client = httpx2.AsyncClient(base_url=self.base_url + "/", headers=headers, timeout=timeout,
                                         limits=httpx2.Limits(max_connections=None, max_keepalive_connections=64),
                                         trust_env=False)

    def call(self, request: CompletionRequest) -> Call:
        return _UpstreamCall(self, request)

    async def models(self) -> dict[str, Any]:
        response = await self.client.get("models")
        return _json(response)

    async def start(self) -> None:
        return None

    async def aclose(self) -> None:
        await self.client.aclose()


def _path(request: CompletionRequest) -> str:
    return "chat/completions" if request.kind == "chat" else "completions"


def _json(response: Any) -> dict[str, Any]:
    """The body of an upstream answer; ``UpstreamError`` for an error status or a body that is not JSON."""
    try:
        data = response.json()
    except ValueError:
        data = None
    if response.status_code >= 400:
        error = data.get("error") if isinstance(data, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        raise UpstreamError(response.status_code, message or f"upstream answered HTTP {response.status_code}",
                            error if isinstance(error, dict) else None)
    if not isinstance(data, dict):
        raise UpstreamError(502, "upstream answered with something that is not a JSON object")
    return data


class _UpstreamCall(Call):
    def __init__(self, upstream: OpenAIUpstream, request: CompletionRequest) -> None:
        super().__init__(request)
        self.upstream = upstream

    @property
    def info(self) -> GeneratorInfo:
        return GeneratorInfo(name="openai-compatible", model_id=self.request.model or "unspecified")

    async def agenerate(self, prompts: list[Any], *, hooks: dict[str, Any] | None = None,
                        **params: Any) -> list[Generation]:
        out = []
        for prompt in prompts:
            self.called = True
            body = self.request.upstream_body(prompt, stream=False)
            data = _json(await self.upstream.client.post(_path(self.request), json=body))
            choices = data.get("choices") or [{}]
            choice = choices[0] if isinstance(choices[0], dict) else {}
            text = (choice.get("message") or {}).get("content") if self.request.kind == "chat" else choice.get("text")
            self.response = data
            meta = {"id": data.get("id"), "model": data.get("model"), "finish_reason": choice.get("finish_reason")}
            out.append(Generation(content=text or "", params={**params, "upstream": {**meta, "url":
                                                                                        self.upstream.base_url}}))
        return out

    def astream(self, prompt: Any, hooks: dict[str, Any] | None = None, **params: Any) -> _UpstreamStream:
        self.called = True
        return _UpstreamStream(self, self.request.upstream_body(prompt, stream=True), params)


class _UpstreamStream:
    """The text of an upstream's server-sent events, piece by piece; ``params`` gains the upstream's ids."""

    watermarked = False

    def __init__(self, call: _UpstreamCall, body: dict[str, Any], params: dict[str, Any]) -> None:
        self.call = call
        self.text = ""
        self.params = {**params, "upstream": {"url": call.upstream.base_url}}
        self._pieces = self._run(body)

    def __aiter__(self) -> _UpstreamStream:
        return self

    async def __anext__(self) -> str:
        piece = await self._pieces.__anext__()
        self.text += piece
        return piece

    async def aclose(self) -> None:
        await self._pieces.aclose()

    async def _run(self, body: dict[str, Any]) -> AsyncIterator[str]:
        call = self.call
        async with call.upstream.client.stream("POST", _path(call.request), json=body) as response:
            if response.status_code >= 400:
                await response.aread()
                _json(response)
            finished = False
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue  # blank lines, comments, event names
                data = line[5:].strip()
                if data == "[DONE]":
                    finished = True
                    break
                try:
                    chunk = json.loads(data)
                except ValueError:
                    raise UpstreamError(502, "upstream sent an event that is not JSON") from None
                if not isinstance(chunk, dict):
                    raise UpstreamError(502, "upstream sent an event that is not a JSON object")
                if "error" in chunk:
                    error = chunk["error"] if isinstance(chunk["error"], dict) else {}
                    raise UpstreamError(502, error.get("message") or "upstream stream failed", error or None)
                for piece in self._note(chunk):
                    yield piece
            if not finished:
                raise UpstreamError(502, "upstream ended the stream before [DONE]")

    def _note(self, chunk: dict[str, Any]) -> list[str]:
        """Keep the chunk's ids, finish reason and usage; return its text."""
        meta = self.call.meta
        for key in ("id", "model", "created"):
            if chunk.get(key) is not None:
                meta.setdefault(key, chunk[key])
        if chunk.get("usage"):
            meta["usage"] = chunk["usage"]
        pieces = []
        for choice in chunk.get("choices") or []:
            if not isinstance(choice, dict) or choice.get("index", 0) != 0:
                continue
            if choice.get("finish_reason"):
                meta["finish_reason"] = choice["finish_reason"]
            piece = (choice.get("delta") or {}).get("content") if self.call.request.kind == "chat" \
                else choice.get("text")
            if piece:
                pieces.append(piece)
        self.params["upstream"].update({k: meta.get(k) for k in ("id", "model", "finish_reason")})
        return pieces


# -- a local transformers model ----------------------------------------------------------------------------


class LocalModel:
    """A ``TransformersText`` model served from this process under ``name``."""

    def __init__(self, model: Any, *, name: str, concurrency: int) -> None:
        self.model, self.name = model, name
        self._slots = asyncio.Semaphore(max(1, concurrency))

    def call(self, request: CompletionRequest) -> Call:
        if request.model not in (None, self.name):
            raise ErrorResponse(404, f"the model {request.model!r} does not exist here; this gateway serves "
                                     f"{self.name!r}", param="model", code="model_not_found")
        return _LocalCall(self, request)

    async def models(self) -> dict[str, Any]:
        return {"object": "list", "data": [{"id": self.name, "object": "model", "created": 0,
                                            "owned_by": "genguard"}]}

    async def start(self) -> None:
        await asyncio.to_thread(lambda: self.model.info)  # load now: the first caller should not wait for it

    async def aclose(self) -> None:
        return None


class _LocalCall(Call):
    def __init__(self, local: LocalModel, request: CompletionRequest) -> None:
        super().__init__(request)
        self.local = local
        self.hook_names = local.model.hook_names  # the model's watermark is embedded while it samples

    @property
    def info(self) -> GeneratorInfo:
        return self.local.model.info

    def _params(self, params: dict[str, Any]) -> dict[str, Any]:
        """The OpenAI sampling fields the model honours, in transformers' names."""
        body, mapped = self.request.body, {}
        limit = body.get("max_completion_tokens", body.get("max_tokens"))
        if limit is not None:
            mapped["max_new_tokens"] = int(limit)
        if body.get("temperature") == 0:
            mapped["do_sample"] = False
        elif body.get("temperature") is not None:
            mapped["temperature"] = float(body["temperature"])
        for key in ("top_p", "seed"):
            if body.get(key) is not None:
                mapped[key] = body[key]
        return mapped

    async def agenerate(self, prompts: list[Any], *, hooks: dict[str, Any] | None = None,
                        **params: Any) -> list[Generation]:
        self.called = True
        async with self.local._slots:
            return await asyncio.to_thread(self.local.model.generate, prompts, hooks=hooks, **self._params(params))

    def astream(self, prompt: Any, hooks: dict[str, Any] | None = None, **params: Any) -> _LocalStream:
        self.called = True
        return _LocalStream(self, prompt, hooks, self._params(params))


class _LocalStream:
    """A local model's stream, started on the first piece once a generation slot is free."""

    def __init__(self, call: _LocalCall, prompt: Any, hooks: dict[str, Any] | None, params: dict[str, Any]) -> None:
        self.call, self.prompt, self.hooks, self.kwargs = call, prompt, hooks, params
        self._stream: ThreadedStream | None = None
        self._slot = False

    text = property(lambda self: self._stream.text if self._stream else "")
    params = property(lambda self: self._stream.params if self._stream else dict(self.kwargs))
    watermarked = property(lambda self: self._stream.watermarked if self._stream else False)

    def __aiter__(self) -> _LocalStream:
        return self

    async def __anext__(self) -> str:
        if self._stream is None:
            await self.call.local._slots.acquire()
            self._slot = True
            model = self.call.local.model
            self._stream = ThreadedStream(await asyncio.to_thread(model.stream, self.prompt, hooks=self.hooks,
                                                                  **self.kwargs))
        return await self._stream.__anext__()

    async def aclose(self) -> None:
        try:
            if self._stream is not None:
                await self._stream.aclose()
        finally:
            if self._slot:
                self._slot = False
                self.call.local._slots.release()
