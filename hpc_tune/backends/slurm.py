"""Trials as Slurm jobs: submitted through submitit, polled with one ``sacct`` per poll.

* Submission: the submitted function is ``TrialJob`` (a ``submitit.helpers.Checkpointable``)
  that calls ``hpc_tune.trial.run_trial``. Several requests become ONE job array per group of
  requests with the same GPU count (``executor.batch()``), in chunks of ``MaxArraySize - 1``.
  All jobs are submitted ``--requeue``: Slurm brings them back after preemption or node
  failure under the same id, also while the controller is down.
* Names: a single job is named after its request. An array has one name for all its tasks,
  ``<common prefix of the request names>@<token>``; ``<folder>/arrays/<token>.json``, written
  BEFORE sbatch, lists the request names in task order, so ``find_jobs`` can name every task
  even if the controller died before it journaled the ids.
* Polling: never submitit's own watcher (its backoff restarts with each submission and
  ``result()`` can hang forever, see docs/slurm-facts.md). ``poll`` runs one ``sacct`` for all
  ids and one ``squeue`` only when it must: an id is missing (sacct lags a second or so behind
  sbatch, and does not list an array's tasks that have not started yet), or sacct says
  PREEMPTED/NODE_FAIL, which for a requeueable job is a moment before it is PENDING again.
  A failed sacct (non-zero exit, time-out: slurmdbd restarting, overloaded, unreachable) is no
  news at all: ``poll`` raises ``BackendBusy`` and the controller backs off (the one rule of
  ``slurm_commands``); it never turns into a state.
* Every scheduler command run is counted in ``self.calls``.
* Clean child jobs: sbatch passes its whole environment on to the job, and a controller that
  runs as a Slurm job has that job's ``SLURM_*`` variables (its job id, restart count, memory,
  CPUs...). sbatch runs without them (``slurm_commands.inherited_slurm_variables``, as for the
  controller job's sbatch): a trial job sees only its own.
"""
from __future__ import annotations

import getpass
import logging
import math
import os
import re
import shlex
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any, Dict, List, Mapping, NamedTuple, Optional, Sequence

import submitit
from submitit.core.utils import UncompletedJobError
from submitit.slurm.slurm import SlurmJobEnvironment

from ..protocol import read_json, write_json_atomic
from ..trial import run_trial
from .base import (
    PACKAGE_ROOT,
    Backend,
    BackendBusy,
    BackendError,
    JobRequest,
    JobState,
    JobStatus,
    job_env,
    slurm_time_minutes,
    warning_delay_s,
)
from .slurm_commands import SlurmCommands, classify_error, inherited_slurm_variables

if TYPE_CHECKING:
    # Not at run time: every trial job imports this module to unpickle TrialJob, and the
    # spec pulls in numpy and scipy (3 s of start-up per job, measured by
    # benchmarks/slot_utilisation.py).
    from ..spec.model import SlurmOptions

log = logging.getLogger(__name__)

ARRAY_MARK = "@"  # separates an array's name prefix from its manifest token
DEFAULT_MAX_ARRAY_SIZE = 1001  # Slurm's default MaxArraySize
NO_TIME_LIMIT_MIN = 10**7  # what submitit is told when the job has no time limit
SLURMCTLD_CYCLE_S = 30  # slurmctld's PERIODIC_TIMEOUT: time limits and --signal warnings are checked this often

# sacct lists a job a few seconds after sbatch returns (slurmdbd lag; up to 3.5 s measured on
# the one-node cluster, benchmarks/slot_utilisation.py): a job younger than this that sacct
# does not list yet counts as pending.
SACCT_LAG_S = 10.0

# ---------------------------------------------------------------------------------------------
# Slurm's words -> JobState (long names as sacct/squeue %T print them, and squeue's short codes)

_STATE_TABLE: Dict[str, JobState] = {
    "PENDING": JobState.PENDING, "PD": JobState.PENDING,
    "CONFIGURING": JobState.PENDING, "CF": JobState.PENDING,  # nodes booting: not started yet
    "POWER_UP_NODE": JobState.PENDING, "PU": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING, "RD": JobState.PENDING,
    "RUNNING": JobState.RUNNING, "R": JobState.RUNNING,
    "COMPLETING": JobState.RUNNING, "CG": JobState.RUNNING,  # ending: exit code not known yet
    "RESIZING": JobState.RUNNING, "RS": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING, "SI": JobState.RUNNING,
    "STAGE_OUT": JobState.RUNNING, "SO": JobState.RUNNING,
    "UPDATE_DB": JobState.RUNNING, "UD": JobState.RUNNING,
    "SUSPENDED": JobState.SUSPENDED, "S": JobState.SUSPENDED,
    "STOPPED": JobState.SUSPENDED, "ST": JobState.SUSPENDED,  # SIGSTOPped, keeps its resources
    "REQUEUED": JobState.REQUEUED, "RQ": JobState.REQUEUED,
    "REQUEUE_FED": JobState.REQUEUED, "RF": JobState.REQUEUED,
    "REQUEUE_HOLD": JobState.REQUEUED, "RH": JobState.REQUEUED,  # requeued, held until released
    "COMPLETED": JobState.COMPLETED, "CD": JobState.COMPLETED,
    "FAILED": JobState.FAILED, "F": JobState.FAILED,
    "LAUNCH_FAILED": JobState.FAILED, "LF": JobState.FAILED,
    "SPECIAL_EXIT": JobState.FAILED, "SE": JobState.FAILED,  # requeued on hold after a special exit code
    "CANCELLED": JobState.CANCELLED, "CA": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED, "RV": JobState.CANCELLED,  # federation: a sibling ran it elsewhere
    "TIMEOUT": JobState.TIMEOUT, "TO": JobState.TIMEOUT,
    "NODE_FAIL": JobState.NODE_FAIL, "NF": JobState.NODE_FAIL,
    "OUT_OF_MEMORY": JobState.OUT_OF_MEMORY, "OOM": JobState.OUT_OF_MEMORY,
    "PREEMPTED": JobState.PREEMPTED, "PR": JobState.PREEMPTED,
    "BOOT_FAIL": JobState.BOOT_FAIL, "BF": JobState.BOOT_FAIL,
    "DEADLINE": JobState.DEADLINE, "DL": JobState.DEADLINE,
    "UNKNOWN": JobState.UNKNOWN,
}

# Final in Slurm's words, but a requeueable job leaves them again a moment later.
_MAYBE_REQUEUED = (JobState.PREEMPTED, JobState.NODE_FAIL)


def parse_slurm_state(raw: str) -> JobState:
    """Slurm's state word (``"CANCELLED by 0"``, ``"RUNNING"``, ``"CG"``, ``"FAILED+"``) -> JobState;
    anything unknown -> UNKNOWN. Never raises."""
    words = str(raw).strip().split()
    if not words:
        return JobState.UNKNOWN
    return _STATE_TABLE.get(words[0].rstrip("+*").upper(), JobState.UNKNOWN)


def parse_exit_code(raw: str) -> Optional[int]:
    """sacct's ``EXIT:SIGNAL`` -> the exit code, 128+SIGNAL if killed by a signal; None if unreadable."""
    code, _, sig = str(raw).strip().partition(":")
    try:
        code_n, sig_n = int(code), int(sig or 0)
    except ValueError:
        return None
    return 128 + sig_n if sig_n else code_n


_ARRAY_RANGE = re.compile(r"^(\d+)_\[([0-9,\-]+)(?:%\d+)?\]$")


def expand_job_ids(job_id: str) -> List[str]:
    """``123_[1-3,5%2]`` (an array's tasks that have not started) -> 123_1, 123_2, 123_3, 123_5."""
    m = _ARRAY_RANGE.match(job_id)
    if not m:
        return [job_id]
    out = []
    for part in m.group(2).split(","):
        lo, _, hi = part.partition("-")
        if not lo.isdigit() or not (hi or lo).isdigit():
            continue
        out.extend(f"{m.group(1)}_{i}" for i in range(int(lo), int(hi or lo) + 1))
    return out


class Row(NamedTuple):
    state: str  # Slurm's word
    exit_code: str  # "EXIT:SIGNAL" (sacct) or ""
    reason: str


_JOB_ID = re.compile(r"^\d+(_\d+|_\[[0-9,\-%]+\])?$")


def parse_sacct(text: str) -> Dict[str, Row]:
    """``sacct --parsable2 --noheader -o JobID,State,ExitCode,Reason`` output -> id -> Row.
    Array ranges are expanded; for an id listed several times (``-D``, requeues) the last row
    wins (sacct lists a job's records oldest first); steps (``123.batch``) and junk are skipped."""
    rows: Dict[str, Row] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 3 or not _JOB_ID.match(fields[0]):
            continue
        row = Row(fields[1], fields[2], fields[3] if len(fields) > 3 else "")
        for job_id in expand_job_ids(fields[0]):
            rows[job_id] = row
    return rows


def parse_squeue(text: str) -> Dict[str, Row]:
    """``squeue -h -r -o %i|%T|%r`` output -> id -> Row (junk lines skipped)."""
    rows: Dict[str, Row] = {}
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) < 2 or not _JOB_ID.match(fields[0]):
            continue
        for job_id in expand_job_ids(fields[0]):
            reason = fields[2] if len(fields) > 2 and fields[2] != "None" else ""
            rows[job_id] = Row(fields[1], "", reason)
    return rows


class _TrialExecutor(submitit.SlurmExecutor):
    """submitit's executor, with sbatch run without the submitting job's own variables."""

    def _make_submission_command(self, submission_file_path: Path) -> List[str]:
        unset = [arg for name in inherited_slurm_variables(os.environ) for arg in ("-u", name)]
        command = super()._make_submission_command(submission_file_path)
        return ["env", *unset, *command] if unset else command


def sbatch_options(extra: Sequence[str]) -> Dict[str, Any]:
    """Extra ``#SBATCH`` options ("--constraint=a100", "--exclusive", "--mail-type END") ->
    submitit's ``additional_parameters``. Only long options: short ones are ambiguous."""
    out: Dict[str, Any] = {}
    for item in extra:
        text = item.strip()
        if text.startswith("#SBATCH"):
            text = text[len("#SBATCH"):].strip()
        if not text.startswith("--") or len(text) < 3:
            raise ValueError(f"extra Slurm option {item!r}: write it as --name=value or --flag")
        key, sep, value = text[2:].partition("=")
        if not sep and " " in key:
            key, value = key.split(None, 1)
            sep = " "
        out[key.strip()] = value.strip() if sep else True
    return out


# ---------------------------------------------------------------------------------------------
# What runs inside the job


class TrialJob(submitit.helpers.Checkpointable):
    """The function submitit runs in the job: ``run_trial`` with the job's signals handled.

    On submitit's preemption/timeout signal (SIGUSR2, ``--signal=USR2@90``) the trial's
    command gets the signal first; when it has ended because of it, submitit's own handler
    takes over: ``checkpoint()`` (this same callable: state lives in the trial's checkpoint
    folder), ``scontrol requeue``, exit. It requeues preemptions for free; a time-out it does
    not requeue (``max_num_timeout=0``): the exit record says SIGUSR2 and the controller
    resubmits the trial, counted against the spec's ``max_retries`` and written in the
    journal as a new attempt. No exit record is written for a requeue
    then: the trial runs again under the same job id. A command that exits 0 is done, signal
    or not.
    """

    def __init__(self, command: str, env: Mapping[str, str], trial_dir: str, cwd: str) -> None:
        self.command = command
        self.env = dict(env)
        self.trial_dir = trial_dir
        self.cwd = cwd

    def __call__(self) -> int:
        preempt = getattr(signal, "SIG" + SlurmJobEnvironment.USR_SIG)
        submitit_handler = signal.getsignal(preempt)  # installed by submitit before calling us

        def after_signal(exit_code: int, received: List[str]) -> bool:
            if "SIGTERM" in received or preempt.name not in received or not callable(submitit_handler):
                # Slurm itself is ending the job (scancel, time limit, end of a preemption's
                # grace time); whether it comes back is Slurm's to say: no exit record.
                return False
            try:
                submitit_handler(preempt, None)  # checkpoint, scontrol requeue, sys.exit
            except UncompletedJobError:
                return True  # submitit will not requeue (too many time-outs): this end is final
            except Exception:
                log.exception("requeue failed; leaving the outcome to Slurm")
            return False

        code = run_trial(self.command, self.env, self.trial_dir, self.cwd, after_signal=after_signal)
        if code:
            raise SystemExit(code)  # not an exception for submitit: the job ends with this exit code
        return 0


# ---------------------------------------------------------------------------------------------
# The backend


class SlurmBackend(Backend):
    name = "slurm"

    def __init__(
        self,
        folder: str,
        options: Optional[SlurmOptions] = None,
        *,
        python: Optional[str] = None,
        signal_delay_s: int = 90,
        lost_grace_s: float = 60.0,
        command_timeout_s: float = 60.0,
    ) -> None:
        """``folder``: submitit's folder (pickles, sbatch files, job logs in ``folder/<job id>/``),
        e.g. STUDY/slurm. ``options``: resources of every trial job. ``signal_delay_s``: how long
        before the time limit the job gets SIGUSR2. ``lost_grace_s``: how long a job unknown
        to both sacct and squeue counts as PENDING (from submission or first poll) before LOST."""
        super().__init__()
        self.folder = Path(folder).resolve()
        if options is None:
            from ..spec.model import SlurmOptions

            options = SlurmOptions()
        self.options = options
        self.python = python
        self.signal_delay_s = signal_delay_s
        self.lost_grace_s = lost_grace_s
        self.command_timeout_s = command_timeout_s
        self.commands = SlurmCommands(command_timeout_s)
        self.extra = sbatch_options(self.options.extra)
        self._since: Dict[str, float] = {}  # job id -> submitted (or first polled) at
        self._submitted_at: Dict[str, float] = {}  # job id -> submitted by this backend at
        self._max_array_size: Optional[int] = None
        self._time_limit: Optional[str] = None
        self._manifests: Dict[str, Optional[Dict[str, Any]]] = {}

    # -- scheduler commands --------------------------------------------------------------------

    def _run(self, argv: List[str]) -> subprocess.CompletedProcess:
        """Run one scheduler command (counted in ``calls``). Failures come back as returncode != 0."""
        self.calls[argv[0]] += 1
        return self.commands.run(argv)

    def max_array_size(self) -> int:
        """MaxArraySize of the cluster (``scontrol show config``, read once)."""
        if self._max_array_size is None:
            self._max_array_size = DEFAULT_MAX_ARRAY_SIZE
            res = self._run(["scontrol", "show", "config"])
            m = re.search(r"^MaxArraySize\s*=\s*(\d+)", res.stdout, re.MULTILINE)
            if res.returncode == 0 and m:
                self._max_array_size = int(m.group(1))
        return self._max_array_size

    def time_limit(self) -> str:
        """The ``--time`` of every job: SlurmOptions.time, else the partition's DefaultTime, else
        its MaxTime (read once). submitit would otherwise impose its own 5 minutes."""
        if self.options.time:
            return self.options.time
        if self._time_limit is None:
            self._time_limit = "UNLIMITED"
            res = self._run(["scontrol", "show", "partition", "-o"])
            for line in res.stdout.splitlines():
                fields = dict(f.split("=", 1) for f in line.split() if "=" in f)
                wanted = self.options.partition
                if fields.get("PartitionName") == wanted if wanted else fields.get("Default") == "YES":
                    default = fields.get("DefaultTime", "NONE")
                    self._time_limit = default if default not in ("NONE", "") else fields.get("MaxTime", "UNLIMITED")
                    break
        return self._time_limit

    # -- submit ----------------------------------------------------------------------------------

    def submit(self, requests: Sequence[JobRequest]) -> List[str]:
        ids: List[Optional[str]] = [None] * len(requests)
        groups: Dict[int, List[int]] = {}  # an array shares its resources: one per GPU count
        for i, r in enumerate(requests):
            groups.setdefault(r.gpus, []).append(i)
        chunk = self.max_array_size() - 1 if any(len(g) > 1 for g in groups.values()) else 1
        for idxs in groups.values():
            for start in range(0, len(idxs), chunk):
                part = idxs[start : start + chunk]
                try:
                    got = self._submit_group([requests[i] for i in part])
                except BackendError as exc:
                    exc.submitted = {i: j for i, j in enumerate(ids) if j is not None}
                    raise
                now = time.time()
                for i, job_id in zip(part, got):
                    ids[i] = job_id
                    self._since[job_id] = self._submitted_at[job_id] = now
        return [j for j in ids if j is not None]

    def _submit_group(self, requests: List[JobRequest]) -> List[str]:
        if len(requests) == 1:
            name = requests[0].name
        else:
            token = uuid.uuid4().hex[:12]
            self._manifest_path(token).parent.mkdir(parents=True, exist_ok=True)
            write_json_atomic(self._manifest_path(token), {
                "names": [r.name for r in requests],
                "trial_ids": [r.trial_id for r in requests],
                "trial_dirs": [r.trial_dir for r in requests],
            })
            name = os.path.commonprefix([r.name for r in requests]) + ARRAY_MARK + token
        executor = self._executor(name, requests[0].gpus, len(requests))
        calls = [TrialJob(r.command, job_env(r), r.trial_dir, r.cwd) for r in requests]
        self.calls["sbatch"] += 1  # submitit runs one sbatch per batch
        try:
            with executor.batch():
                jobs = [executor.submit(c) for c in calls]
        except Exception as exc:  # submitit's FailedJobError carries sbatch's stderr
            raise classify_error(str(exc)) from exc
        return [str(job.job_id) for job in jobs]

    def _executor(self, name: str, gpus: int, count: int) -> submitit.SlurmExecutor:
        self.folder.mkdir(parents=True, exist_ok=True)
        executor = _TrialExecutor(folder=self.folder / "%j", max_num_timeout=0, python=self.python)
        limit = self.time_limit()
        minutes = slurm_time_minutes(limit)
        additional: Dict[str, Any] = {"requeue": True, "time": limit}  # exact --time, as the user wrote it
        additional.update(self.extra)
        if "no-requeue" in additional:
            additional.pop("requeue")
        pythonpath = shlex.quote(PACKAGE_ROOT)
        delay = warning_delay_s(minutes, self.signal_delay_s, early_s=SLURMCTLD_CYCLE_S)
        params: Dict[str, Any] = {
            "job_name": name,
            # submitit's own idea of the time limit tells a time-out from a preemption
            "time": NO_TIME_LIMIT_MIN if minutes is None else max(1, math.ceil(minutes)),
            "signal_delay_s": delay,
            "array_parallelism": count,  # how many run at once is the controller's business
            # the job imports hpc_tune (TrialJob) from this same source tree, installed or not
            "setup": [f"export PYTHONPATH={pythonpath}${{PYTHONPATH:+:$PYTHONPATH}}"],
            "additional_parameters": additional,
        }
        optional = {
            "partition": self.options.partition,
            "mem": self.options.mem,
            "cpus_per_task": self.options.cpus,
            "account": self.options.account,
            "qos": self.options.qos,
            "gres": f"gpu:{gpus}" if gpus > 0 else None,
        }
        params.update({k: v for k, v in optional.items() if v is not None})
        executor.update_parameters(**params)
        return executor

    # -- poll --------------------------------------------------------------------------------------

    def poll(self, job_ids: Sequence[str]) -> Dict[str, JobStatus]:
        if not job_ids:
            return {}
        now = time.time()
        out: Dict[str, JobStatus] = {}
        for job_id in job_ids:
            self._since.setdefault(job_id, now)
            if not _JOB_ID.match(job_id):
                out[job_id] = JobStatus(job_id, JobState.LOST, None, "not a Slurm job id")
        job_ids = [j for j in job_ids if j not in out]
        if not job_ids:
            return out
        # An array's tasks that have not started yet are only listed under the array's id.
        query = sorted({job_id.split("_")[0] for job_id in job_ids})
        res = self._run(["sacct", "-X", "--parsable2", "--noheader", "-o", "JobID,State,ExitCode,Reason",
                         "-j", ",".join(query)])
        if res.returncode != 0:
            raise BackendBusy(f"sacct failed: {(res.stderr or res.stdout).strip() or f'exit code {res.returncode}'}")
        rows = parse_sacct(res.stdout)

        ask_squeue: List[str] = []
        for job_id in job_ids:
            row = rows.get(job_id)
            if row is None:
                if now - self._submitted_at.get(job_id, -SACCT_LAG_S) < SACCT_LAG_S:
                    # Just submitted: slurmdbd has not caught up. Asking squeue would cost a
                    # second query this poll and could only say "pending" or "running".
                    out[job_id] = JobStatus(job_id, JobState.PENDING, None, "submitted; not in sacct yet")
                else:
                    ask_squeue.append(job_id)
                continue
            status = self._status(job_id, row)
            out[job_id] = status
            if status.state in _MAYBE_REQUEUED:
                ask_squeue.append(job_id)
        if not ask_squeue:
            return out

        queue = self._squeue_states()
        for job_id in ask_squeue:
            listed = queue.get(job_id) if queue is not None else None
            before = out.get(job_id)
            if listed is not None and parse_slurm_state(listed.state).live:
                reason = f"requeued after {before.raw}" if before is not None else listed.reason
                out[job_id] = JobStatus(job_id, parse_slurm_state(listed.state), None, reason, listed.state)
            elif before is not None:
                if queue is None:  # cannot tell whether Slurm requeues it
                    out[job_id] = JobStatus(job_id, JobState.UNKNOWN, None, "squeue failed", before.raw)
            elif listed is not None:
                out[job_id] = JobStatus(job_id, parse_slurm_state(listed.state), None, listed.reason, listed.state)
            elif queue is None:  # a job that ended is in neither then: no LOST
                out[job_id] = JobStatus(job_id, JobState.UNKNOWN, None, "squeue failed")
            elif now - self._since[job_id] < self.lost_grace_s:
                out[job_id] = JobStatus(job_id, JobState.PENDING, None, "submitted; not in sacct yet")
            else:
                out[job_id] = JobStatus(job_id, JobState.LOST, None, "neither sacct nor squeue knows this job")
        return out

    @staticmethod
    def _status(job_id: str, row: Row) -> JobStatus:
        state = parse_slurm_state(row.state)
        code = parse_exit_code(row.exit_code) if state.final else None
        reason = "" if row.reason in ("None", "") else row.reason
        return JobStatus(job_id, state, code, reason, row.state)

    def _squeue_states(self) -> Optional[Dict[str, Row]]:
        """All this user's queued jobs (one squeue call), one line per array task; None on failure."""
        res = self._run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%T|%r"])
        if res.returncode != 0:
            log.warning("squeue failed: %s", res.stderr.strip())
            return None
        return parse_squeue(res.stdout)

    # -- cancel / find -------------------------------------------------------------------------

    def cancel(self, job_ids: Sequence[str]) -> None:
        if not job_ids:
            return
        res = self._run(["scancel", *job_ids])
        if res.returncode != 0:
            err = classify_error(res.stderr)
            if isinstance(err, BackendBusy):
                raise err
            log.info("scancel: %s", res.stderr.strip())  # e.g. jobs that had already ended

    def find_jobs(self, name_prefix: str) -> Dict[str, str]:
        res = self._run(["squeue", "-h", "-r", "-u", getpass.getuser(), "-o", "%i|%j"])
        if res.returncode != 0:
            raise classify_error(res.stderr)
        found: Dict[str, str] = {}
        for line in res.stdout.splitlines():
            job_id, sep, name = line.strip().partition("|")
            if not sep or not _JOB_ID.match(job_id):
                continue
            name = self._task_name(job_id, name)
            if name.startswith(name_prefix):
                found[job_id] = name
        return found

    def _manifest_path(self, token: str) -> Path:
        return self.folder / "arrays" / f"{token}.json"

    def _task_name(self, job_id: str, name: str) -> str:
        """The request name of an array task (from the array's manifest), else the job's name."""
        _, mark, token = name.rpartition(ARRAY_MARK)
        if not mark or "_" not in job_id:
            return name
        if token not in self._manifests:
            self._manifests[token] = read_json(self._manifest_path(token))
        names = (self._manifests[token] or {}).get("names")
        task = int(job_id.split("_")[1]) if job_id.split("_")[1].isdigit() else -1
        if isinstance(names, list) and 0 <= task < len(names):
            return str(names[task])
        return name

