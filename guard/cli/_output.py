"""Output helpers shared by every command: JSON on stdout for machines, rich text for people."""

from __future__ import annotations

import json
import os
import select
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console



class _Console(Console):
    """A console that goes quiet when its reader closes the pipe (rich's default exits with 1 there)."""

    def on_broken_pipe(self) -> None:
        self.quiet = True
        if not self.stderr:
            discard_closed_stdout()


stdout = _Console(soft_wrap=True)
stderr = _Console(stderr=True, soft_wrap=True)


def emit(data: Any, as_json: bool, human: Callable[[Console], None]) -> None:
    """Print ``data`` as JSON when asked, otherwise let ``human`` render it."""
    if as_json:
        write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    else:
        human(stdout)  # the console goes quiet by itself if the reader leaves


def write(text: str) -> None:
    """Write a report to stdout. A reader that closes stdout early (``guard audit --json | head -1``) drops the
    rest of the report, never its outcome: the command goes on and exits with its own code (1 for a finding)."""
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        if not discard_closed_stdout():
            raise


def discard_closed_stdout() -> bool:
    """When the reader has closed stdout, point it at the null device, as Python's documentation advises (so no
    later write, nor the interpreter's last flush, fails again) and return True; else False, leaving it alone.

    The check asks the operating system whether stdout's pipe has lost its reader, so a broken pipe elsewhere (a
    socket, a child process) is not mistaken for it."""
    try:
        fd = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):  # not a file (a test runner's buffer): it cannot be closed
        return False
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        if not any(events & (select.POLLERR | select.POLLHUP) for _, events in poller.poll(0)):
            return False
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)
    return True

