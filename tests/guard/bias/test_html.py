from __future__ import annotations

import base64
import re

from guard.bias.audit import Completion, analyse
from guard.bias.html import render_html_page, render_html_section
from guard.bias.prompts import AuditPrompt
from guard.policy import BiasPolicy


def test_section_escapes_names_and_embeds_one_chart_per_axis():
    prompts = [AuditPrompt(f"p{i}", "axis<1>", "<script>x</script>" if i % 2 else "plain") for i in range(40)]
    completions = [Completion(i, 0, "<b>out</b>", 0.9 if i % 2 else 0.0, None, 0.0, "neutral") for i in range(40)]
    result = analyse(prompts, completions, BiasPolicy(n_boot=200))
    assert [f.group for f in result.flags] == ["<script>x</script>"]
    section = render_html_section(result)
    assert section.startswith('<section class="bias-audit">') and section.endswith("</section>")
    assert "<script>" not in section and "&lt;script&gt;x&lt;/script&gt;" in section
    assert "&lt;b&gt;out&lt;/b&gt;" in section  # the worst completions are quoted, escaped
    [image] = re.findall(r'base64,([A-Za-z0-9+/=]+)"', section)
    assert base64.b64decode(image).startswith(b"\x89PNG")
    page = render_html_page(result)
    assert page.startswith("<!doctype html>") and section in page
