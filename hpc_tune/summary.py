"""Reading a study for people and programs: the best trial, exports, logs (the status
view is ``hpc_tune.status_view``)."""
from __future__ import annotations

from typing import Any, Dict, Iterator, List, Optional, Tuple

from .controller.lease import lease_holder
from .journal import StudyView
from .paths import StudyPaths
from .trials import VALUE_STATES, TrialRecord


def study_state(view: StudyView) -> str:
    if view.ended is not None:
        return str(view.ended.get("state"))
    if view.cancel_requested is not None:
        return "cancelling"
    if lease_holder(view.study_dir):
        return "running"
    if any(c.get("action") == "submitted" for c in view.controllers[-1:]):
        return "controller queued"
    return "stopped (no controller: `hpc-tune resume` carries on)"


def best_trial(view: StudyView, metric: Optional[str] = None, maximize: Optional[bool] = None
               ) -> Optional[TrialRecord]:
    """The best completed (or stopped) trial by the study's metric, or by ``metric`` (its
    last reported value; ``maximize`` says which way, default: the study's way for its own
    metric, else minimize)."""
    own = view.info.get("metric")
    metric = metric or own
    if not metric:
        return None
    if maximize is None:
        maximize = metric == own and view.info.get("optimization") == "maximize"
    by_journal = metric == own  # the value the controller recorded at the end
    done = []
    for t in view.trials.values():
        if t.state not in VALUE_STATES:
            continue
        value = t.value if by_journal else t.last(metric)
        if value is not None:
            done.append((value, t))
    if not done:
        return None
    if maximize:
        return max(done, key=lambda vt: (vt[0], -vt[1].trial_id))[1]
    return min(done, key=lambda vt: (vt[0], vt[1].trial_id))[1]


def metric_of(view: StudyView, t: TrialRecord, metric: str) -> Optional[float]:
    """What ``best_trial`` ranked ``t`` by."""
    return t.value if metric == view.info.get("metric") else t.last(metric)


def no_metric_hint(view: StudyView) -> str:
    """Where `metric:` goes, for a study that has none."""
    where = view.info.get("file") or "the study file"
    keys = metric_names(view)
    example = keys[0] if keys else "loss"
    reported = f" (the trials reported: {', '.join(keys)})" if keys else ""
    return (f"study {view.study_id} has no metric to rank trials by: name a reported key with "
            f"--metric NAME [--maximize]{reported}; for the next study, add `metric: {{name: {example}, "
            f"optimization: minimize}}` under `hptuning:` in {where}")


def format_duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def metric_names(view: StudyView) -> List[str]:
    """Every key the trials reported a number for (besides step and time), the study's
    metric first, then in the order they first came."""
    names: Dict[str, None] = {}
    own = view.info.get("metric")
    if own:
        names[own] = None
    for t in sorted(view.trials.values(), key=lambda t: t.trial_id):
        for k in t.metric_names():
            names.setdefault(k, None)
    return list(names)


def trial_row(t: TrialRecord, keys: List[str]) -> Dict[str, Any]:
    """One trial for programs: parameters and the last value of every reported key nested."""
    row: Dict[str, Any] = {"trial": t.trial_id, "state": t.state.value, "value": t.value,
                           "params": dict(t.params),
                           "metrics": {k: t.last(k) for k in keys if t.last(k) is not None}}
    if t.resource is not None:
        row["resource"] = t.resource
    for k in ("iteration", "bracket", "rung", "parent", "member", "interval", "donor"):
        if k in t.meta:
            row[k] = t.meta[k]
    if t.resume_from is not None:
        row["resume_from"] = t.resume_from
    row.update({"job_id": t.job_id, "attempt": t.attempt, "reason": t.reason,
                "runs": t.runs, "restarts": t.restarts, "time_lost_s": round(t.time_lost, 1),
                "started": t.started, "ended": t.ended,
                "run_time_s": None if t.run_time is None else round(t.run_time, 1), "reports": t.n_reports})
    return row


def export_rows(view: StudyView) -> List[Dict[str, Any]]:
    keys = metric_names(view)
    return [trial_row(t, keys) for t in sorted(view.trials.values(), key=lambda t: t.trial_id)]


def flat_row(row: Dict[str, Any]) -> Dict[str, Any]:
    """A nested row for a CSV file: ``params.x`` -> ``param.x``, ``metrics.loss`` -> ``metric.loss``."""
    out: Dict[str, Any] = {}
    for k, v in row.items():
        if k == "params":
            out.update({f"param.{p}": pv for p, pv in v.items()})
        elif k == "metrics":
            out.update({f"metric.{m}": mv for m, mv in v.items()})
        else:
            out[k] = v
    return out


def curve_rows(view: StudyView) -> Iterator[Tuple[int, Any, str, float]]:
    """Every reported number in long form: (trial, step, key, value), trial by trial, line
    by line, in the order the keys came on each line."""
    for t in sorted(view.trials.values(), key=lambda t: t.trial_id):
        columns = list(t.curve_values.items())
        for i, step in enumerate(t.curve_steps):
            for key, col in columns:
                v = col[i]
                if v == v:
                    yield t.trial_id, step, key, v


def trial_log_paths(study_dir: str, t: TrialRecord) -> List[str]:
    """The trial's own output files, then the scheduler's log of its last job (empty ones too)."""
    study = StudyPaths(study_dir)
    paths = study.trial(t.trial_id).own_logs()
    if t.job_id:
        paths += study.scheduler_logs(t.job_id)
    return paths

