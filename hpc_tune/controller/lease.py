"""The lease: the right to run a study's controller, held by exactly one process."""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Dict, Optional

from ..errors import UserError
from ..journal import Journal
from ..journal.events import ControllerEvent
from ..paths import StudyPaths
from ..protocol import read_json, write_json_atomic

LEASE_EVERY = 10.0  # seconds between renewals of the controller's lease
LEASE_STALE = 6 * LEASE_EVERY  # a lease not renewed for this long may be taken over


def holder_description(lease: Any, ignore_own_job: bool = False) -> Optional[str]:
    """Who holds a lease record, or None when it is free (released, stale, or held
    by a process known to be dead, or by an earlier run of our own Slurm job)."""
    if not isinstance(lease, dict) or lease.get("released"):
        return None
    if time.time() - float(lease.get("t", 0)) >= LEASE_STALE:
        return None
    if ignore_own_job and lease.get("job") and lease.get("job") == os.environ.get("SLURM_JOB_ID"):
        return None  # Slurm requeued our job: the earlier run of it is gone
    if lease.get("host") == socket.gethostname() and not _pid_alive(int(lease.get("pid", 0))):
        return None
    return f"host {lease.get('host')}, pid {lease.get('pid')}" + (
        f", Slurm job {lease['job']}" if lease.get("job") else "")


def lease_holder(study_dir: str) -> Optional[str]:
    """Who holds the study's lease now, or None."""
    return holder_description(read_json(StudyPaths(study_dir).lease))


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


class Lease:
    """``controller/lease.json`` with the holder (host, pid, Slurm job) and a heartbeat
    renewed every ``LEASE_EVERY`` s.

    Taken under the journal's lock, so of two controllers starting at once exactly
    one gets it; the other refuses. A lease whose heartbeat is older than
    ``LEASE_STALE`` (its holder died with ``kill -9``, or its node failed) is taken
    over, and the journal says so. A holder that finds its lease taken over (it was
    paused longer than that: a suspended job, an NFS hang) stops at once. The lock
    alone is not trusted across nodes (NFS ``local_lock``, Lustre ``localflock``):
    the heartbeat is what a second node sees."""

    def __init__(self, study_dir: str, journal: Journal):
        self.path = StudyPaths(study_dir).lease
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
            self.journal.append(ControllerEvent("start", socket.gethostname(), os.getpid(),
                                                os.environ.get("SLURM_JOB_ID"), took_over=took_over).to_json())
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
