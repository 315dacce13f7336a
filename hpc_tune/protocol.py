"""The trial protocol: what a trial job and the controller say to each other through files.

Environment of a trial (names below), and in its folder two small records, each written
atomically (temporary file + rename) by the job's wrapper (``hpc_tune.trial``):

    started.json  {"run", "job_id", "restart_count", "attempt", "started", "host", "node", "pid",
                   "child_pid"}
    exit.json     {"exit_code", "signal", "run", "job_id", "restart_count", "attempt", "started",
                   "ended", "host", "node", "signals_received"[, "error"][, "timed_out"]}

``run`` names one start of the wrapper (``<job id>.<restart count>``): the controller counts
only the current run's exit record, and a run whose claim (``started.json``) another run has
taken stops (see ``hpc_tune.trial``).

plus ``result.jsonl``, one JSON object per ``report()``. The controller reads these through
this module, never through the wrapper. Standard library only: every trial job imports it.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any, Dict, Optional, Union

# Environment of a trial (DESIGN.md, "Trial protocol").
STUDY_DIR_ENV = "HPC_TUNE_STUDY_DIR"
TRIAL_ID_ENV = "HPC_TUNE_TRIAL_ID"
TRIAL_DIR_ENV = "HPC_TUNE_TRIAL_DIR"
RESULT_FILE_ENV = "HPC_TUNE_RESULT_FILE"
CHECKPOINT_DIR_ENV = "HPC_TUNE_CHECKPOINT_DIR"
ATTEMPT_ENV = "HPC_TUNE_ATTEMPT"  # the controller's resubmission count (Slurm's requeues are not counted)
JOB_ID_ENV = "HPC_TUNE_JOB_ID"  # set by run_trial for the command: the backend's id of this job

# Files in a trial folder.
RESULT_FILE = "result.jsonl"  # default when HPC_TUNE_RESULT_FILE is not given
CHECKPOINT_SUBDIR = "checkpoints"  # default when HPC_TUNE_CHECKPOINT_DIR is not given
STARTED_RECORD = "started.json"
EXIT_RECORD = "exit.json"
JOB_FILE = "job.json"  # {"command", "env", "cwd", "gpus", "time_limit_s"...}: what `python -m hpc_tune.trial run` runs
SLOT_FILE = "slot.json"  # {"job_id", "devices"}: GPUs granted by the local backend


def signal_group(pgid: int, signum: int) -> None:
    """Send ``signum`` to process group ``pgid``; a group that is gone already is no error.
    (The wrapper forwards signals to the command's group; the local backend cancels a job so.)"""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def write_json_atomic(path: Union[str, "os.PathLike[str]"], data: Any) -> None:
    """Write JSON to ``path`` so that readers see the old file or the whole new one, never a part."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    with open(tmp, "w") as f:
        json.dump(data, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def read_json(path: Union[str, "os.PathLike[str]"]) -> Optional[Dict[str, Any]]:
    """The JSON object in ``path``, or None if it is missing, unreadable or not a JSON object."""
    try:
        with open(path, "rb") as f:
            data = json.loads(f.read().decode("utf-8"))
    except Exception:  # missing, half-written, binary garbage: all mean "no record"
        return None
    return data if isinstance(data, dict) else None


def read_exit_record(trial_dir: str) -> Optional[Dict[str, Any]]:
    """The exit record of the trial folder, or None if there is none or it is garbage. Never raises."""
    return read_exit_record_file(os.path.join(trial_dir, EXIT_RECORD))  # os.path: cheap in a 1,000-trial cycle


def read_exit_record_file(path: str) -> Optional[Dict[str, Any]]:
    """``read_exit_record`` from the record's own path (a controller keeps it between cycles)."""
    record = read_json(path)
    if record is None:
        return None
    code = record.get("exit_code")
    if isinstance(code, bool) or not isinstance(code, int):
        return None
    return record


def read_started_record(trial_dir: str) -> Optional[Dict[str, Any]]:
    """The start record of the trial folder, or None. Never raises."""
    return read_json(os.path.join(trial_dir, STARTED_RECORD))


def current_job_id() -> str:
    """This job's id as the backends name it: ``123``, ``123_4`` for an array task, else ``local-<pid>``."""
    array_id, task_id = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
    if array_id and task_id:
        return f"{array_id}_{task_id}"
    return os.environ.get("SLURM_JOB_ID") or f"local-{os.getpid()}"
