"""``guard demo``: one guarded generation end to end, printing where its record, signature and log are."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from guard.cli._common import JsonOpt


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        home: Annotated[Optional[Path], typer.Option(help="Where keys, log and outputs go (default: $GUARD_HOME).")]
        = None,
        as_json: JsonOpt = False,
    ) -> None:
        """Guarded text and image generation end to end: scores, watermark, signature, log, verification."""
        import json
        import sys

        from guard.demo.run import run_demo

        summary = run_demo(home, quiet=as_json)
        if as_json:
            sys.stdout.write(json.dumps(summary, indent=2, default=str) + "\n")
        if not summary["log_verification"]["ok"]:
            raise typer.Exit(1)
