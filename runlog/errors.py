"""The exceptions runlog's library raises, with the facts a caller needs as fields.

Library code raises these and nothing else for errors meant for a person: it never exits,
never imports click and never picks an exit status. The command line turns each exception
into one line on stderr and an exit status from one table (runlog.cli.status); Python
callers catch the class they care about:

    RunlogError                 every error meant for the user
    ├── UsageError              bad input: a request, a reference, a file, a setting
    │   ├── DuplicateAttemptError   an identical request is still pending
    │   ├── TemplateMismatch        the parameters do not fit the workflow's template (problems)
    │   └── Unresolved              strict resolution: inputs that could not be resolved (uris)
    ├── LedgerError             the ledger cannot be opened, read or written
    ├── ServiceError            an AWS service answered with an error (code, http_status)
    ├── PendingError            StartRun's outcome is unknown; the attempt is kept (request_id)
    ├── DriftError              replay refused: code, workflow or inputs changed (items)
    ├── OperationError          something could not be finished (a run still running, a transfer)
    ├── InternalError           a bug in runlog
    └── Interrupted             Ctrl-C before anything was sent or written

`interrupted` is true on any of them that is the account of a Ctrl-C (a PendingError can be).
`option` names the argument or setting at fault (or the one that fixes it), as a Python caller
spells it: a keyword argument of runlog.Runlog's methods (`force`, `runs_only`, `expect`), a
configuration key (`region`, `endpoint_url`), or a request member (`defaultRunSetting`).

Messages name what a Python caller would change and never the command line's words: an
argument as `name` or `name=value` in backticks (`force=True`), an action as a Runlog method
(`recover()`, `refresh(['4207391'])`). The command line shows each as its option or command
(runlog/cli/wording.py); a test keeps flags and `runlog COMMAND` out of library messages.
"""

from __future__ import annotations

from typing import Any


class RunlogError(Exception):
    """An error meant for the user: its message is one line, with the bad value and the fix.

    `interrupted` is true when the error is the account of a Ctrl-C (KeyboardInterrupt)."""

    # The exit status of code that still sets one itself (the CLI's table, runlog.cli.status,
    # decides for runlog's own classes; a value given to __init__ wins over the table).
    exit_code = 2
    interrupted = False
    option: str | None = None  # the argument, configuration key or member at fault, if one is
    # what runlog recorded of the action that failed, when it recorded one (the body of the
    # observation batch.act_on_batch appended: `runlog cancel --json` prints it)
    observation: dict | None = None

    def __init__(self, message: str, exit_code: int | None = None, *, option: str | None = None):
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code
        if option is not None:
            self.option = option

    @property
    def message(self) -> str:
        return str(self.args[0])


class UsageError(RunlogError):
    """Bad input: a request member, a reference, a file or a setting (nothing was sent or written)."""


class TemplateMismatch(UsageError):
    """The parameters do not fit the workflow's parameter template (missing required or
    unknown parameters): `problems` says which. The command line's --no-check sends them anyway."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        super().__init__(message)


class Unresolved(UsageError):
    """Strict resolution refused a request whose inputs (or parameters file) could not be
    resolved: `uris` names them. Raised only when resolution is strict (--strict)."""

    def __init__(self, message: str, uris: list[str] | None = None):
        self.uris = list(uris or [])
        super().__init__(message)


class LedgerError(RunlogError):
    """The ledger cannot be opened, read or written, or is not a runlog ledger."""


class BlobLost(LedgerError):
    """A blob of a batch record's cohort held by reference (runlog/blobs.py) is missing from
    the ledger or was changed outside runlog (`sha256` names it). Read commands write what does
    not need it, then say so (exit 1, as for a problem `verify` finds: it names the record)."""

    def __init__(self, message: str, sha256: str):
        self.sha256 = sha256
        super().__init__(message)


class ServiceError(RunlogError):
    """An AWS service answered with an error.

    `code` is the service's error code (e.g. "ValidationException"), `http_status` its HTTP
    status, `operation` the API operation (e.g. "StartRun"), `service_message` the service's
    own words. `record` is the address of the ledger record that keeps a refused StartRun
    (a rejected record), when there is one."""

    exit_code = 1

    def __init__(self, code: str, message: str, http_status: int | None = None, operation: str | None = None,
                 *, record: str | None = None):
        self.code = code
        self.service_message = message
        self.http_status = http_status
        self.operation = operation
        self.record = record
        text = f"{operation} failed: {code}: {message}" if operation else f"{code}: {message}"
        if record:
            text += f" (kept in the ledger as failed attempt {record[:12]})"
        super().__init__(text)


class DriftError(RunlogError):
    """Replay refused because something drifted since the original run. `items` are the
    drift findings: dicts of kind ("git", "workflow", "input"), what, recorded, current."""

    exit_code = 3

    def __init__(self, message: str, items: list[dict[str, Any]] | None = None):
        self.items = list(items or [])
        super().__init__(message)


class PendingError(RunlogError):
    """StartRun's outcome is unknown (a 5xx, a throttle or timeout that outlived the retries, a
    lost connection, an interruption, a record that could not be written): the attempt is kept
    as pending and `recover` completes it with the same requestId, never starting a second run.
    `request_id` names the attempt; `run_id` is set when a run is known to have started."""

    exit_code = 1

    def __init__(self, message: str, request_id: str, run_id: str | None = None, exit_code: int | None = None,
                 *, interrupted: bool = False):
        self.request_id = request_id
        self.run_id = run_id
        self.interrupted = interrupted
        super().__init__(message, exit_code)


class DuplicateAttemptError(UsageError):
    """An identical request (all members but requestId) is already pending."""

    def __init__(self, message: str, request_id: str, in_flight: dict | None):
        self.request_id = request_id
        self.in_flight = in_flight  # the owner (pid, host, since) when a live process holds it
        super().__init__(message)


class OperationError(RunlogError):
    """Something could not be finished: a run still running when the time was up, a transfer
    that stopped part way, an answer that contradicts the ledger."""

    exit_code = 1


class InternalError(RunlogError):
    """A bug in runlog (e.g. a record that would break its own schema): please report it."""

    exit_code = 70


class Interrupted(RunlogError):
    """Ctrl-C before anything was sent or written."""

    interrupted = True
