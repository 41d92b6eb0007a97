"""One error hierarchy for the whole toolkit: core/, detectors/, generators/ and guard/ raise these.

Every error the user can cause or fix is a ``GuardError``: the CLI catches the base once, prints its one-line
message (no traceback) and exits with ``exit_code``. Findings (a verification that failed) exit 1; bad input,
bad configuration and missing files exit 2.

A few classes also derive from the built-in exception that code raised before this hierarchy existed
(``InputError`` is a ``ValueError``, ``ModelUnavailableError`` a ``FileNotFoundError``, ``DeviceUnavailableError``
a ``RuntimeError``), so callers written against the built-ins keep working. Programming mistakes (a wrong type
passed in code) stay ``TypeError``: they are bugs to fix in code, not input a user can correct.
"""

from __future__ import annotations


class GuardError(Exception):
    """Bad input or configuration. The message says what is wrong and where."""

    exit_code = 2
    report_printed = False  # the command printed its report before raising (the CLI adds no error document)


class Finding(GuardError):
    """Not a mistake: the work was done and its answer is "no" (a signature or proof that fails, a flagged file,
    no watermark, no matching record). Exit 1. The report is on stdout (or in ``--json``); the message is its
    one-line summary. The library raises ``VerificationError``; a command raises ``Finding`` once it has printed
    its report. Any exception outside this hierarchy is a bug: the CLI reports a crash (exit 3)."""

    exit_code = 1
    report_printed = True


class PolicyError(GuardError):
    """A policy file is missing, malformed or invalid (the message names the file, line and field)."""


class InputError(GuardError, ValueError):
    """An input is unusable: a file that is missing, unreadable, corrupt or not what the command expects, or a
    value (an option, a parameter, an item to score) outside what the component accepts."""


class UnreadableInputs(InputError):
    """Some inputs of a batch could not be read (corrupt, empty, too large). The command has reported them beside
    the results for the others, so this ends it with exit 2 and the report stands as printed."""

    report_printed = True


class KeysError(GuardError):
    """Signing or log keys are missing or unusable; ``guard keys init`` creates them."""


class LogError(GuardError):
    """The provenance log cannot be opened or does not hold what was asked for."""


class DetectorError(GuardError):
    """A policy names a detector that cannot be built: no detector of that name is installed, or it does not
    take the options given. (Model files that are missing are a ``ModelUnavailableError``.)"""


class UnavailableError(GuardError):
    """Something a model needs is not on this machine: its files or its device.

    It says nothing about the request, and the same policy works where the model is present, so the guard
    pipeline treats it like any detector failure: the rule's ``fallback`` scores instead, else its
    ``fail: closed | open`` setting decides. A CLI command reports it as bad configuration (exit 2).
    """


class ModelUnavailableError(UnavailableError, FileNotFoundError):
    """A model cannot be loaded: a file it needs (weights, checkpoint, calibration, registry) is not where the
    configuration says, or its weights are neither local nor cached and cannot be fetched (offline, or no such
    model)."""


class DeviceUnavailableError(UnavailableError, RuntimeError):
    """The device a model was asked to run on (``cuda``, ``cuda:1``) is not available on this machine."""


class VerificationError(Finding):
    """A signature, proof or log failed verification. This is a finding, not bad input."""
