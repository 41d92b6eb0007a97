"""A real uvicorn server in a thread, a small cookie-keeping HTTP client, and the log the review tests read."""

from __future__ import annotations

import http.cookiejar
import json
import re
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

PASSWORD = "correct horse battery staple"
XSS_PROMPT = '<script>window.__xss = "prompt"</script><img src=x onerror="window.__xss = \'prompt-img\'">'
XSS_LABEL = '<img src=x onerror="window.__xss = \'label\'">'
HOSTILE = "You are a horrible, stupid, disgusting idiot and I hate you."
POLICY = """\
name: review-test
prompt_storage: plain
log: {checkpoint_every: 1}
stages:
  prompt:
    - detector: sentiment
      thresholds: {negative: 0.6}
      action: flag
  output:
    - detector: sentiment
      thresholds: {negative: 0.5}
      action: regenerate
      max_attempts: 2
"""


class LiveServer:
    """``app`` served by uvicorn on 127.0.0.1 and a free port, in a thread, until ``stop``."""

    def __init__(self, app) -> None:
        import uvicorn

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the review server did not start")
            time.sleep(0.02)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    url: str
    set_cookies: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def csrf(self) -> str:
        return re.search(r'name="csrf" value="([^"]+)"', self.text).group(1)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


@dataclass
class Client:
    """An HTTP client with its own cookies; redirects are returned, not followed."""

    base: str
    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)

    def __post_init__(self) -> None:
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar), _NoRedirect)

    def request(self, method: str, path: str, data: bytes | None = None, headers: dict | None = None) -> Response:
        req = urllib.request.Request(self.base + path, data=data, method=method, headers=headers or {})
        try:
            with self.opener.open(req, timeout=60) as r:
                return Response(r.status, {k.lower(): v for k, v in r.headers.items()}, r.read(), r.url,
                                r.headers.get_all("set-cookie") or [])
        except urllib.error.HTTPError as e:
            return Response(e.code, {k.lower(): v for k, v in e.headers.items()}, e.read(), e.url,
                            e.headers.get_all("set-cookie") or [])

    def get(self, path: str) -> Response:
        return self.request("GET", path)

    def post(self, path: str, fields: dict[str, str]) -> Response:
        return self.request("POST", path, urllib.parse.urlencode(fields).encode(),
                            {"content-type": "application/x-www-form-urlencoded"})

    def upload(self, path: str, files: dict[str, tuple[str, bytes]]) -> Response:
        boundary = secrets.token_hex(16)
        parts = []
        for name, (filename, data) in files.items():
            parts.append(f'--{boundary}\r\ncontent-disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                         f"content-type: application/octet-stream\r\n\r\n".encode() + data + b"\r\n")
        body = b"".join(parts) + f"--{boundary}--\r\n".encode()
        return self.request("POST", path, body, {"content-type": f"multipart/form-data; boundary={boundary}"})

    def sign_in(self, username: str, password: str = PASSWORD) -> Response:
        page = self.get("/login")
        return self.post("/login", {"csrf": page.csrf(), "username": username, "password": password,
                                    "next": "/incidents"})


@dataclass
class ReviewLog:
    """A log made by the real pipeline, and what the tests look for in it."""

    log_url: str
    keys_dir: Path
    policy_file: Path
    image_file: Path
    text_file: Path
    envelope_file: Path
    indices: dict[str, int]


def build_review_log(folder: Path, log_url: str | None = None) -> ReviewLog:
    """Guarded outputs of every kind (allowed, flagged, blocked, an image with C2PA and watermark), a record whose
    prompt and label are script injections, and an admin and a reviewer account."""
    import json as _json

    from PIL import Image
    from skimage import data as bundled

    from generators.callable import CallableGenerator
    from guard.pipeline.guard import Guard
    from guard.provenance.record import ProvenanceRecord
    from guard.review.auth import Accounts
    from guard.review.store import ReviewStore
    from guard.signing.keys import KeyStore

    folder.mkdir(parents=True, exist_ok=True)
    keys = KeyStore(folder / "keys")
    keys.init()
    policy_file = folder / "review-test.yaml"
    policy_file.write_text(POLICY)
    log_url = log_url or str(folder / "provenance.db")
    guard = Guard(policy_file, log=log_url, keys=keys)
    text = guard.wrap(CallableGenerator(lambda prompt: f"Thank you for asking about {prompt}. It is a lovely topic.",
                                        model_id="support-assistant"))
    indices: dict[str, int] = {}
    allowed = text("lighthouses")
    indices["allowed"] = allowed.index
    polite = guard.wrap(CallableGenerator(lambda prompt: "Lighthouses guide ships safely to harbour.",
                                          model_id="support-assistant"))
    indices["flagged"] = polite("I hate this horrible, stupid question about lighthouses").index
    blocked = guard.wrap(CallableGenerator(lambda prompt: HOSTILE, model_id="support-assistant"))("anything")
    indices["blocked"] = blocked.index  # the second attempt; the first is its parent
    indices["first_attempt"] = guard.log.find(guard.log.get(blocked.index).data["parent"])
    indices["xss_prompt"] = text(XSS_PROMPT).index
    astronaut = Image.fromarray(bundled.astronaut()).resize((256, 256))
    image = guard.wrap(CallableGenerator(lambda prompt: astronaut.copy(), model_id="poster-generator"))(
        "an astronaut")
    indices["image"] = image.index
    indices["xss_label"] = guard.log.append(ProvenanceRecord(
        media_type="text/plain; charset=utf-8", generator={"name": "callable", "model_id": "hostile-classifier"},
        verdict="flag", policy={"name": "external", "sha256": "0" * 64}, actions=["output:flag"],
        scores=[{"detector": "classifier", "label": XSS_LABEL, "value": 0.99, "stage": "output"}])).index
    guard.log.checkpoint(keys.log_private_key())
    image_file = folder / "astronaut.png"
    image_file.write_bytes(image.file_bytes)
    text_file = folder / "answer.txt"
    text_file.write_text(allowed.text, encoding="utf-8")
    envelope_file = folder / "answer.txt.dsse.json"
    envelope_file.write_text(_json.dumps(allowed.signature))
    accounts = Accounts(ReviewStore(guard.log), profile="CHEAPEST")  # real argon2id, test-sized
    accounts.add("admin", PASSWORD, "admin")
    accounts.add("ana", PASSWORD, "reviewer")
    guard.log.close()
    return ReviewLog(log_url, folder / "keys", policy_file, image_file, text_file, envelope_file, indices)
