"""The report's charts: matplotlib figures as base64 PNGs, so the HTML page needs no other file and no script.

``matplotlib.figure.Figure`` is used directly (not pyplot): no global state, no GUI backend, safe in threads.
Each function returns None when there is nothing to draw, and the page then says so in words. Labels come from
the log (detector names, labels, model ids), so they are drawn as plain text: ``$`` never starts mathtext.
"""

from __future__ import annotations

import base64
import io
from collections import Counter, defaultdict
from datetime import datetime
from typing import Any

from guard.audit.data import SCORE_BINS, AuditData
from guard.provenance.record import OUTPUT_VERDICTS

VERDICT_COLOURS = {"allow": "#2e8b57", "flag": "#e6a700", "redact": "#8e44ad", "block": "#c0392b"}
VERDICT_ORDER = OUTPUT_VERDICTS  # decision records are not outputs: the charts count outputs
MAX_SCORE_PANELS = 12
DPI = 96


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    figure = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    return figure


def _png(figure) -> str:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _verdicts(keys) -> list[str]:
    present = set(keys)
    return [v for v in VERDICT_ORDER if v in present] + sorted(present - set(VERDICT_ORDER))


def volume(data: AuditData) -> str | None:
    """Records per hour (or per day when the span is over three days), stacked by verdict."""
    if not data.by_hour:
        return None
    hours = sorted({h for h, _ in data.by_hour})
    first, last = (datetime.fromisoformat(hours[0] + ":00"), datetime.fromisoformat(hours[-1] + ":00"))
    daily = (last - first).total_seconds() > 3 * 86400
    buckets: dict[str, Counter] = defaultdict(Counter)
    for (hour, verdict), n in data.by_hour.items():
        buckets[hour[:10] if daily else hour][verdict] += n
    labels = sorted(buckets)
    times = [datetime.fromisoformat(b if daily else b + ":00") for b in labels]
    figure = _figure(10, 3.2)
    ax = figure.add_subplot()
    bottom = [0] * len(labels)
    width = 0.8 if daily else 0.8 / 24
    for verdict in _verdicts(v for _, v in data.by_hour):
        counts = [buckets[b][verdict] for b in labels]
        ax.bar(times, counts, width=width, bottom=bottom, label=verdict,
               color=VERDICT_COLOURS.get(verdict, "#7f8c8d"), align="edge")
        bottom = [x + y for x, y in zip(bottom, counts)]
    ax.set_ylabel(f"records per {'day' if daily else 'hour'}")
    ax.legend(loc="upper left", ncols=4, fontsize=8)
    figure.autofmt_xdate()
    return _png(figure)


def verdicts(data: AuditData) -> str | None:
    """Verdicts per output category, as stacked horizontal bars."""
    if not data.verdicts:
        return None
    cats = sorted({c for c, _ in data.verdicts})
    figure = _figure(7, 0.6 * len(cats) + 1.2)
    ax = figure.add_subplot()
    left = [0] * len(cats)
    for verdict in _verdicts(v for _, v in data.verdicts):
        counts = [data.verdicts[(c, verdict)] for c in cats]
        ax.barh(cats, counts, left=left, label=verdict, color=VERDICT_COLOURS.get(verdict, "#7f8c8d"))
        left = [x + y for x, y in zip(left, counts)]
    ax.set_xlabel("records")
    ax.legend(loc="lower right", ncols=4, fontsize=8)
    return _png(figure)


def actions(data: AuditData) -> str | None:
    if not data.actions:
        return None
    items = data.actions.most_common(15)
    figure = _figure(7, 0.3 * len(items) + 1.0)
    ax = figure.add_subplot()
    ax.barh([f"{c}: {a}" for (c, a), _ in items], [n for _, n in items], color="#4a78a8")
    ax.invert_yaxis()
    ax.set_xlabel("records")
    return _png(figure)


def scores(data: AuditData) -> str | None:
    """One histogram per detector label and stage (the most frequent ones), on a shared 0..1 axis."""
    if not data.scores:
        return None
    keys = sorted(data.scores, key=lambda k: -data.scores[k].count)[:MAX_SCORE_PANELS]
    cols = min(3, len(keys))
    rows = (len(keys) + cols - 1) // cols
    figure = _figure(3.3 * cols, 2.2 * rows)
    edges = [i / SCORE_BINS for i in range(SCORE_BINS)]
    for n, key in enumerate(keys, 1):
        ax = figure.add_subplot(rows, cols, n)
        stats = data.scores[key]
        ax.bar(edges, stats.histogram, width=1 / SCORE_BINS, align="edge", color="#4a78a8", edgecolor="white")
        ax.set_xlim(0, 1)
        ax.set_title(f"{key[0]} / {key[1]} ({key[2]})", fontsize=8)
        ax.tick_params(labelsize=7)
    return _png(figure)


def marking(data: AuditData) -> str | None:
    """Share of delivered outputs that are watermarked, signed, and either, per category."""
    table = data.marking()
    if not table:
        return None
    cats = list(table)
    figure = _figure(7, 0.9 * len(cats) + 1.2)
    ax = figure.add_subplot()
    series = (("watermarked", "#2e86c1"), ("signed", "#17a589"), ("watermarked_or_signed", "#34495e"))
    height = 0.8 / len(series)
    for k, (name, colour) in enumerate(series):
        shares = [table[c][name] / table[c]["delivered"] for c in cats]
        ax.barh([i + k * height for i in range(len(cats))], shares, height=height, label=name.replace("_", " "),
                color=colour)
    ax.set_yticks([i + height for i in range(len(cats))])
    ax.set_yticklabels(cats)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of delivered outputs")
    ax.legend(loc="lower right", fontsize=8)
    return _png(figure)


def errors(data: AuditData) -> str | None:
    if not data.errors:
        return None
    items = data.errors.most_common(15)
    figure = _figure(7, 0.3 * len(items) + 1.0)
    ax = figure.add_subplot()
    ax.barh([f"{d} ({s})" for (d, s), _ in items], [n for _, n in items], color="#c0392b")
    ax.invert_yaxis()
    ax.set_xlabel("detector failures")
    return _png(figure)


def bias(data: AuditData) -> str | None:
    """Share of outputs not allowed, per mentioned group (the ``none/none`` row is the baseline)."""
    rows = [r for r in (data.bias or {}).get("rows", []) if r.get("outputs")]
    if not rows:
        return None
    labels = [f"{r['axis']}/{r['group']}" for r in rows]
    shares = [r["not_allowed"] / r["outputs"] for r in rows]
    figure = _figure(7, 0.3 * len(rows) + 1.0)
    ax = figure.add_subplot()
    ax.barh(labels, shares, color=["#7f8c8d" if lbl == "none/none" else "#8e44ad" for lbl in labels])
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of outputs flagged, redacted or blocked")
    return _png(figure)


def all_charts(data: AuditData) -> dict[str, Any]:
    """Every chart by section name (None where there is nothing to draw)."""
    from matplotlib import rc_context

    with rc_context({"text.parse_math": False}):
        return {name: fn(data) for name, fn in (("volume", volume), ("verdicts", verdicts), ("actions", actions),
                                                ("scores", scores), ("marking", marking), ("errors", errors),
                                                ("bias", bias))}
