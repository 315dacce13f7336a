"""A study's results for people and programs: ``hpc_tune.load_study(path_or_id)``.

    study = hpc_tune.load_study("hyperband-digits-20261205-101500-ab12")
    study.best                     # the best trial (None without a metric or a value)
    study.trials[3].last["val_error"], study.trials[3].curve("val_error")
    study.to_dataframe()           # one row per trial (needs pandas: pip install 'hpc-tune[report]')
    study.curves()                 # every reported point, long form

This module is where results meet the study's internals (the journal and its fold, the trial
folders' start and exit records): the report and anything else built on it see only the
types below, so a change of the journal or the trial model is ported here alone. It reads,
never writes: a study that is running is read as a snapshot of now, and a copied study folder
reads the same as the original.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Dict, Iterator, List, Optional, Tuple

import numpy as np

from .errors import UserError

STATES = ("pending", "running", "completed", "failed", "stopped", "cancelled")
VALUED_STATES = ("completed", "stopped")
_FINAL = ("completed", "failed", "stopped", "cancelled")  # states whose value counts (a stopped trial keeps its last)


@dataclass(frozen=True)
class Attempt:
    """One job of a trial: the first submission, or a resubmission after a time limit,
    a node failure or a preemption that Slurm did not requeue itself."""

    attempt: int
    job_id: Optional[str]
    queued: Optional[float]  # unix time the backend accepted the job (at the latest, its start)
    started: Optional[float]  # first seen running (or the wrapper's start record)
    ended: Optional[float]
    outcome: str  # queued, running, or how it ended: completed, failed, stopped, cancelled, retried, preempted
    reason: str = ""
    node: Optional[str] = None  # from the wrapper's records, which survive only for the last attempt
    requeues: int = 0  # times Slurm itself requeued this job (preemption, scontrol requeue)


@dataclass
class Curve:
    """One metric's reported points, in report order (float64 arrays; ``times`` is 0 where the
    line had no time)."""

    steps: np.ndarray
    values: np.ndarray
    times: np.ndarray

    def __len__(self) -> int:
        return len(self.values)


@dataclass
class TrialResult:
    id: int
    params: Dict[str, Any]
    state: str  # one of STATES
    value: Optional[float]  # the study metric's value that counts (completed or stopped), else None
    reason: str = ""  # why it ended that way (a stopping rule, an exit code, ...)
    resource: Optional[float] = None  # the budget (Hyperband, ASHA, PBT)
    meta: Dict[str, Any] = field(default_factory=dict)  # the searcher's records: bracket, rung, parent, member...
    resume_from: Optional[int] = None  # the trial whose checkpoint this one started from
    created: Optional[float] = None
    started: Optional[float] = None
    ended: Optional[float] = None
    attempts: List[Attempt] = field(default_factory=list)
    curves: Dict[str, Curve] = field(default_factory=dict)  # every reported numeric key but ``step``/``time``
    n_reports: int = 0

    @property
    def last(self) -> Dict[str, float]:
        """Every metric's last reported value."""
        return {m: float(c.values[-1]) for m, c in self.curves.items() if len(c)}

    @property
    def minimum(self) -> Dict[str, float]:
        return {m: float(c.values.min()) for m, c in self.curves.items() if len(c)}

    @property
    def maximum(self) -> Dict[str, float]:
        return {m: float(c.values.max()) for m, c in self.curves.items() if len(c)}

    def curve(self, metric: str) -> List[Tuple[float, float]]:
        """(step, value) of ``metric`` as reported; a line without ``step`` counts as the
        trial's n-th report, as the stopping rules read it."""
        c = self.curves.get(metric)
        return list(zip(c.steps.tolist(), c.values.tolist())) if c else []

    @property
    def job_ids(self) -> List[str]:
        return [a.job_id for a in self.attempts if a.job_id]

    @property
    def run_time(self) -> Optional[float]:
        """Seconds from start to end (to now while it runs)."""
        if self.started is None:
            return None
        import time

        return max(0.0, (self.ended if self.ended is not None else time.time()) - self.started)


@dataclass
class Study:
    """A study as it stands: its trials in creation order and what it is about."""

    id: str
    path: str
    state: str  # finished, early_stopped, cancelled, failed, running, ...
    reason: str
    algorithm: str  # grid, random, hyperband, bayes, ...
    metric: Optional[str]
    optimization: Optional[str]  # minimize | maximize
    directions: Dict[str, str]  # metric -> minimize | maximize, where the study file says
    trials: List[TrialResult]
    created: Optional[float]
    gpus_per_trial: int
    warnings: List[str] = field(default_factory=list)
    algorithm_settings: Dict[str, Any] = field(default_factory=dict)  # eta, max_iter, resource name...
    log_params: Tuple[str, ...] = ()  # parameters drawn on a log scale (loguniform, logspace, ...)
    ended: Optional[float] = None  # when the study ended, None while it runs
    read_at: float = 0.0  # when this snapshot was read

    def __iter__(self) -> Iterator[TrialResult]:
        return iter(self.trials)

    def __len__(self) -> int:
        return len(self.trials)

    def trial(self, trial_id: int) -> TrialResult:
        for t in self.trials:
            if t.id == trial_id:
                return t
        raise KeyError(f"no trial {trial_id} in study {self.id}")

    @property
    def metrics(self) -> List[str]:
        """Every metric any trial reported, the study's first."""
        seen: Dict[str, None] = {}
        if self.metric:
            seen[self.metric] = None
        for t in self.trials:
            for m in t.curves:
                seen.setdefault(m, None)
        return list(seen)

    def best_values(self, t: TrialResult) -> Dict[str, float]:
        """Every metric's best value in ``t``, for the metrics whose direction the study names."""
        out = {}
        for m, c in t.curves.items():
            d = self.directions.get(m)
            if d and len(c):
                out[m] = float(c.values.max() if d == "maximize" else c.values.min())
        return out

    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for t in self.trials:
            out[t.state] = out.get(t.state, 0) + 1
        return out

    def valued(self) -> List[TrialResult]:
        """Trials whose value counts (completed or stopped, with a finite value)."""
        return [t for t in self.trials
                if t.state in VALUED_STATES and t.value is not None and math.isfinite(t.value)]

    @property
    def best(self) -> Optional[TrialResult]:
        """The best trial (ties: the earliest), None without a metric or a value yet."""
        done = self.valued()
        if not self.metric or not done:
            return None
        sign = -1.0 if self.optimization == "maximize" else 1.0
        return min(done, key=lambda t: (sign * t.value, t.id))

    def to_dataframe(self):
        """One row per trial: ``trial``, ``state``, ``value``, ``param.<name>``, ``resource``,
        ``last.<metric>`` and ``best.<metric>`` (where the direction is known), job ids, times
        and the searcher's bookkeeping (``bracket``, ``rung``, ``member``...)."""
        pd = _pandas()
        return pd.DataFrame(self.rows())

    def rows(self) -> List[Dict[str, Any]]:
        """What ``to_dataframe`` holds, as plain dicts (no pandas needed)."""
        metrics = self.metrics
        directed = [m for m in metrics if m in self.directions]
        params: Dict[str, None] = {}
        meta: Dict[str, None] = {}
        for t in self.trials:
            params.update(dict.fromkeys(t.params))
            meta.update(dict.fromkeys(t.meta))
        rows = []
        for t in self.trials:  # the same columns in every row, in the same order
            row: Dict[str, Any] = {"trial": t.id, "state": t.state, "value": t.value}
            row.update({f"param.{k}": t.params.get(k) for k in params})
            row["resource"] = t.resource
            row["resume_from"] = t.resume_from
            row.update({k: t.meta.get(k) for k in meta if k != "resume_from"})
            last, best = t.last, self.best_values(t)
            row.update({f"last.{m}": last.get(m) for m in metrics})
            row.update({f"best.{m}": best.get(m) for m in directed})
            row.update({"reports": t.n_reports, "attempts": len(t.attempts), "job_ids": " ".join(t.job_ids),
                        "created": t.created, "started": t.started, "ended": t.ended,
                        "run_time_s": t.run_time, "reason": t.reason})
            rows.append(row)
        return rows

    def curves(self):
        """Every reported point in long form: columns ``trial``, ``metric``, ``step``,
        ``value``, ``time`` (a pandas DataFrame)."""
        pd = _pandas()
        parts = {"trial": [], "metric": [], "step": [], "value": [], "time": []}
        for t in self.trials:
            for m, c in t.curves.items():
                n = len(c)
                parts["trial"].append(np.full(n, t.id, dtype=np.int64))
                parts["metric"].append(np.full(n, m, dtype=object))
                parts["step"].append(c.steps)
                parts["value"].append(c.values)
                parts["time"].append(c.times)
        cols = {k: (np.concatenate(v) if v else np.array([], dtype=object if k == "metric" else np.float64))
                for k, v in parts.items()}
        frame = pd.DataFrame(cols)
        frame["time"] = frame["time"].where(frame["time"] > 0)  # 0: the line had no time
        return frame


def _pandas():
    try:
        import pandas
    except ImportError:
        raise UserError("to_dataframe() and curves() need pandas, which is not installed: "
                        "pip install 'hpc-tune[report]' (or pip install pandas)") from None
    return pandas


# ---------------------------------------------------------------------------------- loading
# Everything below reads the study's internals; keep it that way (one adapter to port).


def load_study(path_or_id: str, state_dir: Optional[str] = None) -> Study:
    """The study at ``path_or_id``: a study folder (an original or a copy), or a study id or
    unique id prefix under ``state_dir`` (default: ``$HPC_TUNE_STATE_DIR``, else
    ``./hpc-tune-studies``). Raises ``UserError`` saying what was looked for."""
    import time

    from .journal import Journal, StudyView
    from .study import find_study
    from .summary import study_state

    study_dir = find_study(str(path_or_id), state_dir)
    journal = Journal(study_dir)
    view = StudyView(study_dir)
    fold = _AttemptsAndCurves()

    report, apply_view, apply_fold = fold.report, view.apply, fold.apply

    def handle(event: Dict[str, Any]) -> None:
        # Reports are most events: only this fold keeps them (every key, not only the
        # metric's), the controller's fold would only redo part of the work.
        if event.get("e") == "report":
            report(event)
        else:
            apply_view(event)
            apply_fold(event)

    view.offset = journal.scan(0, handle)
    if not view.info:
        raise UserError(f"{journal.path} has no study record: not an hpc-tune journal, or it was truncated")
    spec = _frozen_spec(view)
    metric = view.info.get("metric")
    optimization = view.info.get("optimization") or "minimize"
    directions = _directions(spec)
    if metric:
        directions[metric] = optimization
    trials = []
    for tid in sorted(view.trials):
        tv = view.trials[tid]
        attempts = fold.attempts_of(study_dir, tid, tv.started)
        # the fold takes a start it never saw (a job too short for a poll) to be the end; the
        # wrapper's record knows better
        starts = [a.started for a in attempts if a.started is not None]
        trials.append(TrialResult(
            id=tid, params=dict(tv.params), state=tv.state.value, value=tv.value, reason=tv.reason,
            resource=tv.resource, meta=dict(tv.meta), resume_from=tv.resume_from, created=tv.created or None,
            started=min(starts) if starts else tv.started, ended=tv.ended, attempts=attempts,
            curves=fold.curves_of(tid), n_reports=fold.n_reports(tid)))
    slurm = view.info.get("slurm") or {}
    gpus = int(spec.slurm.gpus or 0) if spec is not None else int(slurm.get("gpus") or 0)
    return Study(
        id=view.study_id, path=study_dir, state=study_state(view), reason=str((view.ended or {}).get("reason") or ""),
        algorithm=str(getattr(getattr(spec, "algorithm", None), "kind", "") or "unknown"),
        metric=metric, optimization=optimization if metric else None, directions=directions, trials=trials,
        created=float(view.info.get("t") or 0) or None, gpus_per_trial=gpus, warnings=list(view.warnings),
        algorithm_settings=_settings(spec), read_at=time.time(),
        log_params=tuple(n for n, p in (spec.space.items() if spec is not None else ())
                         if getattr(p, "log", False) or getattr(p, "log_axis", False)),
        ended=float(view.ended["t"]) if view.ended and isinstance(view.ended.get("t"), (int, float)) else None)


def _frozen_spec(view: Any) -> Any:
    """The study's frozen copy of its file with the options given at submission, or None when
    it no longer loads (a newer dialect, a pathRef missing from a copied folder): the report
    then does without it."""
    from .study import study_spec

    try:
        return study_spec(view)
    except Exception:
        return None


def _directions(spec: Any) -> Dict[str, str]:
    out: Dict[str, str] = {}
    if spec is None:
        return out
    es = spec.early_stopping
    for th in es.thresholds:
        out.setdefault(th.metric, th.optimization)
    for p in es.policies:
        out.setdefault(p.metric.name, p.metric.optimization)
    return out


def _settings(spec: Any) -> Dict[str, Any]:
    """The algorithm's settings that the multi-fidelity view draws (plain values only)."""
    if spec is None:
        return {}
    algo = spec.algorithm
    out: Dict[str, Any] = {}
    for k, v in vars(algo).items():
        if isinstance(v, (int, float, str, bool)):
            out[k] = v
        elif k == "resource" and hasattr(v, "name"):
            out["resource"] = v.name
    return out


class _AttemptsAndCurves:
    """The part of the journal the controller's fold does not keep: every reported key's
    curve, and each attempt's times (submitted, running, retried, ended)."""

    def __init__(self) -> None:
        # trial -> [reports so far, {keys of a line (in order): [n, *values, n, *values...]}]:
        # lines with the same keys share one flat list, made into arrays once at the end
        self.lines: Dict[int, List[Any]] = {}
        # trial -> list of [attempt, job, queued, started, ended, outcome, reason, node, requeues]
        self.attempts: Dict[int, List[List[Any]]] = {}

    def report(self, event: Dict[str, Any]) -> None:
        # The hot path of loading a big study (a million reports): a line's values are kept
        # with one extend; checking and splitting them into curves is done per trial, in bulk.
        tid = event.get("id")
        data = event.get("data")
        if type(tid) is not int or type(data) is not dict:
            return
        trial = self.lines.get(tid)
        if trial is None:
            trial = self.lines[tid] = [0, {}]
        keys = tuple(data)
        flat = trial[1].get(keys)
        if flat is None:
            flat = trial[1][keys] = []
        flat.append(trial[0])
        flat.extend(data.values())
        trial[0] += 1

    def n_reports(self, tid: int) -> int:
        trial = self.lines.get(tid)
        return trial[0] if trial else 0

    def curves_of(self, tid: int) -> Dict[str, Curve]:
        """Every numeric key's curve: (step, value, time) in report order. A line's step is its
        ``step`` when that is a finite number, else its position among the trial's reports (as
        the stopping rules read it); booleans, strings and non-finite values are no points."""
        trial = self.lines.get(tid)
        if not trial:
            return {}
        parts: Dict[str, List[Tuple[np.ndarray, ...]]] = {}
        for keys, flat in trial[1].items():
            width = len(keys) + 1
            table = _numbers(flat, width)  # (lines, width): NaN where not a finite number
            n = table[:, 0]
            step = table[:, 1 + keys.index("step")] if "step" in keys else n
            step = np.where(np.isnan(step), n, step)
            at = table[:, 1 + keys.index("time")] if "time" in keys else np.zeros(len(n))
            at[np.isnan(at)] = 0.0
            for j, k in enumerate(keys):
                if k in ("step", "time"):
                    continue
                v = table[:, 1 + j]
                ok = ~np.isnan(v)
                if ok.any():
                    parts.setdefault(k, []).append((n[ok], step[ok], v[ok], at[ok]))
        out = {}
        for k, chunks in parts.items():
            if len(chunks) == 1:
                _, step, v, at = chunks[0]
            else:  # lines of different keys interleave: back to report order
                n, step, v, at = (np.concatenate(c) for c in zip(*chunks))
                order = np.argsort(n, kind="stable")
                step, v, at = step[order], v[order], at[order]
            out[k] = Curve(step, v, at)
        return out

    def apply(self, event: Dict[str, Any]) -> None:
        kind = event.get("e")
        tid = event.get("id")
        if type(tid) is not int:
            return
        t = float(event.get("t", 0.0))
        rows = self.attempts.setdefault(tid, [])
        cur = rows[-1] if rows else None
        if kind == "submitted":
            attempt = int(event.get("attempt", 0))
            if cur is not None and cur[0] == attempt:  # adoption after a restart: same attempt
                cur[1] = str(event.get("job"))
                return
            if cur is not None and cur[5] in _FINAL:  # a late duplicate: the end stands
                return
            rows.append([attempt, str(event.get("job")), t, None, None, "queued", "", None, 0])
        elif kind == "state" and cur is not None and cur[4] is None:
            if event.get("state") == "running" and cur[3] is None:
                cur[3] = t
                cur[5] = "running"
        elif kind == "run" and cur is not None and cur[4] is None and event.get("job") == cur[1]:
            # a start of the job's command (journals since the run events): its node, and how
            # often Slurm requeued the job, for every attempt, not only the last
            if event.get("node"):
                cur[7] = str(event["node"])
            if type(event.get("restart_count")) is int:
                cur[8] = max(cur[8], event["restart_count"])
            if cur[3] is None and type(event.get("started")) in (int, float):
                cur[3] = float(event["started"])
                cur[5] = "running"
        elif kind == "retry" and cur is not None and cur[4] is None:
            reason = str(event.get("reason", ""))
            cur[4] = t
            cur[5] = "preempted" if "preempt" in reason else "retried"
            cur[6] = reason
        elif kind == "end" and (cur is None or cur[4] is None):
            if cur is None:  # ended before any job (cancelled while unsubmitted)
                cur = [0, None, None, None, None, "", "", None, 0]
                rows.append(cur)
            cur[4] = float(event.get("ended", t))
            if isinstance(event.get("started"), (int, float)):
                cur[3] = float(event["started"])
            cur[5] = str(event.get("state"))
            cur[6] = str(event.get("reason", ""))

    def attempts_of(self, study_dir: str, tid: int, started: Optional[float]) -> List[Attempt]:
        from .paths import StudyPaths
        from .protocol import read_exit_record, read_started_record

        rows = self.attempts.get(tid, [])
        if not rows:
            return []
        # The wrapper's records name the node and Slurm's requeues; only the last job's survive.
        tdir = StudyPaths(study_dir).trial(tid).root
        node, requeues, wrapper_start = None, 0, None
        last = rows[-1]
        # The start record is rewritten by every run of the job (a requeue too), so it has the
        # node and requeue count of the last run; the exit record only when it is missing.
        records = [read_started_record(tdir)]
        if not (records[0] and str(records[0].get("job_id")) == last[1]):
            records.append(read_exit_record(tdir))
        for record in records:
            if record and last[1] and str(record.get("job_id")) == last[1]:
                node = record.get("host") or node
                requeues = max(requeues, int(record.get("restart_count") or 0))
                if isinstance(record.get("started"), (int, float)):
                    wrapper_start = float(record["started"])
        out = []
        for i, (attempt, job, queued, start, end, outcome, why, run_node, restarts) in enumerate(rows):
            is_last = i == len(rows) - 1
            if is_last and start is None:
                # not seen running by a poll (a short job, or stopped early): the wrapper's own start
                start = wrapper_start if wrapper_start is not None else (started if outcome == "running" else None)
            if queued is not None and start is not None and start < queued:
                # the submission is journaled after the backend accepted it, and a local job
                # can start in between: it was accepted by the time it started
                queued = start
            out.append(Attempt(attempt=attempt, job_id=job, queued=queued, started=start, ended=end,
                               outcome=outcome, reason=why, node=run_node or (node if is_last else None),
                               requeues=max(restarts, requeues if is_last else 0)))
        return out


def _numbers(flat: List[Any], width: int) -> np.ndarray:
    """``flat`` as a (lines, width) float array, NaN for whatever is not a finite number."""
    if set(map(type, flat)) <= {float, int}:  # nearly always: one conversion in C
        table = np.array(flat, dtype=np.float64).reshape(-1, width)
        table[~np.isfinite(table)] = np.nan
        return table
    clean = [float(x) if (type(x) is float or type(x) is int) and math.isfinite(x) else math.nan for x in flat]
    return np.array(clean, dtype=np.float64).reshape(-1, width)
