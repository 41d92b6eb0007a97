"""What every request goes through: security headers, body size limits, rate limits, sessions and CSRF checks.

Pure ASGI and standard library, so the rules are in one place and each is a few lines:

- every response carries a strict Content-Security-Policy (scripts and styles only from this server, no inline
  script, images from this server or ``data:``), ``X-Content-Type-Options``, ``Referrer-Policy`` and
  ``frame-ancestors 'none'``; pages are ``no-store`` (they show evidence and prompts);
- a request body larger than its route's limit is refused with 413 before it is read (declared length) or as soon
  as it passes the limit (streamed);
- rate limits are token buckets per client address, in a bounded table.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
       "base-uri 'none'; frame-ancestors 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class TooLarge(Exception):
    pass


class Guardrails:
    """ASGI middleware: security headers on every response, and a body size limit per request."""

    def __init__(self, app, *, limit_for) -> None:
        self.app = app
        self.limit_for = limit_for  # path -> largest body accepted, in bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        limit = self.limit_for(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        started = False

        async def send_with_headers(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = [h for h in message.get("headers", []) if h[0].lower() not in {k for k, _ in HEADERS}]
                if not any(h[0].lower() == b"cache-control" for h in headers):
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers + HEADERS}
            await send(message)

        if declared is not None and declared.isdigit() and int(declared) > limit:
            return await _too_large(send_with_headers, limit)
        seen = 0

        async def counted_receive():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    raise TooLarge
            return message

        try:
            await self.app(scope, counted_receive, send_with_headers)
        except TooLarge:
            if not started:
                await _too_large(send_with_headers, limit)


async def _too_large(send, limit: int) -> None:
    body = f"request body too large: at most {limit:,} bytes\n".encode()
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class RateLimiter:
    """Token buckets per key (a client address): ``per_minute`` requests a minute, bursts up to ``burst``."""

    def __init__(self, per_minute: float, burst: int | None = None, *, max_keys: int = 10_000) -> None:
        self.rate = per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, int(per_minute)))
        self.max_keys = max_keys
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when the request may go ahead (and counts it), else the seconds until one may."""
        now = time.monotonic()
        with self._lock:
            tokens, last = self._buckets.pop(key, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            wait = 0.0 if tokens >= 1 else (1 - tokens) / self.rate
            self._buckets[key] = (tokens - 1 if wait == 0 else tokens, now)
            while len(self._buckets) > self.max_keys:
                self._buckets.popitem(last=False)
        return wait
