"""One error hierarchy for the whole toolkit.

Every error the user can cause or fix is a ``GuardError``: the CLI catches the base once, prints its one-line
message (no traceback) and exits with ``exit_code``. Findings (a verification that failed) exit 1; bad input,
bad configuration and missing files exit 2.
"""

from __future__ import annotations


class GuardError(Exception):
    """Bad input or configuration. The message says what is wrong and where."""

    exit_code = 2


class PolicyError(GuardError):
    """A policy file is missing, malformed or invalid (the message names the file, line and field)."""


class InputError(GuardError):
    """An input file is missing, unreadable or not what the command expects."""


class KeysError(GuardError):
    """Signing or log keys are missing or unusable; ``guard keys init`` creates them."""


class LogError(GuardError):
    """The provenance log cannot be opened or does not hold what was asked for."""


class DetectorError(GuardError):
    """A detector cannot be built (unknown name, missing model files)."""


class VerificationError(GuardError):
    """A signature, proof or log failed verification. This is a finding, not bad input."""

    exit_code = 1
