"""Reading a study for people and programs: status tables, the best trial, exports."""
from __future__ import annotations

import glob
import os
from typing import Any, Dict, List, Optional

from tabulate import tabulate

from .search.base import TrialState
from .study import LEASE_FILE, StudyView, TrialView, holder_description, trial_dir
from .trial import read_json


def study_state(view: StudyView) -> str:
    if view.ended is not None:
        return str(view.ended.get("state"))
    if view.cancel_requested is not None:
        return "cancelling"
    lease = read_json(os.path.join(view.study_dir, LEASE_FILE))
    if holder_description(lease):
        return "running"
    if any(c.get("action") == "submitted" for c in view.controllers[-1:]):
        return "controller queued"
    return "stopped (no controller: `hpc-tune resume` carries on)"


def best_trial(view: StudyView) -> Optional[TrialView]:
    metric = view.info.get("metric")
    if not metric:
        return None
    done = [t for t in view.trials.values()
            if t.state in (TrialState.COMPLETED, TrialState.STOPPED) and t.value is not None]
    if not done:
        return None
    maximize = view.info.get("optimization") == "maximize"
    return (max if maximize else min)(done, key=lambda t: (t.value, -t.trial_id) if maximize
                                      else (t.value, t.trial_id))


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
    rows = []
    trials = sorted(view.trials.values(), key=lambda t: t.trial_id)
    places = any(trial_place(t.meta) for t in trials[-max_rows:])
    for t in trials[-max_rows:]:
        last = t.last(metric) if metric else None
        rows.append([t.trial_id, t.state.value, t.job_id or "", _params_text(t), "" if t.resource is None
                     else f"{t.resource:g}", "" if last is None else f"{last:g}", _fmt_time(t.run_time),
                     t.reason[:60]] + ([trial_place(t.meta)] if places else []))
    if rows:
        lines += ["", tabulate(rows, headers=["trial", "state", "job", "parameters", "resource",
                                              metric or "metric", "run time", "note"]
                               + (["place"] if places else []))]
    if len(trials) > max_rows:
        lines.append(f"(only the last {max_rows} of {len(trials)} trials; --json has them all)")
    for w in view.warnings[-5:]:
        lines.append(f"warning: {w}")
    return "\n".join(lines)


def trial_place(meta: Dict[str, Any]) -> str:
    """Where a trial sits in its algorithm: "bracket 2 rung 1" (Hyperband), "rung 1"
    (ASHA), "member 3 interval 2" (PBT), with the trial it starts from ("<- 12")."""
    parts = []
    if meta.get("member") is not None:
        parts.append(f"member {meta['member']} interval {meta.get('interval')}")
    else:
        if meta.get("bracket") is not None:
            parts.append(f"bracket {meta['bracket']}")
        if meta.get("rung") is not None:
            parts.append(f"rung {meta['rung']}")
    if meta.get("resume_from") is not None:
        parts.append(f"<- {meta['resume_from']}")
    return " ".join(parts)


def _params_text(t: TrialView) -> str:
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
                    "run_time_s": None if t.run_time is None else round(t.run_time, 1),
                    "reports": t.n_reports,
                    f"last.{metric}" if metric else "last": t.last(metric) if metric else None})
        for k in ("bracket", "rung", "parent", "member", "interval", "resume_from", "donor"):
            if k in t.meta:
                row[k] = t.meta[k]
        rows.append(row)
    return rows


def trial_log_paths(study_dir: str, t: TrialView) -> List[str]:
    """The trial's own output files, then the scheduler's log of its last job."""
    tdir = trial_dir(study_dir, t.trial_id)
    paths = sorted(p for pattern in ("*.out", "*.err", "*.log") for p in glob.glob(os.path.join(tdir, pattern)))
    if t.job_id:
        paths += sorted(glob.glob(os.path.join(study_dir, "slurm", "**", f"{t.job_id}_*_log.*"), recursive=True))
    return [p for p in paths if os.path.getsize(p) > 0 or p.endswith(".err")]

