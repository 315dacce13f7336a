"""What every searcher reads and returns.

A searcher is a pure function ``suggest(space, config, history, seed, n)``: it sees
the trials so far (``History``) and returns up to ``n`` new ``Suggestion``s, with a
flag that says whether it will ever suggest more. It keeps no state between calls;
whatever it needs to know it recomputes from the history, which is what makes a
restarted controller pick up exactly where the last one stopped.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from ..trials import History, TrialRecord, TrialState  # noqa: F401 (what every searcher reads)


@dataclass(frozen=True)
class Suggestion:
    """One trial to run: its parameters, its budget (multi-fidelity only) and
    searcher-specific bookkeeping (``meta``: bracket, rung, parent trial...) that the
    journal stores verbatim and hands back through ``TrialRecord.meta``."""

    params: Dict[str, Any]
    resource: Optional[float] = None
    meta: Dict[str, Any] = field(default_factory=dict)
    # The trial whose checkpoints this one continues (a promotion, a PBT exploit), or None
    # for a fresh start: the controller points the new trial's checkpoint folder there.
    resume_from: Optional[int] = None


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
