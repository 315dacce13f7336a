"""The controller's loop: read, ask the decision core, act, sleep; signals.

Every start replays the journal (once), so "resume after anything" is simply what a start
does. Each cycle:

1. fold new journal events (another process may have appended a ``cancel``);
2. read what changed: the exit record each trial's wrapper writes in its folder and the new
   result lines (cheap), and every ``poll_interval`` seconds ONE scheduler query for all live
   jobs (the safety net for jobs that die without an exit record, and running/pending);
3. journal the core's decisions phase by phase (reports; ends and retries; stopping; new
   trials, recorded BEFORE they are submitted), submitting and cancelling as they say.

Wherever the loop calls the scheduler (submit, cancel, adoption, poll) a busy or failing
scheduler means: back off (``Backoff``, the one rule) and carry on; what could not be done is
decided again by a later cycle, from the same journal. A failed poll (on Slurm: sacct, which
asks slurmdbd) is no news, never a state; it backs off the polls only (``poll_backoff``):
slurmctld may still take submissions and cancels, and exit records still end trials.
"""
from __future__ import annotations

import logging
import os
import signal
import socket
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Set

from ..backends import Backend, BackendBusy, BackendError, JobStatus
from ..backends.slurm_commands import Backoff, SlurmCommands
from ..journal import Journal, StudyView, load_view, refresh, write_snapshot
from ..journal import events as ev
from ..paths import StudyPaths, TrialPaths
from ..protocol import CHECKPOINT_DIR_ENV, read_exit_record, read_exit_record_file, read_json, read_started_record
from ..spec import Spec
from ..trials import TrialState
from . import checkpoints
from .core import Decision, DecisionCore, News, TrialNews, job_prefix
from .faults import fault
from .lease import LeaseLost

log = logging.getLogger("hpc_tune.controller")

# The pause between cycles (see Controller._sleep_time): 0.25 s with up to 50 live trials,
# 1 s from 200. benchmarks/slot_utilisation.py measured a 1 s pause costing ~7 % of the
# makespan of 10 s trials.
MIN_TICK, MAX_TICK = 0.25, 1.0
FILE_CHECKS_PER_S = 400
SNAPSHOT_EVERY_BYTES = 16 << 20  # a long journal replays from a snapshot, see journal.write_snapshot
# Live trials' start records are looked at (a stat; read when changed) at most every
# START_CHECK_EVERY_S, and no more than START_CHECKS_PER_S of them a second, except that of a
# trial with an exit record: a started trial shows "running", and a restarted one its new
# run, within a second (the local backend's trials, a few Slurm jobs), or within 10 s of
# 1,000 live trials, whose records read every cycle were +4 ms of CPU a cycle
# (benchmarks/controller_scale.py).
START_CHECK_EVERY_S = 1.0
START_CHECKS_PER_S = 100


class Controller:
    def __init__(self, study_dir: str, spec: Spec, backend: Backend, *, poll_interval: float = 30.0,
                 tick: Optional[float] = None, journal: Optional[Journal] = None,
                 view: Optional[StudyView] = None, lease_lost: Callable[[], bool] = lambda: False,
                 lease_check: Optional[Callable[[], None]] = None, epoch: Optional[int] = None):
        """``journal``/``view``: the study's journal and its fold when the caller has them
        already (one replay per start), else read here. ``lease_check`` raises ``LeaseLost``
        once another controller holds the study (run under the journal's lock before each
        append, and before each scheduler action); ``epoch``: our lease's, written into
        every event we append."""
        self.study_dir = study_dir
        self.paths = StudyPaths(study_dir)
        self.spec = spec
        self.backend = backend
        self.poll_interval = poll_interval
        self.tick = tick
        self.journal = journal or Journal(study_dir)
        self.lease_lost = lease_lost
        self.lease_check = lease_check
        self.epoch = epoch
        self._fenced = False
        self.core = DecisionCore(spec)
        self.view: StudyView = view if view is not None else load_view(study_dir, self.journal)
        self.backoff = Backoff()  # submit, cancel, adoption: slurmctld
        self.poll_backoff = Backoff()  # the poll: on Slurm sacct, i.e. slurmdbd
        self._last_poll = float("-inf")
        self._last_start_check = float("-inf")
        self._stop_signal: Optional[str] = None
        self._exhausted = False
        self._adopted = False
        self._snapshot_offset = self.view.offset
        self._trial_files: Dict[int, TrialPaths] = {}  # each trial's file paths, joined once
        self._started_seen: Dict[int, Any] = {}  # trial id -> ((mtime, size) of started.json, its record)
        self._pruned: Set[int] = set()  # trials whose checkpoints were deleted (PBT)

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
        self._attach_live_jobs()
        cycles = 0
        try:
            while self.view.ended is None:
                self.cycle()
                cycles += 1
                if self.view.ended is not None:
                    break
                if self.lease_lost():
                    raise LeaseLost("another controller took over this study's lease")
                if self._stop_signal or (max_cycles is not None and cycles >= max_cycles):
                    return self._interrupted()
                time.sleep(self._sleep_time())
        except LeaseLost as exc:
            # Fenced: the new holder acts from now on; we write, cancel and submit nothing more.
            self._fenced = True
            log.error("%s: stopping without acting", exc)
            return {"state": "interrupted", "reason": "lease taken over by another controller"}
        finally:
            if not self._fenced:
                try:
                    self._write([ev.ControllerEvent("stop", socket.gethostname(), os.getpid(),
                                                    reason=self._stop_signal or "")])
                    write_snapshot(self.view)
                except LeaseLost as exc:
                    log.error("%s: stopping without acting", exc)
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
            try:
                SlurmCommands().requeue(job)
            except BackendError as exc:
                log.error("could not requeue the controller job %s (%s); `hpc-tune resume` carries on", job, exc)
        return {"state": "interrupted", "reason": self._stop_signal or "max cycles"}

    # ---------------------------------------------------------------------- cycle
    def cycle(self) -> None:
        fault("cycle")
        refresh(self.view, self.journal)
        if self.view.ended is not None:
            return
        if self.view.cancel_requested is not None:
            self._act(self.core.cancelled(self.view))
            return
        news = self._read_news()
        reports = self.core.reports(self.view, news)
        if reports:  # one append for every trial's new lines: the ends below read them
            self._write(reports)
            fault("reported")
        self._write(self.core.runs(self.view, news))  # before the ends: they count only the current run
        if self._act(self.core.outcomes(self.view, news)) and self.view.ended is None:
            self._act(self.core.stopping(self.view))
        if self.view.ended is None and self.backoff.ready() and self._adopt():
            unsubmitted = [t.trial_id for t in self.view.live() if not t.submitted]
            if not unsubmitted or self._submit(unsubmitted):  # left over from a busy scheduler: first
                self._fill_slots()
        self._prune_checkpoints()
        if self.view.ended is None:
            end = self.core.finished(self.view, self._exhausted)
            if end is not None:
                self._write([end])

    def _read_news(self) -> News:
        """The trial files of the live submitted trials, and (when due) one poll of their jobs."""
        live = [t for t in self.view.live() if t.submitted]
        if not live:
            return News()
        statuses = {}
        now = time.monotonic()
        if now - self._last_poll >= self.poll_interval and self.poll_backoff.ready():
            self._last_poll = now
            statuses = self._poll([t.job_id for t in live if t.job_id])
        # The exit record first, then the result lines: the wrapper writes the record
        # after the command has exited, so the lines read after it are all there will be.
        trials: Dict[int, TrialNews] = {}
        check_starts = now - self._last_start_check >= max(START_CHECK_EVERY_S, len(live) / START_CHECKS_PER_S)
        if check_starts:
            self._last_start_check = now
        files = self._trial_files
        for t in live:
            tpaths = files.get(t.trial_id)
            if tpaths is None:
                tpaths = files[t.trial_id] = self.paths.trial(t.trial_id)
            record = read_exit_record_file(tpaths.exit_record)
            lines = _read_from(tpaths.result, t.result_offset)
            # The start record (the latest run's claim): always with an exit record (which
            # counts only if it is the current run's), else when due: a pending trial shows
            # running, a restarted one its new run, as soon as its wrapper says so.
            started = (self._started_record(t.trial_id, tpaths.started_record)
                       if record is not None or check_starts else None)
            if record is not None or lines or started is not None:
                trials[t.trial_id] = TrialNews(record, lines, started)
        # An exit record ends a trial only if its job was not requeued meanwhile (a node that
        # lost only its slurmd: the old copy may end while Slurm starts the job again): ask.
        ending = [t.job_id for t in live if t.job_id and t.job_id not in statuses
                  and trials.get(t.trial_id, TrialNews()).exit is not None]
        if ending and self.poll_backoff.ready():
            statuses = {**statuses, **self._poll(ending)}
        return News(trials, statuses, time.time())

    def _poll(self, job_ids: List[str]) -> Dict[str, JobStatus]:
        """The jobs' states, or nothing at all when the scheduler could not say (then the
        polls back off)."""
        try:
            statuses = self.backend.poll(job_ids)
        except BackendError as exc:
            log.warning("job states unavailable (%s); polling again in %.0f s", exc, self.poll_backoff.failed())
            return {}
        self.poll_backoff.succeeded()
        return statuses

    def _started_record(self, trial_id: int, path: str) -> Optional[Dict[str, Any]]:
        """The trial's start record, read again only when the file changed."""
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        key = (st.st_mtime_ns, st.st_size)
        seen = self._started_seen.get(trial_id)
        if seen is None or seen[0] != key:
            seen = self._started_seen[trial_id] = (key, read_json(path))
        return seen[1]

    # --------------------------------------------------------------------- acting
    def _act(self, d: Decision) -> bool:
        """Cancel, journal, submit, as ``d`` says. False when the scheduler was busy (then
        nothing of ``d`` is journaled: a later cycle decides it again)."""
        if d.cancel:
            if not self.backoff.ready():
                return False
            self._check_lease()
            try:
                self.backend.cancel(d.cancel)
            except BackendError as exc:  # busy or failing: the jobs may still run; decide again later
                self._busy(exc)
                return False
        self._write(d.events)
        if d.submit and self.view.ended is None and self.backoff.ready():
            self._submit(d.submit)
        return True

    def _busy(self, exc: BackendError) -> None:
        """The scheduler is busy or failing: leave it alone for a while (the one back-off rule)."""
        log.warning("scheduler busy (%s); retrying in %.0f s", exc, self.backoff.failed())

    def _fill_slots(self) -> None:
        d = self.core.new_trials(self.view)
        self._exhausted = d.exhausted
        if not d.events:
            return
        self._write(d.events)  # the intent is durable before anything reaches the scheduler
        if d.submit:
            fault("recorded")
            self._submit(d.submit)

    def _submit(self, trial_ids: Sequence[int]) -> bool:
        """Submit the current attempt of these trials; journal the job ids. False when the
        scheduler was busy or refused."""
        trials = [self.view.trials[tid] for tid in trial_ids if self.view.trials[tid].state.live]
        requests, ready, lost = [], [], []
        for t in trials:
            request = self.core.job_request(self.view, t)
            os.makedirs(request.trial_dir, exist_ok=True)
            copy = self.core.checkpoint_copy(self.view, t)
            if copy is not None:  # PBT: the source's checkpoint, copied before the trial can run
                try:
                    checkpoints.copy_into(*copy)
                except FileNotFoundError as exc:
                    lost.append(self.core.end_event(t, TrialState.FAILED, str(exc)))
                    continue
            os.makedirs(request.env[CHECKPOINT_DIR_ENV], exist_ok=True)
            requests.append(request)
            ready.append(t)
        self._write(lost)
        trials = ready
        if not requests:
            return True
        self._check_lease()
        try:
            job_ids = dict(enumerate(self.backend.submit(requests)))
        except BackendBusy as exc:
            # Limits reached or slurmctld busy: keep what got through, retry the rest later.
            self._busy(exc)
            self._record_submitted(trials, exc.submitted)
            return False
        except BackendError as exc:
            self._record_submitted(trials, exc.submitted)
            self._act(self.core.stop_study(self.view, "failed", f"the scheduler refused a trial job: {exc}",
                                           TrialState.FAILED))
            return False
        self.backoff.succeeded()
        fault("submitted")  # in the scheduler's queue, not yet in the journal
        self._record_submitted(trials, job_ids)
        return True

    def _record_submitted(self, trials: Sequence[Any], job_ids: Dict[int, str]) -> None:
        self._write([ev.Submitted(trials[i].trial_id, trials[i].attempt, job) for i, job in sorted(job_ids.items())])

    def _prune_checkpoints(self) -> None:
        """Delete the checkpoints no trial may start from any more (PBT; the core says which)."""
        for tid in self.core.checkpoints_to_delete(self.view, self._pruned):
            checkpoints.delete(self.paths.trial(tid).checkpoints)
            self._pruned.add(tid)

    # ------------------------------------------------------------------- adoption
    def _attach_live_jobs(self) -> None:
        """Make the live jobs of earlier controllers known to the backend."""
        for t in self.view.live():
            if t.submitted and t.job_id:
                self.backend.attach(t.job_id, self.paths.trial(t.trial_id).root)

    def _adopt(self) -> bool:
        """Adopt the jobs of trials recorded but never marked submitted (a crash between
        sbatch and the journal), found by job name or by the wrapper's records; the rest are
        submitted after this. False while the scheduler is too busy to say (then nothing is
        submitted: it could run a trial twice)."""
        if self._adopted:
            return True
        orphans = [t for t in self.view.live() if not t.submitted]
        if orphans:
            try:
                queued = self.backend.find_jobs(job_prefix(self.view))
            except BackendError as exc:  # busy or failing: cannot tell what is queued yet
                self._busy(exc)
                return False
            records = {t.trial_id: (read_exit_record(self.paths.trial(t.trial_id).root),
                                    read_started_record(self.paths.trial(t.trial_id).root)) for t in orphans}
            adopted = self.core.adoptions(self.view, queued, records)
            for e in adopted:
                if e.job not in queued:  # named by the wrapper only: let the backend know it
                    self.backend.attach(e.job, self.paths.trial(e.id).root)
            self._write(adopted)
        self._adopted = True
        return True

    # -------------------------------------------------------------------- journal
    def _check_lease(self) -> None:
        """Before a scheduler action: raise ``LeaseLost`` if another controller holds the study."""
        if self.lease_check is not None:
            self.lease_check()

    def _write(self, events: List[ev.Event]) -> None:
        """Append events (one append: one lock, one fsync) and fold them. Each carries our
        lease's epoch; the append is refused (``LeaseLost``) once the lease is another's."""
        if not events:
            return
        lines = [e.to_json() for e in events]
        if self.epoch is not None:
            lines = [{**line, "epoch": self.epoch} for line in lines]
        self.journal.append(*lines, check=self.lease_check)
        refresh(self.view, self.journal)
        if self.view.offset - self._snapshot_offset > SNAPSHOT_EVERY_BYTES:
            write_snapshot(self.view)
            self._snapshot_offset = self.view.offset
        for e in events:
            _log_event(e, self.view)
        if any(type(e) is ev.Ended for e in events):
            fault("ended")


def _read_from(path: str, offset: int) -> bytes:
    """The bytes of ``path`` after ``offset`` (one cheap stat when nothing is new)."""
    try:
        if os.stat(path).st_size <= offset:
            return b""
        with open(path, "rb") as fh:
            fh.seek(offset)
            return fh.read()
    except FileNotFoundError:
        return b""


def _log_event(e: ev.Event, view: StudyView) -> None:
    """One line per thing a person following the study cares about."""
    if isinstance(e, ev.TrialCreated):
        res = "" if e.resource is None else f" @ {e.resource:g}"
        log.info("trial %s created%s: %s", e.id, res, " ".join(f"{k}={v}" for k, v in e.params.items()))
    elif isinstance(e, ev.Ended):
        value = "" if e.value is None else f" {view.metric}={e.value:g}"
        log.info("trial %s %s%s%s", e.id, e.state, value, f" ({e.reason})" if e.reason else "")
    elif isinstance(e, ev.Retried):
        log.info("trial %s resubmitted (attempt %s): %s", e.id, e.attempt, e.reason)
    elif isinstance(e, ev.RunStarted) and e.restart_count > 0:
        log.info("trial %s running again: job %s restart %s on %s%s", e.id, e.job, e.restart_count, e.node,
                 f" ({e.after})" if e.after else "")
    elif isinstance(e, ev.StateChanged) and e.raw.startswith("requeued"):
        log.info("trial %s: its job was %s", e.id, e.raw)
    elif isinstance(e, ev.StudyEnded):
        log.info("study %s: %s", e.state, e.reason)
    elif isinstance(e, ev.Warned):
        log.warning("%s%s", f"trial {e.id}: " if e.id is not None else "", e.message)
