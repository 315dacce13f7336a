"""The controller: one loop over the journal, the backend and a searcher.

Every start replays the journal, so "resume after anything" is simply what a start
does. Each cycle:

1. fold new journal events (another process may have appended a ``cancel``);
2. look for finished trials cheaply: the exit record a trial wrapper writes in its
   folder; every ``poll_interval`` seconds also ONE scheduler query for all live jobs
   (the safety net for jobs that die without an exit record, and running/pending);
3. copy new result lines into the journal; end trials whose job ended;
4. apply early stopping (study-wide thresholds, failure percentage, per-trial rules);
5. fill free slots: ask the searcher, record each trial, then submit, then record the
   job id (a trial recorded but never submitted is found again on restart);
6. end the study when the searcher is exhausted and nothing is live.
"""
from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Sequence

from . import checkpoints
from .backends import Backend, BackendBusy, BackendError, JobRequest, JobState, JobStatus
from .journal import Journal
from .search import suggest
from .search.base import TrialState
from .search.pbt import checkpoints_needed as pbt_checkpoints_needed
from .search.stopping import TIME_CURVE, RungPolicy, policies_of, trials_to_stop
from .spec import Spec, render
from .spec.model import AshaConfig, HyperbandConfig, PbtConfig
from .study import (
    RESULT_FILE,
    StudyView,
    TrialView,
    load_view,
    refresh,
    trial_dir,
    write_snapshot,
)
from .trial import (
    ATTEMPT_ENV,
    CHECKPOINT_DIR_ENV,
    RESULT_FILE_ENV,
    STUDY_DIR_ENV,
    TRIAL_DIR_ENV,
    TRIAL_ID_ENV,
    read_exit_record,
    read_started_record,
)

log = logging.getLogger("hpc_tune.controller")

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
    JobState.LOST: "the job vanished from the scheduler",
}
MAX_SUBMIT_PER_CYCLE = 1000
# The pause between cycles (see Controller._sleep_time): 0.25 s with up to 50 live trials,
# 1 s from 200. benchmarks/slot_utilisation.py measured a 1 s pause costing ~7 % of the
# makespan of 10 s trials.
MIN_TICK, MAX_TICK = 0.25, 1.0
FILE_CHECKS_PER_S = 400
# Events that _batch may hold until the end of a pass: nothing acts on them within it.
_BATCHABLE = ("end", "state")
# Fault injection for the tests of issue "survive everything": HPC_TUNE_FAULT=POINT:N
# kills this process with SIGKILL the N-th time it passes POINT (see _fault calls).
_FAULT = os.environ.get("HPC_TUNE_FAULT", "")
_fault_hits: Dict[str, int] = {}


def _fault(point: str) -> None:
    if not _FAULT:
        return
    name, _, count = _FAULT.partition(":")
    if name == point:
        _fault_hits[point] = _fault_hits.get(point, 0) + 1
        if _fault_hits[point] == int(count or 1):
            os.kill(os.getpid(), signal.SIGKILL)
SNAPSHOT_EVERY_BYTES = 16 << 20  # a long journal replays from a snapshot, see study.write_snapshot


class Controller:
    def __init__(self, study_dir: str, spec: Spec, backend: Backend, *, poll_interval: float = 30.0,
                 tick: Optional[float] = None, journal: Optional[Journal] = None,
                 lease_lost: Callable[[], bool] = lambda: False):
        self.study_dir = study_dir
        self.spec = spec
        self.backend = backend
        self.poll_interval = poll_interval
        self.tick = tick
        self.journal = journal or Journal(study_dir)
        self.lease_lost = lease_lost
        self.policies = policies_of(spec.early_stopping.policies, spec.algorithm)
        curves = tuple(p.metric.name for p in self.policies)
        if any(isinstance(p, RungPolicy) for p in self.policies):
            curves += (TIME_CURVE,)  # ASHA's stopping mode orders a rung by when trials reached it
        self.view: StudyView = load_view(study_dir, self.journal, extra_curves=curves)
        self.metric = spec.metric.name if spec.metric else None
        self._last_poll = 0.0
        self._stop_signal: Optional[str] = None
        self._exhausted = False
        self._backoff = 0.0  # seconds to wait after the scheduler said it is busy
        self._backoff_until = 0.0
        self._snapshot_offset = self.view.offset
        self._batched: Optional[List[Dict[str, Any]]] = None  # see _batch
        self._pruned: set = set()  # PBT trials whose checkpoints were pruned

    # ------------------------------------------------------------------ lifecycle
    def install_signal_handlers(self) -> None:
        """USR1 (Slurm's warning before the time limit): finish the cycle, requeue our
        own job, exit. TERM/INT (preemption, scancel, Ctrl-C): finish the cycle, exit."""
        def handler(signum: int, _frame: Any) -> None:
            self._stop_signal = signal.Signals(signum).name

        for sig in (signal.SIGUSR1, signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, handler)

    def run(self, max_cycles: Optional[int] = None) -> Dict[str, Any]:
        """Run until the study ends or a stop signal arrives; returns the study end
        record (or ``{"state": "interrupted"}``)."""
        self._reattach()
        cycles = 0
        try:
            while self.view.ended is None:
                self.cycle()
                cycles += 1
                if self.view.ended is not None:
                    break
                if self.lease_lost():
                    log.error("another controller took over this study's lease: stopping")
                    return {"state": "interrupted", "reason": "lease taken over by another controller"}
                if self._stop_signal or (max_cycles is not None and cycles >= max_cycles):
                    return self._interrupted()
                time.sleep(self._sleep_time())
        finally:
            self._event("controller", action="stop", host=socket.gethostname(), pid=os.getpid(),
                        reason=self._stop_signal or "")
            write_snapshot(self.view)
        return dict(self.view.ended)

    def _sleep_time(self) -> float:
        """The pause before the next cycle: ``tick`` when given, else MIN_TICK while few
        trials are live (a freed slot is refilled within a quarter second), longer with
        many, so that a cycle's file checks (two per live trial) stay near
        FILE_CHECKS_PER_S on a shared file system; never more than MAX_TICK."""
        if self.tick is not None:
            return self.tick
        return min(MAX_TICK, max(MIN_TICK, 2 * len(self.view.live()) / FILE_CHECKS_PER_S))

    def _interrupted(self) -> Dict[str, Any]:
        if self._stop_signal == "SIGUSR1" and os.environ.get("SLURM_JOB_ID"):
            # Our own time limit is near: come back as the same job, the study carries on.
            job = os.environ["SLURM_JOB_ID"]
            log.info("USR1: requeueing controller job %s", job)
            subprocess.run(["scontrol", "requeue", job], check=False)
        return {"state": "interrupted", "reason": self._stop_signal or "max cycles"}

    # ---------------------------------------------------------------------- cycle
    def cycle(self) -> None:
        _fault("cycle")
        refresh(self.view, self.journal)
        if self.view.ended is not None:
            return
        if self.view.cancel_requested is not None:
            self._stop_study("cancelled", self.view.cancel_requested, TrialState.CANCELLED)
            return
        self._collect()
        if self.view.ended is None:
            self._early_stopping()
        if self.view.ended is None and time.monotonic() >= self._backoff_until:
            unsubmitted = [t for t in self.view.live() if not t.submitted]
            if unsubmitted:  # left over from a busy scheduler: they go first
                self._submit(unsubmitted)
            else:
                self._fill_slots()
            self._prune_checkpoints()
        if self.view.ended is None and self._exhausted and not self.view.live():
            done = [t for t in self.view.trials.values() if t.state is TrialState.COMPLETED]
            self._event("study_end", state="finished",
                        reason=f"all {len(self.view.trials)} trials ended ({len(done)} completed)")

    # ----------------------------------------------------------- watching trials
    def _collect(self) -> None:
        live = [t for t in self.view.live() if t.submitted]
        if not live:
            return
        statuses: Dict[str, JobStatus] = {}
        now = time.monotonic()
        if now - self._last_poll >= self.poll_interval:
            self._last_poll = now
            statuses = self.backend.poll([t.job_id for t in live if t.job_id])
        # The exit record first, then the result lines: the wrapper writes the record
        # after the command has exited, so the lines read after it are all there will be.
        exits: Dict[int, Dict[str, Any]] = {}
        reports: List[Dict[str, Any]] = []
        for t in live:
            tdir = trial_dir(self.study_dir, t.trial_id)
            record = read_exit_record(tdir)
            if record is not None and int(record.get("attempt", -1)) == t.attempt:
                exits[t.trial_id] = record
            reports.extend(self._new_results(t, tdir))
        if reports:  # one append for every trial's new lines: the ends below read them
            self._events(reports)
            _fault("reported")
        with self._batch():
            for t in live:
                if t.trial_id in exits:
                    self._end_from_exit(t, exits[t.trial_id])
                    continue
                status = statuses.get(t.job_id or "")
                if status is not None:
                    self._apply_status(t, status)

    def _apply_status(self, t: TrialView, status: JobStatus) -> None:
        state = status.state
        if state in (JobState.RUNNING,) and t.state is not TrialState.RUNNING:
            self._event("state", id=t.trial_id, state="running", raw=status.raw)
        elif state.live or state is JobState.UNKNOWN:
            return
        elif state is JobState.COMPLETED:
            # Finished but no exit record (yet): the file system may lag; the next
            # cycle sees it. A job that truly wrote none ends on the next poll.
            if t.raw_state == "COMPLETED-no-exit-record":
                self._end_clean_exit(t, status.raw)
            else:
                self._event("state", id=t.trial_id, state=t.state.value, raw="COMPLETED-no-exit-record")
        elif state is JobState.CANCELLED:
            self._end(t, TrialState.CANCELLED, f"the job was cancelled outside hpc-tune ({status.raw})", status.raw)
        elif state is JobState.PREEMPTED:
            self._retry(t, "preempted and not requeued by Slurm", count=False)
        elif state in _RETRY_STATES:
            self._retry(t, _RETRY_STATES[state], count=True, raw=status.raw)
        else:
            reason = _FAILED_STATES.get(state, f"the job ended {status.raw or state.value}")
            if status.exit_code:
                reason += f" (exit code {status.exit_code})"
            self._end(t, TrialState.FAILED, reason, status.raw)

    def _end_from_exit(self, t: TrialView, record: Dict[str, Any]) -> None:
        code = record.get("exit_code")
        times = {k: record[k] for k in ("started", "ended") if isinstance(record.get(k), (int, float))}
        if code == 0:
            self._end_clean_exit(t, "exit 0", **times)
        elif "SIGUSR2" in (record.get("signals_received") or []):
            # The scheduler's warning before the time limit, and no requeue: resubmit.
            self._retry(t, f"time limit reached (exit code {code} after SIGUSR2)", count=True)
        else:
            sig = record.get("signal")
            why = f"killed by {sig}" if sig else f"exit code {code}"
            self._end(t, TrialState.FAILED, f"the command failed ({why}); see `hpc-tune logs`", f"exit {code}",
                      **times)

    def _end_clean_exit(self, t: TrialView, raw: str, **times: float) -> None:
        if self.metric is not None and t.last(self.metric) is None:
            self._end(t, TrialState.FAILED, f"exited 0 without reporting `{self.metric}`", raw, **times)
        else:
            self._end(t, TrialState.COMPLETED, "", raw, **times)

    def _new_results(self, t: TrialView, tdir: str) -> List[Dict[str, Any]]:
        """``report`` events for the result lines the trial appended (in its folder
        ``tdir``) since the last read."""
        path = os.path.join(tdir, RESULT_FILE)
        try:
            if os.stat(path).st_size <= t.result_offset:  # one cheap stat when nothing is new
                return []
            with open(path, "rb") as fh:
                fh.seek(t.result_offset)
                data = fh.read()
        except FileNotFoundError:
            return []
        end = data.rfind(b"\n") + 1
        events: List[Dict[str, Any]] = []
        pos = t.result_offset
        for raw in data[:end].split(b"\n")[:-1]:
            pos += len(raw) + 1
            try:
                obj = json.loads(raw)
                if not isinstance(obj, dict):
                    raise ValueError("not a JSON object")
            except ValueError as exc:
                text = raw[:80].decode("utf-8", "replace")
                events.append({"e": "warning", "id": t.trial_id,
                               "message": f"skipped a malformed line in {RESULT_FILE} ({exc}): {text!r}"})
                events.append({"e": "report", "id": t.trial_id, "end": pos, "data": None})
                continue
            clean = {k: v for k, v in obj.items() if _json_number_or_str(v)}
            events.append({"e": "report", "id": t.trial_id, "end": pos, "data": clean})
        return events

    # ------------------------------------------------------------- ending trials
    def _end(self, t: TrialView, state: TrialState, reason: str, raw: str = "", **times: float) -> None:
        value = t.last(self.metric) if self.metric and state in (TrialState.COMPLETED, TrialState.STOPPED) else None
        self._event("end", id=t.trial_id, state=state.value, value=value, reason=reason, raw=raw, **times)

    def _retry(self, t: TrialView, reason: str, count: bool, raw: str = "") -> None:
        if count and t.retries >= self.spec.slurm.max_retries:
            self._end(t, TrialState.FAILED, f"{reason}; no retries left ({self.spec.slurm.max_retries} used)", raw)
            return
        self._event("retry", id=t.trial_id, attempt=t.attempt + 1, reason=reason, counted=count)
        self._submit([self.view.trials[t.trial_id]])

    def _stop_study(self, state: str, reason: str, trial_state: TrialState) -> None:
        live = self.view.live()
        ids = [t.job_id for t in live if t.job_id]
        if ids:
            self.backend.cancel(ids)
        self._events([{"e": "end", "id": t.trial_id, "state": trial_state.value, "value": None,
                       "reason": reason} for t in live] + [{"e": "study_end", "state": state, "reason": reason}])

    # ------------------------------------------------------------ early stopping
    def _early_stopping(self) -> None:
        es = self.spec.early_stopping
        for th in es.thresholds:
            for t in self.view.trials.values():
                v = t.last(th.metric)
                if v is not None and th.reached(v):
                    sign = ">=" if th.optimization == "maximize" else "<="
                    reason = f"trial {t.trial_id} reached {th.metric} = {v:g} ({sign} {th.value:g})"
                    if t.state.live:  # the trial that got there keeps its value
                        self.backend.cancel([t.job_id] if t.job_id else [])
                        self._end(t, TrialState.STOPPED, "reached the early-stopping threshold")
                    self._stop_study("early_stopped", reason, TrialState.CANCELLED)
                    return
        if es.failure is not None:
            finished = [t for t in self.view.trials.values() if t.state.finished]
            failed = [t for t in finished if t.state is TrialState.FAILED]
            if finished and 100.0 * len(failed) / len(finished) >= es.failure.percent:
                self._stop_study("early_stopped", f"{len(failed)} of {len(finished)} finished trials failed "
                                 f"(>= {es.failure.percent:g} %)", TrialState.CANCELLED)
                return
        if self.policies:
            live = {t.trial_id: t for t in self.view.live()}
            names = {p.metric.name for p in self.policies} | {TIME_CURVE}
            curves = {t.trial_id: {n: t.curve(n) for n in names} for t in self.view.trials.values()
                      if t.state is not TrialState.CANCELLED}
            failed = {t.trial_id for t in self.view.trials.values() if t.state is TrialState.FAILED}
            stops = trials_to_stop(self.policies, curves, set(live), failed)
            to_cancel = [(live[tid], why) for tid, why in stops if tid in live]
            if to_cancel:
                self.backend.cancel([t.job_id for t, _ in to_cancel if t.job_id])
                with self._batch():
                    for t, why in to_cancel:
                        self._end(t, TrialState.STOPPED, why)

    # ---------------------------------------------------------------- submitting
    def _free_slots(self) -> int:
        live = len(self.view.live())
        if self.spec.concurrency is None:
            return MAX_SUBMIT_PER_CYCLE
        return max(0, min(MAX_SUBMIT_PER_CYCLE, self.spec.concurrency - live))

    def _fill_slots(self) -> None:
        free = self._free_slots()
        if free <= 0:
            return
        result = suggest(self.spec.space, self.spec.algorithm, self.view.history(), self.view.seed, free)
        for note in result.notes:
            if note not in self.view.warnings:
                self._event("warning", message=note)
        self._exhausted = result.exhausted
        if not result.suggestions:
            return
        first = max(self.view.trials, default=-1) + 1
        events = [{"e": "trial", "id": first + i, "params": s.params, "resource": s.resource, "meta": s.meta}
                  for i, s in enumerate(result.suggestions)]
        self._events(events)  # the intent is durable before anything reaches Slurm
        _fault("recorded")
        self._submit([self.view.trials[e["id"]] for e in events])

    def _submit(self, trials: Sequence[TrialView]) -> None:
        ready, requests = [], []
        for t in trials:
            try:
                requests.append(self._request(t))
                ready.append(t)
            except FileNotFoundError as exc:  # the checkpoint it must start from is gone
                self._end(t, TrialState.FAILED, str(exc))
        trials = ready
        if not trials:
            return
        try:
            job_ids = dict(enumerate(self.backend.submit(requests)))
        except BackendBusy as exc:
            # Limits reached or slurmctld busy: keep what got through, retry the rest later.
            self._backoff = min(300.0, max(5.0, 2 * self._backoff))
            self._backoff_until = time.monotonic() + self._backoff
            log.warning("scheduler busy (%s); retrying in %.0f s", exc, self._backoff)
            job_ids = exc.submitted
        except BackendError as exc:
            self._record_submitted(trials, exc.submitted)
            self._stop_study("failed", f"the scheduler refused a trial job: {exc}", TrialState.FAILED)
            return
        else:
            self._backoff = 0.0
        _fault("submitted")  # in Slurm's queue, not yet in the journal
        self._record_submitted(trials, job_ids)

    def _record_submitted(self, trials: Sequence[TrialView], job_ids: Dict[int, str]) -> None:
        self._events([{"e": "submitted", "id": trials[i].trial_id, "attempt": trials[i].attempt, "job": job}
                      for i, job in sorted(job_ids.items())])

    def _request(self, t: TrialView) -> JobRequest:
        tdir = trial_dir(self.study_dir, t.trial_id)
        os.makedirs(tdir, exist_ok=True)
        # `resume_from`: a Hyperband/ASHA promotion continues in its chain's folder; a PBT
        # interval gets a copy of its source's checkpoint, made here, before submission.
        ckpt = checkpoints.prepare(self._trial_dir, t.trial_id, self.spec.algorithm, self._meta_of)
        values = dict(self.spec.run.constants)
        values.update(t.params)
        if isinstance(self.spec.algorithm, (HyperbandConfig, AshaConfig, PbtConfig)) and t.resource is not None:
            values[self.spec.algorithm.resource.name] = t.resource
        command = render(self.spec.run.cmd or "", values)
        env = {
            STUDY_DIR_ENV: self.study_dir,
            TRIAL_ID_ENV: str(t.trial_id),
            TRIAL_DIR_ENV: tdir,
            RESULT_FILE_ENV: os.path.join(tdir, RESULT_FILE),
            CHECKPOINT_DIR_ENV: ckpt,
            ATTEMPT_ENV: str(t.attempt),
        }
        return JobRequest(trial_id=t.trial_id, name=f"hpct-{self.view.study_id}-{t.trial_id}", command=command,
                          env=env, trial_dir=tdir, cwd=str(self.view.info.get("cwd") or os.getcwd()),
                          gpus=self.spec.slurm.gpus, attempt=t.attempt)

    def _trial_dir(self, trial_id: int) -> str:
        return trial_dir(self.study_dir, trial_id)

    def _meta_of(self, trial_id: int) -> Optional[Dict[str, Any]]:
        t = self.view.trials.get(trial_id)
        return None if t is None else t.meta

    def _prune_checkpoints(self) -> None:
        """PBT: delete the checkpoints no trial may start from any more (search.pbt)."""
        algo = self.spec.algorithm
        if not isinstance(algo, PbtConfig) or algo.keep_checkpoints == "all":
            return
        finished = [tid for tid, t in self.view.trials.items() if t.state.finished and tid not in self._pruned]
        if finished:
            needed = pbt_checkpoints_needed(algo, self.view.history())
            checkpoints.prune(self._trial_dir, finished, needed, self._pruned)

    def _reattach(self) -> None:
        """Make the live jobs of earlier controllers known to the backend; adopt the
        jobs of trials recorded but never marked submitted (a crash between sbatch and
        the journal), found by job name. The rest are submitted by the next cycle."""
        for t in self.view.live():
            if t.submitted and t.job_id:
                self.backend.attach(t.job_id, trial_dir(self.study_dir, t.trial_id))
        orphans = [t for t in self.view.live() if not t.submitted]
        if not orphans:
            return
        found = self.backend.find_jobs(f"hpct-{self.view.study_id}-")
        by_name = {name: job for job, name in found.items()}
        adopted = []
        for t in orphans:
            job = by_name.get(f"hpct-{self.view.study_id}-{t.trial_id}")
            if job is None:
                # Not queued (any more): a quick job may have run, or still run, while no
                # controller was there. Its wrapper's records name it; submitting again
                # would run the same trial twice.
                job = _job_of_attempt(trial_dir(self.study_dir, t.trial_id), t.attempt)
                if job is not None:
                    self.backend.attach(job, trial_dir(self.study_dir, t.trial_id))
            if job is not None:
                adopted.append({"e": "submitted", "id": t.trial_id, "attempt": t.attempt, "job": job})
        self._events(adopted)

    # -------------------------------------------------------------------- journal
    def _event(self, kind: str, **fields: Any) -> None:
        self._events([{"e": kind, **fields}])

    def _events(self, events: List[Dict[str, Any]]) -> None:
        if not events:
            return
        if self._batched is not None and all(e["e"] in _BATCHABLE for e in events):
            self._batched.extend(events)
            return
        if self._batched:  # anything else (a retry resubmits at once) sees the batch folded
            events, self._batched = self._batched + events, []
        self._write(events)

    @contextlib.contextmanager
    def _batch(self) -> Iterator[None]:
        """Journal the ends and state changes of one pass over the live trials as one
        append: each append takes the lock, fsyncs and re-reads the journal, which with
        1,000 live trials and ~100 ends a cycle would be most of the cycle. A crash before
        the batch is written loses nothing: the next start derives the same ends from the
        same exit records and scheduler states."""
        self._batched = []
        try:
            yield
        finally:
            pending, self._batched = self._batched, None
            self._write(pending)

    def _write(self, events: List[Dict[str, Any]]) -> None:
        if not events:
            return
        self.journal.append(*events)
        refresh(self.view, self.journal)
        if self.view.offset - self._snapshot_offset > SNAPSHOT_EVERY_BYTES:
            write_snapshot(self.view)
            self._snapshot_offset = self.view.offset
        for e in events:
            _log_event(e, self.view)
        if any(e["e"] == "end" for e in events):
            _fault("ended")


def _job_of_attempt(tdir: str, attempt: int) -> Optional[str]:
    """The job id in the trial folder's exit or start record when that record is from
    ``attempt`` (written by the job's wrapper, see hpc_tune.trial), else None."""
    for record in (read_exit_record(tdir), read_started_record(tdir)):
        if record and record.get("job_id") and int(record.get("attempt", -1)) == attempt:
            return str(record["job_id"])
    return None


def _log_event(e: Dict[str, Any], view: StudyView) -> None:
    """One line per thing a person following the study cares about."""
    kind = e["e"]
    if kind == "trial":
        res = "" if e.get("resource") is None else f" @ {e['resource']:g}"
        log.info("trial %s created%s: %s", e["id"], res, " ".join(f"{k}={v}" for k, v in e["params"].items()))
    elif kind == "end":
        value = "" if e.get("value") is None else f" {view.info.get('metric')}={e['value']:g}"
        log.info("trial %s %s%s%s", e["id"], e["state"], value, f" ({e['reason']})" if e.get("reason") else "")
    elif kind == "retry":
        log.info("trial %s resubmitted (attempt %s): %s", e["id"], e["attempt"], e.get("reason", ""))
    elif kind == "study_end":
        log.info("study %s: %s", e["state"], e.get("reason", ""))
    elif kind == "warning":
        log.warning("%s%s", f"trial {e['id']}: " if "id" in e else "", e.get("message"))


def _json_number_or_str(v: Any) -> bool:
    if isinstance(v, bool) or v is None or isinstance(v, str):
        return True
    if isinstance(v, (int, float)):
        return v == v and v not in (float("inf"), float("-inf"))
    return False
