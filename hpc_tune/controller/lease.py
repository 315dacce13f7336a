"""The lease: the right to run a study's controller, held by exactly one process."""
from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any, Callable, Dict, Optional

from ..errors import EnvironmentProblem, JournalError, UserError
from ..journal import Journal
from ..journal.events import ControllerEvent
from ..paths import StudyPaths
from ..protocol import read_json, write_json_atomic

LEASE_EVERY = 10.0  # seconds between renewals of the controller's lease
LEASE_STALE = 6 * LEASE_EVERY  # a lease not renewed for this long may be taken over
WAIT_EVERY = 5.0  # seconds between looks at a lease held by an earlier run of our own job

log = logging.getLogger("hpc_tune.controller")


class LeaseLost(EnvironmentProblem):
    """This controller's lease was taken over: it must stop without acting."""


def holder_description(lease: Any) -> Optional[str]:
    """Who holds a lease record, or None when it is free: released, stale, or held by a
    process that is provably dead (same host, pid gone). A fresh lease of an earlier run of
    our own Slurm job is NOT free: when Slurm restarts a job whose node lost only its slurmd,
    the earlier run still runs (docs/slurm-facts.md, "Nodes that fail")."""
    if not isinstance(lease, dict) or lease.get("released"):
        return None
    if time.time() - float(lease.get("t", 0)) >= LEASE_STALE:
        return None
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
    """``controller/lease.json`` with the holder (host, pid, Slurm job), an ``epoch`` (one
    more at every taking) and a heartbeat renewed every ``LEASE_EVERY`` s.

    Taken under the journal's lock, so of two controllers starting at once exactly
    one gets it; the other refuses. A lease whose heartbeat is older than
    ``LEASE_STALE`` (its holder died with ``kill -9``, or its node failed), or whose
    holder is provably dead (same host, pid gone), is taken over, and the journal says
    so. A fresh lease of an earlier run of our own Slurm job is waited for, not taken:
    that run may still be alive (its node lost only its slurmd) and acting.

    Every append of the holder is checked under the journal's lock (``check``, passed to
    ``Journal.append``): once another controller has taken the lease, the old holder's
    appends are refused with ``LeaseLost`` and it stops without acting. So the lock need
    not be trusted across nodes for the lease itself (NFS ``local_lock``, Lustre
    ``localflock``): the heartbeat is what a second node sees, the epoch what fences."""

    def __init__(self, study_dir: str, journal: Journal):
        self.path = StudyPaths(study_dir).lease
        self.journal = journal
        self.token = uuid.uuid4().hex
        self.epoch = 0
        self.lost = False
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None

    def _record(self) -> Dict[str, Any]:
        return {"token": self.token, "epoch": self.epoch, "host": socket.gethostname(), "pid": os.getpid(),
                "job": os.environ.get("SLURM_JOB_ID"), "t": time.time()}

    def acquire(self, study_over: Callable[[], bool] = lambda: False, wait_s: float = WAIT_EVERY) -> bool:
        """Take the lease. Refuses (``UserError``) while another controller holds it; waits
        while an earlier run of our own Slurm job holds it fresh. False when ``study_over()``
        became true while waiting (nothing left to do)."""
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        own_job = os.environ.get("SLURM_JOB_ID")
        waited = False
        while True:
            with self.journal.locked():
                current = read_json(self.path)
                holder = holder_description(current)
                if not holder:
                    self._take(current, waited)
                    break
                if not (own_job and isinstance(current, dict) and current.get("job") == own_job):
                    raise UserError(f"this study already has a running controller ({holder}); "
                                    f"`hpc-tune cancel` stops it")
            if not waited:
                log.warning("the lease is held by an earlier run of this Slurm job (%s), which may still run "
                            "(a node that lost its slurmd): waiting until it ends or its heartbeat is %.0f s old",
                            holder, LEASE_STALE)
                waited = True
            if study_over():
                log.info("the study ended while this run waited for the lease")
                return False
            time.sleep(wait_s)
        self._thread = threading.Thread(target=self._renew, daemon=True)
        self._thread.start()
        return True

    def _take(self, current: Any, waited: bool) -> None:
        """Under the journal's lock: write our lease record and journal the start."""
        took_over = None
        if isinstance(current, dict) and not current.get("released"):
            took_over = (f"took over the lease of host {current.get('host')} pid {current.get('pid')}"
                         f" (last heartbeat {time.time() - float(current.get('t', 0)):.0f} s ago"
                         + (", after waiting for it" if waited else "") + ")")
        previous = current.get("epoch") if isinstance(current, dict) else None
        self.epoch = (previous if type(previous) is int else 0) + 1
        write_json_atomic(self.path, self._record())
        self.journal.append(ControllerEvent("start", socket.gethostname(), os.getpid(), os.environ.get("SLURM_JOB_ID"),
                                            took_over=took_over, epoch=self.epoch).to_json())
        if took_over:
            log.warning("%s", took_over)

    def check(self) -> None:
        """Raise ``LeaseLost`` unless we still hold the lease (called under the journal's lock
        before each of our appends)."""
        current = read_json(self.path)
        if not isinstance(current, dict) or current.get("token") != self.token:
            self.lost = True
            raise LeaseLost(f"another controller took over this study's lease (epoch {self.epoch} is over"
                            + (f"; now: host {current.get('host')}, pid {current.get('pid')}, epoch "
                               f"{current.get('epoch')}" if isinstance(current, dict) else "") + ")")

    def _renew(self) -> None:
        while not self._stop.wait(LEASE_EVERY):
            # Under the journal's lock: a takeover (also under it) never interleaves with a
            # renewal, which would otherwise write our record over the new holder's.
            try:
                with self.journal.locked():
                    current = read_json(self.path)
                    if not isinstance(current, dict) or current.get("token") != self.token:
                        self.lost = True
                        return
                    write_json_atomic(self.path, self._record())
            except JournalError as exc:  # the lock is slow (NFS): the next renewal may get it
                log.warning("lease not renewed: %s", exc)

    def release(self) -> None:
        self._stop.set()
        with self.journal.locked():
            current = read_json(self.path)
            if isinstance(current, dict) and current.get("token") == self.token:
                write_json_atomic(self.path, {**current, "released": True, "t": time.time()})
