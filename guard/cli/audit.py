"""``guard audit``: a report a person reads (HTML with charts, or Markdown) or a machine reads (JSON)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from core.errors import Finding
from guard.cli._common import JsonOpt, KeysOpt, LogOpt, check_out, keystore, open_existing_log
from guard.cli._output import stderr, write


def register(app: typer.Typer) -> None:
    @app.command("audit")
    def audit(
        log: LogOpt = None,
        keys_dir: KeysOpt = None,
        out: Annotated[Optional[Path], typer.Option(help="Write the report here (default: stdout).")] = None,
        since: Annotated[Optional[str], typer.Option(
            help="Records from this time on (ISO 8601, UTC if no zone).")] = None,
        until: Annotated[Optional[str], typer.Option(help="Records before this time (exclusive).")] = None,
        markdown: Annotated[bool, typer.Option("--md", help="Markdown instead of HTML.")] = False,
        as_json: JsonOpt = False,
        no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip verifying the whole log.")] = False,
        title: Annotated[str, typer.Option(help="Report title.")] = "Provenance audit",
    ) -> None:
        """Report what was generated, caught, marked and signed, and whether the log holds; exit 1 if it does not.

        HTML by default (one self-contained file, charts embedded); --md or an --out ending in .md gives
        Markdown, --json or .json gives JSON.
        """
        from rich.progress import Progress

        from guard.audit import gather, render
        from core.errors import KeysError
        from guard.audit.export import Filters

        fmt = "json" if as_json else "md" if markdown else {".md": "md", ".json": "json"}.get(
            out.suffix.lower() if out else "", "html")
        filters = Filters.parse(since=since, until=until)
        check_out(out)
        plog = open_existing_log(log)
        public_key = None
        if not no_verify:
            try:
                public_key = keystore(keys_dir).log_public_key()
            except KeysError as exc:
                stderr.print(f"[yellow]warning[/]: the log will not be verified: {exc}")
        with Progress(console=stderr, transient=True, disable=not sys.stderr.isatty()) as bar:
            task = bar.add_task("reading the log", total=None)
            data = gather(plog, filters, public_key=public_key, verify=not no_verify,
                          progress=lambda done, total: bar.update(task, completed=done, total=total))
        text = render(data, fmt, title=title)
        if out:
            out.write_text(text, encoding="utf-8")
            stderr.print(f"wrote {fmt} report of {data.records} records to {out}")
        else:
            write(text)
        if data.integrity is not None and data.integrity.verified is False:
            report = data.integrity.report
            raise Finding(f"the log does not verify: first bad record {report['first_bad_index']}, "
                          f"first bad checkpoint {report['first_bad_checkpoint']}")
