"""The one trial model every part speaks: the state of a trial, its record, the history.

``TrialRecord`` is what the journal's fold (``hpc_tune.journal.fold``) builds and keeps up
to date, what searchers read through ``History``, what the controller decides on, what the
ask/tell ``Tuner`` hands out and what ``status``/``export``/``best`` print. Only the fold
(and the ``Tuner``, which has no journal) changes a record; everybody else reads it.
"""
from __future__ import annotations

import enum
import math
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple


class TrialState(str, enum.Enum):
    """The life of a trial (the backends' job states map onto these)."""

    PENDING = "pending"  # created (suggested), maybe queued in Slurm, not running yet
    RUNNING = "running"
    COMPLETED = "completed"  # exited cleanly and reported its metric
    FAILED = "failed"
    STOPPED = "stopped"  # ended early by a stopping rule: its last value counts
    CANCELLED = "cancelled"  # by the user or a study-wide stop: no value

    @property
    def live(self) -> bool:
        return self in _LIVE

    @property
    def finished(self) -> bool:
        return self not in _LIVE


_LIVE = frozenset({TrialState.PENDING, TrialState.RUNNING})
LIVE_STATES = (TrialState.PENDING, TrialState.RUNNING)  # a tuple test is the fastest in a hot loop
VALUE_STATES = (TrialState.COMPLETED, TrialState.STOPPED)  # ends whose value counts
_NAN = float("nan")
_NAN_ROW = (_NAN,)
_INT32 = 2**31


@dataclass
class TrialRecord:
    """One trial: what it runs (params, resource, where it resumes from), how it went (state,
    value, reason), its reports, and the bookkeeping of its jobs.

    A searcher reads ``trial_id``, ``params``, ``state``, ``value``, ``resource``, ``meta``
    and ``resume_from``; the rest is the controller's. ``params`` and ``meta`` are set when
    the trial is created and never changed after (the fold and the tuner only assign the
    other fields): a searcher's memo may hold them and take the same dict for the same
    content (ASHA's does)."""

    trial_id: int
    params: Dict[str, Any]
    state: TrialState = TrialState.PENDING
    value: Optional[float] = None  # the objective, as reported (not sign-flipped)
    resource: Optional[float] = None
    meta: Dict[str, Any] = field(default_factory=dict)  # the searcher's own tags, kept verbatim
    resume_from: Optional[int] = None  # the trial whose checkpoints this one continues
    # -- jobs
    job_id: Optional[str] = None
    attempt: int = 0  # resubmissions so far (the trial's folder and checkpoints stay the same)
    retries: int = 0  # resubmissions that count against the spec's max_retries
    submitted: bool = False  # the current attempt has a job
    run: Optional[str] = None  # the current run (one start of the command), see hpc_tune.protocol
    run_started: Optional[float] = None  # when the current run started
    run_over: bool = False  # the scheduler requeued the current run's job: only a new run counts
    run_end: str = ""  # why the current run is over, when run_over (the scheduler's words)
    runs: int = 0  # runs started (every attempt, every restart of a job)
    restarts: int = 0  # runs that were a restart of the same job by the scheduler (requeue, preemption, node)
    time_lost: float = 0.0  # seconds from each earlier run's last report to the next run's start
    last_report_t: Optional[float] = None  # when the last report was journaled
    raw_state: str = ""
    reason: str = ""
    created: float = 0.0
    started: Optional[float] = None
    ended: Optional[float] = None
    # -- reports
    n_reports: int = 0
    last_values: Dict[str, float] = field(default_factory=dict)  # key -> last finite value
    # Every reported key's curve, in compact arrays (a long study has millions of reports),
    # aligned on one step column: curve_steps[i] is the step of the i-th line that held a
    # number, curve_values[key][i] the key's value on that line (NaN where the line lacked
    # it). Steps are 4-byte ints until a step is not one. "step" and "time" (the clock
    # report() adds to every line) are no curves of their own.
    curve_steps: "array[Any]" = field(default_factory=lambda: array("i"))
    curve_values: Dict[str, "array[float]"] = field(default_factory=dict)
    result_offset: int = 0  # bytes of result.jsonl already in the journal

    @property
    def has_value(self) -> bool:
        """Finished with a value that counts: completed or stopped, finite objective."""
        return self.state in VALUE_STATES and self.value is not None and math.isfinite(self.value)

    def last(self, metric: str) -> Optional[float]:
        """The last finite value reported for ``metric``."""
        return self.last_values.get(metric)

    def metric_names(self) -> List[str]:
        """The keys this trial reported numbers for (besides step and time), in the order
        they first came."""
        return list(self.curve_values)

    def curve(self, metric: str) -> Tuple[Tuple[float, float], ...]:
        """(step, value) of every report of ``metric``, in report order."""
        col = self.curve_values.get(metric)
        if col is None:
            return ()
        total = sum(col)
        if total == total:  # no NaN: the key was on every line (the usual case, and fast)
            return tuple(zip(self.curve_steps, col))
        return tuple((s, v) for s, v in zip(self.curve_steps, col) if v == v)

    def add_report(self, data: Dict[str, Any]) -> None:
        # The hot path of a replay (most events are reports): plain dict and array work, the
        # usual case (an int step, every key on every line) without a call or a second loop.
        last = self.last_values
        columns = self.curve_values
        steps = self.curve_steps
        n = len(steps)
        added = 0
        for k, v in data.items():
            if (type(v) is float and v - v == 0.0) or type(v) is int:  # finite numbers only
                last[k] = v
                if k == "step" or k == "time":
                    continue
                col = columns.get(k)
                if col is None:
                    col = columns[k] = array("d", _NAN_ROW) * n
                col.append(v)
                added += 1
        if added:
            step = data.get("step")
            if type(step) is int and steps.typecode == "i" and -_INT32 <= step < _INT32:
                steps.append(step)
            else:
                self._add_step(step)
            if added != len(columns):  # a key this line lacks: NaN in its column
                for col in columns.values():
                    if len(col) == n:
                        col.append(_NAN)
        self.n_reports += 1

    def _add_step(self, step: Any) -> None:
        steps = self.curve_steps
        if type(step) is float and step - step == 0.0 and step.is_integer():
            step = int(step)
        if type(step) is int:
            if steps.typecode == "i" and not -_INT32 <= step < _INT32:
                steps = self.curve_steps = array("d", steps)
        elif type(step) is float and step - step == 0.0:
            if steps.typecode == "i":
                steps = self.curve_steps = array("d", steps)
        else:  # no step, or not a number: the line's index
            step = self.n_reports
        steps.append(step)

    @property
    def run_time(self) -> Optional[float]:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started


def best(trials: Iterable[TrialRecord], maximize: bool) -> Optional[TrialRecord]:
    """The trial with the best value among those that have one; on a tie the earliest trial."""
    done = [t for t in trials if t.has_value]
    if not done:
        return None
    if maximize:
        return max(done, key=lambda t: (t.value, -t.trial_id))
    return min(done, key=lambda t: (t.value, t.trial_id))


@dataclass(frozen=True)
class History:
    """The trials of a study in creation order: what a searcher sees (it must not change them)."""

    trials: Tuple[TrialRecord, ...] = ()

    @classmethod
    def of(cls, trials: Iterable[TrialRecord]) -> "History":
        return cls(tuple(trials))

    def __len__(self) -> int:
        return len(self.trials)

    def __iter__(self) -> Iterator[TrialRecord]:
        return iter(self.trials)

    @property
    def live(self) -> List[TrialRecord]:
        return [t for t in self.trials if t.state in LIVE_STATES]

    def with_values(self) -> List[TrialRecord]:
        """Finished trials whose objective is a finite number."""
        return [t for t in self.trials if t.has_value]

    def best(self, maximize: bool) -> Optional[TrialRecord]:
        return best(self.trials, maximize)


__all__: Sequence[str] = ("TrialState", "TrialRecord", "History", "best", "LIVE_STATES", "VALUE_STATES")
