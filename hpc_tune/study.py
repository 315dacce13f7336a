"""The study directory and the fold of its journal into what happened.

    <state dir>/<study id>/
        spec.yml            frozen copy of the submitted file
        journal.jsonl       every event (see EVENTS below); journal.lock guards it
        controller/         the controller job's script and logs
        slurm/              submitit's folders for trial jobs
        trials/<id>/        result.jsonl, checkpoints/, logs, exit.json

Events (field ``e``) and what they mean:

    study      {id, seed, file, cwd, base_dir, backend, slurm}     created; first line
    trial      {id, params, resource, meta}            a trial exists (recorded BEFORE submission)
    submitted  {id, attempt, job}                      the backend accepted it
    state      {id, state, raw}                        pending/running as the backend sees it
    report     {id, end, data}                         one result line copied from result.jsonl
    retry      {id, attempt, reason, counted}          resubmitted (time limit, node failure, preemption)
    end        {id, state, value, reason, raw}         final: completed/failed/stopped/cancelled
    options    {slurm, backend}                        `resume` changed per-trial Slurm options / backend
    cancel     {reason}                                a user asked the study to stop
    study_end  {state, reason}                         finished/early_stopped/cancelled/failed
    controller {action, host, pid, job}                a controller started or stopped
    warning    {message, id?}                          something the user should know
"""
from __future__ import annotations

import os
import pickle
import re
import secrets
import shutil
import socket
import time
from array import array
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Tuple

from .errors import UserError
from .journal import Journal
from .search.base import History, TrialRecord, TrialState

TRIALS_DIR = "trials"
LEASE_FILE = os.path.join("controller", "lease.json")  # see runner.Lease
LEASE_EVERY = 10.0  # seconds between renewals of the controller's lease
LEASE_STALE = 6 * LEASE_EVERY  # a lease not renewed for this long may be taken over
SPEC_FILE = "spec.yml"
RESULT_FILE = "result.jsonl"
CHECKPOINT_DIR = "checkpoints"


def default_state_dir() -> str:
    """``$HPC_TUNE_STATE_DIR``, else ``./hpc-tune-studies`` where the user runs from
    (on a cluster that is the shared filesystem every node sees)."""
    return os.environ.get("HPC_TUNE_STATE_DIR") or os.path.join(os.getcwd(), "hpc-tune-studies")


def new_study_id(spec_path: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", os.path.splitext(os.path.basename(spec_path))[0]).strip("-") or "study"
    return f"{stem}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(2)}"


def trial_dir(study_dir: str, trial_id: int) -> str:
    return os.path.join(study_dir, TRIALS_DIR, str(trial_id))


def find_study(ref: str, state_dir: Optional[str] = None) -> str:
    """A study directory from an id (under the state dir) or a path."""
    if os.path.isfile(os.path.join(ref, "journal.jsonl")):
        return os.path.abspath(ref)
    base = state_dir or default_state_dir()
    path = os.path.join(base, ref)
    if os.path.isfile(os.path.join(path, "journal.jsonl")):
        return path
    matches = [d for d in list_studies(base) if os.path.basename(d).startswith(ref)]
    if len(matches) == 1:
        return matches[0]
    if len(matches) > 1:
        raise UserError(f"'{ref}' matches several studies: {', '.join(os.path.basename(m) for m in matches)}")
    raise UserError(f"no study '{ref}' under {base} (set --state-dir or HPC_TUNE_STATE_DIR, or give the path)")


def list_studies(state_dir: str) -> List[str]:
    try:
        names = sorted(os.listdir(state_dir))
    except FileNotFoundError:
        return []
    return [os.path.join(state_dir, n) for n in names if os.path.isfile(os.path.join(state_dir, n, "journal.jsonl"))]


def create_study(spec_path: str, spec: Any, state_dir: str, *, backend: str, seed: int,
                 slurm: Optional[Dict[str, Any]] = None, poll_interval: float = 30.0) -> str:
    """Make the study directory: a frozen copy of the file and the journal's first
    event. Returns the directory."""
    from . import __version__

    study_id = new_study_id(spec_path)
    study_dir = os.path.join(os.path.abspath(state_dir), study_id)
    os.makedirs(os.path.join(study_dir, "controller"), exist_ok=True)
    shutil.copyfile(spec_path, os.path.join(study_dir, SPEC_FILE))
    metric = spec.metric
    Journal(study_dir).append({
        "e": "study", "id": study_id, "seed": seed, "file": os.path.abspath(spec_path), "cwd": os.getcwd(),
        "base_dir": os.path.dirname(os.path.abspath(spec_path)), "backend": backend, "slurm": slurm or {},
        "metric": metric.name if metric else None, "optimization": metric.optimization if metric else None,
        "poll_interval": poll_interval, "version": __version__,
    })
    return study_dir


def holder_description(lease: Any, ignore_own_job: bool = False) -> Optional[str]:
    """Who holds a lease record, or None when it is free (released, stale, or held
    by a process known to be dead, or by an earlier run of our own Slurm job)."""
    if not isinstance(lease, dict) or lease.get("released"):
        return None
    if time.time() - float(lease.get("t", 0)) >= LEASE_STALE:
        return None
    if ignore_own_job and lease.get("job") and lease.get("job") == os.environ.get("SLURM_JOB_ID"):
        return None  # Slurm requeued our job: the earlier run of it is gone
    if lease.get("host") == socket.gethostname() and not _pid_alive(int(lease.get("pid", 0))):
        return None
    return f"host {lease.get('host')}, pid {lease.get('pid')}" + (
        f", Slurm job {lease['job']}" if lease.get("job") else "")


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ------------------------------------------------------------------------------ fold

_LIVE_STATES = tuple(s for s in TrialState if s.live)
_NAN = float("nan")
_NAN_ROW = (_NAN,)
_INT32 = 2**31


@dataclass
class TrialView:
    trial_id: int
    params: Dict[str, Any]
    resource: Optional[float] = None
    meta: Dict[str, Any] = field(default_factory=dict)
    state: TrialState = TrialState.PENDING
    job_id: Optional[str] = None
    attempt: int = 0
    retries: int = 0  # resubmissions that count against the spec's max_retries
    submitted: bool = False
    raw_state: str = ""
    n_reports: int = 0
    last_values: Dict[str, float] = field(default_factory=dict)  # key -> last finite value
    # Every reported key's curve, in compact arrays (a long study has millions of reports),
    # aligned on one step column: curve_steps[i] is the step of the i-th line that held a
    # number, curve_values[key][i] the key's value on that line (NaN where the line lacked
    # it). Steps are 4-byte ints until a step is not one. "step" and "time" (the clock
    # report() adds to every line) are no curves of their own.
    curve_steps: "array[Any]" = field(default_factory=lambda: array("i"))
    curve_values: Dict[str, "array[float]"] = field(default_factory=dict)
    result_offset: int = 0
    value: Optional[float] = None
    reason: str = ""
    created: float = 0.0
    started: Optional[float] = None
    ended: Optional[float] = None

    def last(self, metric: str) -> Optional[float]:
        """The last reported value of ``metric``."""
        return self.last_values.get(metric)

    def metric_names(self) -> List[str]:
        """The keys this trial reported numbers for, in the order they first came."""
        return list(self.curve_values)

    def curve(self, metric: str) -> Tuple[Tuple[float, float], ...]:
        """``((step, value), ...)`` of every line that reported ``metric``."""
        col = self.curve_values.get(metric)
        if col is None:
            return ()
        total = sum(col)
        if total == total:  # no NaN: the key was on every line (the usual case, and fast)
            return tuple(zip(self.curve_steps, col))
        return tuple((s, v) for s, v in zip(self.curve_steps, col) if v == v)

    def add_report(self, data: Dict[str, Any]) -> None:
        # The hot path of a replay (most events are reports): kept to plain dict work.
        last = self.last_values
        columns = self.curve_values
        n = len(self.curve_steps)
        grew = False
        for k, v in data.items():
            if (type(v) is float and v - v == 0.0) or type(v) is int:  # finite numbers only
                last[k] = v
                if k == "step" or k == "time":
                    continue
                col = columns.get(k)
                if col is None:
                    col = columns[k] = array("d", _NAN_ROW) * n
                col.append(v)
                grew = True
        if grew:
            self._add_step(data.get("step"))
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
        else:  # no step, or not a number: the line's index, as before
            step = self.n_reports
        steps.append(step)

    @property
    def run_time(self) -> Optional[float]:
        if self.started is None:
            return None
        return (self.ended or time.time()) - self.started


@dataclass
class StudyView:
    study_dir: str
    info: Dict[str, Any] = field(default_factory=dict)
    trials: Dict[int, TrialView] = field(default_factory=dict)
    ended: Optional[Dict[str, Any]] = None
    cancel_requested: Optional[str] = None
    controllers: List[Dict[str, Any]] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    offset: int = 0  # journal bytes folded so far

    @property
    def study_id(self) -> str:
        return str(self.info.get("id") or os.path.basename(self.study_dir))

    @property
    def seed(self) -> int:
        return int(self.info["seed"])

    def live(self) -> List[TrialView]:
        # A tuple test instead of the ``live`` property: 6x faster over 10,000 trials, and a
        # cycle asks several times.
        return [t for t in self.trials.values() if t.state in _LIVE_STATES]

    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for t in self.trials.values():
            out[t.state.value] = out.get(t.state.value, 0) + 1
        return out

    def history(self) -> History:
        # A trial's record is rebuilt only when it changed (state, value, reports): building
        # every record with its curve on every call was most of a 10,000-trial cycle.
        cache = self.__dict__.setdefault("_records", {})
        metric = self.info.get("metric")
        records = []
        for t in sorted(self.trials.values(), key=lambda t: t.trial_id):
            key = (t.state, t.value, t.n_reports, metric)
            hit = cache.get(t.trial_id)
            if hit is None or hit[0] != key:
                hit = cache[t.trial_id] = (key, TrialRecord(t.trial_id, t.params, t.state, t.value, t.resource,
                                                            t.meta, self._curve(t)))
            records.append(hit[1])
        return History(tuple(records))

    def __getstate__(self) -> Dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_records", None)  # a cache: not in snapshots
        return state

    def _curve(self, t: TrialView) -> Tuple[Tuple[float, float], ...]:
        metric = self.info.get("metric")
        return t.curve(metric) if metric else ()

    def _apply_options(self, event: Dict[str, Any]) -> None:
        """``resume``'s options over the study record's: later values win, extra sbatch
        options add up."""
        slurm = dict(self.info.get("slurm") or {})
        new = event.get("slurm")
        if isinstance(new, dict):
            extra = list(slurm.get("extra") or []) + list(new.get("extra") or [])
            slurm.update({k: v for k, v in new.items() if k != "extra"})
            if extra:
                slurm["extra"] = extra
        self.info["slurm"] = slurm
        if isinstance(event.get("backend"), str):
            self.info["backend"] = event["backend"]

    # -- the fold ---------------------------------------------------------------
    def apply(self, event: Dict[str, Any]) -> None:
        kind = event.get("e")
        tid = event.get("id")
        t = self.trials.get(tid) if type(tid) is int else None
        if kind == "report" and t is not None:  # most events: first and cheapest
            data = event.get("data")
            if type(data) is dict:
                t.add_report(data)
            end = event.get("end", 0)
            if type(end) is int and end > t.result_offset:
                t.result_offset = end
            return
        ts = float(event.get("t", 0.0))
        if kind == "study":
            self.info = dict(event)
        elif kind == "trial" and isinstance(tid, int) and tid not in self.trials:
            self.trials[tid] = TrialView(tid, dict(event.get("params", {})), event.get("resource"),
                                         dict(event.get("meta", {})), created=ts)
        elif t is None:
            if kind == "study_end":
                self.ended = dict(event)
            elif kind == "cancel":
                self.cancel_requested = str(event.get("reason", "cancelled by the user"))
            elif kind == "options":
                self._apply_options(event)
            elif kind == "controller":
                self.controllers.append(dict(event))
            elif kind == "warning":
                self.warnings.append(str(event.get("message", "")))
        elif kind == "submitted":
            t.job_id = str(event.get("job"))
            t.attempt = int(event.get("attempt", t.attempt))
            t.submitted = True
            if t.state.finished:  # a late duplicate: the end stands
                return
            t.state = TrialState.PENDING
        elif kind == "state" and t.state.live:
            t.state = TrialState(event["state"])
            t.raw_state = str(event.get("raw", ""))
            if t.state is TrialState.RUNNING and t.started is None:
                t.started = ts
        elif kind == "retry":
            t.attempt = int(event.get("attempt", t.attempt + 1))
            t.retries += 1 if event.get("counted", True) else 0
            t.submitted = False
            t.job_id = None
            t.state = TrialState.PENDING
            t.reason = str(event.get("reason", ""))
        elif kind == "end" and t.state.live:
            t.state = TrialState(event["state"])
            value = event.get("value")
            t.value = float(value) if isinstance(value, (int, float)) else None
            t.reason = str(event.get("reason", ""))
            t.raw_state = str(event.get("raw", t.raw_state))
            t.ended = float(event.get("ended", ts))
            if isinstance(event.get("started"), (int, float)):
                t.started = float(event["started"])
            elif t.started is None and t.state is not TrialState.CANCELLED:
                t.started = t.ended
        elif kind == "warning":
            self.warnings.append(f"trial {tid}: {event.get('message', '')}")


SNAPSHOT_FILE = "snapshot.pickle"
SNAPSHOT_FORMAT = 2  # 2: every key's curve, on one step column


def write_snapshot(view: StudyView) -> None:
    """Save the fold so far, so that the next replay reads only newer events.

    A cache, never the truth: it is checked against the journal on load and simply
    ignored (full replay) when it does not match, is from another hpc-tune version,
    or is unreadable. Deleting it is always safe."""
    from . import __version__

    path = os.path.join(view.study_dir, SNAPSHOT_FILE)
    tmp = f"{path}.tmp.{os.getpid()}"
    payload = {"format": SNAPSHOT_FORMAT, "version": __version__, "head": _journal_head(view.study_dir),
               "view": view}
    with open(tmp, "wb") as fh:
        pickle.dump(payload, fh, protocol=pickle.HIGHEST_PROTOCOL)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _journal_head(study_dir: str) -> bytes:
    """The journal's first line: tells a snapshot of this journal from one of another."""
    try:
        with open(os.path.join(study_dir, "journal.jsonl"), "rb") as fh:
            return fh.readline(4096)
    except OSError:
        return b""


def _read_snapshot(study_dir: str) -> Optional[StudyView]:
    from . import __version__

    try:
        with open(os.path.join(study_dir, SNAPSHOT_FILE), "rb") as fh:
            payload = pickle.load(fh)
        view = payload["view"]
        ok = (payload.get("format") == SNAPSHOT_FORMAT and payload.get("version") == __version__
              and isinstance(view, StudyView) and payload.get("head") == _journal_head(study_dir))
        if not ok:
            return None
        with open(os.path.join(study_dir, "journal.jsonl"), "rb") as fh:  # still a line boundary?
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
