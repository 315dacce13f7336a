"""Every Slurm command hpc-tune runs (sbatch, squeue, sacct, scontrol, scancel), and the one
rule for a busy or failing Slurm.

``SlurmCommands.run`` runs a command with a time-out and counts it; failures come back as a
return code (124: timed out, 127: no such command), never as an exception. ``classify_error``
tells a busy or unreachable Slurm (``BackendBusy``: wait and try again) from a refusal
(``BackendError``). ``Backoff`` is how long to wait after a busy answer: 5 s, doubling, at
most 300 s, back to nothing after a success; the controller keeps one and carries on with
what it can do meanwhile, a one-shot command (``hpc-tune submit``'s sbatch of the controller
job, ``cancel``) retries through ``retrying``. Trial jobs' sbatch runs inside submitit (the
Slurm backend gives it the folder and parameters), its errors classified here too.

Every sbatch (the controller job's here, the trial jobs' in the Slurm backend) runs without
the ``SLURM_*`` variables of the job or allocation it is called from
(``inherited_slurm_variables``): sbatch passes its whole environment on to the new job, which
would see them beside its own (an ``salloc --mem-per-cpu`` caller's ``SLURM_MEM_PER_CPU`` next
to the job's own ``SLURM_MEM_PER_NODE``, a requeued caller's ``SLURM_RESTART_COUNT``...).

Standard library only: the command line uses this without importing submitit.
"""
from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from typing import Callable, Dict, List, Mapping, Optional, TypeVar

from ..errors import BackendBusy, BackendError

_BUSY = re.compile(
    r"socket timed out|timed out|unable to contact slurm controller|connection refused|"
    r"resource temporarily unavailable|try again|temporarily unable|slurm_persist_conn|"
    r"zero bytes were transmitted|maxsubmit|job submit limit|submit limit|assocgrp|qosmax|busy",
    re.IGNORECASE,
)

BACKOFF_FIRST_S = 5.0
BACKOFF_MAX_S = 300.0


def classify_error(message: str) -> BackendError:
    """Slurm's error text -> BackendBusy (back off and retry) or BackendError."""
    message = message.strip() or "Slurm command failed without a message"
    return BackendBusy(message) if _BUSY.search(message) else BackendError(message)


# Client settings a user sets on purpose, not a job's description: sbatch's man page lists
# them among its input variables, and Slurm does not set them inside a job.
_CLIENT_VARIABLES = frozenset({"SLURM_CONF", "SLURM_CLUSTERS", "SLURM_DEBUG_FLAGS", "SLURM_EXIT_ERROR"})


def inherited_slurm_variables(environ: Mapping[str, str]) -> List[str]:
    """The variables of ``environ`` that describe the Slurm job this process runs in
    (``SLURM_*``, ``SLURMD_*``, set by Slurm for that job or a parent one), which a job
    submitted from here must not inherit; sorted."""
    return sorted(k for k in environ if k.startswith(("SLURM_", "SLURMD_")) and k not in _CLIENT_VARIABLES)


def submission_environment(environ: Mapping[str, str]) -> Dict[str, str]:
    """``environ`` without ``inherited_slurm_variables``: what sbatch runs with."""
    inherited = set(inherited_slurm_variables(environ))
    return {k: v for k, v in environ.items() if k not in inherited}


class SlurmCommands:
    """Runs Slurm's commands; ``calls`` counts them by name."""

    def __init__(self, timeout_s: float = 60.0) -> None:
        self.timeout_s = timeout_s
        self.calls: Counter = Counter()

    def run(self, argv: List[str], env: Optional[Mapping[str, str]] = None) -> subprocess.CompletedProcess:
        """Run one command (counted), in ``env`` if given. Failures come back as returncode != 0."""
        self.calls[argv[0]] += 1
        try:
            return subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s, env=env)
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]}: timed out after {self.timeout_s} s")
        except FileNotFoundError:
            return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: command not found (no Slurm here)")
        except OSError as exc:
            return subprocess.CompletedProcess(argv, 127, "", f"{argv[0]}: {exc}")

    def check(self, argv: List[str], env: Optional[Mapping[str, str]] = None) -> str:
        """Run a command; its stdout, or BackendBusy/BackendError with Slurm's own message.
        A time-out counts as busy."""
        res = self.run(argv, env)
        if res.returncode == 124:
            raise BackendBusy(res.stderr)
        if res.returncode != 0:
            raise classify_error(res.stderr or res.stdout)
        return res.stdout

    # -- the commands hpc-tune uses outside the trial backend -------------------------------------
    def sbatch(self, script_path: str) -> str:
        """Submit a batch script, without the caller's own job's variables; its job id."""
        return self.check(["sbatch", "--parsable", script_path],
                          submission_environment(os.environ)).strip().split(";")[0]

    def job_state(self, job_id: str) -> Optional[str]:
        """squeue's state word of a queued job, or None when it is not queued (or squeue fails)."""
        res = self.run(["squeue", "-h", "-j", job_id, "-o", "%T"])
        state = res.stdout.strip()
        return state if res.returncode == 0 and state else None

    def requeue(self, job_id: str) -> None:
        self.check(["scontrol", "requeue", job_id])


class Backoff:
    """How long to leave Slurm alone after it said it is busy: the one rule, used everywhere."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.delay = 0.0
        self.until = 0.0

    def ready(self) -> bool:
        return self.clock() >= self.until

    def failed(self) -> float:
        """Slurm was busy: the next try waits 5 s, then twice as long each time, at most 300 s."""
        self.delay = min(BACKOFF_MAX_S, max(BACKOFF_FIRST_S, 2 * self.delay))
        self.until = self.clock() + self.delay
        return self.delay

    def succeeded(self) -> None:
        self.delay = 0.0
        self.until = 0.0


T = TypeVar("T")


def retrying(call: Callable[[], T], attempts: int = 4, sleep: Callable[[float], None] = time.sleep) -> T:
    """``call()``, tried again under the back-off rule while Slurm is busy (at most
    ``attempts`` times, ~75 s); the last BackendBusy is raised."""
    backoff = Backoff()
    for i in range(attempts):
        try:
            return call()
        except BackendBusy:
            if i == attempts - 1:
                raise
            sleep(backoff.failed())
    raise AssertionError("unreachable")
