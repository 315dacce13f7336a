"""Reading a study for people and programs: status tables, the best trial, exports."""
from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from tabulate import tabulate

from .controller.lease import lease_holder
from .journal import StudyView
from .paths import StudyPaths
from .trials import TrialRecord


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


def best_trial(view: StudyView) -> Optional[TrialRecord]:
    return view.best()


def _fmt_time(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def status_dict(view: StudyView) -> Dict[str, Any]:
    best = best_trial(view)
    return {
        "study": view.study_id,
        "state": study_state(view),
        "reason": (view.ended or {}).get("reason"),
        "metric": view.info.get("metric"),
        "counts": view.counts(),
        "best": None if best is None else {"trial": best.trial_id, "value": best.value, "params": best.params},
        "trials": export_rows(view),
        "warnings": view.warnings,
    }


def format_status(view: StudyView, max_rows: int = 200) -> str:
    metric = view.info.get("metric")
    counts = view.counts()
    lines = [f"study {view.study_id}: {study_state(view)}"
             + (f" ({view.ended.get('reason')})" if view.ended and view.ended.get("reason") else ""),
             "trials: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items())) or "none yet")]
    best = best_trial(view)
    if best is not None:
        lines.append(f"best:   trial {best.trial_id}, {metric} = {best.value:g}")
    restarted = [t for t in view.trials.values() if t.restarts or t.attempt]
    if restarted:
        lost = sum(t.time_lost for t in view.trials.values())
        lines.append(f"restarts: {sum(t.restarts for t in restarted)} by the scheduler (requeue, preemption, node "
                     f"failure), {sum(t.attempt for t in restarted)} resubmitted; time lost to them: "
                     f"{_fmt_time(lost)}")
    rows = []
    trials = sorted(view.trials.values(), key=lambda t: t.trial_id)
    for t in trials[-max_rows:]:
        last = t.last(metric) if metric else None
        rows.append([t.trial_id, t.state.value, t.job_id or "", _params_text(t), "" if t.resource is None
                     else f"{t.resource:g}", "" if last is None else f"{last:g}", _fmt_time(t.run_time),
                     _restarts_text(t), t.reason[:60]])
    if rows:
        lines += ["", tabulate(rows, headers=["trial", "state", "job", "parameters", "resource",
                                              metric or "metric", "run time", "restarts", "note"])]
    if len(trials) > max_rows:
        lines.append(f"(only the last {max_rows} of {len(trials)} trials; --json has them all)")
    for w in view.warnings[-5:]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def _restarts_text(t: TrialRecord) -> str:
    """``2 (lost 0:01:05)``: restarts and resubmissions of a trial and the time they cost."""
    n = t.restarts + t.attempt
    return f"{n} (lost {_fmt_time(t.time_lost)})" if n else ""


def _params_text(t: TrialRecord) -> str:
    return " ".join(f"{k}={v}" for k, v in t.params.items())


def export_rows(view: StudyView) -> List[Dict[str, Any]]:
    metric = view.info.get("metric")
    rows = []
    for t in sorted(view.trials.values(), key=lambda t: t.trial_id):
        row: Dict[str, Any] = {"trial": t.trial_id, "state": t.state.value, "value": t.value}
        row.update({f"param.{k}": v for k, v in t.params.items()})
        if t.resource is not None:
            row["resource"] = t.resource
        row.update({"job_id": t.job_id, "attempt": t.attempt, "reason": t.reason,
                    "runs": t.runs, "restarts": t.restarts, "time_lost_s": round(t.time_lost, 1),
                    "run_time_s": None if t.run_time is None else round(t.run_time, 1),
                    "reports": t.n_reports,
                    f"last.{metric}" if metric else "last": t.last(metric) if metric else None})
        for k in ("bracket", "rung", "parent"):
            if k in t.meta:
                row[k] = t.meta[k]
        rows.append(row)
    return rows


def trial_log_paths(study_dir: str, t: TrialRecord) -> List[str]:
    """The trial's own output files, then the scheduler's log of its last job."""
    study = StudyPaths(study_dir)
    paths = study.trial(t.trial_id).own_logs()
    if t.job_id:
        paths += study.scheduler_logs(t.job_id)
    return [p for p in paths if os.path.getsize(p) > 0 or p.endswith(".err")]

