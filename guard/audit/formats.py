"""Render an ``AuditData`` as one self-contained HTML page, as Markdown, or as JSON.

The HTML has no script, no external file and no web font: charts are ``data:`` PNGs with their pixel size in
``width``/``height`` attributes (so the layout is fixed before they decode), and the page prints well. Every
chart is followed by the numbers it shows, for readers who cannot see it and for copying into a reply.
"""

from __future__ import annotations

import base64
import html
import json
import re
import struct
from datetime import datetime, timezone
from typing import Any

from guard.audit.data import AuditData

LIMITS = (
    "The log holds hashes of outputs, not the outputs: it cannot show what an output said or showed, only how "
    "it was scored, marked and signed.",
    "Outputs made outside the guard (another tool, a direct model call) leave no record: the report covers only "
    "what passed through it.",
    "A watermark or signature recorded at generation time says nothing about whether it survived later edits; "
    "use `guard verify` or `guard trace` on the file.",
    "Detector scores are only as good as the detectors: a low score is not proof of harmlessness.",
    "Whether people were told they were talking to an AI system, and how outputs were labelled where they were "
    "published, happens outside the log.",
)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _pct(part: int, whole: int) -> str:
    return "–" if not whole else f"{100 * part / whole:.1f}%"


def _png_size(b64: str) -> tuple[int, int]:
    head = base64.b64decode(b64[:44])
    width, height = struct.unpack(">II", head[16:24])
    return width, height


def to_json(data: AuditData) -> str:
    return json.dumps({"generated_at": _now(), **data.to_dict()}, indent=2, sort_keys=True, default=str) + "\n"


# -- HTML ------------------------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1c2833;max-width:1180px;
margin:24px auto;padding:0 16px;line-height:1.45;background:#fff}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;border-bottom:1px solid #d5d8dc;padding-bottom:.2rem;
margin-top:2rem}.meta{color:#566573;font-size:.9rem}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:1rem 0}.card{border:1px solid #d5d8dc;border-radius:6px;
padding:8px 14px;min-width:130px}.card b{display:block;font-size:1.3rem}.card span{font-size:.8rem;color:#566573}
.ok{color:#1e8449}.bad{color:#c0392b}.warn{color:#b9770e}
table{border-collapse:collapse;font-size:.85rem;margin:.6rem 0}td,th{border:1px solid #d5d8dc;padding:3px 8px;
text-align:left;vertical-align:top}th{background:#f4f6f7}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:.6rem 0}figure img{max-width:100%;height:auto}pre{background:#f4f6f7;padding:8px;overflow-x:auto;
font-size:.8rem}code{font-size:.85em}
@media print{h2{break-after:avoid}figure{break-inside:avoid}}
"""


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    e = html.escape
    head = "".join(f"<th>{e(h)}</th>" for h in headers)
    body = "".join(
        "<tr>" + "".join(f'<td{" class=n" if i in numeric else ""}>{e("–" if v is None else str(v))}</td>'
                         for i, v in enumerate(row)) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _figure(name: str, b64: str | None, alt: str) -> str:
    if b64 is None:
        return '<p class="meta">Nothing to chart.</p>'
    width, height = _png_size(b64)
    return (f'<figure data-chart="{name}"><img alt="{html.escape(alt)}" width="{width}" height="{height}" '
            f'src="data:image/png;base64,{b64}"></figure>')


def render_html(data: AuditData, charts: dict[str, str | None], *, title: str = "Provenance audit") -> str:
    """The whole report as one HTML document."""
    e = html.escape
    d = data.to_dict()
    total_verdicts: dict[str, int] = {}
    for (_, verdict), n in data.verdicts.items():
        total_verdicts[verdict] = total_verdicts.get(verdict, 0) + n
    delivered = sum(data.delivered.values())
    marked = sum(data.marked_any.values())
    signed = sum(data.signed.values())
    integrity = data.integrity
    if integrity is None:
        status, cls = "not checked", "warn"
    elif integrity.verified is None:
        status, cls = "not verified (no key)", "warn"
    else:
        status, cls = ("verified", "ok") if integrity.verified else ("FAILED", "bad")
    f = data.filters
    window = f"{f.since or 'the beginning'} to {f.until or 'now'}" if (f.since or f.until) else "the whole log"
    parts = [
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{e(title)}</title>'
        f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{_CSS}</style></head><body>',
        f"<h1>{e(title)}</h1>",
        f'<p class="meta">Log <code>{e(data.log)}</code> (origin <code>{e(data.origin)}</code>, {data.log_size} '
        f"records). Covers {e(window)}: {data.records} records from {e(str(data.first))} to {e(str(data.last))}. "
        f"Generated {e(_now())}.</p>",
        '<div class="cards">',
        f"<div class=card><b>{data.records}</b><span>records</span></div>",
        f"<div class=card><b>{delivered}</b><span>outputs delivered</span></div>",
        *(f"<div class=card><b>{total_verdicts.get(v, 0)}</b><span>{v}</span></div>"
          for v in ("flag", "redact", "block")),
        f"<div class=card><b>{_pct(marked, delivered)}</b><span>delivered outputs watermarked or signed</span></div>",
        f"<div class=card><b>{_pct(signed, delivered)}</b><span>signed</span></div>",
        f"<div class=card><b>{data.records_with_errors}</b><span>records with detector errors</span></div>",
        f'<div class=card><b class="{cls}">{e(status)}</b><span>log integrity</span></div>',
        "</div>",
        "<h2>Volume over time</h2>",
        _figure("volume", charts.get("volume"), "records over time, stacked by verdict"),
        "<h2>Verdicts and actions by category</h2>",
        _figure("verdicts", charts.get("verdicts"), "verdicts per output category"),
        _table(["category", "verdict", "records"], [[r["category"], r["verdict"], r["count"]] for r in d["verdicts"]],
               {2}),
        _figure("actions", charts.get("actions"), "policy actions per category"),
        _table(["category", "action", "records"], [[r["category"], r["action"], r["count"]] for r in d["actions"]],
               {2}) if d["actions"] else "<p>No policy action was taken.</p>",
        f"<p>{data.regenerated} records are regenerations (attempt 2 or later).</p>",
        "<h3>Rules that fired</h3>",
        _table(["rule", "detector", "label", "stage", "action", "records"],
               [[r["rule"], r["detector"], r["label"], r["stage"], r["action"], r["count"]] for r in d["rules_fired"]],
               {5}) if d["rules_fired"] else "<p>No rule fired.</p>",
        "<h2>Score distributions</h2>",
        _figure("scores", charts.get("scores"), "histograms of detector scores"),
        _table(["detector", "label", "stage", "scores", "mean", "p50 ≤", "p95 ≤", "max"],
               [[s["detector"], s["label"], s["stage"], s["count"], s["mean"], s["p50_at_most"], s["p95_at_most"],
                 s["max"]] for s in d["scores"]], {3, 4, 5, 6, 7}),
        "<h2>Marking: watermarks and signatures</h2>",
        _figure("marking", charts.get("marking"), "share of delivered outputs watermarked and signed"),
        _table(["category", "delivered", "watermarked", "signed", "either", "schemes", "signatures"],
               [[c, m["delivered"], f'{m["watermarked"]} ({_pct(m["watermarked"], m["delivered"])})',
                 f'{m["signed"]} ({_pct(m["signed"], m["delivered"])})',
                 f'{m["watermarked_or_signed"]} ({_pct(m["watermarked_or_signed"], m["delivered"])})',
                 ", ".join(f"{k}: {v}" for k, v in m["watermark_schemes"].items()),
                 ", ".join(f"{k}: {v}" for k, v in m["signature_types"].items())] for c, m in d["marking"].items()],
               {1}),
        "<h2>Detector errors</h2>",
        _figure("errors", charts.get("errors"), "detector failures by detector and stage") if data.errors else
        "<p>No detector failed.</p>",
        _table(["detector", "stage", "failures", "examples"],
               [[r["detector"], r["stage"], r["count"], " | ".join(r["examples"])] for r in d["detector_errors"]],
               {2}) if data.errors else "",
        "<h2>Models and policies</h2>",
        _table(["generator", "model", "revision", "weights hash recorded", "records"],
               [[m["generator"], m["model_id"], m["revision"], "yes" if m["weights_pinned"] else "no", m["count"]]
                for m in d["models"]], {4}),
        _table(["policy", "sha256", "records"], [[p["name"], p["sha256"], p["count"]] for p in d["policies"]], {2}),
        _table(["prompt storage", "records"], [[k, v] for k, v in sorted(d["prompt_storage"].items())], {1}),
        _bias_html(data, charts.get("bias")),
        _reviews_html(data),
        _integrity_html(data),
        "<h2>What this report cannot show</h2><ul>",
        *(f"<li>{e(text)}</li>" for text in LIMITS),
        "</ul></body></html>\n",
    ]
    return "\n".join(parts)


def _bias_html(data: AuditData, chart: str | None) -> str:
    bias = data.bias or {}
    head = "<h2>Bias: outcomes by mentioned group</h2>"
    if not bias.get("available"):
        return head + f"<p>{html.escape(bias.get('note', 'not computed'))}.</p>"
    rows = bias.get("rows", [])
    if not rows:
        return head + (f"<p>No record carries bias signals (<code>extra.bias</code>); {bias.get('without_signals', 0)} "
                       "records were read.</p>")
    return head + "\n".join([
        f"<p>Text outputs grouped by the social groups they mention (an output in several groups counts in each; "
        f"<code>none/none</code> is the baseline). Toxic means toxicity ≥ {bias.get('threshold')}. "
        f"{bias.get('without_signals', 0)} records carry no bias signals.</p>",
        _figure("bias", chart, "share of outputs not allowed per mentioned group"),
        _table(["axis", "group", "outputs", "not allowed", "toxic rate", "95% CI", "mean toxicity",
                "negative regard rate"],
               [[r["axis"], r["group"], r["outputs"], r["not_allowed"], r["toxic_rate"],
                 "–" if r["toxic_rate_ci"][0] is None else f"{r['toxic_rate_ci'][0]:.3f}–{r['toxic_rate_ci'][1]:.3f}",
                 r["mean_toxicity"], r["negative_regard_rate"]] for r in rows], {2, 3, 4, 6, 7}),
    ])


def _reviews_html(data: AuditData) -> str:
    head = "<h2>Human review</h2>"
    if not data.reviews:
        return head + "<p>No reviewer decision is in the log for this period (<code>guard review serve</code>).</p>"
    return head + "<p>Decisions of reviewers, appended to the log as records that point to the record reviewed.</p>" + \
        _table(["verdict reviewed", "decision", "decisions"],
               [[v, d, n] for (v, d), n in sorted(data.reviews.items())], {2})


def _integrity_html(data: AuditData) -> str:
    e = html.escape
    integrity = data.integrity
    parts = ["<h2>Log integrity</h2>"]
    if integrity is None:
        return parts[0] + "<p>Verification was not run (<code>--no-verify</code>).</p>"
    cls = "warn" if integrity.verified is None else ("ok" if integrity.verified else "bad")
    parts.append(f'<p class="{cls}"><b>{e(integrity.note)}</b></p>')
    if integrity.report:
        r = integrity.report
        parts.append(_table(
            ["records checked", "root", "checkpoints checked", "first bad record", "first bad checkpoint"],
            [[r["size"], r["root"], r["checkpoints_checked"], r["first_bad_index"], r["first_bad_checkpoint"]]]))
        if r["problems"]:
            parts.append("<ul>" + "".join(f"<li>{e(p)}</li>" for p in r["problems"][:20]) + "</ul>")
    if integrity.checkpoint:
        parts.append(f"<p>Latest signed checkpoint covers {integrity.checkpoint['size']} records; "
                     f"{integrity.uncovered} records were appended after it.</p>"
                     f"<pre>{e(integrity.checkpoint['note'])}</pre>")
    else:
        parts.append('<p class="bad">The log has no signed checkpoint: nothing commits to its contents yet.</p>')
    return "\n".join(parts)


# -- Markdown --------------------------------------------------------------------------------------------------


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()!|~])")


def _md(value: Any) -> str:
    """A string from the log as Markdown text that renders as itself: HTML is escaped (no ``<script>``), and
    Markdown syntax (links, emphasis, code, table pipes) is backslash-escaped; newlines become spaces."""
    text = html.escape(str(value), quote=False).replace("\r", " ").replace("\n", " ")
    return _MD_SPECIAL.sub(r"\\\1", text)


def _fence(text: str) -> str:
    """A fenced code block that ``text`` cannot close early."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


def _md_table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        return "–" if v is None else _md(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def render_markdown(data: AuditData, *, title: str = "Provenance audit") -> str:
    """The report's numbers as Markdown (no charts), for tickets and pull requests."""
    d = data.to_dict()
    delivered = sum(data.delivered.values())
    integrity = data.integrity
    out = [
        f"# {_md(title)}",
        "",
        f"Log {_md(data.log)} (origin {_md(data.origin)}, {data.log_size} records); {data.records} records from "
        f"{_md(data.first)} to {_md(data.last)}. Generated {_now()}.",
        "",
        "## Verdicts and actions",
        _md_table(["category", "verdict", "records"],
                  [[r["category"], r["verdict"], r["count"]] for r in d["verdicts"]]),
        "",
        _md_table(["category", "action", "records"], [[r["category"], r["action"], r["count"]] for r in d["actions"]])
        if d["actions"] else "No policy action was taken.",
        "",
        "## Rules that fired",
        _md_table(["rule", "detector", "label", "stage", "action", "records"],
                  [[r["rule"], r["detector"], r["label"], r["stage"], r["action"], r["count"]]
                   for r in d["rules_fired"]]) if d["rules_fired"] else "No rule fired.",
        "",
        "## Scores",
        _md_table(["detector", "label", "stage", "scores", "mean", "p95 ≤", "max"],
                  [[s["detector"], s["label"], s["stage"], s["count"], s["mean"], s["p95_at_most"], s["max"]]
                   for s in d["scores"]]),
        "",
        "## Marking",
        f"{sum(data.marked_any.values())} of {delivered} delivered outputs are watermarked or signed "
        f"({_pct(sum(data.marked_any.values()), delivered)}).",
        "",
        _md_table(["category", "delivered", "watermarked", "signed"],
                  [[c, m["delivered"], m["watermarked"], m["signed"]] for c, m in d["marking"].items()]),
        "",
        "## Detector errors",
        _md_table(["detector", "stage", "failures", "example"],
                  [[r["detector"], r["stage"], r["count"], (r["examples"] or [""])[0]] for r in d["detector_errors"]])
        if d["detector_errors"] else "No detector failed.",
        "",
        "## Models and policies",
        _md_table(["model", "revision", "weights hash", "records"],
                  [[m["model_id"], m["revision"], "yes" if m["weights_pinned"] else "no", m["count"]]
                   for m in d["models"]]),
        "",
        _md_table(["policy", "sha256", "records"], [[p["name"], p["sha256"], p["count"]] for p in d["policies"]]),
        "",
        "## Bias",
    ]
    bias = data.bias or {}
    if bias.get("rows"):
        out.append(_md_table(["axis", "group", "outputs", "not allowed", "toxic rate"],
                             [[r["axis"], r["group"], r["outputs"], r["not_allowed"], r["toxic_rate"]]
                              for r in bias["rows"]]))
    else:
        out.append(_md(bias.get("note") or "No record carries bias signals."))
    out += ["", "## Human review",
            _md_table(["verdict reviewed", "decision", "decisions"], [[v, d, n] for (v, d), n in
                                                                     sorted(data.reviews.items())])
            if data.reviews else "No reviewer decision is in the log for this period."]
    out += ["", "## Log integrity", _md(integrity.note) if integrity else "Verification was not run."]
    if integrity and integrity.checkpoint:
        out += ["", f"Latest signed checkpoint (size {integrity.checkpoint['size']}, {integrity.uncovered} records "
                    "after it):", "", _fence(integrity.checkpoint["note"].rstrip("\n"))]
    out += ["", "## What this report cannot show", *(f"- {text}" for text in LIMITS), ""]
    return "\n".join(out)
