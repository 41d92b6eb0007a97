"""Audit reports people read: what the log says was generated, caught, marked and signed, and whether it holds.

``gather(log, filters, public_key=...)`` reads the log once into ``AuditData``; ``render(data, fmt)`` turns it
into a self-contained HTML page (charts embedded as PNGs), Markdown or JSON.
"""

from __future__ import annotations

from guard.audit.data import AuditData, gather

FORMATS = ("html", "md", "json")


def render(data: AuditData, fmt: str = "html", *, title: str = "Provenance audit") -> str:
    """The report as text in one of ``FORMATS``."""
    from guard.audit import formats as r

    if fmt == "html":
        from guard.audit.charts import all_charts

        return r.render_html(data, all_charts(data), title=title)
    if fmt == "md":
        return r.render_markdown(data, title=title)
    if fmt == "json":
        return r.to_json(data)
    raise ValueError(f"unknown report format {fmt!r} (known: {', '.join(FORMATS)})")


__all__ = ["AuditData", "FORMATS", "gather", "render"]
