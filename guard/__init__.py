"""genguard: run generators behind a policy; watermark, sign and log every output.

The public surface is small: ``Guard`` (wrap a generator), ``GuardedResult`` (what a call returns) and
``load_policy``. Everything else is reached through the CLI or its own module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__all__ = ["Guard", "GuardedResult", "load_policy"]

if TYPE_CHECKING:
    from guard.pipeline.guard import Guard, GuardedResult
    from guard.policy import load as load_policy


def __getattr__(name: str):
    # Imported on first use, so `guard --help` and library users who need only the log stay light.
    if name in ("Guard", "GuardedResult"):
        from guard.pipeline import guard as pipeline

        return getattr(pipeline, name)
    if name == "load_policy":
        from guard.policy import load

        return load
    raise AttributeError(f"module 'guard' has no attribute {name!r}")
