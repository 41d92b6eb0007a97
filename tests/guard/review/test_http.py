"""The review app over real HTTP (uvicorn on loopback): sessions, CSRF, roles, limits, and what the public sees."""

from __future__ import annotations

import json

import pytest

from tests.guard.review.conftest import start
from tests.guard.review.helpers import XSS_LABEL, XSS_PROMPT, Client


def test_pages_need_a_session_and_say_where_to_sign_in(server):
    anonymous = Client(server.url)
    for path in ("/incidents", "/log?verdict=block", "/records/0", "/compliance", "/bias", "/users",
                 "/records/0/evidence.zip"):
        r = anonymous.get(path)
        assert r.status == 303 and r.headers["location"].startswith("/login?next="), path
    assert anonymous.post("/records/0/decision", {"decision": "confirm"}).status == 401
    assert anonymous.get("/verify").status == 200 and anonymous.get("/healthz").json()["ok"]


def test_every_response_carries_the_security_headers(server):
    r = Client(server.url).get("/login")
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "unsafe-inline" not in r.headers["content-security-policy"]
    assert r.headers["x-content-type-options"] == "nosniff" and r.headers["cache-control"] == "no-store"


def test_sign_in_needs_the_form_token_and_the_right_password(server):
    client = Client(server.url)
    assert client.sign_in("ana", "not the password at all").status == 401
    forged = Client(server.url).post("/login", {"username": "ana", "password": "x", "csrf": "forged"})
    assert forged.status == 403
    signed = client.sign_in("ana")
    assert signed.status == 303 and signed.headers["location"] == "/incidents"
    cookie = next(c for c in signed.set_cookies if c.startswith("guard_session="))
    assert "HttpOnly" in cookie and "samesite=lax" in cookie.lower()
    assert client.get("/incidents").status == 200
    page = client.get("/incidents")
    assert client.post("/logout", {"csrf": page.csrf()}).status == 303
    assert client.get("/incidents").status == 303


def test_open_redirects_after_sign_in_are_refused(server):
    client = Client(server.url)
    page = client.get("/login")
    r = client.post("/login", {"csrf": page.csrf(), "username": "ana", "password": "correct horse battery staple",
                               "next": "//evil.example/x"})
    assert r.status == 303 and r.headers["location"] == "/incidents"


def test_a_decision_without_the_csrf_token_is_refused_and_not_logged(server, review_log):
    from guard.provenance.log import ProvenanceLog

    client = Client(server.url)
    client.sign_in("ana")
    size = ProvenanceLog(review_log.log_url).size()
    index = review_log.indices["flagged"]
    for fields in ({"decision": "confirm"}, {"decision": "confirm", "csrf": "guessed"}):
        r = client.post(f"/records/{index}/decision", fields)
        assert r.status == 403 and "CSRF" in r.text
    other = Client(server.url)
    other.sign_in("admin")
    stolen = other.get("/incidents").csrf()  # another session's token does not work either
    assert client.post(f"/records/{index}/decision", {"decision": "confirm", "csrf": stolen}).status == 403
    assert ProvenanceLog(review_log.log_url).size() == size


def test_reviewers_cannot_manage_users(server):
    reviewer = Client(server.url)
    reviewer.sign_in("ana")
    assert reviewer.get("/users").status == 403
    admin = Client(server.url)
    admin.sign_in("admin")
    page = admin.get("/users")
    assert page.status == 200 and "ana" in page.text
    added = admin.post("/users", {"csrf": page.csrf(), "action": "add", "username": "carl", "role": "reviewer",
                                  "password": "another long password"})
    assert added.status == 200 and "added carl" in added.text
    assert Client(server.url).sign_in("carl", "another long password").status == 303


def test_injected_markup_is_shown_as_text(server, review_log):
    client = Client(server.url)
    client.sign_in("ana")
    prompt_page = client.get(f"/records/{review_log.indices['xss_prompt']}").text
    assert XSS_PROMPT not in prompt_page and "&lt;script&gt;window.__xss" in prompt_page
    label_page = client.get("/incidents?status=").text
    assert XSS_LABEL not in label_page and "&lt;img src=x onerror=" in label_page


def test_bad_filters_are_explained(server):
    client = Client(server.url)
    client.sign_in("ana")
    for query, message in (("score_min=2&detector=sentiment", "between 0 and 1"), ("since=yesterday", "ISO 8601"),
                           ("score_min=high&detector=x", "not a number"), ("before=junk", "bad page cursor")):
        r = client.get(f"/log?{query}")
        assert r.status == 400 and message in r.text, query
    assert client.get("/records/999999").status == 404


def test_public_verification_shows_only_public_fields(server, review_log):
    anonymous = Client(server.url)
    r = anonymous.upload("/api/verify", {"file": ("lighthouse.png", review_log.image_file.read_bytes())})
    assert r.status == 200
    report = r.json()
    assert report["ok"] and report["watermark"]["found"] and report["c2pa"]["validation_state"] == "Valid"
    record = report["record"]
    assert record["index"] == review_log.indices["image"] and record["fields"] == {}
    assert record["inclusion"]["verified"] and record["inclusion"]["signed"]
    text = json.dumps({k: v for k, v in report.items() if k != "c2pa"})  # the file's own manifest is the uploader's
    for private in ("verdict", "scores", "generator", "provenance.db", review_log.log_url):
        assert private not in text, private
    signed = anonymous.upload("/api/verify", {"file": ("answer.txt", review_log.text_file.read_bytes()),
                                              "envelope": ("answer.txt.dsse.json",
                                                           review_log.envelope_file.read_bytes())})
    assert signed.json()["ok"] and signed.json()["signature"] == "valid"
    unknown = anonymous.upload("/api/verify", {"file": ("other.txt", b"Nobody here wrote this.")}).json()
    assert not unknown["ok"] and unknown["record"] is None
    assert anonymous.upload("/api/verify", {"file": ("empty.txt", b"")}).status == 400


def test_public_fields_the_operator_lists_are_shown(review_log):
    live = start(review_log, public_fields=("created_at", "generator.model_id"))
    try:
        report = Client(live.url).upload("/api/verify", {"file": ("a.png", review_log.image_file.read_bytes())}).json()
        assert set(report["record"]["fields"]) == {"created_at", "generator.model_id"}
        assert report["record"]["fields"]["created_at"].startswith("20")
    finally:
        live.stop()


def test_prompts_can_never_be_made_public(review_log):
    from core.errors import InputError

    with pytest.raises(InputError, match="never public"):
        start(review_log, public_fields=("prompt.hmac_sha256",))


def test_uploads_are_size_and_rate_limited(review_log):
    live = start(review_log, max_upload_bytes=4096, verify_per_minute=3)
    try:
        client = Client(live.url)
        big = client.upload("/api/verify", {"file": ("big.png", b"\x89PNG" + b"0" * 5_000)})
        assert big.status == 413 and "larger than 4,096 bytes" in big.json()["error"]
        huge = client.upload("/api/verify", {"file": ("huge.png", b"\x89PNG" + b"0" * 500_000)})
        assert huge.status == 413  # refused from its declared length, before it is read
        statuses = [client.upload("/api/verify", {"file": ("t.txt", b"hello there")}).status for _ in range(3)]
        assert 429 in statuses  # 3 a minute, the oversized ones above counted
        limited = client.upload("/api/verify", {"file": ("t.txt", b"hello there")})
        assert limited.status == 429 and int(limited.headers["retry-after"]) >= 1
    finally:
        live.stop()


def test_serve_command_starts_a_real_server(review_log, tmp_path):
    import os
    import socket
    import subprocess
    import sys
    import time

    from tests.fixtures.shared import REPO

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-c", "from guard.cli import main; main()", "review", "serve", "--log",
                             review_log.log_url, "--keys", str(review_log.keys_dir), "--port", str(port)],
                            env={**os.environ, "PYTHONPATH": str(REPO)}, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                assert Client(f"http://127.0.0.1:{port}").get("/healthz").json()["ok"]
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, proc.stderr.read() if proc.poll() else ""
                time.sleep(0.2)
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_guessing_passwords_is_rate_limited(review_log):
    live = start(review_log, signin_per_minute=3)
    try:
        client = Client(live.url)
        statuses = [client.sign_in("ana", f"guess number {i} here").status for i in range(4)]
        assert statuses == [401, 401, 401, 429]
        assert client.sign_in("ana").status == 429  # even the right password waits
    finally:
        live.stop()


def test_record_page_shows_the_regeneration_chain_and_the_rule(server, review_log):
    client = Client(server.url)
    client.sign_in("ana")
    first, final = review_log.indices["first_attempt"], review_log.indices["blocked"]
    page = client.get(f"/records/{final}").text
    assert f'href="/records/{first}">record {first}</a>' in page and "attempt 2" in page
    assert "gave up after 2 attempts" in page and "<b>regenerate</b>" in page
    assert f'href="/records/{final}">record {final}</a>' in client.get(f"/records/{first}").text


def test_evidence_bundle_download_verifies_offline(server, review_log):
    from guard.signing.keys import KeyStore
    from guard.verify.evidence import verify_bundle

    client = Client(server.url)
    client.sign_in("ana")
    r = client.get(f"/records/{review_log.indices['image']}/evidence.zip")
    assert r.status == 200 and r.headers["content-type"] == "application/zip"
    assert f'evidence-{review_log.indices["image"]}.zip' in r.headers["content-disposition"]
    pem = KeyStore(review_log.keys_dir).path("log.pub").read_bytes()
    report = verify_bundle(r.body, trusted_key_pem=pem)
    assert report.ok and report.leaf_index == review_log.indices["image"]
