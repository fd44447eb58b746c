"""Exit codes and the exceptions that map onto them.

The codes are a contract with CI pipelines (see README, "Exit codes"); the output
format never changes them.
"""
from __future__ import annotations

EXIT_OK = 0  # nothing at or above --fail-on
EXIT_FINDINGS = 1  # findings at or above --fail-on
EXIT_ERROR = 2  # the scan could not run (bad source, corrupt file, ...)
EXIT_INCOMPLETE = 3  # something was not scanned: unsupported family, pickle refused, detector skipped
EXIT_USAGE = 4  # wrong command-line usage


class ScanError(Exception):
    """A problem that stops the scan; its message is shown as one line."""

    exit_code = EXIT_ERROR


class SourceError(ScanError):
    """The model could not be resolved or fetched (unknown id, offline miss, network)."""


class CorruptFileError(ScanError):
    """A weights or config file exists but cannot be parsed."""


class InputError(ScanError):
    """Bad user input that is not a CLI usage error: missing data folder, wrong image size."""


class UnsupportedModelError(ScanError):
    """The model is of a family or architecture this version cannot scan.

    Never a pass: it maps to the *incomplete* exit code.
    """

    exit_code = EXIT_INCOMPLETE


class UsageError(ScanError):
    """A request that cannot be valid, found only once the model is known (e.g. a
    detector id that does not exist for its family)."""

    exit_code = EXIT_USAGE
