"""Trials as detached local processes, with GPU slots.

Each job is one ``python -m hpc_tune.trial run TRIAL_DIR`` process in its own session, with
stdout/stderr appended to ``TRIAL_DIR/stdout.log`` / ``stderr.log``; its id is ``local-<pid>``.

Everything a restarted controller needs is on disk, in the trial folder:

    job.json            what to run (command, env, cwd, gpus, time limit), read by the wrapper
    local-<pid>.json    the registry: pid + process start time (so a reused pid is not mistaken
                        for our job), gpus, devices granted, cancelled flag
    slot.json           the GPUs granted to the job (the wrapper waits for it when gpus > 0)
    started.json / exit.json   written by the wrapper (hpc_tune.trial)

A new backend instance learns about a job with ``attach(job_id, trial_dir)`` (the controller
keeps both in its journal), or finds live ones with ``find_jobs(prefix)``, which scans
/proc for wrapper processes and attaches them. Attach every live job before polling, so
that GPUs in use are not granted twice.

How many trials run at once is the controller's business; which GPUs they get is the
backend's: a job asking for GPUs that are not free waits (PENDING) in its wrapper process
until a later ``poll`` grants them (first come, first served).
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from ..protocol import (
    JOB_FILE,
    JOB_ID_ENV,
    SLOT_FILE,
    read_exit_record,
    read_json,
    read_started_record,
    signal_group,
    write_json_atomic,
)
from .base import (
    PACKAGE_ROOT,
    Backend,
    BackendError,
    JobRequest,
    JobState,
    JobStatus,
    job_env,
    slurm_time_minutes,
    warning_delay_s,
)


def detect_gpus() -> List[str]:
    """GPU ids of this machine: ``nvidia-smi -L`` lines, else the CUDA_VISIBLE_DEVICES list, else none."""
    if shutil.which("nvidia-smi"):
        try:
            out = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True, timeout=30).stdout
            n = sum(1 for line in out.splitlines() if line.strip().startswith("GPU"))
            return [str(i) for i in range(n)]
        except (OSError, subprocess.SubprocessError):
            pass
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    return [d.strip() for d in visible.split(",") if d.strip()] if visible else []


def _proc_stat(pid: int) -> Optional[List[str]]:
    """Fields of /proc/<pid>/stat after the command name (field 3 = state first), or None."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            text = f.read().decode(errors="replace")
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()  # the name may hold spaces and ')'


def process_start_ticks(pid: int) -> Optional[int]:
    """When process ``pid`` started (clock ticks after boot), or None if there is no such process."""
    stat = _proc_stat(pid)
    return int(stat[19]) if stat and len(stat) > 19 else None


def _cmdline(pid: int) -> List[str]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return []


def _wrapper_trial_dir(argv: List[str]) -> Optional[str]:
    """TRIAL_DIR if ``argv`` is ``python -m hpc_tune.trial run TRIAL_DIR``."""
    for i in range(len(argv) - 3):
        if argv[i : i + 3] == ["-m", "hpc_tune.trial", "run"]:
            return argv[i + 3]
    return None


@dataclass
class _Job:
    job_id: str
    trial_dir: str
    pid: int
    start_ticks: Optional[int]
    gpus: int = 0
    submitted: float = 0.0
    name: str = ""
    devices: Optional[List[str]] = None  # GPUs granted; None while waiting for them
    cancelled: bool = False
    proc: Optional[subprocess.Popen] = field(default=None, repr=False, compare=False)

    def registry(self) -> Dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "proc"}


class LocalBackend(Backend):
    name = "local"

    def __init__(
        self,
        gpus_available: Optional[int] = None,
        python: Optional[str] = None,
        kill_wait_s: float = 5.0,
        time_limit: Optional[str] = None,
        signal_delay_s: int = 90,
    ) -> None:
        """``gpus_available``: size of the GPU pool (ids 0..n-1); default: detect_gpus().
        ``kill_wait_s``: how long cancel (and a time limit) waits after SIGTERM before SIGKILL.
        ``time_limit``: every job's, in Slurm's format (the study's ``slurm.time``), enforced by
        the job's wrapper as Slurm would: SIGUSR2 ``signal_delay_s`` before it (at most half of
        it), then SIGTERM; the job then ends TIMEOUT."""
        super().__init__()
        self.devices: List[str] = detect_gpus() if gpus_available is None else [str(i) for i in range(gpus_available)]
        self.python = python or sys.executable
        self.kill_wait_s = kill_wait_s
        minutes = slurm_time_minutes(time_limit) if time_limit else None  # validated by the spec loader
        self.time_limit_s = None if minutes is None else minutes * 60.0
        self.warn_s = warning_delay_s(minutes, signal_delay_s)
        self._jobs: Dict[str, _Job] = {}

    # -- submit ---------------------------------------------------------------------------------

    def submit(self, requests: Sequence[JobRequest]) -> List[str]:
        for r in requests:
            if r.gpus > len(self.devices):
                raise BackendError(f"job {r.name!r} needs {r.gpus} GPUs; this machine has {len(self.devices)}")
        ids: List[str] = []
        for r in requests:
            try:
                ids.append(self._start(r))
            except OSError as exc:
                raise BackendError(f"cannot start job {r.name!r}: {exc}", dict(enumerate(ids))) from exc
        self._grant_gpus()
        return ids

    def _start(self, r: JobRequest) -> str:
        trial = Path(r.trial_dir).resolve()
        trial.mkdir(parents=True, exist_ok=True)
        write_json_atomic(
            trial / JOB_FILE,
            {"command": r.command, "env": job_env(r), "cwd": r.cwd, "gpus": r.gpus, "name": r.name,
             "trial_id": r.trial_id, "attempt": r.attempt, "time_limit_s": self.time_limit_s, "warn_s": self.warn_s,
             "kill_wait_s": self.kill_wait_s},
        )
        (trial / SLOT_FILE).unlink(missing_ok=True)  # a grant left by an earlier job of this folder
        env = dict(os.environ)
        # The wrapper imports hpc_tune.trial from this same source tree, installed or not.
        env["PYTHONPATH"] = os.pathsep.join(p for p in (PACKAGE_ROOT, env.get("PYTHONPATH")) if p)
        with open(trial / "stdout.log", "ab") as out, open(trial / "stderr.log", "ab") as err:
            proc = subprocess.Popen(
                # -W: hpc_tune/__init__ imports hpc_tune.trial, so runpy warns about running it as
                # __main__; harmless (nothing of the module's state is shared), but noise in stderr.log
                [self.python, "-m", "hpc_tune.trial", "run", str(trial)],
                # cwd: the trial folder, so that no hpc_tune/ in the user's folder shadows ours;
                # the command itself runs in r.cwd (job.json)
                cwd=str(trial), env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                start_new_session=True,  # survives the controller; cancel signals its group
            )
        self.calls["spawn"] += 1
        job = _Job(f"local-{proc.pid}", str(trial), proc.pid, process_start_ticks(proc.pid),
                   gpus=r.gpus, submitted=time.time(), name=r.name, proc=proc)
        self._save(job)
        self._jobs[job.job_id] = job
        return job.job_id

    def _save(self, job: _Job) -> None:
        write_json_atomic(Path(job.trial_dir) / f"{job.job_id}.json", job.registry())

    # -- attach / find ----------------------------------------------------------------------------

    def attach(self, job_id: str, trial_dir: str) -> None:
        if job_id in self._jobs:
            return
        trial = Path(trial_dir).resolve()
        data = read_json(trial / f"{job_id}.json")
        if data is not None:
            job = _Job(**{k: data[k] for k in (f.name for f in fields(_Job)) if k in data and k != "proc"})
        else:
            # Crash between starting the process and writing its registry: trust the process if
            # it is the wrapper of this very trial folder.
            if not job_id.startswith("local-") or not job_id[6:].isdigit():
                raise BackendError(f"not a local job id: {job_id!r}")
            pid = int(job_id[6:])
            argv_dir = _wrapper_trial_dir(_cmdline(pid))
            spec = read_json(trial / JOB_FILE) or {}
            same = argv_dir is not None and Path(argv_dir).resolve() == trial
            job = _Job(job_id, str(trial), pid, process_start_ticks(pid) if same else -1,
                       gpus=int(spec.get("gpus") or 0), name=str(spec.get("name", "")))
            grant = read_json(trial / SLOT_FILE)
            if grant and grant.get("job_id") == job_id:
                job.devices = [str(d) for d in grant.get("devices", [])]
        self._jobs[job_id] = job

    def find_jobs(self, name_prefix: str) -> Dict[str, str]:
        found: Dict[str, str] = {}
        self.calls["proc_scan"] += 1
        try:
            pids = [int(p) for p in os.listdir("/proc") if p.isdigit()]
        except OSError:
            return found
        for pid in pids:
            trial_dir = _wrapper_trial_dir(_cmdline(pid))
            if trial_dir is None:
                continue
            stat = _proc_stat(pid)
            parent = int(stat[1]) if stat and len(stat) > 1 and stat[1].isdigit() else 0
            if parent > 0 and _wrapper_trial_dir(_cmdline(parent)) == trial_dir:
                continue  # the wrapper's own child between fork and exec: it has the same command line
            name = str((read_json(Path(trial_dir) / JOB_FILE) or {}).get("name", ""))
            if name.startswith(name_prefix):
                job_id = f"local-{pid}"
                try:
                    self.attach(job_id, trial_dir)
                except BackendError:
                    continue
                if self._alive(self._jobs[job_id]):
                    found[job_id] = name
        return found

    # -- poll -----------------------------------------------------------------------------------------

    def _alive(self, job: _Job) -> bool:
        if job.proc is not None and job.proc.poll() is not None:
            return False  # our own child, now reaped
        stat = _proc_stat(job.pid)
        if not stat or stat[0] in ("Z", "X"):  # gone, or ended and not reaped yet
            return False
        return job.start_ticks is None or int(stat[19]) == job.start_ticks

    def _grant_gpus(self) -> None:
        """Release GPUs of jobs that ended; grant free ones to waiting jobs, oldest first."""
        busy: set = set()
        waiting: List[_Job] = []
        for job in self._jobs.values():
            if job.gpus <= 0 or not self._alive(job):
                continue
            if job.devices is None:
                waiting.append(job)
            else:
                busy.update(job.devices)
        free = [d for d in self.devices if d not in busy]
        for job in sorted(waiting, key=lambda j: j.submitted):
            if job.gpus > len(free):
                break  # first come, first served: a big job is not starved by small ones
            job.devices, free = free[: job.gpus], free[job.gpus :]
            self._save(job)  # before the grant, so a restarted backend counts these GPUs
            write_json_atomic(Path(job.trial_dir) / SLOT_FILE, {"job_id": job.job_id, "devices": job.devices})

    def poll(self, job_ids: Sequence[str]) -> Dict[str, JobStatus]:
        self._grant_gpus()
        return {job_id: self._status(job_id) for job_id in job_ids}

    def _status(self, job_id: str) -> JobStatus:
        job = self._jobs.get(job_id)
        if job is None:
            return JobStatus(job_id, JobState.LOST, reason="unknown here: attach(job_id, trial_dir) it first")
        if self._alive(job):
            started = read_started_record(job.trial_dir)
            if started and started.get("job_id") == job_id:
                return JobStatus(job_id, JobState.RUNNING, raw="running")
            why = "waiting for GPUs" if job.gpus and job.devices is None else "starting"
            return JobStatus(job_id, JobState.PENDING, reason=why, raw="pending")
        record = read_exit_record(job.trial_dir)
        if record is None or record.get("job_id") != job_id:
            code = job.proc.returncode if job.proc is not None else None
            if job.cancelled:
                why = "cancelled before it wrote an exit record"
                return JobStatus(job_id, JobState.CANCELLED, code, why, "cancelled")
            # Killed without a word (with its controller, by the OOM killer, a reboot): what
            # a node failure is on Slurm. Its command, in a session of its own, may live on:
            # it goes too, so that a retry never runs beside it.
            _kill_orphan(job)
            why = "its process vanished without an exit record (killed, e.g. together with its controller)"
            return JobStatus(job_id, JobState.LOST, code, why, "vanished")
        code = int(record["exit_code"])
        if code == 0:
            return JobStatus(job_id, JobState.COMPLETED, 0, raw="exited")
        if job.cancelled:
            return JobStatus(job_id, JobState.CANCELLED, code, "cancelled", "cancelled")
        if record.get("timed_out"):
            return JobStatus(job_id, JobState.TIMEOUT, code, "time limit reached", "timeout")
        how = f"killed by {record['signal']}" if record.get("signal") else f"exit code {code}"
        return JobStatus(job_id, JobState.FAILED, code, how, "exited")

    # -- cancel ---------------------------------------------------------------------------------------

    def cancel(self, job_ids: Sequence[str]) -> None:
        """SIGTERM to each job's wrapper (which passes it on to the command), SIGKILL to
        wrapper and command after ``kill_wait_s`` if still there."""
        jobs = [self._jobs[j] for j in job_ids if j in self._jobs]
        targets = []
        for job in jobs:
            if not self._alive(job):
                continue
            job.cancelled = True
            self._save(job)  # so that a restarted backend reports CANCELLED too
            signal_group(job.pid, signal.SIGTERM)
            targets.append(job)
        if targets:
            self.calls["kill"] += 1
        deadline = time.monotonic() + self.kill_wait_s
        while targets and time.monotonic() < deadline:
            time.sleep(0.05)
            targets = [job for job in targets if self._alive(job)]
        for job in targets:
            started = read_started_record(job.trial_dir) or {}
            child = started.get("child_pid")
            if started.get("job_id") == job.job_id and isinstance(child, int) and _pgid(child) == child:
                signal_group(child, signal.SIGKILL)
            signal_group(job.pid, signal.SIGKILL)
        for job in targets:  # reap our own children now, so the next poll sees them ended
            if job.proc is not None:
                try:
                    job.proc.wait(timeout=1)
                except subprocess.TimeoutExpired:
                    pass
        self._grant_gpus()


def _kill_orphan(job: _Job) -> None:
    """SIGKILL the command group a vanished wrapper left, if it is still there (and is that
    job's: its environment names the job)."""
    started = read_started_record(job.trial_dir) or {}
    child = started.get("child_pid")
    if started.get("job_id") != job.job_id or not isinstance(child, int) or _pgid(child) != child:
        return
    try:
        with open(f"/proc/{child}/environ", "rb") as f:
            mine = f"{JOB_ID_ENV}={job.job_id}".encode() in f.read().split(b"\0")
    except OSError:
        return
    if mine:
        signal_group(child, signal.SIGKILL)


def _pgid(pid: int) -> Optional[int]:
    stat = _proc_stat(pid)
    return int(stat[2]) if stat and len(stat) > 2 else None
