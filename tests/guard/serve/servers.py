"""Real servers on loopback for the gateway tests: ``guard serve`` processes, and a scripted OpenAI-style upstream.

``GuardServe`` starts ``guard serve`` as its own process on a free port and reads the address it prints.
``ScriptedUpstream`` is an HTTP server (in a thread) that answers ``/v1/chat/completions`` with fixed text, as a
real OpenAI-compatible server would, and misbehaves on request: the request's ``model`` picks the script:

- ``words``: the text below, word by word, as server-sent events or one JSON answer;
- ``drop``: a few pieces, then the connection is closed in the middle of the chunked body;
- ``slow``: the words, one every ``SLOW_SECONDS``; ``brief``: the first two words, as slowly;
- ``hostile``: a calm start, then ``HOSTILE``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
CLI = [sys.executable, "-c", "import sys; sys.argv[0] = 'guard'; from guard.cli import main; main()"]
SCRIPT = "the river is calm today and the garden is quiet , thank you for asking about it ."
HOSTILE = "the river is calm today . you are a horrible , stupid , disgusting idiot and I hate you ."
SLOW_SECONDS = 0.4


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class GuardServe:
    """``guard serve ARGS`` with ``GUARD_HOME=home``, started; ``wait()`` until it says where it listens (with
    ``--port N`` that address is ``url`` at once)."""

    def __init__(self, args: list[str], home: Path, env: dict[str, str] | None = None) -> None:
        self.home = home
        environment = {**os.environ, "GUARD_HOME": str(home), **(env or {})}
        environment["PYTHONPATH"] = os.pathsep.join([str(REPO), environment.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen([*CLI, *args], env=environment, cwd=home, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.lines: list[str] = []
        self._ready = threading.Event()
        port = args[args.index("--port") + 1] if "--port" in args else "0"
        self.url = "" if port == "0" else f"http://127.0.0.1:{port}"
        self._started = False
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                self.url, self._started = found.group(1), True
                self._ready.set()
        self._ready.set()

    def wait(self, timeout: float = 120) -> "GuardServe":
        if not self._ready.wait(timeout) or not self._started:
            self.proc.kill()
            raise RuntimeError("guard serve did not start:\n" + "".join(self.lines))
        return self

    @property
    def log(self) -> str:
        return "".join(self.lines)

    def stop(self, timeout: float = 60) -> int:
        """SIGTERM, then wait: the exit code."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise


class _QuietServer(ThreadingHTTPServer):
    """A client that leaves mid-answer (the gateway dropping a cancelled stream) is expected here, not an error."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ScriptedUpstream:
    """An OpenAI-style server on a free loopback port that plays ``SCRIPT`` (see the module docstring)."""

    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.server = _QuietServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self):
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                upstream.requests.append(body)
                words = [w + " " for w in (HOSTILE if body["model"] == "hostile" else SCRIPT).split()]
                if not body.get("stream"):
                    return self._json({"id": "chatcmpl-scripted", "object": "chat.completion", "created": 1,
                                       "model": body["model"], "choices": [{"index": 0, "finish_reason": "stop",
                                       "message": {"role": "assistant", "content": "".join(words)}}]})
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.send_header("transfer-encoding", "chunked")
                self.end_headers()
                script = body["model"]
                words = words[:2] if script == "brief" else words
                for i, word in enumerate(words):
                    if script == "drop" and i == 6:
                        self.wfile.write(b"40\r\ndata: {\"trunc")  # half a chunk, then the connection goes
                        self.wfile.flush()
                        self.connection.shutdown(socket.SHUT_RDWR)
                        self.close_connection = True
                        return
                    self._event({"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1,
                                 "model": script, "choices": [{"index": 0, "delta": {"content": word},
                                                               "finish_reason": None}]})
                    if script in ("slow", "brief"):
                        time.sleep(SLOW_SECONDS)
                self._event({"id": "chatcmpl-scripted", "object": "chat.completion.chunk", "created": 1,
                             "model": script, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
                self._chunk(b"data: [DONE]\n\n")
                self._chunk(b"")

            def _json(self, data: dict) -> None:
                raw = json.dumps(data).encode()
                self.send_response(200)
                self.send_header("content-type", "application/json")
                self.send_header("content-length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _event(self, data: dict) -> None:
                self._chunk(b"data: " + json.dumps(data).encode() + b"\n\n")

            def _chunk(self, data: bytes) -> None:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.flush()

        return Handler


def readme_block(name: str) -> str:
    """The code block the README marks ``<!-- README test: NAME -->``, run by the tests as written."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    found = re.search(rf"<!-- README test: {re.escape(name)} -->\s*```\w*\n(.*?)```", text, re.S)
    assert found, f"README.md has no block marked {name!r}"
    return found.group(1)
