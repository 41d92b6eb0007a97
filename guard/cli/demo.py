"""``guard demo``: one guarded generation end to end, printing where its record, signature and log are."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo() -> None:
        """Run a guarded generation end to end (see README)."""
        from guard.demo import run_demo

        run_demo()
