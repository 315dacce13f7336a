"""Random histories for the memo tests: what a controller or a tuner does to a study between
two calls of its searcher (trials asked, finished, failed, stopped, cancelled, put back to
running, changed in place or replaced, curves growing), plus what a searcher's memo must
survive (a replay of a prefix, another study's history in between, the memo emptied as a
restarted process has it)."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Callable, List, Optional, Sequence

from hypothesis import strategies as st

from hpc_tune.search.base import SearchResult, Suggestion, TrialRecord, TrialState

VALUES = st.one_of(st.sampled_from([0.1, 0.2, 0.2, 0.5, 1.0, -0.3]), st.none(), st.just(math.nan),
                   st.floats(-2, 2, allow_nan=False))
STATES = st.sampled_from([TrialState.COMPLETED, TrialState.COMPLETED, TrialState.FAILED, TrialState.STOPPED,
                          TrialState.CANCELLED, TrialState.RUNNING, TrialState.PENDING])
ASK = st.tuples(st.just("ask"), st.integers(0, 6))
# every live trial finishes, as most do between two calls of a busy study
END_LIVE = st.tuples(st.just("end_live"), st.lists(VALUES, min_size=1, max_size=5), st.booleans())
OPS = st.one_of(
    ASK, ASK, END_LIVE, END_LIVE,
    st.tuples(st.just("end"), st.integers(0, 10**6), STATES, VALUES, st.booleans()),
    st.tuples(st.just("report"), st.integers(0, 10**6), st.integers(1, 12), VALUES),
    st.tuples(st.just("prefix"), st.integers(0, 10**6), st.integers(0, 4)),
    st.tuples(st.just("other"), st.integers(0, 4)),
    st.tuples(st.just("forget"), st.just(0)),
)

Check = Callable[[List[TrialRecord], int], SearchResult]


def trial_of(s: Suggestion, trial_id: int, state: TrialState = TrialState.PENDING,
             value: Optional[float] = None) -> TrialRecord:
    """The record a controller creates for suggestion ``s``."""
    return TrialRecord(trial_id, dict(s.params), state, value=value, resource=s.resource, meta=dict(s.meta),
                       resume_from=s.resume_from)


def _set(trials: List[TrialRecord], i: int, in_place: bool, **fields: Any) -> None:
    if in_place:  # the controller's fold changes records in place
        for name, value in fields.items():
            setattr(trials[i], name, value)
    else:
        trials[i] = replace(trials[i], **fields)


def replay(ops: Sequence[tuple], check: Check, forget: Callable[[], None]) -> None:
    """Drive a study by ``ops``, calling ``check(trials, n)`` (the searcher's suggestions,
    checked against a computation from scratch) after each op."""
    trials: List[TrialRecord] = []
    other: List[TrialRecord] = []  # another study with the same config and seed, in the same process
    for op in ops:
        kind = op[0]
        if kind == "ask":
            for s in check(trials, op[1]).suggestions:
                trials.append(trial_of(s, len(trials)))
        elif kind == "end" and trials:
            _, at, state, value, in_place = op
            _set(trials, at % len(trials), in_place, state=state, value=value)
        elif kind == "end_live":
            _, values, in_place = op
            for i, t in enumerate(trials):
                if t.state.live:
                    _set(trials, i, in_place, state=TrialState.COMPLETED, value=values[i % len(values)])
        elif kind == "report" and trials:
            t = trials[op[1] % len(trials)]
            t.add_report({"step": op[2], "loss": op[3] if op[3] is not None else 0.0})
        elif kind == "prefix":
            check(trials[: op[1] % (len(trials) + 1)], op[2])
        elif kind == "other":
            for s in check(other, op[1]).suggestions:
                other.append(trial_of(s, len(other), TrialState.COMPLETED, 0.5))
        elif kind == "forget":
            forget()
        check(trials, 3)
