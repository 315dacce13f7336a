"""A simulated backend for benchmarks: the Backend interface, no processes, a virtual clock.

``SimBackend`` honours ``hpc_tune.backends.Backend`` (submit, poll, cancel, find_jobs,
attach). A submitted job "runs" on a virtual clock that only moves when the benchmark calls
``advance(dt)``: the trial's result lines are appended to ``$HPC_TUNE_RESULT_FILE`` at their
simulated times, one JSON object per line as ``hpc_tune.report`` writes them, and at its end
the exit record ``exit.json`` is written atomically (temporary file + rename) in the trial
folder, with the fields the trial wrapper writes. A duration of 0 means the trial is over at
the next ``advance``. The trial work happens in ``advance``, never inside a controller cycle,
so timing a cycle times the controller only.

The objective sees the trial's parameters the way a real job does: rendered into its
command line. Commands are ``anything --name=value ...`` (see ``params_of``).
"""
from __future__ import annotations

import heapq
import json
import os
import shlex
import socket
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from hpc_tune.backends import Backend, JobRequest, JobState, JobStatus
from hpc_tune.trial import EXIT_RECORD

# objective(params) -> report dicts (the result lines, in order)
Objective = Callable[[Dict[str, Any]], List[Dict[str, Any]]]
# duration(job number) -> simulated seconds (0: over at the next advance)
Duration = Callable[[int], float]


def params_of(command: str) -> Dict[str, Any]:
    """``--name=value`` words of a rendered command, values read as JSON where they parse."""
    out: Dict[str, Any] = {}
    for word in shlex.split(command)[1:]:
        if word.startswith("--") and "=" in word:
            k, v = word[2:].split("=", 1)
            try:
                out[k] = json.loads(v)
            except ValueError:
                out[k] = v
    return out


class SimBackend(Backend):
    name = "sim"

    def __init__(self, objective: Objective, duration: Optional[Duration] = None, fsync: bool = False,
                 start_delay: float = 0.0, reports_per_trial: int = 1):
        super().__init__()
        self.objective = objective
        self.duration = duration or (lambda n: 0.0)
        self.fsync = fsync
        self.start_delay = start_delay  # simulated queue wait before RUNNING
        self.now = 0.0
        self.requests: Dict[str, JobRequest] = {}
        self.states: Dict[str, JobStatus] = {}
        self.attached: Dict[str, str] = {}
        self._events: List[Tuple[float, int, str, int]] = []  # (time, seq, job, report index or -1 = exit)
        self.reports_per_trial = reports_per_trial  # the objective must return this many lines
        self._reports: Dict[str, List[Dict[str, Any]]] = {}
        self._started: Dict[str, float] = {}
        self._seq = 0
        self._next = 0
        self.lines_written = 0
        self.exits_written = 0

    # -- Backend interface --------------------------------------------------------
    def submit(self, requests: Sequence[JobRequest]) -> List[str]:
        self.calls["sbatch"] += 1
        ids = []
        for r in requests:
            self._next += 1
            job = f"sim-{self._next}"
            ids.append(job)
            self.requests[job] = r
            start = self.now + self.start_delay
            self._started[job] = start
            end = start + max(0.0, float(self.duration(self._next)))
            self.states[job] = JobStatus(job, JobState.PENDING if self.start_delay > 0 else JobState.RUNNING,
                                         raw="PENDING" if self.start_delay > 0 else "RUNNING")
            # (the objective runs in advance(): submit stays as cheap as handing a job to a scheduler)
            n = self.reports_per_trial
            for k in range(n):  # reports spread evenly over the run, the last one at its end
                self._push(end if k == n - 1 else start + (end - start) * (k + 1) / n, job, k)
            self._push(end, job, -1)
        return ids

    def poll(self, job_ids: Sequence[str]) -> Dict[str, JobStatus]:
        self.calls["sacct"] += 1
        return {j: self.states.get(j, JobStatus(j, JobState.LOST)) for j in job_ids}

    def cancel(self, job_ids: Sequence[str]) -> None:
        self.calls["scancel"] += 1
        for j in job_ids:
            st = self.states.get(j)
            if st is not None and st.state.live:
                self.states[j] = JobStatus(j, JobState.CANCELLED, raw="CANCELLED by 0")

    def find_jobs(self, name_prefix: str) -> Dict[str, str]:
        self.calls["squeue"] += 1
        return {j: r.name for j, r in self.requests.items()
                if r.name.startswith(name_prefix) and self.states[j].state.live}

    def attach(self, job_id: str, trial_dir: str) -> None:
        self.attached[job_id] = trial_dir

    # -- the simulated trials -----------------------------------------------------
    @property
    def live_jobs(self) -> int:
        return sum(1 for s in self.states.values() if s.state.live)

    def _push(self, t: float, job: str, what: int) -> None:
        self._seq += 1
        heapq.heappush(self._events, (t, self._seq, job, what))

    def advance(self, dt: float) -> int:
        """Move the clock by ``dt`` and write what the trials did meanwhile; returns the number
        of jobs that ended."""
        self.now += dt
        ended = 0
        while self._events and self._events[0][0] <= self.now:
            t, _, job, what = heapq.heappop(self._events)
            if not self.states[job].state.live:
                continue  # cancelled
            if self.states[job].state is JobState.PENDING and t >= self._started[job]:
                self.states[job] = JobStatus(job, JobState.RUNNING, raw="RUNNING")
            r = self.requests[job]
            if what >= 0:
                reports = self._reports.get(job)
                if reports is None:
                    reports = self._reports[job] = list(self.objective(params_of(r.command)))
                self._append_line(r, {**reports[what], "time": t})
            else:
                self._reports.pop(job, None)
                self._write_exit(r, job, t)
                self.states[job] = JobStatus(job, JobState.COMPLETED, exit_code=0, raw="COMPLETED")
                ended += 1
        return ended

    def _append_line(self, r: JobRequest, data: Dict[str, Any]) -> None:
        line = (json.dumps(data, allow_nan=False) + "\n").encode()
        fd = os.open(r.env["HPC_TUNE_RESULT_FILE"], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            if self.fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        self.lines_written += 1

    def _write_exit(self, r: JobRequest, job: str, t: float) -> None:
        record = {"exit_code": 0, "signal": None, "job_id": job, "restart_count": 0,
                  "attempt": int(r.env.get("HPC_TUNE_ATTEMPT", 0)), "started": self._started[job], "ended": t,
                  "host": socket.gethostname(), "signals_received": []}
        path = os.path.join(r.trial_dir, EXIT_RECORD)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as fh:
            json.dump(record, fh)
            if self.fsync:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
        self.exits_written += 1
