"""The ``guard`` command line.

Each command group lives in its own module with a ``register(app)`` function; heavy libraries are imported
inside the commands so ``guard --help`` starts fast. Exit codes: 0 fine, 1 a finding, 2 bad input or usage.
Data goes to stdout (``--json`` for machines); progress and errors go to stderr.
"""

from __future__ import annotations

import importlib
import sys

import typer

from core.errors import GuardError

COMMAND_MODULES = (
    "guard.cli.keys",
    "guard.cli.log",
    "guard.cli.verify",
    "guard.cli.demo",
    "guard.cli.audit",
    "guard.cli.trace",
    "guard.cli.works",
    "guard.cli.compliance",
    "guard.cli.evidence",
    "guard.cli.policy",
    "guard.cli.bias",
    "guard.cli.watermark",
    "guard.cli.text",
    "guard.cli.detector",
    "guard.cli.scan",
)

app = typer.Typer(
    name="guard",
    help="Safety and provenance layer around generative models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def main() -> None:
    """Console entry point: run the app, turning every ``GuardError`` into one line on stderr and its exit code."""
    try:
        code = app(standalone_mode=False)  # click returns the code of a typer.Exit here instead of raising
    except GuardError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(2)
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        raise
    sys.exit(code if isinstance(code, int) else 0)
