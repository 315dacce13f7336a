"""Errors that reach the user as one clear message (the CLI prints them, exit 2)."""
from __future__ import annotations

from typing import Optional


class UserError(Exception):
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
