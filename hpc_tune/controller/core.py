"""The controller's decisions, without I/O: (study as folded, what the backend and the trial
files say) -> what to do.

``DecisionCore`` reads a ``StudyView`` (the journal's fold) and ``News`` (the loop read the
trial files through the trial protocol and, now and then, polled the backend) and returns
``Decision``s: events to journal, jobs to cancel, trials to submit. It never touches a file,
a clock, a process or the scheduler, so two controllers given the same journal and the same
news decide the same (which is what a restart relies on, and what the property tests of
tests/controller check).

A cycle asks it in phases, and the loop journals each phase's events (and folds them) before
the next, because each phase reads what the one before wrote:

1. ``reports``: the trials' new result lines as ``report`` events (a line that is not a JSON
   object becomes a warning);
   ``runs``: a ``run`` event for each run of a trial the wrapper's start record shows for the
   first time (each attempt, each restart of its job by the scheduler);
2. ``outcomes``: ends, retries and state changes, from exit records and job states. Only the
   current run's exit record counts: not one of a run that a newer run has replaced, nor one
   of a run whose job the scheduler has requeued meanwhile (its node lost only its slurmd:
   the old copy may end while Slurm starts the job again; docs/slurm-facts.md);
3. ``stopping``: every ``StoppingRule`` (thresholds, failure share, per-trial policies);
4. ``new_trials``: ask the searcher to fill the free slots (recorded BEFORE submission);
5. ``finished``: the study's end once the searcher is exhausted and nothing is live.

``cancelled`` ends a study the user cancelled, ``adoptions`` recognises the jobs of trials
recorded but never marked submitted (a crash between sbatch and the journal), and
``job_request`` says what to submit for a trial: where it resumes from is the suggestion's
``resume_from``, whatever the searcher.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import AbstractSet, Any, Dict, List, Mapping, Optional, Sequence, Tuple

from ..backends.base import JobRequest, JobState, JobStatus
from ..journal import StudyView
from ..journal import events as ev
from ..paths import StudyPaths
from ..protocol import RESULT_FILE
from ..search import suggest
from ..search.pbt import checkpoints_needed
from ..spec import Spec, render
from ..spec.model import PbtConfig
from ..trials import TrialRecord, TrialState
from .stopping import StoppingRule, rules_of

# How a backend's final job state ends a trial (None: the trial may be retried).
_FAILED_STATES = {
    JobState.FAILED: "the job failed",
    JobState.OUT_OF_MEMORY: "the job ran out of memory (OUT_OF_MEMORY)",
    JobState.BOOT_FAIL: "the node failed to boot (BOOT_FAIL)",
    JobState.DEADLINE: "the job missed its deadline (DEADLINE)",
}
_RETRY_STATES = {
    JobState.TIMEOUT: "time limit reached (TIMEOUT)",
    JobState.NODE_FAIL: "node failure (NODE_FAIL)",
    JobState.LOST: "the job vanished",
}
MAX_SUBMIT_PER_CYCLE = 1000
NO_EXIT_RECORD = "COMPLETED-no-exit-record"  # raw state: the job completed, its exit record not seen yet
# A job the scheduler shows pending while its run has been running this long was requeued;
# sooner, the scheduler's accounting may simply lag behind the job's start (sacct: seconds).
REQUEUE_EVIDENCE_S = 15.0
_REQUEUED = (JobState.PENDING, JobState.REQUEUED)


@dataclass(frozen=True)
class TrialNews:
    """What one live trial's files say: its exit record (None if there is none yet), the
    bytes appended to its result file since the journal's copy (``TrialRecord.result_offset``),
    and its start record (the latest run's claim)."""

    exit: Optional[Mapping[str, Any]] = None
    new_lines: bytes = b""
    started: Optional[Mapping[str, Any]] = None  # the start record: the latest run's claim


@dataclass(frozen=True)
class News:
    trials: Mapping[int, TrialNews] = field(default_factory=dict)
    statuses: Mapping[str, JobStatus] = field(default_factory=dict)  # job id -> state (one poll)
    time: Optional[float] = None  # when the loop read it (unix time)


@dataclass
class Decision:
    """Cancel ``cancel`` (job ids), then journal ``events``; then submit ``submit`` (trial ids)."""

    events: List[ev.Event] = field(default_factory=list)
    cancel: List[str] = field(default_factory=list)
    submit: List[int] = field(default_factory=list)
    exhausted: bool = False  # new_trials: the searcher will suggest nothing more


class DecisionCore:
    def __init__(self, spec: Spec, rules: Optional[Sequence[StoppingRule]] = None):
        self.spec = spec
        self.metric = spec.metric.name if spec.metric else None
        self.max_retries = spec.slurm.max_retries
        self.rules = tuple(rules) if rules is not None else rules_of(spec.early_stopping, spec.algorithm)
        # PBT: every trial gets its own checkpoint folder, a copy of its source's (see checkpoint_copy)
        self.copies_checkpoints = isinstance(spec.algorithm, PbtConfig)
        resource = getattr(spec.algorithm, "resource", None)  # multi-fidelity searchers name it
        self.resource_param: Optional[str] = getattr(resource, "name", None)

    # ------------------------------------------------------------------ 1. reports
    def reports(self, view: StudyView, news: News) -> List[ev.Event]:
        out: List[ev.Event] = []
        for tid, tn in news.trials.items():
            t = view.trials.get(tid)
            if t is not None and tn.new_lines:
                out.extend(parse_result_lines(tid, t.result_offset, tn.new_lines))
        return out

    # ------------------------------------------------------------------- runs
    def runs(self, view: StudyView, news: News) -> List[ev.Event]:
        """A ``run`` event for each live trial whose start record names a run of its current
        attempt and job that the journal does not know yet."""
        out: List[ev.Event] = []
        for tid, tn in news.trials.items():
            t = view.trials.get(tid)
            rec = tn.started
            if t is None or rec is None or not t.state.live or not t.submitted:
                continue
            run = rec.get("run")
            if not isinstance(run, str) or run == t.run or _attempt_of(rec) != t.attempt \
                    or str(rec.get("job_id")) != t.job_id:
                continue
            restart = rec.get("restart_count") if type(rec.get("restart_count")) is int else 0
            if restart > 0:
                after = t.run_end if t.run_over and t.run_end else "restarted by the scheduler"
            elif t.attempt > 0 and t.runs:
                after = t.reason or None  # the retry's reason
            else:
                after = None
            started = rec.get("started")
            out.append(ev.RunStarted(tid, t.attempt, run, t.job_id or "", str(rec.get("node") or rec.get("host") or ""),
                                     restart, float(started) if type(started) in (int, float) else None, after))
        return out

    # ----------------------------------------------------------------- 2. outcomes
    def outcomes(self, view: StudyView, news: News) -> Decision:
        """Ends, retries and state changes of the live submitted trials. The current run's
        exit record comes first; the backend's state only without one."""
        d = Decision()
        for t in view.live():
            if not t.submitted:
                continue
            tn = news.trials.get(t.trial_id)
            record = tn.exit if tn is not None else None
            status = news.statuses.get(t.job_id or "")
            if record is not None and self._counts(t, record, status, news.time):
                self._end_from_exit(d, t, record)
                continue
            if status is not None:
                self._apply_status(d, t, status, news.time)
            elif (t.state is TrialState.PENDING and not t.run_over and tn is not None and tn.started is not None
                  and tn.started.get("job_id") == t.job_id and tn.started.get("run") in (None, t.run)):
                d.events.append(ev.StateChanged(t.trial_id, "running", "started"))
        return d

    def _counts(self, t: TrialRecord, record: Mapping[str, Any], status: Optional[JobStatus],
                now: Optional[float]) -> bool:
        """Whether an exit record ends the trial: it is the current run's, and the scheduler
        has not requeued that run's job meanwhile."""
        if _attempt_of(record) != t.attempt or t.run_over or self._requeued(t, status, now):
            return False
        run = record.get("run")
        return run is None or run == t.run  # no run: a wrapper older than runs; its attempt is all it says

    @staticmethod
    def _requeued(t: TrialRecord, status: Optional[JobStatus], now: Optional[float]) -> bool:
        """The scheduler shows the job of a running run waiting again: it requeued it."""
        if status is None or t.state is not TrialState.RUNNING or t.run is None:
            return False
        if status.state is JobState.REQUEUED:
            return True
        return (status.state is JobState.PENDING and now is not None and t.run_started is not None
                and now - t.run_started >= REQUEUE_EVIDENCE_S)

    def _apply_status(self, d: Decision, t: TrialRecord, status: JobStatus, now: Optional[float] = None) -> None:
        state = status.state
        if state is JobState.RUNNING and t.state is not TrialState.RUNNING:
            d.events.append(ev.StateChanged(t.trial_id, "running", status.raw))
        elif state.live or state is JobState.UNKNOWN:
            if self._requeued(t, status, now):
                why = status.reason or status.raw or state.value
                d.events.append(ev.StateChanged(t.trial_id, "pending", f"requeued ({why})"))
            return
        elif state is JobState.COMPLETED:
            # Finished but no exit record (yet): the file system may lag; the next poll sees
            # it. A job that truly wrote none ends then.
            if t.raw_state == NO_EXIT_RECORD:
                self._end_clean_exit(d, t, status.raw)
            else:
                d.events.append(ev.StateChanged(t.trial_id, t.state.value, NO_EXIT_RECORD))
        elif state is JobState.CANCELLED:
            self._end(d, t, TrialState.CANCELLED, f"the job was cancelled outside hpc-tune ({status.raw})", status.raw)
        elif state is JobState.PREEMPTED:
            self._retry(d, t, "preempted and not requeued by Slurm", counted=False)
        elif state in _RETRY_STATES:
            reason = _RETRY_STATES[state]
            if state is JobState.LOST and status.reason:
                reason += f" ({status.reason})"
            self._retry(d, t, reason, counted=True, raw=status.raw)
        else:
            reason = _FAILED_STATES.get(state, f"the job ended {status.raw or state.value}")
            if status.exit_code:
                reason += f" (exit code {status.exit_code})"
            self._end(d, t, TrialState.FAILED, reason, status.raw)

    def _end_from_exit(self, d: Decision, t: TrialRecord, record: Mapping[str, Any]) -> None:
        code = record.get("exit_code")
        times = {k: float(record[k]) for k in ("started", "ended")
                 if isinstance(record.get(k), (int, float)) and not isinstance(record.get(k), bool)}
        if code == 0:
            self._end_clean_exit(d, t, "exit 0", **times)
        elif record.get("timed_out"):  # the local backend's time limit, as Slurm's TIMEOUT
            self._retry(d, t, _RETRY_STATES[JobState.TIMEOUT], counted=True)
        elif "SIGUSR2" in (record.get("signals_received") or []):
            # The scheduler's warning before the time limit, and no requeue: resubmit.
            self._retry(d, t, f"time limit reached (exit code {code} after SIGUSR2)", counted=True)
        else:
            sig = record.get("signal")
            why = f"killed by {sig}" if sig else f"exit code {code}"
            self._end(d, t, TrialState.FAILED, f"the command failed ({why}); see `hpc-tune logs`", f"exit {code}",
                      **times)

    def _end_clean_exit(self, d: Decision, t: TrialRecord, raw: str, **times: float) -> None:
        if self.metric is not None and t.last(self.metric) is None:
            self._end(d, t, TrialState.FAILED, f"exited 0 without reporting `{self.metric}`", raw, **times)
        else:
            self._end(d, t, TrialState.COMPLETED, "", raw, **times)

    def _end(self, d: Decision, t: TrialRecord, state: TrialState, reason: str, raw: str = "",
             **times: float) -> None:
        d.events.append(self.end_event(t, state, reason, raw, **times))

    def end_event(self, t: TrialRecord, state: TrialState, reason: str, raw: Optional[str] = "",
                  **times: float) -> ev.Ended:
        """The end of a trial; a completed or stopped trial keeps its last value of the metric."""
        value = t.last(self.metric) if self.metric and state in (TrialState.COMPLETED, TrialState.STOPPED) else None
        return ev.Ended(t.trial_id, state.value, value, reason, raw, times.get("started"), times.get("ended"))

    def _retry(self, d: Decision, t: TrialRecord, reason: str, counted: bool, raw: str = "") -> None:
        if counted and t.retries >= self.max_retries:
            self._end(d, t, TrialState.FAILED, f"{reason}; no retries left ({self.max_retries} used)", raw)
            return
        d.events.append(ev.Retried(t.trial_id, t.attempt + 1, reason, counted))
        d.submit.append(t.trial_id)

    # ----------------------------------------------------------------- 3. stopping
    def stopping(self, view: StudyView) -> Decision:
        stops: Dict[int, str] = {}
        for rule in self.rules:
            verdict = rule.check(view)
            for tid, why in verdict.stop:
                stops.setdefault(tid, why)
            if verdict.end_study is not None:
                return self.stop_study(view, "early_stopped", verdict.end_study, TrialState.CANCELLED, stops)
        d = Decision()
        for tid, why in stops.items():
            t = view.trials[tid]
            if t.state.live:
                if t.job_id:
                    d.cancel.append(t.job_id)
                d.events.append(self.end_event(t, TrialState.STOPPED, why, None))
        return d

    def stop_study(self, view: StudyView, state: str, reason: str, trial_state: TrialState,
                   stopped: Optional[Mapping[int, str]] = None) -> Decision:
        """End the study: cancel every live job; the trials in ``stopped`` end STOPPED with
        their value, the other live ones ``trial_state`` without."""
        stopped = stopped or {}
        d = Decision()
        live = view.live()
        d.cancel = [t.job_id for t in live if t.job_id]
        for t in live:
            if t.trial_id in stopped:
                d.events.append(self.end_event(t, TrialState.STOPPED, stopped[t.trial_id], None))
        for t in live:
            if t.trial_id not in stopped:
                d.events.append(ev.Ended(t.trial_id, trial_state.value, None, reason))
        d.events.append(ev.StudyEnded(state, reason))
        return d

    def cancelled(self, view: StudyView) -> Decision:
        return self.stop_study(view, "cancelled", view.cancel_requested or "cancelled by the user",
                               TrialState.CANCELLED)

    # ------------------------------------------------------------------ 4. new trials
    def free_slots(self, view: StudyView) -> int:
        if self.spec.concurrency is None:
            return MAX_SUBMIT_PER_CYCLE
        return max(0, min(MAX_SUBMIT_PER_CYCLE, self.spec.concurrency - len(view.live())))

    def new_trials(self, view: StudyView) -> Decision:
        """Ask the searcher for the free slots: ``trial`` events for its suggestions (and
        warnings for its new notes); ``submit`` lists them."""
        d = Decision()
        free = self.free_slots(view)
        if free <= 0:
            return d
        result = suggest(self.spec.space, self.spec.algorithm, view.history(), view.seed, free)
        d.exhausted = result.exhausted
        d.events.extend(ev.Warned(note) for note in result.notes if note not in view.warnings)
        first = max(view.trials, default=-1) + 1
        for i, s in enumerate(result.suggestions):
            d.events.append(ev.TrialCreated(first + i, s.params, s.resource, s.meta, s.resume_from))
            d.submit.append(first + i)
        return d

    # ------------------------------------------------------------------ 5. the end
    def finished(self, view: StudyView, exhausted: bool) -> Optional[ev.StudyEnded]:
        if view.ended is not None or not exhausted or view.live():
            return None
        done = sum(1 for t in view.trials.values() if t.state is TrialState.COMPLETED)
        return ev.StudyEnded("finished", f"all {len(view.trials)} trials ended ({done} completed)")

    # ------------------------------------------------------------------ adoption
    def adoptions(self, view: StudyView, queued: Mapping[str, str],
                  records: Mapping[int, Sequence[Optional[Mapping[str, Any]]]]) -> List[ev.Event]:
        """``submitted`` events for trials recorded but not marked submitted whose job exists:
        queued under the trial's job name (``queued``: job id -> name), or named by the
        wrapper's exit or start record of the current attempt (``records``: trial id ->
        records; a quick job may have run while no controller was there)."""
        by_name = {name: job for job, name in queued.items()}
        out: List[ev.Event] = []
        for t in view.live():
            if t.submitted:
                continue
            job = by_name.get(job_name(view, t.trial_id))
            if job is None:
                for record in records.get(t.trial_id, ()):
                    if record and record.get("job_id") and _attempt_of(record) == t.attempt:
                        job = str(record["job_id"])
                        break
            if job is not None:
                out.append(ev.Submitted(t.trial_id, t.attempt, job))
        return out

    # ------------------------------------------------------------------ what to submit
    def checkpoint_owner(self, view: StudyView, t: TrialRecord) -> int:
        """The trial whose checkpoint folder ``t`` uses: its own, or, when it resumes another's
        work (a Hyperband or ASHA promotion), that of the first trial of the chain (where the
        work was saved all along). PBT: always its own, which starts as a copy."""
        if self.copies_checkpoints:
            return t.trial_id
        root, seen = t.trial_id, {t.trial_id}
        up = t.resume_from
        while up is not None and up not in seen and up in view.trials:
            root = up
            seen.add(up)
            up = view.trials[up].resume_from
        return root

    def checkpoint_copy(self, view: StudyView, t: TrialRecord) -> Optional[Tuple[str, str]]:
        """(source folder, the trial's own folder) when ``t`` starts from a copy of another
        trial's checkpoint (PBT), made by the loop before ``t`` is submitted; else None."""
        if not self.copies_checkpoints or t.resume_from is None:
            return None
        paths = StudyPaths(view.study_dir)
        return paths.trial(t.resume_from).checkpoints, paths.trial(t.trial_id).checkpoints

    def checkpoints_to_delete(self, view: StudyView, done: AbstractSet[int]) -> List[int]:
        """PBT with ``keep_checkpoints: needed``: the ended trials (not in ``done``) whose
        checkpoints no trial may start from any more (``search.pbt.checkpoints_needed``)."""
        algo = self.spec.algorithm
        if not isinstance(algo, PbtConfig) or algo.keep_checkpoints == "all":
            return []
        ended = [tid for tid, t in view.trials.items() if t.state.finished and tid not in done]
        if not ended:
            return []
        needed = checkpoints_needed(algo, view.history())
        return [tid for tid in ended if tid not in needed]

    def job_request(self, view: StudyView, t: TrialRecord) -> JobRequest:
        paths = StudyPaths(view.study_dir)
        checkpoints = paths.trial(self.checkpoint_owner(view, t)).checkpoints
        values = dict(self.spec.run.constants)
        values.update(t.params)
        if self.resource_param is not None and t.resource is not None:
            values[self.resource_param] = t.resource
        return JobRequest(trial_id=t.trial_id, name=job_name(view, t.trial_id),
                          command=render(self.spec.run.cmd or "", values),
                          env=paths.trial_env(t.trial_id, t.attempt, checkpoints),
                          trial_dir=paths.trial(t.trial_id).root, cwd=str(view.info.get("cwd") or ""),
                          gpus=self.spec.slurm.gpus, attempt=t.attempt)


def job_name(view: StudyView, trial_id: int) -> str:
    """A trial's job name: the study's prefix (``job_prefix``) and the trial id."""
    return f"{job_prefix(view)}{trial_id}"


def job_prefix(view: StudyView) -> str:
    return f"hpct-{view.study_id}-"


def parse_result_lines(trial_id: int, offset: int, data: bytes) -> List[ev.Event]:
    """``report`` events for the complete lines of ``data`` (result.jsonl from byte ``offset``);
    a torn last line is left for later. A line that is not a JSON object becomes a warning and
    an empty report (so that its bytes are not read again)."""
    end = data.rfind(b"\n") + 1
    events: List[ev.Event] = []
    pos = offset
    for raw in data[:end].split(b"\n")[:-1]:
        pos += len(raw) + 1
        try:
            obj = json.loads(raw)
            if not isinstance(obj, dict):
                raise ValueError("not a JSON object")
        except ValueError as exc:
            text = raw[:80].decode("utf-8", "replace")
            events.append(ev.Warned(f"skipped a malformed line in {RESULT_FILE} ({exc}): {text!r}", trial_id))
            events.append(ev.Reported(trial_id, pos, None))
            continue
        events.append(ev.Reported(trial_id, pos, {k: v for k, v in obj.items() if _json_scalar(v)}))
    return events


def _attempt_of(record: Mapping[str, Any]) -> int:
    """The attempt a wrapper's record is from (-1 when it does not say, or says nonsense)."""
    try:
        return int(record.get("attempt", -1))
    except (TypeError, ValueError):
        return -1


def _json_scalar(v: Any) -> bool:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return True
    if isinstance(v, (int, float)):
        return v == v and v not in (float("inf"), float("-inf"))
    return False


__all__: Tuple[str, ...] = ("DecisionCore", "Decision", "News", "TrialNews", "job_name", "job_prefix",
                            "parse_result_lines", "REQUEUE_EVIDENCE_S")
