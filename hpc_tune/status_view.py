"""``hpc-tune status`` of one study: progress against the plan, and the trial table.

The rows are chosen (``--state``, ``--sort``, ``--top``) once, by ``select``, for the
table and for ``--json`` alike. Numbers in the table are shown at 4 to 6 significant
digits: as few as keep the distinct values of a column distinct.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from tabulate import tabulate

from .errors import UserError
from .journal import StudyView
from .summary import best_trial, format_duration, metric_names, study_state, trial_row
from .trials import TrialRecord, TrialState

MAX_METRIC_COLUMNS = 4  # without a study metric: the first keys reported, the rest in --json
MAX_ROWS = 200  # without --top: the last rows, the rest in --json
# trial meta shown as columns when present: Hyperband's bracket and rung, ASHA's rung, PBT's member and interval
MULTI_FIDELITY_KEYS = ("iteration", "bracket", "rung", "member", "interval")


# ------------------------------------------------------------------------------ plan


def study_plan(view: StudyView) -> Optional[Any]:
    """The frozen spec of the study, or None when it cannot be read (then no plan is shown)."""
    from .study import study_spec

    try:
        return study_spec(view)
    except Exception:  # a status must show what it can; the spec was valid when submitted
        return None


def planned_trials(spec: Any) -> Optional[int]:
    """How many trials the study's algorithm plans, when that is known before it runs."""
    from .spec.model import (
        AshaConfig,
        BayesConfig,
        GridConfig,
        HyperbandConfig,
        HyperoptConfig,
        IterativeConfig,
        MappingConfig,
        PbtConfig,
        RandomConfig,
    )

    algo = spec.algorithm
    if isinstance(algo, PbtConfig):
        from .search.pbt import n_trials

        return n_trials(algo)
    if isinstance(algo, AshaConfig):  # promotion mode: as many promotions as the asynchronous rule makes
        return algo.n_trials if algo.mode == "stopping" else None
    if isinstance(algo, HyperbandConfig):
        from .search import hyperband

        return hyperband.n_trials(algo)
    if isinstance(algo, BayesConfig):
        return algo.n_initial_trials + algo.n_iterations
    if isinstance(algo, (HyperoptConfig, IterativeConfig)):
        return algo.n_trials
    if isinstance(algo, MappingConfig):
        return len(algo.values)
    if isinstance(algo, GridConfig):
        size = math.prod(len(spec.space[name].grid_values()) for name in spec.space)
        return size if algo.n_trials is None else min(size, algo.n_trials)
    if isinstance(algo, RandomConfig):
        size = spec.space.size()
        return algo.n_trials if size is None else min(size, algo.n_trials)
    return None


def planned_resource(spec: Any) -> Optional[float]:
    """Hyperband: the resource (epochs...) all its planned trials get together."""
    from .spec.model import HyperbandConfig

    if not isinstance(spec.algorithm, HyperbandConfig):
        return None
    from .search import hyperband

    return hyperband.planned_resource(spec.algorithm)


@dataclass
class Progress:
    planned: Optional[int]  # trials the plan has; None when the algorithm does not say
    ended: int
    running: int
    pending: int
    elapsed_s: float  # from the first trial to the last end (or now, while the study runs)
    rate_per_h: Optional[float]  # trials ended per hour
    eta_s: Optional[float]  # time left, while a controller runs and the plan is known
    now: str  # the rung(s) or interval the live trials are in

    def to_dict(self) -> Dict[str, Any]:
        return dict(self.__dict__)


def progress(view: StudyView, spec: Any, state: str, now: Optional[float] = None) -> Progress:
    now = time.time() if now is None else now
    trials = list(view.trials.values())
    ended = [t for t in trials if t.state.finished]
    running = sum(1 for t in trials if t.state is TrialState.RUNNING)
    planned = planned_trials(spec) if spec is not None else None
    first = min((t.created for t in trials), default=None)
    last = max((t.ended or 0.0 for t in ended), default=0.0)
    end = last if (view.ended is not None or state != "running") else now
    elapsed = max(0.0, end - first) if first else 0.0
    rate = 3600.0 * len(ended) / elapsed if ended and elapsed > 0 else None
    eta = None
    if state == "running" and planned is not None and rate:
        total_resource = planned_resource(spec)
        done_resource = sum(float(t.resource or 0) for t in ended)
        if total_resource and done_resource > 0:  # Hyperband: long rungs weigh more than short ones
            eta = max(0.0, total_resource - done_resource) * elapsed / done_resource
        else:
            eta = max(0, planned - len(ended)) * 3600.0 / rate
    return Progress(planned, len(ended), running, len(trials) - len(ended) - running, elapsed, rate, eta,
                    _current_stage(view))


def _current_stage(view: StudyView) -> str:
    """``bracket 2, rung 1 (resource 9)`` for the live trials of a multi-fidelity study."""
    stages: Dict[Tuple[Any, ...], Optional[float]] = {}
    for t in view.live():
        key = tuple((k, t.meta[k]) for k in MULTI_FIDELITY_KEYS if k in t.meta)
        if key:
            stages.setdefault(key, t.resource)
    parts = []
    for key, resource in sorted(stages.items(), key=lambda kv: str(kv[0])):
        text = ", ".join(f"{k} {v}" for k, v in key)
        parts.append(text + ("" if resource is None else f" (resource {resource:g})"))
    return "; ".join(parts[:4]) + (f"; and {len(parts) - 4} more" if len(parts) > 4 else "")


def format_progress(p: Progress) -> str:
    if p.planned is not None:
        text = f"{p.ended} of {p.planned} trials ended ({100.0 * p.ended / max(1, p.planned):.0f} %)"
    else:
        text = f"{p.ended} trials ended (the algorithm plans as it goes: no total)"
    text += f", {p.running} running, {p.pending} pending"
    if p.rate_per_h is not None:
        per_min = p.rate_per_h >= 120
        rate = p.rate_per_h / 60 if per_min else p.rate_per_h
        text += f"; {rate:.0f}" if rate >= 100 else f"; {rate:.3g}"
        text += " trials/min" if per_min else " trials/h"
    if p.eta_s is not None:
        text += f"; about {format_duration(p.eta_s)} left"
    return text


# ---------------------------------------------------------------------- choosing rows


def _state_filter(states: Optional[str]) -> Optional[set]:
    if not states:
        return None
    wanted = {s.strip().lower() for s in states.split(",") if s.strip()}
    known = {s.value for s in TrialState}
    bad = sorted(wanted - known)
    if bad:
        choices = ", ".join(s.value for s in TrialState)
        raise UserError(f"--state {','.join(bad)}: not a trial state; choose from {choices}"
                        f" (several: --state running,pending)")
    return wanted


def _sort_key(view: StudyView, key: str, metrics: Sequence[str]) -> Callable[[TrialRecord], Any]:
    """A getter for ``key``: trial, state, value, run_time, resource, a parameter, a
    multi-fidelity key or a reported key."""
    params = {p for t in view.trials.values() for p in t.params}
    getters: Dict[str, Callable[[TrialRecord], Any]] = {
        "trial": lambda t: t.trial_id, "state": lambda t: t.state.value, "value": lambda t: t.value,
        "run_time": lambda t: t.run_time, "resource": lambda t: t.resource,
    }
    if key in getters:
        return getters[key]
    if key in params:
        return lambda t: t.params.get(key)
    if key in MULTI_FIDELITY_KEYS:
        return lambda t: t.meta.get(key)
    if key in metrics:
        return lambda t: t.last(key)
    choices = list(getters) + sorted(params) + list(metrics)
    raise UserError(f"--sort {key}: no such column; choose from {', '.join(choices)} "
                    f"(--sort=-KEY sorts from the largest)")


def select(view: StudyView, states: Optional[str] = None, sort: Optional[str] = None,
           top: Optional[int] = None) -> List[TrialRecord]:
    """The trials to show: of ``states`` (comma-separated), ordered by ``sort`` (a column,
    ``-column`` for descending; missing values last), the first ``top`` of them. ``top``
    without ``sort`` means the best by the study's metric."""
    trials = sorted(view.trials.values(), key=lambda t: t.trial_id)
    wanted = _state_filter(states)
    if wanted is not None:
        trials = [t for t in trials if t.state.value in wanted]
    metrics = metric_names(view)
    if top is not None and top < 1:
        raise UserError(f"--top {top}: give a number of trials, 1 or more")
    if sort is None and top is not None:
        own = view.info.get("metric")
        if not own:
            raise UserError(f"--top ranks by the study's metric, and study {view.study_id} has none: "
                            f"add --sort KEY (--sort=-KEY for the largest first), e.g. --sort={(metrics or ['x'])[0]}")
        sort = ("-" if view.info.get("optimization") == "maximize" else "") + own
        trials = [t for t in trials if t.state in (TrialState.COMPLETED, TrialState.STOPPED)] or trials
    if sort:
        descending = sort.startswith("-")
        get = _sort_key(view, sort.lstrip("-"), metrics)
        present = [t for t in trials if get(t) is not None]
        missing = [t for t in trials if get(t) is None]
        present.sort(key=lambda t: _orderable(get(t)), reverse=descending)  # stable: ties by trial id
        trials = present + missing
    return trials[:top] if top is not None else trials


def _orderable(v: Any) -> Tuple[int, Any]:
    # numbers before text, so that a column of mixed values still sorts
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return (0, v)
    return (1, str(v))


# -------------------------------------------------------------------------- the table


def format_numbers(values: Sequence[Any]) -> List[str]:
    """A column's cells: floats at 4 significant digits, up to 6 when fewer would show two
    different values alike; ints, text and booleans as they are; None empty."""
    floats = sorted({v for v in values if isinstance(v, float)})
    digits = 6
    for d in (4, 5, 6):
        if len({f"{v:.{d}g}" for v in floats}) == len(floats):
            digits = d
            break
    out = []
    for v in values:
        if v is None:
            out.append("")
        elif isinstance(v, float):
            out.append(f"{v:.{digits}g}")
        else:
            out.append(str(v))
    return out


def format_status(view: StudyView, trials: Optional[List[TrialRecord]] = None, height: Optional[int] = None,
                  spec: Any = None, now: Optional[float] = None) -> str:
    """The study for a person: a header (state, progress, the current rung, the best trial)
    and one row per trial in ``trials`` (default: the last ``MAX_ROWS``). With ``height``
    (``--watch``: the terminal's), the rows are cut so that the whole fits in it and the
    header stays in view."""
    metric = view.info.get("metric")
    state = study_state(view)
    spec = spec if spec is not None else study_plan(view)
    p = progress(view, spec, state, now)
    lines = [f"study {view.study_id}: {state}"
             + (f" ({view.ended.get('reason')})" if view.ended and view.ended.get("reason") else ""),
             "progress: " + format_progress(p)]
    if p.now:
        lines.append(f"now:      {p.now}")
    best = best_trial(view)
    if best is not None:
        lines.append(f"best:     trial {best.trial_id}, {metric} = {best.value:.6g}  "
                     + " ".join(f"{k}={format_numbers([v])[0]}" for k, v in best.params.items()))
    restarted = [t for t in view.trials.values() if t.restarts or t.attempt]
    if restarted:
        lines.append(f"restarts: {sum(t.restarts for t in restarted)} by the scheduler (requeue, preemption, node "
                     f"failure), {sum(t.attempt for t in restarted)} resubmitted; time lost to them: "
                     f"{format_duration(sum(t.time_lost for t in restarted))}")
    warnings = [f"warning: {w}" for w in view.warnings[-3:]]
    chosen = trials if trials is not None else sorted(view.trials.values(), key=lambda t: t.trial_id)[-MAX_ROWS:]
    total = len(view.trials)
    if height is not None:
        room = max(1, height - len(lines) - len(warnings) - 4)  # blank, table header, rule, note
        # rows the user chose: the first ones; else the newest
        chosen = chosen[:room] if trials is not None else chosen[-room:]
    if chosen:
        lines += ["", _table(view, chosen, metric)]
    if len(chosen) < total:
        lines.append(f"({len(chosen)} of {total} trials shown; --state, --sort and --top choose which, "
                     f"--json has them all)")
    return "\n".join(lines + warnings)


def _table(view: StudyView, trials: List[TrialRecord], metric: Optional[str]) -> str:
    params: Dict[str, None] = {}
    for t in trials:
        params.update(dict.fromkeys(t.params))
    metrics = [metric] if metric else [m for m in metric_names(view)][:MAX_METRIC_COLUMNS]
    stages = [k for k in MULTI_FIDELITY_KEYS if any(k in t.meta for t in trials)]
    columns: List[Tuple[str, List[Any]]] = [
        ("trial", [t.trial_id for t in trials]),
        ("state", [t.state.value for t in trials]),
        *[(k, [t.meta.get(k) for t in trials]) for k in stages],
    ]
    if any(t.resource is not None for t in trials):
        columns.append(("resource", [t.resource for t in trials]))
    columns += [(p, [t.params.get(p) for t in trials]) for p in params]
    columns += [(m, [t.value if m == metric and t.value is not None else t.last(m) for t in trials])
                for m in metrics]
    columns += [("run time", [format_duration(t.run_time) for t in trials])]
    if any(t.restarts or t.attempt for t in trials):
        columns.append(("restarts", [_restarts_text(t) for t in trials]))
    columns += [("job", [t.job_id or "" for t in trials]),
                ("note", [t.reason[:60] for t in trials])]
    cells = [format_numbers(values) for _, values in columns]
    rows = [list(r) for r in zip(*cells)]
    return tabulate(rows, headers=[name for name, _ in columns], disable_numparse=True)


def _restarts_text(t: TrialRecord) -> str:
    """``2 (lost 0:01:05)``: restarts and resubmissions of a trial and the time they cost."""
    n = t.restarts + t.attempt
    return f"{n} (lost {format_duration(t.time_lost)})" if n else ""


def status_dict(view: StudyView, trials: Optional[List[TrialRecord]] = None, spec: Any = None) -> Dict[str, Any]:
    """``status --json``: the header's facts and every chosen trial with all its reported keys."""
    state = study_state(view)
    spec = spec if spec is not None else study_plan(view)
    best = best_trial(view)
    keys = metric_names(view)
    chosen = trials if trials is not None else sorted(view.trials.values(), key=lambda t: t.trial_id)
    return {
        "study": view.study_id,
        "state": state,
        "reason": (view.ended or {}).get("reason"),
        "metric": view.info.get("metric"),
        "optimization": view.info.get("optimization"),
        "counts": view.counts(),
        "progress": progress(view, spec, state).to_dict(),
        "best": None if best is None else {"trial": best.trial_id, "value": best.value, "params": best.params},
        "metric_names": keys,
        "trials": [trial_row(t, keys) for t in chosen],
        "warnings": view.warnings,
    }
