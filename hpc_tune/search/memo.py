"""A searcher's memo of what it read from a history.

A controller or a tuner calls a searcher with the same history plus a few new or changed
trials each time; reading the whole history on every call makes a study quadratic. A
searcher that reads a lot (ASHA's rungs, Hyperband's brackets, what a sampler learns
from) keeps its reading here, by a key of its own (config, seed...), and brings it up to
date with only the trials whose fingerprint changed.

It is a pure cache: a reading's ``extend`` either brings it exactly to what a reading
from scratch of the history it is handed would be, or refuses (returns False) and a new
reading is built. So a hit, a miss or an eviction changes no suggestion, and a restarted
process, which starts with an empty memo, suggests what the running one would have.
"""
from __future__ import annotations

import itertools
import operator
from collections import OrderedDict
from contextlib import contextmanager
from typing import Any, Callable, Generic, Hashable, Iterator, List, Optional, Protocol, Sequence, Tuple, TypeVar

from .base import TrialRecord

# A trial as a reading sees it: the fields searchers read (``n_reports`` stands for the
# curves, which only grow by a report). ``meta`` and ``params`` are held, not copied: a
# record's are never changed after it is created (TrialRecord's contract), so the same
# dict is the same content, and comparing prints is mostly identity tests.
FINGERPRINT = operator.attrgetter("trial_id", "state", "value", "resource", "n_reports", "meta", "params")
TRIAL_ID, META, PARAMS = 0, 5, 6  # positions in a fingerprint


class Reading(Protocol):
    def extend(self, trials: Sequence[TrialRecord]) -> bool: ...


R = TypeVar("R", bound=Reading)


def changes(trials: Sequence[TrialRecord], prints: Sequence[Tuple[Any, ...]], tags: Callable[[Any], Any]) \
        -> Optional[Tuple[List[Tuple[Any, ...]], List[int]]]:
    """The fingerprints of ``trials``, and the positions among the first ``len(prints)``
    whose fingerprint differs from ``prints``; None when the history is not an extension
    of the one read: it is shorter (trials went away), or a trial's id, params or tags
    (its meta as ``tags`` reads it) changed."""
    now = list(map(FINGERPRINT, trials))
    if len(now) < len(prints):
        return None
    changed = list(itertools.compress(range(len(prints)), map(operator.ne, now, prints)))
    for i in changed:
        new, old = now[i], prints[i]
        if new[TRIAL_ID] != old[TRIAL_ID] or new[PARAMS] != old[PARAMS] or tags(new[META]) != tags(old[META]):
            return None
    return now, changed


class Memo(Generic[R]):
    """The readings of recent studies, the least recently used evicted beyond ``size``."""

    def __init__(self, size: int = 8):
        self._readings: "OrderedDict[Hashable, R]" = OrderedDict()
        self._size = size

    @contextmanager
    def reading(self, key: Any, build: Callable[[], R], trials: Sequence[TrialRecord]) -> Iterator[R]:
        """The reading of ``trials``, from the memo when it holds one they extend. While a
        caller holds a reading it is out of the memo: ``pop`` takes it atomically, so
        another thread that calls meanwhile builds its own."""
        try:
            hash(key)
        except TypeError:  # a config with an unhashable field: no memo
            fresh = build()
            fresh.extend(trials)
            yield fresh
            return
        reading = self._readings.pop(key, None)
        if reading is None or not reading.extend(trials):
            reading = build()
            reading.extend(trials)
        try:
            yield reading
        finally:
            self._readings[key] = reading
            while len(self._readings) > self._size:
                try:
                    self._readings.popitem(last=False)
                except KeyError:  # emptied by another thread meanwhile
                    break

    def clear(self) -> None:
        self._readings.clear()
