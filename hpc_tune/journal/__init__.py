"""The study journal, in three parts: the log (``log``: append, scan, lock, torn-tail repair,
format version), the events (``events``: one frozen type per kind and its JSON form) and the
fold (``fold``: the journal replayed into a ``StudyView``, one apply method per kind)."""
from ..errors import JournalError
from . import events
from .fold import StudyView, load_view, refresh, write_snapshot
from .log import FORMAT_VERSION, Journal

__all__ = ["FORMAT_VERSION", "Journal", "JournalError", "StudyView", "events", "load_view", "refresh",
           "write_snapshot"]
