"""Reading a study's journal into its fold: ``load_view`` (from a snapshot when there is a
valid one), ``refresh`` (what was appended since), and the snapshots themselves."""
from __future__ import annotations

import os
import pickle
from typing import Optional

from ..errors import UserError
from ..paths import StudyPaths
from .fold import StudyView
from .log import Journal

SNAPSHOT_FORMAT = 3  # 2: the one trial model (hpc_tune.trials); 3: every key's curve


def write_snapshot(view: StudyView) -> None:
    """Save the fold so far, so that the next replay reads only newer events.

    A cache, never the truth: it is checked against the journal on load and simply
    ignored (full replay) when it does not match, is from another hpc-tune version,
    or is unreadable. Deleting it is always safe."""
    from .. import __version__

    path = view.paths.snapshot
    tmp = f"{path}.tmp.{os.getpid()}"
    payload = {"format": SNAPSHOT_FORMAT, "version": __version__, "head": _journal_head(view.paths),
               "view": view}
    with open(tmp, "wb") as fh:
        pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _journal_head(paths: StudyPaths) -> bytes:
    """The journal's first line: tells a snapshot of this journal from one of another."""
    try:
        with open(paths.journal, "rb") as fh:
            return fh.readline(4096)
    except OSError:
        return b""


def _read_snapshot(study_dir: str) -> Optional[StudyView]:
    from .. import __version__

    paths = StudyPaths(study_dir)
    try:
        with open(paths.snapshot, "rb") as fh:
            payload = pickle.load(fh)
        view = payload["view"]
        ok = (payload.get("format") == SNAPSHOT_FORMAT and payload.get("version") == __version__
              and isinstance(view, StudyView) and payload.get("head") == _journal_head(paths))
        if not ok:
            return None
        with open(paths.journal, "rb") as fh:  # still a line boundary?
            fh.seek(max(0, view.offset - 1))
            if view.offset > 0 and fh.read(1) != b"\n":
                return None
    except Exception:  # any problem with a cache means: do without it
        return None
    view.study_dir = study_dir
    return view


def load_view(study_dir: str, journal: Optional[Journal] = None) -> StudyView:
    """Replay a study's journal, from its snapshot when there is a valid one."""
    journal = journal or Journal(study_dir)
    if not journal.exists():
        raise UserError(f"{study_dir} is not a study directory (no journal.jsonl)")
    view = _read_snapshot(study_dir)
    if view is None:
        view = StudyView(study_dir)
    view.offset = journal.scan(view.offset, view.apply)
    if not view.info:
        raise UserError(f"{journal.path} has no study record: not an hpc-tune journal, or it was truncated")
    return view


def refresh(view: StudyView, journal: Journal) -> StudyView:
    """Fold the events appended since ``view`` was read."""
    view.offset = journal.scan(view.offset, view.apply)
    return view
