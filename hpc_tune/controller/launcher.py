"""Starting, finding and stopping a study's controller: in this process (``run_controller``),
as a Slurm job (``submit_controller_job``), and ``cancel_study``."""
from __future__ import annotations

import argparse
import logging
import os
import shlex
import string
import sys
import time
from typing import Any, Dict, Optional

from ..backends import Backend, BackendBusy, BackendError, make_backend
from ..backends.slurm_commands import SlurmCommands, retrying
from ..errors import EnvironmentProblem, UserError
from ..journal import Journal, StudyView, load_view, refresh
from ..journal import events as ev
from ..paths import StudyPaths
from ..spec import Spec
from ..study import study_spec
from .core import DecisionCore, job_prefix
from .lease import Lease, lease_holder
from .loop import Controller

# Inside the package, so that the wheel carries it (package data, see pyproject.toml).
TEMPLATE_DIRS = (os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "slurm_templates"),)


def study_backend(view: StudyView, spec: Spec) -> Backend:
    if view.info.get("backend") == "slurm":
        return make_backend("slurm", folder=view.paths.slurm_dir, options=spec.slurm)
    return make_backend("local", time_limit=spec.slurm.time)


# ------------------------------------------------------------------ the controller


def run_controller(study_dir: str) -> Dict[str, Any]:
    """Run the study's controller in this process until the study ends or a signal
    stops it. Exactly one controller runs a study: see ``Lease``. The journal is
    replayed once."""
    journal = Journal(study_dir)
    view = load_view(study_dir, journal)
    spec = study_spec(view)
    base_dir = view.info.get("base_dir")
    if base_dir and base_dir not in sys.path:
        sys.path.insert(0, base_dir)  # `iterative` functions live beside the study file
    _setup_logging(view.paths)
    lease = Lease(study_dir, journal)

    def study_over() -> bool:
        refresh(view, journal)
        return view.ended is not None

    if not lease.acquire(study_over):
        return dict(view.ended or {"state": "ended"})
    try:
        backend = study_backend(view, spec)
        controller = Controller(study_dir, spec, backend, poll_interval=float(view.info.get("poll_interval") or 30.0),
                                journal=journal, view=view, lease_lost=lambda: lease.lost, lease_check=lease.check,
                                epoch=lease.epoch)
        controller.install_signal_handlers()
        return controller.run()
    finally:
        lease.release()


def _setup_logging(paths: StudyPaths) -> None:
    os.makedirs(paths.controller_dir, exist_ok=True)
    handler = logging.FileHandler(paths.controller_log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("hpc_tune")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def live_controller(view: StudyView) -> Optional[str]:
    """A description of the controller that holds the study (running, or queued in
    Slurm), or None."""
    holder = lease_holder(view.study_dir)
    if holder:
        return holder
    job = _queued_controller_job(view)
    return f"Slurm job {job}, queued" if job else None


def _queued_controller_job(view: StudyView) -> Optional[str]:
    submitted = [c for c in view.controllers if c.get("action") == "submitted" and c.get("job")]
    if not submitted:
        return None
    job = str(submitted[-1]["job"])
    state = SlurmCommands(timeout_s=30).job_state(job)
    return job if state and state not in ("COMPLETED", "CANCELLED", "FAILED") else None


# ------------------------------------------------------------ the controller job


def render_controller_script(view: StudyView, args: argparse.Namespace) -> str:
    for d in TEMPLATE_DIRS:
        path = os.path.join(d, "controller.sbatch")
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as fh:
                template = string.Template(fh.read())
            break
    else:
        raise EnvironmentProblem(f"controller.sbatch template not found in {', '.join(TEMPLATE_DIRS)}: "
                                 f"reinstall hpc-tune")
    study_dir = view.study_dir
    if any(c.isspace() for c in study_dir):
        raise UserError(f"the study directory {study_dir!r} contains spaces, which #SBATCH lines cannot quote; "
                        f"choose another --state-dir")
    extra = []
    partition = getattr(args, "controller_partition", None)
    if partition:
        extra.append(f"#SBATCH --partition={partition}")
    return template.substitute(
        study_id=view.study_id, study_dir=study_dir, signal_seconds=int(getattr(args, "controller_signal", 120)),
        mem="1G",
        time=getattr(args, "controller_time", None) or "2-00:00:00", extra="\n".join(extra),
        cwd=shlex.quote(str(view.info.get("cwd") or os.getcwd())), python=shlex.quote(sys.executable),
    )


def submit_controller_job(study_dir: str, args: argparse.Namespace) -> str:
    """sbatch the controller job (retried under the back-off rule while Slurm is busy)."""
    view = load_view(study_dir)
    script = render_controller_script(view, args)
    path = view.paths.controller_script
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(script)
    try:
        job = retrying(lambda: SlurmCommands(timeout_s=60).sbatch(path), attempts=3)  # at most ~3.5 min
    except BackendBusy as exc:
        raise BackendBusy(f"Slurm did not accept the controller job ({exc}); the Slurm controller may be "
                          f"overloaded. Try again with `hpc-tune resume {view.study_id}`") from None
    except BackendError as exc:
        if "command not found" in str(exc):
            raise UserError("sbatch not found: no Slurm here; use --backend local or --foreground") from None
        raise BackendError(f"sbatch refused the controller job: {exc}") from None
    Journal(study_dir).append(ev.ControllerEvent("submitted", job=job).to_json())
    return job


# ---------------------------------------------------------------------- cancelling


def cancel_study(study_dir: str, wait: float = 60.0) -> str:
    """Stop a study for good: no new trial starts, every job of it is cancelled."""
    journal = Journal(study_dir)
    view = load_view(study_dir, journal)
    if view.ended is not None:
        return f"already ended ({view.ended.get('state')})"
    # 1. Tell a running controller to stop submitting; it ends the study itself.
    journal.append(ev.CancelRequested("cancelled by the user (hpc-tune cancel)").to_json())
    deadline = time.time() + wait
    while time.time() < deadline and live_controller(view):
        view = load_view(study_dir, journal)
        if view.ended is not None:
            break
        time.sleep(1.0)
    view = load_view(study_dir, journal)
    spec = study_spec(view)
    backend = study_backend(view, spec)
    # 2. Whatever is still there (no controller, or one that did not answer): cancel it here,
    #    and end the study as the controller would have.
    decision = DecisionCore(spec).cancelled(view)
    jobs = set(decision.cancel)
    jobs.update(retrying(lambda: backend.find_jobs(job_prefix(view))))
    controller_job = _queued_controller_job(view)
    if controller_job:
        jobs.add(controller_job)
    if jobs:
        retrying(lambda: backend.cancel(sorted(jobs)))
    if view.ended is None:
        journal.append(*[e.to_json() for e in decision.events])
    return "cancelled"
