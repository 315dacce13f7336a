"""A backend without processes, for fast tests of the controller's logic.

``FakeBackend(objective)`` "runs" each trial the moment it is submitted: it appends the
objective's reports to the trial's result file and writes the exit record, exactly as
the trial wrapper would. ``manual=True`` leaves jobs PENDING until the test decides.
The Slurm and local backends are tested against real jobs elsewhere.
"""
from __future__ import annotations

import json
import os
import shlex
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

from hpc_tune.backends import Backend, JobRequest, JobState, JobStatus
from hpc_tune.trial import EXIT_RECORD, write_json_atomic

# objective(params, resource) -> list of report dicts, or an int exit code (a crash)
Objective = Callable[[Dict, Optional[float]], object]


class FakeBackend(Backend):
    name = "fake"

    def __init__(self, objective: Optional[Objective] = None, manual: bool = False):
        super().__init__()
        self.objective = objective
        self.manual = manual
        self.requests: Dict[str, JobRequest] = {}
        self.states: Dict[str, JobStatus] = {}
        self.cancelled: List[str] = []
        self.attached: Dict[str, str] = {}
        self.live_names: Dict[str, str] = {}  # for find_jobs
        self._next = 0

    def submit(self, requests: Sequence[JobRequest]) -> List[str]:
        self.calls["sbatch"] += 1
        ids = []
        for r in requests:
            self._next += 1
            job = f"fake-{self._next}"
            ids.append(job)
            self.requests[job] = r
            self.states[job] = JobStatus(job, JobState.PENDING, raw="PENDING")
            if not self.manual:
                self.finish(job)
        return ids

    def finish(self, job: str, reports: Optional[list] = None, exit_code: int = 0) -> None:
        """Write what a trial would write, and mark the job COMPLETED/FAILED."""
        r = self.requests[job]
        params = {k: v for k, v in _params_of(r).items()}
        if reports is None and self.objective is not None:
            out = self.objective(params, _resource_of(r))
            if isinstance(out, int):
                exit_code, reports = out, []
            else:
                reports = out  # type: ignore[assignment]
        with open(r.env["HPC_TUNE_RESULT_FILE"], "a") as fh:
            for rep in reports or []:
                fh.write((rep if isinstance(rep, str) else json.dumps(rep)) + "\n")
        write_json_atomic(Path(r.trial_dir) / EXIT_RECORD,
                          {"exit_code": exit_code, "signal": None, "job_id": job,
                           "attempt": int(r.env["HPC_TUNE_ATTEMPT"]), "restart_count": 0})
        self.states[job] = JobStatus(job, JobState.COMPLETED if exit_code == 0 else JobState.FAILED,
                                     exit_code=exit_code, raw="COMPLETED" if exit_code == 0 else "FAILED")

    def set_state(self, job: str, state: JobState) -> None:
        self.states[job] = JobStatus(job, state, raw=state.value)

    def poll(self, job_ids: Sequence[str]) -> Dict[str, JobStatus]:
        self.calls["sacct"] += 1
        return {j: self.states.get(j, JobStatus(j, JobState.LOST)) for j in job_ids}

    def cancel(self, job_ids: Sequence[str]) -> None:
        self.calls["scancel"] += 1
        for j in job_ids:
            self.cancelled.append(j)
            if j in self.states and self.states[j].state.live:
                self.states[j] = JobStatus(j, JobState.CANCELLED, raw="CANCELLED by 0")

    def find_jobs(self, name_prefix: str) -> Dict[str, str]:
        self.calls["squeue"] += 1
        return {j: n for j, n in self.live_names.items() if n.startswith(name_prefix)}

    def attach(self, job_id: str, trial_dir: str) -> None:
        self.attached[job_id] = trial_dir


def _params_of(r: JobRequest) -> Dict:
    """The tests' commands are `echo --name=value ...`: read the values back."""
    out = {}
    for word in shlex.split(r.command)[1:]:
        if word.startswith("--") and "=" in word:
            k, v = word[2:].split("=", 1)
            try:
                out[k] = json.loads(v)
            except ValueError:
                out[k] = v
    return out


def _resource_of(r: JobRequest) -> Optional[float]:
    return _params_of(r).get("resource")  # type: ignore[return-value]


def trial_dirs(study_dir: str) -> List[str]:
    base = os.path.join(study_dir, "trials")
    return sorted(os.listdir(base), key=int) if os.path.isdir(base) else []
