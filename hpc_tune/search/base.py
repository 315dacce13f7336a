"""What every searcher reads and returns.

A searcher is a pure function ``suggest(space, config, history, seed, n)``: it sees
the trials so far (``History``) and returns up to ``n`` new ``Suggestion``s, with a
flag that says whether it will ever suggest more. It keeps no state between calls;
whatever it needs to know it recomputes from the history, which is what makes a
restarted controller pick up exactly where the last one stopped.
"""
from __future__ import annotations

import enum
import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np


class TrialState(str, enum.Enum):
    """The life of a trial as the searchers see it (Slurm's states map onto these)."""

    PENDING = "pending"  # created (suggested), maybe queued in Slurm, not running yet
    RUNNING = "running"
    COMPLETED = "completed"  # exited cleanly and reported its metric
    FAILED = "failed"
    STOPPED = "stopped"  # ended early by a stopping policy: its last value counts
    CANCELLED = "cancelled"  # by the user or a study-wide stop: no value

    @property
    def live(self) -> bool:
        return self in (TrialState.PENDING, TrialState.RUNNING)

    @property
    def finished(self) -> bool:
        return not self.live


@dataclass(frozen=True)
class Suggestion:
    """One trial to run: its parameters, its budget (multi-fidelity only) and
    searcher-specific bookkeeping (``meta``: bracket, rung, parent trial...) that the
    journal stores verbatim and hands back through ``TrialRecord.meta``."""

    params: Dict[str, Any]
    resource: Optional[float] = None
    meta: Dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class TrialRecord:
    """One trial as a searcher sees it."""

    trial_id: int
    params: Dict[str, Any]
    state: TrialState
    value: Optional[float] = None  # the objective, as reported (not sign-flipped)
    resource: Optional[float] = None
    meta: Dict[str, Any] = field(default_factory=dict)
    # (step, value) of the objective metric as reported, for per-trial stopping rules
    intermediate: Tuple[Tuple[float, float], ...] = ()


@dataclass(frozen=True)
class History:
    """The trials of a study in creation order."""

    trials: Tuple[TrialRecord, ...] = ()

    @classmethod
    def of(cls, trials: Iterable[TrialRecord]) -> "History":
        return cls(tuple(trials))

    def __len__(self) -> int:
        return len(self.trials)

    def __iter__(self):
        return iter(self.trials)

    @property
    def live(self) -> List[TrialRecord]:
        return [t for t in self.trials if t.state.live]

    def with_values(self) -> List[TrialRecord]:
        """Finished trials whose objective is a finite number."""
        return [
            t for t in self.trials
            if t.state in (TrialState.COMPLETED, TrialState.STOPPED)
            and t.value is not None and math.isfinite(t.value)
        ]


@dataclass(frozen=True)
class SearchResult:
    """What ``suggest`` returns.

    ``exhausted`` is True when the searcher will never suggest anything again
    (whatever happens to the live trials); an empty ``suggestions`` with
    ``exhausted`` False means "wait for results". ``notes`` are messages for the
    user (for example why a random search stopped short).
    """

    suggestions: Tuple[Suggestion, ...] = ()
    exhausted: bool = False
    notes: Tuple[str, ...] = ()


def minimizing(value: float, optimization: str) -> float:
    """The objective turned into a quantity to minimise."""
    return -value if optimization == "maximize" else value


def sub_rng(seed: int, *path: int) -> np.random.Generator:
    """A generator that depends only on ``seed`` and ``path``.

    Searchers derive every random draw from the study seed and a position in the
    study (a trial count, a bracket number), never from a generator carried between
    calls: that is what keeps them pure and replayable.
    """
    return np.random.default_rng([int(seed) & 0xFFFFFFFF, *[int(p) for p in path]])


def as_list(x: Optional[Sequence[Any]]) -> List[Any]:
    return list(x) if x is not None else []


def params_equal(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    from ..space import params_key

    return params_key(a) == params_key(b)
