"""The one error tree: everything hpc-tune raises on purpose derives from ``HpcTuneError``.

The command line prints such an error as one message (the traceback only with ``--debug``)
and exits with its ``exit_code``: 2 for a mistake the user can fix (``UserError``: a study
file, an option, a study id), 1 for a problem of the environment (``EnvironmentProblem``:
Slurm unreachable or refusing, a journal written by a newer hpc-tune, a lock held by a dead
client). Imports nothing, so every part may raise these.
"""
from __future__ import annotations

from typing import Dict, Optional


class HpcTuneError(Exception):
    """Root of every error hpc-tune raises on purpose; the message says what to do."""

    exit_code = 1


class UserError(HpcTuneError):
    """A mistake the user can fix; printed without a traceback."""

    exit_code = 2


class SpecError(UserError):
    """A problem in a study file, located by file, line and key path."""

    MAX_MESSAGE = 600  # one message, never a dump of the structure it is about

    def __init__(self, message: str, file: Optional[str] = None, line: Optional[int] = None,
                 keypath: Optional[str] = None):
        if len(message) > self.MAX_MESSAGE:
            message = message[:self.MAX_MESSAGE - 30] + f"... ({len(message)} characters)"
        if keypath and len(keypath) > 120:  # a path 100 levels deep
            keypath = f"{keypath[:60]}...{keypath[-40:]}"
        self.message = message
        self.file = file
        self.line = line
        self.keypath = keypath
        super().__init__(str(self))

    def __str__(self) -> str:
        where = ""
        if self.file:
            where = self.file + (f":{self.line}" if self.line else "") + ": "
        key = f"{self.keypath}: " if self.keypath else ""
        return f"{where}{key}{self.message}"


class EnvironmentProblem(HpcTuneError):
    """Not the user's mistake: the machine, the scheduler or the files around the study."""

    exit_code = 1


class JournalError(EnvironmentProblem):
    """A journal that cannot be used (newer format, lock not obtained); the message says why."""


class BackendError(EnvironmentProblem):
    """The scheduler refused a request; the message is the scheduler's own.

    ``submitted`` maps request index -> job id for the requests of a ``submit`` call that did
    get a job before the error (the controller must journal them: they will run)."""

    def __init__(self, message: str, submitted: Optional[Dict[int, str]] = None) -> None:
        super().__init__(message)
        self.submitted: Dict[int, str] = dict(submitted or {})


class BackendBusy(BackendError):
    """The scheduler is busy, unreachable or a limit is reached (socket timeouts,
    MaxSubmitJobs, ...): back off and try again later."""
