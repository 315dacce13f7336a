"""Starting, finding and stopping a study's controller."""
from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shlex
import socket
import string
import subprocess
import sys
import threading
import time
from typing import Any, Dict, Optional

from .backends import Backend, make_backend
from .controller import Controller
from .errors import UserError
from .journal import Journal, read_json, write_json_atomic
from .search.base import TrialState
from .spec import Spec, load_spec
from .study import SPEC_FILE, StudyView, load_view

HEARTBEAT_FILE = os.path.join("controller", "heartbeat.json")
HEARTBEAT_EVERY = 10.0  # seconds
HEARTBEAT_STALE = 6 * HEARTBEAT_EVERY
TEMPLATE_DIRS = (
    os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "slurm_templates"),  # source tree
    os.path.join(os.path.dirname(os.path.abspath(__file__)), "slurm_templates"),  # installed package
)


def study_spec(view: StudyView) -> Spec:
    """The frozen spec of a study, with the Slurm overrides given at submission."""
    path = os.path.join(view.study_dir, SPEC_FILE)
    spec = load_spec(path, base_dir=view.info.get("base_dir"))
    overrides = view.info.get("slurm") or {}
    if overrides:
        if "extra" in overrides:
            overrides = {**overrides, "extra": tuple(spec.slurm.extra) + tuple(overrides["extra"])}
        spec = dataclasses.replace(spec, slurm=dataclasses.replace(spec.slurm, **overrides))
    return spec


def study_backend(view: StudyView, spec: Spec) -> Backend:
    if view.info.get("backend") == "slurm":
        return make_backend("slurm", folder=os.path.join(view.study_dir, "slurm"), options=spec.slurm)
    return make_backend("local")


# ------------------------------------------------------------------ the controller


def run_controller(study_dir: str, *, tick: float = 1.0) -> Dict[str, Any]:
    """Run the study's controller in this process until the study ends or a signal
    stops it. Refuses when another controller holds a fresh lease."""
    view = load_view(study_dir)
    holder = live_controller(view, ignore_own_job=True)
    if holder:
        raise UserError(f"study {view.study_id} already has a running controller ({holder})")
    spec = study_spec(view)
    base_dir = view.info.get("base_dir")
    if base_dir and base_dir not in sys.path:
        sys.path.insert(0, base_dir)  # `iterative` functions live beside the study file
    _setup_logging(study_dir)
    backend = study_backend(view, spec)
    controller = Controller(study_dir, spec, backend, poll_interval=float(view.info.get("poll_interval") or 30.0),
                            tick=tick)
    controller.install_signal_handlers()
    stop = threading.Event()
    beat = threading.Thread(target=_heartbeat, args=(study_dir, stop), daemon=True)
    beat.start()
    try:
        return controller.run()
    finally:
        stop.set()
        try:
            os.remove(os.path.join(study_dir, HEARTBEAT_FILE))
        except OSError:
            pass


def _heartbeat(study_dir: str, stop: threading.Event) -> None:
    path = os.path.join(study_dir, HEARTBEAT_FILE)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    while not stop.is_set():
        write_json_atomic(path, {"host": socket.gethostname(), "pid": os.getpid(),
                                 "job": os.environ.get("SLURM_JOB_ID"), "t": time.time()})
        stop.wait(HEARTBEAT_EVERY)


def _setup_logging(study_dir: str) -> None:
    os.makedirs(os.path.join(study_dir, "controller"), exist_ok=True)
    handler = logging.FileHandler(os.path.join(study_dir, "controller", "controller.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("hpc_tune")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def live_controller(view: StudyView, ignore_own_job: bool = False) -> Optional[str]:
    """A description of the controller that holds the study, or None."""
    beat = read_json(os.path.join(view.study_dir, HEARTBEAT_FILE))
    if isinstance(beat, dict) and time.time() - float(beat.get("t", 0)) < HEARTBEAT_STALE:
        same_job = ignore_own_job and beat.get("job") and beat.get("job") == os.environ.get("SLURM_JOB_ID")
        same_host_dead = beat.get("host") == socket.gethostname() and not _pid_alive(int(beat.get("pid", 0)))
        if not same_job and not same_host_dead:
            return f"host {beat.get('host')}, pid {beat.get('pid')}" + (
                f", Slurm job {beat['job']}" if beat.get("job") else "")
    job = _queued_controller_job(view)
    if job and not (ignore_own_job and job == os.environ.get("SLURM_JOB_ID")):
        return f"Slurm job {job}, queued"
    return None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _queued_controller_job(view: StudyView) -> Optional[str]:
    submitted = [c for c in view.controllers if c.get("action") == "submitted" and c.get("job")]
    if not submitted:
        return None
    job = str(submitted[-1]["job"])
    try:
        out = subprocess.run(["squeue", "-h", "-j", job, "-o", "%T"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    state = out.stdout.strip()
    return job if out.returncode == 0 and state and state not in ("COMPLETED", "CANCELLED", "FAILED") else None


# ------------------------------------------------------------ the controller job


def render_controller_script(study_dir: str, args: argparse.Namespace) -> str:
    for d in TEMPLATE_DIRS:
        path = os.path.join(d, "controller.sbatch")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                template = string.Template(fh.read())
            break
    else:
        raise UserError(f"controller.sbatch template not found in {', '.join(TEMPLATE_DIRS)}")
    if any(c.isspace() for c in study_dir):
        raise UserError(f"the study directory {study_dir!r} contains spaces, which #SBATCH lines cannot quote; "
                        f"choose another --state-dir")
    view = load_view(study_dir)
    extra = []
    partition = getattr(args, "controller_partition", None)
    if partition:
        extra.append(f"#SBATCH --partition={partition}")
    return template.substitute(
        study_id=view.study_id, study_dir=study_dir, signal_seconds=120, mem="1G",
        time=getattr(args, "controller_time", None) or "2-00:00:00", extra="\n".join(extra),
        cwd=shlex.quote(str(view.info.get("cwd") or os.getcwd())), python=shlex.quote(sys.executable),
    )


def submit_controller_job(study_dir: str, args: argparse.Namespace) -> str:
    script = render_controller_script(study_dir, args)
    path = os.path.join(study_dir, "controller", "controller.sbatch")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(script)
    try:
        out = subprocess.run(["sbatch", "--parsable", path], capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise UserError("sbatch not found: no Slurm here; use --backend local or --foreground") from None
    except subprocess.TimeoutExpired:
        raise UserError("sbatch did not answer within 120 s; the Slurm controller may be overloaded. "
                        f"Try again with `hpc-tune resume {os.path.basename(study_dir)}`") from None
    if out.returncode != 0:
        raise UserError(f"sbatch refused the controller job: {out.stderr.strip() or out.stdout.strip()}")
    job = out.stdout.strip().split(";")[0]
    Journal(study_dir).append({"e": "controller", "action": "submitted", "job": job})
    return job


# ---------------------------------------------------------------------- cancelling


def cancel_study(study_dir: str, wait: float = 60.0) -> str:
    """Stop a study for good: no new trial starts, every job of it is cancelled."""
    journal = Journal(study_dir)
    view = load_view(study_dir, journal)
    if view.ended is not None:
        return f"already ended ({view.ended.get('state')})"
    # 1. Tell a running controller to stop submitting; it ends the study itself.
    journal.append({"e": "cancel", "reason": "cancelled by the user (hpc-tune cancel)"})
    deadline = time.time() + wait
    while time.time() < deadline and live_controller(view):
        view = load_view(study_dir, journal)
        if view.ended is not None:
            break
        time.sleep(1.0)
    view = load_view(study_dir, journal)
    backend = study_backend(view, study_spec(view))
    # 2. Whatever is still there (no controller, or one that did not answer): cancel it here.
    jobs = {t.job_id for t in view.live() if t.job_id}
    jobs.update(backend.find_jobs(f"hpct-{view.study_id}-"))
    controller_job = _queued_controller_job(view)
    if controller_job:
        jobs.add(controller_job)
    if jobs:
        backend.cancel(sorted(jobs))
    if view.ended is None:
        journal.append(*[{"e": "end", "id": t.trial_id, "state": TrialState.CANCELLED.value, "value": None,
                          "reason": "cancelled by the user"} for t in view.live()],
                       {"e": "study_end", "state": "cancelled", "reason": "cancelled by the user (hpc-tune cancel)"})
    return "cancelled"
