"""``guard compliance``: a framework's duties, each with its status and evidence from the log."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from core.errors import Finding
from guard.cli._common import JsonOpt, KeysOpt, LogOpt, open_existing_log
from guard.cli._output import emit


def register(app: typer.Typer) -> None:
    @app.command("compliance")
    def compliance(
        framework: Annotated[str, typer.Option(help="eu-ai-act-art50 or nist-ai-100-4.")],
        log: LogOpt = None,
        keys_dir: KeysOpt = None,
        since: Annotated[Optional[str], typer.Option(help="Period under review: from (ISO 8601).")] = None,
        until: Annotated[Optional[str], typer.Option(help="Period under review: before (ISO 8601).")] = None,
        retention_days: Annotated[int, typer.Option(help="Required retention of records, in days.")] = 180,
        no_self_test: Annotated[bool, typer.Option("--no-self-test",
                                                   help="Do not measure the image watermark now.")] = False,
        as_json: JsonOpt = False,
    ) -> None:
        """Pass, partial or fail for each duty, with evidence, and what the log cannot show. Exit 1 on a fail."""
        from rich.table import Table

        from guard.audit.compliance import checklist
        from guard.audit.export import Filters
        from guard.signing.keys import KeyStore

        keys = KeyStore(keys_dir)
        result = checklist(open_existing_log(log), framework, keys=keys if keys.directory.is_dir() else None,
                           filters=Filters.parse(since=since, until=until), retention_days=retention_days,
                           self_test=not no_self_test)
        colours = {"pass": "green", "partial": "yellow", "fail": "red"}

        def human(c) -> None:
            c.print(f"{framework}: {result.records} records, overall [{colours[result.worst]}]{result.worst}[/]")
            table = Table("duty", "status", "evidence", "the log cannot show", show_lines=True)
            for d in result.duties:
                table.add_row(f"{d.title}\n[dim]{d.reference}[/]", f"[{colours[d.status]}]{d.status}[/]",
                              "\n".join(d.evidence), d.cannot_show)
            c.print(table)
            c.print("Outside the log entirely:")
            for line in result.outside_the_log:
                c.print(f"  - {line}")

        emit(result.to_dict(), as_json, human)
        if result.worst == "fail":
            failed = [d.title for d in result.duties if d.status == "fail"]
            raise Finding(f"{framework}: {len(failed)} duties fail: {'; '.join(failed)}")
