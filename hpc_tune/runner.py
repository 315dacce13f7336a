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
import uuid
from typing import Any, Dict, Optional

from .backends import Backend, make_backend
from .controller import Controller
from .errors import UserError
from .journal import Journal
from .search.base import TrialState
from .spec import Spec, load_spec
from .study import LEASE_EVERY, LEASE_FILE, SPEC_FILE, StudyView, holder_description, load_view
from .trial import read_json, write_json_atomic

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
    return make_backend("local", time_limit=spec.slurm.time)


# ------------------------------------------------------------------ the controller


def run_controller(study_dir: str) -> Dict[str, Any]:
    """Run the study's controller in this process until the study ends or a signal
    stops it. Exactly one controller runs a study: see ``Lease``."""
    journal = Journal(study_dir)
    view = load_view(study_dir, journal)
    spec = study_spec(view)
    base_dir = view.info.get("base_dir")
    if base_dir and base_dir not in sys.path:
        sys.path.insert(0, base_dir)  # `iterative` functions live beside the study file
    _setup_logging(study_dir)
    lease = Lease(study_dir, journal)
    lease.acquire()
    try:
        backend = study_backend(view, spec)
        controller = Controller(study_dir, spec, backend, poll_interval=float(view.info.get("poll_interval") or 30.0),
                                lease_lost=lambda: lease.lost)
        controller.install_signal_handlers()
        return controller.run()
    finally:
        lease.release()


class Lease:
    """The right to run a study's controller: ``controller/lease.json`` with the
    holder (host, pid, Slurm job) and a heartbeat renewed every ``LEASE_EVERY`` s.

    Taken under the journal's lock, so of two controllers starting at once exactly
    one gets it; the other refuses. A lease whose heartbeat is older than
    ``LEASE_STALE`` (its holder died with ``kill -9``, or its node failed) is taken
    over, and the journal says so. A holder that finds its lease taken over (it was
    paused longer than that: a suspended job, an NFS hang) stops at once. The lock
    alone is not trusted across nodes (NFS ``local_lock``, Lustre ``localflock``):
    the heartbeat is what a second node sees."""

    def __init__(self, study_dir: str, journal: Journal):
        self.path = os.path.join(study_dir, LEASE_FILE)
        self.journal = journal
        self.token = uuid.uuid4().hex
        self.lost = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _record(self) -> Dict[str, Any]:
        return {"token": self.token, "host": socket.gethostname(), "pid": os.getpid(),
                "job": os.environ.get("SLURM_JOB_ID"), "t": time.time()}

    def acquire(self) -> None:
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with self.journal.locked():
            current = read_json(self.path)
            holder = holder_description(current, ignore_own_job=True)
            if holder:
                raise UserError(f"this study already has a running controller ({holder}); "
                                f"`hpc-tune cancel` stops it")
            took_over = None
            if isinstance(current, dict) and not current.get("released"):
                took_over = (f"took over the stale lease of host {current.get('host')} pid {current.get('pid')}"
                             f" (last heartbeat {time.time() - float(current.get('t', 0)):.0f} s ago)")
            write_json_atomic(self.path, self._record())
            self.journal.append({"e": "controller", "action": "start", "host": socket.gethostname(),
                                 "pid": os.getpid(), "job": os.environ.get("SLURM_JOB_ID"),
                                 **({"took_over": took_over} if took_over else {})})
        if took_over:
            logging.getLogger("hpc_tune.controller").warning("%s", took_over)
        self._thread = threading.Thread(target=self._renew, daemon=True)
        self._thread.start()

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_EVERY):
            current = read_json(self.path)
            if not isinstance(current, dict) or current.get("token") != self.token:
                self.lost = True
                return
            write_json_atomic(self.path, self._record())

    def release(self) -> None:
        self._stop.set()
        current = read_json(self.path)
        if isinstance(current, dict) and current.get("token") == self.token:
            write_json_atomic(self.path, {**current, "released": True, "t": time.time()})


def _setup_logging(study_dir: str) -> None:
    os.makedirs(os.path.join(study_dir, "controller"), exist_ok=True)
    handler = logging.FileHandler(os.path.join(study_dir, "controller", "controller.log"))
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("hpc_tune")
    root.addHandler(handler)
    root.setLevel(logging.INFO)


def live_controller(view: StudyView) -> Optional[str]:
    """A description of the controller that holds the study (running, or queued in
    Slurm), or None."""
    holder = holder_description(read_json(os.path.join(view.study_dir, LEASE_FILE)))
    if holder:
        return holder
    job = _queued_controller_job(view)
    return f"Slurm job {job}, queued" if job else None


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
        study_id=view.study_id, study_dir=study_dir, signal_seconds=int(getattr(args, "controller_signal", 120)),
        mem="1G",
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
