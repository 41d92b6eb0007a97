"""The review app in a real browser: headless Chromium from the system packages, driven by Playwright.

Skipped when Chromium or Playwright is missing, unless ``GUARD_REQUIRE_CHROMIUM`` is set (CI sets it).
"""

from __future__ import annotations

import os
import shutil

import pytest

from tests.guard.review.helpers import PASSWORD, XSS_LABEL, XSS_PROMPT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _skip(reason: str) -> None:
    if os.environ.get("GUARD_REQUIRE_CHROMIUM"):
        pytest.fail(f"GUARD_REQUIRE_CHROMIUM is set but {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser():
    if CHROMIUM is None:
        _skip("chromium is not installed (apt-get install chromium)")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _skip("playwright is not installed (pip install playwright)")
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    page.dialogs = dialogs
    yield page
    context.close()


def _sign_in(page, base: str, user: str = "ana") -> None:
    page.goto(base + "/login")
    page.fill("input[name=username]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url("**/incidents")


def test_a_reviewer_who_is_not_signed_in_is_sent_to_sign_in_and_back(page, server, review_log):
    index = review_log.indices["blocked"]
    page.goto(f"{server.url}/records/{index}")
    assert "/login?next=" in page.url and page.locator("h1").inner_text() == "Sign in"
    page.fill("input[name=username]", "ana")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/records/{index}")
    assert page.locator("h1").inner_text().startswith(f"Record {index}")


def test_sign_in_filter_and_open_an_incident(page, server, review_log):
    _sign_in(page, server.url)
    rows = page.locator("table.records tbody tr")
    assert rows.count() == 4  # flagged, two blocked attempts and the hostile label, all pending
    page.goto(server.url + "/log")
    page.select_option("select[name=verdict]", "block")  # applies at once (progressive enhancement)
    page.wait_for_url("**/log?verdict=block**")
    verdicts = page.locator("table.records tbody .verdict").all_inner_texts()
    assert verdicts == ["block", "block"]
    page.goto(server.url + "/incidents")
    page.click(f"a[href='/records/{review_log.indices['flagged']}']")
    page.wait_for_url(f"**/records/{review_log.indices['flagged']}")
    rule = page.locator("section:has(h2:text('Rule that fired')) tbody tr").inner_text()
    assert "prompt" in rule and "sentiment" in rule and "0.905" in rule and "0.600" in rule and "flag" in rule
    assert "✔" in page.locator("section:has(h2:text('Inclusion proof')) p").first.inner_text()


def test_record_a_decision_and_see_it_in_the_log(page, server, review_log):
    index = review_log.indices["flagged"]
    _sign_in(page, server.url)
    page.goto(f"{server.url}/records/{index}")
    page.check("input[value=overturn]")
    page.fill("textarea[name=comment]", "The user quoted a review; <b>not</b> hostile.")
    page.click("text=Record decision")
    page.wait_for_url(f"**/records/{index}#decisions")
    decision = page.locator("article.decision").first.inner_text()
    assert "overturn" in decision and "ana" in decision and "<b>not</b> hostile" in decision
    assert page.locator("h1 .status").inner_text() == "overturn"
    page.goto(server.url + "/log")
    first = page.locator("table.records tbody tr").first.inner_text()
    assert "review" in first and f"overturn record {index}" in first
    page.goto(server.url + "/incidents?status=overturn")
    assert page.locator("table.records tbody tr").count() == 1
    page.goto(server.url + "/incidents")  # no longer pending
    assert page.locator(f"a[href='/records/{index}']").count() == 0


def test_verify_an_uploaded_demo_image_without_an_account(page, server, review_log):
    page.goto(server.url + "/verify")
    page.set_input_files("input[name=file]", str(review_log.image_file))
    assert "bytes" in page.locator("[data-size]").inner_text()
    page.click("button[type=submit]")
    page.wait_for_load_state()
    result = page.locator("section.result").inner_text()
    assert "✔ Verified" in result and "found, leads to record" in result
    assert f"entry {review_log.indices['image']} of the log" in result
    assert "verified against the signed checkpoint" in result


def test_script_in_a_prompt_or_a_label_does_not_run(page, server, review_log):
    _sign_in(page, server.url)
    page.goto(f"{server.url}/records/{review_log.indices['xss_prompt']}")
    assert page.locator("pre.prompt").inner_text() == XSS_PROMPT
    page.goto(f"{server.url}/incidents?status=")
    assert XSS_LABEL in page.locator("table.records").inner_text()
    page.goto(f"{server.url}/records/{review_log.indices['xss_label']}")
    assert XSS_LABEL in page.locator("section:has(h2:text('Scores'))").inner_text()
    assert page.evaluate("window.__xss") is None and page.dialogs == []


def test_a_form_without_its_csrf_token_is_refused(page, server, review_log):
    from guard.provenance.log import ProvenanceLog

    size = ProvenanceLog(review_log.log_url).size()
    _sign_in(page, server.url)
    page.goto(f"{server.url}/records/{review_log.indices['blocked']}")
    page.evaluate("document.querySelector('form.decide input[name=csrf]').remove()")
    page.check("input[value=confirm]")
    page.click("text=Record decision")
    page.wait_for_load_state()
    assert "CSRF token is missing or wrong" in page.locator("main").inner_text()
    assert ProvenanceLog(review_log.log_url).size() == size
