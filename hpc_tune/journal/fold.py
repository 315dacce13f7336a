"""The fold: a study's journal replayed into what happened, one apply method per event kind
(as Optuna's journal storage replays one operation per method). Pure: events in, state out.

``StudyView`` is the only in-memory state of a study; everything in it comes from the journal
(``replay.load_view`` replays it, ``replay.refresh`` folds what was appended since). Its
trials are the one trial model, ``hpc_tune.trials.TrialRecord``.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Mapping, Optional

from ..paths import StudyPaths
from ..trials import LIVE_STATES, History, TrialRecord, TrialState
from . import events as ev  # the JSON form each apply_<kind> reads


@dataclass
class StudyView:
    study_dir: str
    info: Dict[str, Any] = field(default_factory=dict)  # the study event's fields
    trials: Dict[int, TrialRecord] = field(default_factory=dict)  # in creation (= id) order
    ended: Optional[Dict[str, Any]] = None
    cancel_requested: Optional[str] = None
    controllers: List[Dict[str, Any]] = field(default_factory=list)
    warnings: List[str] = field(default_factory=list)
    offset: int = 0  # journal bytes folded so far

    @property
    def paths(self) -> StudyPaths:
        return StudyPaths(self.study_dir)

    @property
    def study_id(self) -> str:
        return str(self.info.get("id") or self.paths.name)

    @property
    def seed(self) -> int:
        return int(self.info["seed"])

    @property
    def metric(self) -> Optional[str]:
        return self.info.get("metric")

    @property
    def maximize(self) -> bool:
        return self.info.get("optimization") == "maximize"

    def live(self) -> List[TrialRecord]:
        # A tuple test instead of the ``live`` property: 6x faster over 10,000 trials, and a
        # cycle asks several times.
        return [t for t in self.trials.values() if t.state in LIVE_STATES]

    def counts(self) -> Dict[str, int]:
        out: Dict[str, int] = {}
        for t in self.trials.values():
            out[t.state.value] = out.get(t.state.value, 0) + 1
        return out

    def history(self) -> History:
        """The trials as a searcher sees them (in id order; it must not change them)."""
        return History(tuple(sorted(self.trials.values(), key=_trial_id)))

    def best(self) -> Optional[TrialRecord]:
        """The best trial by the study's metric (None without a metric or a value)."""
        if not self.metric:
            return None
        return self.history().best(self.maximize)

    # -- the fold ---------------------------------------------------------------
    def apply(self, event: Dict[str, Any]) -> None:
        """Fold one event (its JSON form, see ``events``)."""
        kind = event.get("e")
        if kind == "report":  # most events: first, cheapest, and read in place (no event object)
            tid = event.get("id")
            t = self.trials.get(tid) if type(tid) is int else None
            if t is not None:
                data = event.get("data")
                if type(data) is dict:
                    t.add_report(data)
                end = event.get("end", 0)
                if type(end) is int and end > t.result_offset:
                    t.result_offset = end
                t.last_report_t = event.get("t")
            return
        handler = _APPLY.get(kind)  # type: ignore[arg-type]
        if handler is not None:
            handler(self, event, float(event.get("t", 0.0)))

    # Each apply_<kind> reads the JSON form that ``events.<Type>.to_json`` writes (and 0.1.0
    # wrote), leniently, straight from the dict: building the event object first made a
    # replay of a controller's journal ~20 % slower (benchmarks/controller_scale.py).
    def apply_study(self, event: Mapping[str, Any], ts: float) -> None:
        self.info = dict(event)

    def apply_trial(self, event: Mapping[str, Any], ts: float) -> None:
        tid = event.get("id")
        if type(tid) is not int or tid in self.trials:
            return
        meta = dict(event.get("meta") or {})
        resume_from = event.get("resume_from", meta.get("resume_from"))  # 0.1.0: in Hyperband's meta
        self.trials[tid] = TrialRecord(tid, dict(event.get("params") or {}), resource=event.get("resource"),
                                       meta=meta, resume_from=resume_from if type(resume_from) is int else None,
                                       created=ts)

    def apply_submitted(self, event: Mapping[str, Any], ts: float) -> None:
        tid = event.get("id")
        t = self.trials.get(tid) if type(tid) is int else None
        if t is None:
            return
        t.job_id = str(event.get("job"))
        attempt = event.get("attempt")
        if type(attempt) is int:
            t.attempt = attempt
        t.submitted = True
        if t.state in LIVE_STATES:  # else a late duplicate: the end stands
            t.state = TrialState.PENDING

    def apply_run(self, event: Mapping[str, Any], ts: float) -> None:
        tid = event.get("id")
        t = self.trials.get(tid) if type(tid) is int else None
        if t is None or t.state not in LIVE_STATES or event.get("run") == t.run:
            return
        started = event.get("started")
        started = float(started) if type(started) in (int, float) else ts
        if t.runs and type(t.last_report_t) in (int, float):
            t.time_lost += max(0.0, started - t.last_report_t)
        restart = event.get("restart_count")
        if type(restart) is int and restart > 0:
            t.restarts += 1
        t.runs += 1
        t.run = str(event.get("run"))
        t.run_started = started
        t.run_over = False
        t.run_end = ""
        if t.started is None:
            t.started = started

    def apply_state(self, event: Mapping[str, Any], ts: float) -> None:
        tid = event.get("id")
        t = self.trials.get(tid) if type(tid) is int else None
        if t is None or t.state not in LIVE_STATES:
            return
        if event["state"] == "pending" and t.state is TrialState.RUNNING and t.run is not None:
            t.run_over = True  # requeued: the run that was running is over for the scheduler
            t.run_end = str(event.get("raw", ""))
        t.state = TrialState(event["state"])
        t.raw_state = str(event.get("raw", ""))
        if t.state is TrialState.RUNNING and t.started is None:
            t.started = ts

    def apply_retry(self, event: Mapping[str, Any], ts: float) -> None:
        tid = event.get("id")
        t = self.trials.get(tid) if type(tid) is int else None
        if t is None:
            return
        attempt = event.get("attempt")
        t.attempt = attempt if type(attempt) is int else t.attempt + 1
        t.retries += 1 if event.get("counted", True) else 0
        t.submitted = False
        t.job_id = None
        t.state = TrialState.PENDING
        t.reason = str(event.get("reason", ""))

    def apply_end(self, event: Mapping[str, Any], ts: float) -> None:
        tid = event.get("id")
        t = self.trials.get(tid) if type(tid) is int else None
        if t is None or t.state not in LIVE_STATES:  # one end per trial: a later one is ignored
            return
        t.state = TrialState(event["state"])
        value = event.get("value")
        t.value = float(value) if type(value) in (int, float) else None
        t.reason = str(event.get("reason", ""))
        raw = event.get("raw")
        if raw is not None:
            t.raw_state = str(raw)
        ended = event.get("ended")
        t.ended = float(ended) if type(ended) in (int, float) else ts
        started = event.get("started")
        if type(started) in (int, float):
            t.started = float(started)
        elif t.started is None and t.state is not TrialState.CANCELLED:
            t.started = t.ended

    def apply_study_end(self, event: Mapping[str, Any], ts: float) -> None:
        tid = event.get("id")
        if not (type(tid) is int and tid in self.trials):
            self.ended = dict(event)

    def apply_cancel(self, event: Mapping[str, Any], ts: float) -> None:
        tid = event.get("id")
        if not (type(tid) is int and tid in self.trials):
            self.cancel_requested = str(event.get("reason", "cancelled by the user"))

    def apply_options(self, event: Mapping[str, Any], ts: float) -> None:
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
        backend = event.get("backend")
        if isinstance(backend, str):
            self.info["backend"] = backend

    def apply_controller(self, event: Mapping[str, Any], ts: float) -> None:
        tid = event.get("id")
        if not (type(tid) is int and tid in self.trials):
            self.controllers.append(dict(event))

    def apply_warning(self, event: Mapping[str, Any], ts: float) -> None:
        tid = event.get("id")
        message = str(event.get("message", ""))
        self.warnings.append(f"trial {tid}: {message}" if type(tid) is int and tid in self.trials else message)


def _trial_id(t: TrialRecord) -> int:
    return t.trial_id


_APPLY: Dict[str, Callable[[StudyView, Mapping[str, Any], float], None]] = {
    cls.KIND: getattr(StudyView, f"apply_{cls.KIND}") for cls in ev.EVENT_TYPES if cls is not ev.Reported
}
