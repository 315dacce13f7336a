"""The study journal, in three parts: the log (``log``: append, scan, lock, torn-tail repair,
format version), the events (``events``: one frozen type per kind and its JSON form), the
fold (``fold``: events into a ``StudyView``, one apply method per kind; pure) and the replay
(``replay``: the log read into the fold, with snapshots)."""
from ..errors import JournalError
from . import events
from .fold import StudyView
from .log import FORMAT_VERSION, Journal
from .replay import load_view, refresh, write_snapshot

__all__ = ["FORMAT_VERSION", "Journal", "JournalError", "StudyView", "events", "load_view", "refresh",
           "write_snapshot"]
