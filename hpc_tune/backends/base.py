"""The one small interface every backend implements: submit, poll, cancel, find_jobs.

Modelled on submitit's Executor/Job split, without its watcher: the controller polls all its
live jobs with ONE call per loop (one ``sacct`` on Slurm), and job ids are plain strings it
keeps in the journal, so a restarted controller carries on with the same ids.
"""
from __future__ import annotations

import abc
import os
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from typing import Dict, List, Optional, Sequence

from ..errors import BackendBusy, BackendError  # noqa: F401 (what backends raise)
from ..protocol import ATTEMPT_ENV, TRIAL_DIR_ENV, TRIAL_ID_ENV

# The folder that holds hpc_tune/: a job imports hpc_tune from there (PYTHONPATH), so it runs
# the same code as its controller, installed or not.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass(frozen=True)
class JobRequest:
    trial_id: int
    name: str  # job name: carries study and trial ids, so find_jobs can find it by prefix
    command: str  # the rendered shell command
    env: Dict[str, str]
    trial_dir: str
    cwd: str  # where the user submitted the study from: the command runs there
    gpus: int = 0
    attempt: int = 0


def job_env(request: JobRequest) -> Dict[str, str]:
    """The trial's environment: the request's, with the trial protocol's ids filled in where missing."""
    env = dict(request.env)
    env.setdefault(TRIAL_ID_ENV, str(request.trial_id))
    env.setdefault(TRIAL_DIR_ENV, request.trial_dir)
    env.setdefault(ATTEMPT_ENV, str(request.attempt))
    return env


class JobState(str, Enum):
    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    TIMEOUT = "TIMEOUT"
    NODE_FAIL = "NODE_FAIL"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    PREEMPTED = "PREEMPTED"  # final: preempted and NOT requeued (a requeued job is REQUEUED)
    REQUEUED = "REQUEUED"  # will run again under the same job id
    BOOT_FAIL = "BOOT_FAIL"
    DEADLINE = "DEADLINE"
    SUSPENDED = "SUSPENDED"
    UNKNOWN = "UNKNOWN"  # not known now (e.g. squeue down when it had to be asked): ask again later
    LOST = "LOST"  # the backend has no trace of the job: neither the scheduler nor the process

    @property
    def live(self) -> bool:
        """The job holds or waits for resources and will still run (or is running)."""
        return self in _LIVE

    @property
    def final(self) -> bool:
        """The job is over for good under this id."""
        return self in _FINAL


_LIVE = frozenset({JobState.PENDING, JobState.RUNNING, JobState.REQUEUED, JobState.SUSPENDED})
_FINAL = frozenset(JobState) - _LIVE - {JobState.UNKNOWN}


@dataclass(frozen=True)
class JobStatus:
    job_id: str
    state: JobState
    exit_code: Optional[int] = None  # the trial's exit code when known (128+N: killed by signal N)
    reason: str = ""  # why pending / how it ended, in the scheduler's words or ours
    raw: str = ""  # the scheduler's own word for the state, e.g. "CANCELLED by 0"


class Backend(abc.ABC):
    """Submits trial jobs and tells their state. Never sees a metric."""

    name: str = "?"

    def __init__(self) -> None:
        # Scheduler calls made, by command (sbatch, sacct, squeue, scancel, scontrol, ...).
        self.calls: Counter = Counter()

    @abc.abstractmethod
    def submit(self, requests: Sequence[JobRequest]) -> List[str]:
        """Submit jobs; return their ids in request order. Raises BackendBusy / BackendError."""

    @abc.abstractmethod
    def poll(self, job_ids: Sequence[str]) -> Dict[str, JobStatus]:
        """The state of every id, with one scheduler query for all of them. Raises
        BackendBusy when the scheduler could not say anything (no news: the caller backs off)."""

    @abc.abstractmethod
    def cancel(self, job_ids: Sequence[str]) -> None:
        """Cancel jobs (one scheduler call); ids that are already over are ignored."""

    @abc.abstractmethod
    def find_jobs(self, name_prefix: str) -> Dict[str, str]:
        """Live jobs whose name starts with ``name_prefix``: job id -> name. Used after a crash to
        adopt jobs whose ids never reached the journal."""

    def attach(self, job_id: str, trial_dir: str) -> None:  # noqa: B027 (optional hook)
        """Make a job created by an earlier process (a crashed controller) known to this backend
        instance. A no-op where the scheduler itself knows jobs by id (Slurm)."""


def slurm_time_minutes(text: str) -> Optional[float]:
    """Slurm's time format ("MM", "MM:SS", "HH:MM:SS", "D-HH", "D-HH:MM", "D-HH:MM:SS") -> minutes;
    None for no limit (UNLIMITED, INFINITE, 0). Raises ValueError on anything else."""
    s = text.strip().upper()
    if s in ("UNLIMITED", "INFINITE", "-1", "0"):
        return None
    days, _, rest = s.rpartition("-") if "-" in s else ("", "", s)
    parts = [int(p) for p in rest.split(":")]  # ValueError on junk
    if len(parts) > 3 or any(p < 0 for p in parts):
        raise ValueError(f"not a Slurm time: {text!r}")
    if days:
        h, m, sec = (parts + [0, 0])[:3]
        return int(days) * 1440 + h * 60 + m + sec / 60
    if len(parts) == 1:
        return float(parts[0])
    if len(parts) == 2:
        return parts[0] + parts[1] / 60
    return parts[0] * 60 + parts[1] + parts[2] / 60


def warning_delay_s(limit_minutes: Optional[float], signal_delay_s: int = 90, early_s: int = 0) -> int:
    """How long before a time limit a job gets SIGUSR2 (the warning a trial may checkpoint
    on). It must find the job running with its handlers set up, so it never comes before half
    the limit. ``early_s``: how much earlier than asked the warning may come. slurmctld sends
    it on its 30 s cycle, as soon as ``warning + 30 s`` covers the time left (its
    ``send_job_warn_signal``): a 60 s limit with a 30 s warning got it at the first check,
    while Python was still starting, and the job died of the signal (FAILED, no retry)."""
    if limit_minutes is None:
        return signal_delay_s
    return min(signal_delay_s, max(1, int(limit_minutes * 30 - early_s)))
