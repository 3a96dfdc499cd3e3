"""Errors that reach the user as one clear line.

Exit codes (documented in docs/cli.md):
  0  success
  1  the service rejected the request, or verification found a problem
  2  bad input: usage, unreadable files, unknown references, corrupt ledger
  3  drift refused (replay)
  130 interrupted (Ctrl-C)
"""

from __future__ import annotations


class RunlogError(Exception):
    """An error meant for the user: printed as one line, no traceback."""

    exit_code = 2

    def __init__(self, message: str, exit_code: int | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(RunlogError):
    """Bad input from the user (exit 2)."""


class LedgerError(RunlogError):
    """The ledger cannot be opened or is not usable (exit 2)."""


class ServiceError(RunlogError):
    """The AWS service answered with an error (exit 1)."""

    exit_code = 1

    def __init__(self, code: str, message: str, http_status: int | None = None, operation: str | None = None):
        self.code = code
        self.service_message = message
        self.http_status = http_status
        self.operation = operation
        text = f"{operation} failed: {code}: {message}" if operation else f"{code}: {message}"
        super().__init__(text)


class DriftError(RunlogError):
    """Replay refused because something drifted (exit 3)."""

    exit_code = 3


class PendingError(RunlogError):
    """StartRun's outcome is unknown (a 5xx, a throttle or timeout that outlived the retries, a
    lost connection, an interruption, a record that could not be written): the attempt is kept
    as pending and `recover` completes it (exit 1). `run_id` is set when a run is known to
    have started."""

    exit_code = 1

    def __init__(self, message: str, request_id: str, run_id: str | None = None, exit_code: int | None = None):
        self.request_id = request_id
        self.run_id = run_id
        super().__init__(message, exit_code)


class DuplicateAttemptError(UsageError):
    """An identical request (all members but requestId) is already pending (exit 2)."""

    def __init__(self, message: str, request_id: str, in_flight: dict | None):
        self.request_id = request_id
        self.in_flight = in_flight  # the owner (pid, host, since) when a live process holds it
        super().__init__(message)
