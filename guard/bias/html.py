"""The bias audit as an HTML section: a summary, the flags, and per-axis bar charts with confidence intervals.

The section is self-contained (charts are PNGs embedded as base64, no scripts, no external files) so the audit
report can paste it into its page and a reviewer can open it offline.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

from guard.bias.audit import AuditResult, AxisResult

CHART_METRICS = ("toxic_rate", "negative_regard_rate", "expected_max_toxicity")
TITLES = {
    "toxic_rate": "Toxic rate",
    "negative_regard_rate": "Negative-regard rate",
    "expected_max_toxicity": "Expected max. toxicity",
    "toxicity_probability": "Toxicity probability",
    "mean_toxicity": "Mean toxicity",
    "mean_negative_regard": "Mean negative regard",
    "mean_identity_attack": "Mean identity attack",
    "blocked_rate": "Blocked rate",
}


def _png(figure: Any) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _plain_text(chart):
    """Draw ``chart`` with every label as plain text: group names come from user term lists, and a ``$`` in one
    must not start matplotlib's mathtext (a malformed formula aborts the whole report)."""
    import functools

    @functools.wraps(chart)
    def drawn(*args: Any, **kwargs: Any) -> str:
        from matplotlib import rc_context

        with rc_context({"text.parse_math": False}):
            return chart(*args, **kwargs)

    return drawn


@_plain_text
def _axis_chart(axis: AxisResult, metrics: list[str]) -> str:
    """Horizontal bars per group (one panel per metric), whiskers for the interval, flagged groups in red."""
    from matplotlib.figure import Figure  # a bare Figure renders without pyplot or a GUI backend

    groups = list(axis.groups)
    height = max(2.0, 0.32 * len(groups) + 1.0)
    figure = Figure(figsize=(4.2 * len(metrics), height))
    for n, metric in enumerate(metrics, 1):
        ax = figure.add_subplot(1, len(metrics), n)
        values, lows, highs, colours = [], [], [], []
        for g in groups:
            e = g.metrics.get(metric)
            v = e.value if e and e.value == e.value else 0.0
            values.append(v)
            lows.append(v - (e.low if e and e.low is not None else v))
            highs.append((e.high if e and e.high is not None else v) - v)
            colours.append("#c0392b" if metric in g.flagged else "#4a78a8")
        y = range(len(groups))
        ax.barh(list(y), values, xerr=[lows, highs], color=colours, ecolor="#333333", capsize=2)
        parity = axis.parity.get(metric)
        if parity and parity.overall is not None:
            ax.axvline(parity.overall, color="#888888", linestyle="--", linewidth=1)
        ax.set_yticks(list(y))
        ax.set_yticklabels([g.group for g in groups] if n == 1 else [])
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(TITLES.get(metric, metric), fontsize=9)
        ax.tick_params(labelsize=8)
    figure.suptitle(axis.axis.replace("_", " "), fontsize=10, y=1.04)
    return _png(figure)


@_plain_text
def _scorer_chart(audit: Any) -> str:
    from matplotlib.figure import Figure  # a bare Figure renders without pyplot or a GUI backend

    rows = [audit.control, *audit.groups]
    figure = Figure(figsize=(5.0, max(2.0, 0.16 * len(rows) + 1.0)))
    ax = figure.add_subplot(1, 1, 1)
    rates = [r.false_positive_rate for r in rows]
    errors = [[r.false_positive_rate - r.fpr_low for r in rows], [r.fpr_high - r.false_positive_rate for r in rows]]
    colours = ["#888888"] + ["#c0392b" if r.flagged else "#4a78a8" for r in audit.groups]
    ax.barh(range(len(rows)), rates, xerr=errors, color=colours, ecolor="#333333", capsize=1)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([f"{r.axis}/{r.group}" for r in rows], fontsize=6)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.axvline(audit.max_fpr, color="#c0392b", linestyle=":", linewidth=1)
    ax.set_title("Scorer false-positive rate on harmless sentences", fontsize=9)
    return _png(figure)


def _fmt(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def render_html_section(result: AuditResult) -> str:
    """An HTML ``<section>`` for the audit report: verdict, flags, charts per axis, scorer self-audit."""
    e = html.escape
    metrics = [m for m in CHART_METRICS if m in result.metrics]
    settings = result.settings
    count = len(result.flags)
    verdict = "passed" if result.passed else f"{count} disparit{'y' if count == 1 else 'ies'} flagged"
    parts = [
        '<section class="bias-audit">',
        "<h2>Bias audit</h2>",
        f"<p><strong>{e(verdict)}</strong>: {result.prompts} prompts × {result.samples} samples = "
        f"{result.completions} completions. Toxic means toxicity ≥ {settings.toxicity_threshold}; a group is "
        f"flagged when it exceeds the rest of its axis by more than {settings.max_difference} and the "
        f"{settings.confidence:.0%} bootstrap interval of the excess lies above zero.</p>",
    ]
    meta = [(k, result.meta[k]) for k in ("generator", "prompt_set", "scorers") if k in result.meta]
    if meta:
        parts.append("<dl>" + "".join(f"<dt>{e(k)}</dt><dd><code>{e(str(v))}</code></dd>" for k, v in meta) + "</dl>")
    if result.flags:
        parts.append("<table><thead><tr><th>axis</th><th>group</th><th>metric</th><th>group</th><th>rest</th>"
                     "<th>difference (CI)</th></tr></thead><tbody>")
        for f in result.flags:
            parts.append(
                f"<tr><td>{e(f.axis)}</td><td>{e(f.group)}</td><td>{e(f.metric)}</td><td>{_fmt(f.value)}</td>"
                f"<td>{_fmt(f.rest)}</td><td>{_fmt(f.difference.value)} "
                f"[{_fmt(f.difference.low)}, {_fmt(f.difference.high)}]</td></tr>"
            )
        parts.append("</tbody></table>")
    for axis in result.axes:
        if metrics:
            parts.append(f'<figure><img alt="{e(axis.axis)}: per-group rates with confidence intervals" '
                         f'src="data:image/png;base64,{_axis_chart(axis, metrics)}"/>'
                         f"<figcaption>{e(axis.axis)}: bars are group values, whiskers "
                         f"{settings.confidence:.0%} intervals, the dashed line the axis overall; red bars are "
                         "flagged.</figcaption></figure>")
    for group_id, examples in result.examples.items():
        parts.append(f"<h3>Worst completions: {e(group_id)}</h3><ul>")
        parts.extend(f"<li><q>{e(x['prompt'])}</q> → <q>{e(x['completion'] or '')}</q> "
                     f"(toxicity {_fmt(x['toxicity'])})</li>" for x in examples)
        parts.append("</ul>")
    audit = result.scorer_audit
    if audit is not None:
        flagged = ", ".join(f"{g.axis}/{g.group}" for g in audit.flagged) or "none"
        parts.append(
            f"<h3>Scorer self-audit</h3><p>{e(audit.model)} scored harmless sentences about each group; "
            f"control false-positive rate {_fmt(audit.control.false_positive_rate)}. Groups the scorer itself "
            f"treats as toxic: {e(flagged)}.</p>"
            f'<figure><img alt="scorer false-positive rates" src="data:image/png;base64,{_scorer_chart(audit)}"/>'
            "</figure>"
        )
    parts.append("</section>")
    return "\n".join(parts)


def render_html_page(result: AuditResult, title: str = "Bias audit") -> str:
    """A standalone page around the section, for ``guard bias-audit --html FILE``."""
    return (
        f'<!doctype html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        "<style>body{font-family:sans-serif;max-width:72rem;margin:2rem auto;}table{border-collapse:collapse}"
        "td,th{border:1px solid #ccc;padding:.2rem .5rem}img{max-width:100%}</style></head><body>\n"
        f"{render_html_section(result)}\n</body></html>\n"
    )
