"""The gateway's HTTP application (Starlette): callers, limits, and completions run through the guard pipeline.

``POST /v1/chat/completions`` and ``POST /v1/completions``, streamed or not, go through ``guard.pipeline.aio``:
the prompt is checked before the backend is called, the output while a stream is held back and again whole, and
every attempt (refused, failed or left early by its client) is logged. ``GET /v1/models`` lists the backend's
models, ``GET /v1/guard/records/{record_id}`` returns a record with its inclusion proof and, while this process
keeps it, its DSSE envelope, and ``GET /health`` answers without a key.

A streamed response is prepared before its first byte: the gateway waits for the first piece the policy
releases, so a refused prompt, or an upstream that fails at once, is a plain HTTP error the client libraries
raise. After that, a failure or a refusal is an error event in the stream.
"""

from __future__ import annotations

import asyncio
import re
import sys
from collections import OrderedDict
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.errors import InputError
from guard.pipeline.aio import AsyncGuardedStream, attempts
from guard.pipeline.guard import Guard, GuardedResult
from guard.serve import protocol
from guard.serve.backends import Call, UpstreamError
from guard.serve.callers import Authenticator
from guard.serve.protocol import CompletionRequest, ErrorResponse

ENVELOPES_KEPT = 4096  # DSSE envelopes served by /v1/guard/records (about 3 KB each); the log keeps their digests
WORKER_THREADS = 64  # detectors, signing and the log's writes run here, off the event loop
SHUTDOWN_POLLS = 200  # at shutdown, wait up to 10 s (polls of 50 ms) for cancelled requests to log their attempts
_RECORD_ID = re.compile(r"[0-9a-f]{16}")


class Gateway:
    """One gateway: a Guard (policy, log, keys), a backend, the callers' keys and the request limits."""

    def __init__(self, guard: Guard, backend: Any, auth: Authenticator, *, model_name: str, check_every: int,
                 window: int, max_body_bytes: int, on_ready: Any = None) -> None:
        self.guard, self.backend, self.auth, self.model_name = guard, backend, auth, model_name
        self.check_every, self.window, self.max_body_bytes = check_every, window, max_body_bytes
        self.on_ready = on_ready
        self.envelopes: OrderedDict[str, dict[str, Any]] = OrderedDict()
        self._executor: ThreadPoolExecutor | None = None
        self._in_flight = 0  # completions not yet finished, streams included

    def app(self) -> Starlette:
        routes = [
            Route("/v1/chat/completions", self.chat_completions, methods=["POST"]),
            Route("/v1/completions", self.completions, methods=["POST"]),
            Route("/v1/models", self.models, methods=["GET"]),
            Route("/v1/guard/records/{record_id}", self.record, methods=["GET"]),
            Route("/health", self.health, methods=["GET"]),
        ]
        return Starlette(routes=routes, lifespan=self.lifespan, exception_handlers={HTTPException: _http_error})

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[None]:
        self._executor = ThreadPoolExecutor(WORKER_THREADS, thread_name_prefix="guard-serve")
        asyncio.get_running_loop().set_default_executor(self._executor)
        await self.backend.start()
        if self.on_ready is not None:
            self.on_ready()
        try:
            yield
        finally:
            # uvicorn cancels requests still running when its grace period ends, then shuts down at once: let
            # them log their attempts (without waiting on anything, they take moments) before the log closes.
            for _ in range(SHUTDOWN_POLLS):
                if not self._in_flight:
                    break
                await asyncio.sleep(0.05)
            await self.backend.aclose()
            self.close()

    def close(self) -> None:
        """Finish every record being written, sign a checkpoint over them, and close the log."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)  # writes of requests cancelled at shutdown complete here
        log = self.guard.log
        latest = log.latest_checkpoint()
        if log.size() > (latest.checkpoint.size if latest else 0):
            log.checkpoint(self.guard.keys.log_private_key())
        log.close()

    # -- routes ------------------------------------------------------------------------------------------

    async def chat_completions(self, request: Request) -> Response:
        return await self._complete(request, "chat")

    async def completions(self, request: Request) -> Response:
        return await self._complete(request, "completion")

    async def models(self, request: Request) -> Response:
        try:
            self._authorize(request)
            try:
                return JSONResponse(await self.backend.models())
            except UpstreamError as exc:
                raise ErrorResponse(502, f"upstream: {exc}", type="upstream_error") from None
            except Exception as exc:  # noqa: BLE001 - a transport error of the upstream
                raise ErrorResponse(502, f"upstream unreachable: {type(exc).__name__}", type="upstream_error") \
                    from None
        except ErrorResponse as exc:
            return _error(exc)

    async def record(self, request: Request) -> Response:
        try:
            self._authorize(request)
            record_id = request.path_params["record_id"]
            found = await asyncio.to_thread(self._lookup, record_id) if _RECORD_ID.fullmatch(record_id) else None
            if found is None:
                raise ErrorResponse(404, f"no record {record_id!r} in this gateway's log", code="record_not_found")
            return JSONResponse(found)
        except ErrorResponse as exc:
            return _error(exc)

    async def health(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    # -- completions -------------------------------------------------------------------------------------

    async def _complete(self, request: Request, kind: protocol.Kind) -> Response:
        self._in_flight += 1
        streaming = False
        try:
            self._authorize(request)
            req = protocol.parse(kind, await self._body(request))
            call = self.backend.call(req)
            if not req.stream:
                return await self._once(req, call)
            response = await self._stream(req, call)
            streaming = True  # from here the response counts itself out when it is done
            return response
        except ErrorResponse as exc:
            return _error(exc)
        finally:
            if not streaming:
                self._in_flight -= 1

    async def _once(self, req: CompletionRequest, call: Call) -> Response:
        [result], error = await attempts(self.guard, call, [req.prompt], **req.recorded())
        if error is not None:
            raise self._failure(error, result)
        self._keep(result)
        if result.blocked:
            raise protocol.refusal(result, output=call.called)
        body = protocol.response(req, call.response, result.text, result, self.model_name)
        return JSONResponse(body, headers=protocol.guard_headers(result))

    async def _stream(self, req: CompletionRequest, call: Call) -> Response:
        stream = AsyncGuardedStream(self.guard, call, req.prompt, check_every=self.check_every,
                                    window=self.window, params=req.recorded())
        try:
            first = await anext(stream, None)
        except Exception as exc:  # logged by the stream (its result) before it reached us
            if stream.result is None:
                raise
            raise self._failure(exc, stream.result) from None
        except BaseException:
            await stream.aclose()
            raise
        if first is None and stream.result is not None and stream.result.blocked:
            self._keep(stream.result)
            raise protocol.refusal(stream.result, output=call.called)
        return EventStream(self._events(req, call, stream, first), on_close=self._stream_closed)

    def _stream_closed(self) -> None:
        self._in_flight -= 1

    async def _events(self, req: CompletionRequest, call: Call, stream: AsyncGuardedStream,
                      first: str | None) -> AsyncIterator[bytes]:
        writer = None
        try:
            if first is not None:
                writer = self._writer(req, call)
                yield writer.piece(first)
                async for piece in stream:
                    yield writer.piece(piece)
            result = stream.result
            self._keep(result)
            if result.blocked:
                yield protocol.event(protocol.refusal(result, output=True).body())
                return
            writer = writer or self._writer(req, call)
            yield writer.finish(call.meta.get("finish_reason") or "stop", result)
            if req.include_usage:
                yield writer.usage(call.meta.get("usage"))
            yield protocol.DONE
        except Exception as exc:  # the stream logged it (its result) before it reached us
            if stream.result is None:
                raise
            yield protocol.event(self._failure(exc, stream.result).body())
        finally:
            await stream.aclose()

    def _writer(self, req: CompletionRequest, call: Call) -> protocol.ChunkWriter:
        meta = call.meta
        writer = protocol.ChunkWriter(req.kind, meta.get("id") or protocol.new_id(req.kind),
                                      meta.get("model") or req.model or self.model_name)
        if meta.get("created"):
            writer.created = int(meta["created"])
        return writer

    # -- helpers -----------------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> str:
        caller = self.auth.caller(request.headers.get("authorization"))
        if caller is None:
            raise ErrorResponse(401, "no valid API key: send `Authorization: Bearer <key>` with a key from "
                                     "`guard serve keys add`", code="invalid_api_key")
        return caller

    async def _body(self, request: Request) -> bytes:
        """The request body, refused (413) as soon as it is longer than the limit."""
        limit = self.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            raise ErrorResponse(413, f"request body larger than {limit} bytes", code="request_too_large")
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > limit:
                raise ErrorResponse(413, f"request body larger than {limit} bytes", code="request_too_large")
        return bytes(body)

    def _keep(self, result: GuardedResult) -> None:
        """Keep the result's envelope for ``/v1/guard/records``, the oldest leaving first."""
        if result.signature is not None:
            self.envelopes[result.record_id] = result.signature
            while len(self.envelopes) > ENVELOPES_KEPT:
                self.envelopes.popitem(last=False)

    def _lookup(self, record_id: str) -> dict[str, Any] | None:
        log = self.guard.log
        index = log.find(record_id)
        if index is None:
            return None
        return {"record_id": record_id, "log_index": index, "record": log.get(index).data,
                "inclusion_proof": log.inclusion_proof(index).to_dict(), "envelope": self.envelopes.get(record_id)}

    def _failure(self, cause: Exception, result: GuardedResult) -> ErrorResponse:
        """The error a caller gets for an attempt that ``cause`` cut short (logged as ``result``)."""
        import httpx2

        self._keep(result)
        info, headers = protocol.guard_info(result), protocol.guard_headers(result)
        if isinstance(cause, UpstreamError):
            error = cause.body or {}
            status = cause.status if 400 <= cause.status < 500 else 502
            return ErrorResponse(status, f"upstream: {cause}", type=error.get("type") or "upstream_error",
                                 code=error.get("code"), param=error.get("param"), guard=info, headers=headers)
        if isinstance(cause, httpx2.TimeoutException):
            return ErrorResponse(504, "upstream timed out", type="upstream_error", code="upstream_timeout",
                                 guard=info, headers=headers)
        if isinstance(cause, httpx2.TransportError):
            return ErrorResponse(502, f"upstream connection failed: {type(cause).__name__}", type="upstream_error",
                                 code="upstream_unavailable", guard=info, headers=headers)
        if isinstance(cause, InputError):  # e.g. a conversation for a model without a chat template
            return ErrorResponse(400, str(cause), guard=info, headers=headers)
        print(f"guard serve: generation failed: {type(cause).__name__}: {cause}", file=sys.stderr)
        return ErrorResponse(500, "the model failed; the attempt is logged", type="server_error", guard=info,
                             headers=headers)


class EventStream(StreamingResponse):
    """A server-sent event stream whose events are always closed, also when the client leaves or the server
    stops: closing them is what logs a stream that ended early."""

    media_type = "text/event-stream"

    def __init__(self, events: AsyncIterator[bytes], on_close: Any) -> None:
        super().__init__(events, headers={"cache-control": "no-cache", "x-accel-buffering": "no"})
        self.on_close = on_close

    async def stream_response(self, send: Any) -> None:
        import anyio

        try:
            await super().stream_response(send)
        finally:
            try:
                with anyio.CancelScope(shield=True):
                    await self.body_iterator.aclose()
            finally:
                self.on_close()


def _error(exc: ErrorResponse) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 500)
    return _error(ErrorResponse(status, str(getattr(exc, "detail", "")) or "error", code=None))
