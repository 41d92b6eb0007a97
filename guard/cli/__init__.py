"""The ``guard`` command line.

Each command group lives in its own module with a ``register(app)`` function; heavy libraries are imported
inside the commands so ``guard --help`` starts fast. Data goes to stdout (``--json`` for machines); progress and
errors go to stderr.

Exit codes (the README's CLI contract), decided here once for every command:

- 0: done, nothing found;
- 1: a finding (``core.errors.Finding``): a verification failed, a file was flagged, no watermark was found;
- 2: bad input or usage (any other ``GuardError``, and every usage error: an unknown command or option, a
  missing argument, a value of the wrong type);
- 3: a crash, that is a bug: any other exception. One line; the traceback with ``--debug`` or ``GUARD_DEBUG=1``.

Every failure is one line on stderr. With ``--json``, a failure that produced no report also prints
``{"error": ..., "exit_code": ...}`` on stdout, so a machine always reads JSON there (a finding, or a batch with
unreadable inputs, has printed its report already).

A reader that closes stdout early (``guard log export | head -1``) ends the output quietly: a streamed output
stops with 0, and a report (``_output.emit``, ``write``) is cut short without changing the command's own exit
code.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import traceback
from typing import Annotated, NoReturn

import typer
from typer.core import TyperGroup

from core.errors import Finding, GuardError
from guard.cli._output import discard_closed_stdout, write

try:  # typer >= 0.20 carries its own copy of click: the real click's exception classes never reach us from it
    from typer._click import exceptions as click_exceptions
except ImportError:  # older typer runs on click itself
    from click import exceptions as click_exceptions

EXIT_OK, EXIT_FINDING, EXIT_USAGE, EXIT_CRASH = 0, 1, 2, 3

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
    "guard.cli.toxicity",
    "guard.cli.scan",
    "guard.cli.review",
    "guard.cli.serve",
    "guard.cli.models",
)

class _StdoutClosed(Exception):
    """The reader of stdout went away while a command wrote to it. Not an ``OSError``: click would turn one with
    EPIPE into exit 1 before ``main`` sees it."""


class _Group(TyperGroup):
    def invoke(self, ctx):  # every command runs inside the top group's invoke
        try:
            return super().invoke(ctx)
        except BrokenPipeError:
            if discard_closed_stdout():
                raise _StdoutClosed() from None
            raise


app = typer.Typer(
    name="guard",
    help="Safety and provenance layer around generative models.",
    pretty_exceptions_enable=False,
    cls=_Group,
)


def _print_version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        sys.stdout.write(f"guard {version('genguard')}\n")
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[bool, typer.Option("--version", is_eager=True, callback=_print_version,
                                          help="Print the version and exit.")] = False,
    debug: Annotated[bool, typer.Option("--debug", help="On a crash (exit 3), print the traceback. "
                                        "Same as GUARD_DEBUG=1.")] = False,
) -> None:
    """Options before the command. ``--debug`` is read by ``main``, which needs it after a command has failed."""


for _module in COMMAND_MODULES:
    importlib.import_module(_module).register(app)


def _debug_requested(args: list[str]) -> bool:
    if os.environ.get("GUARD_DEBUG", "").strip().lower() not in ("", "0", "false", "no", "off"):
        return True
    for arg in args:  # the options before the command
        if not arg.startswith("-"):
            return False
        if arg == "--debug":
            return True
    return False


def _usage_message(exc: click_exceptions.ClickException) -> str:
    """A click exception as one line: the command it concerns, what is wrong, where help is."""
    ctx = getattr(exc, "ctx", None)
    what = exc.format_message().rstrip(".")
    if ctx is None:
        return what
    if what == "Missing command" and hasattr(ctx.command, "list_commands"):
        what = f"missing command (one of: {', '.join(ctx.command.list_commands(ctx))})"
    return f"{ctx.command_path}: {what}; see '{ctx.command_path} --help'"


def _fail(code: int, label: str, message: str, as_json: bool) -> NoReturn:
    line = " ".join(message.split()) or "(no message)"
    if as_json:  # only where no report is on stdout already (see ``GuardError.report_printed``)
        write(json.dumps({"error": line, "exit_code": code}) + "\n")
    print(f"{label}: {line}", file=sys.stderr)
    sys.exit(code)


def main(args: list[str] | None = None) -> None:
    """Console entry point: run the command and turn how it ended into one exit code and at most one line."""
    args = sys.argv[1:] if args is None else list(args)
    as_json = "--json" in args
    try:
        code = app(args=args, prog_name="guard", standalone_mode=False)  # a typer.Exit comes back as its code
    except _StdoutClosed:
        sys.exit(EXIT_OK)
    except GuardError as exc:
        _fail(exc.exit_code, "finding" if isinstance(exc, Finding) else "error", str(exc),
              as_json and not exc.report_printed)
    except typer.Abort:
        _fail(EXIT_USAGE, "error", "aborted", as_json)
    except click_exceptions.ClickException as exc:
        _fail(EXIT_USAGE, "error", _usage_message(exc), as_json)
    except Exception as exc:
        if _debug_requested(args):
            traceback.print_exc()
            hint = "a bug in genguard; please report it with the traceback above"
        else:
            hint = "a bug in genguard; rerun with --debug or GUARD_DEBUG=1 for the traceback and report it"
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        _fail(EXIT_CRASH, "crash", f"{type(exc).__name__}: {first} ({hint})", as_json)
    sys.exit(code if isinstance(code, int) else EXIT_OK)
