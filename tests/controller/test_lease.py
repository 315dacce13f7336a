"""The lease (issue 12, item 2): no takeover of a fresh lease unless its holder is provably dead,
not even of an earlier run of our own Slurm job; every append of a controller carries its
lease's epoch and is refused under the journal's lock once another controller holds the lease,
and the old controller then stops without acting."""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
import threading
import time

import pytest
from fake_backend import FakeBackend

from hpc_tune.controller import Controller
from hpc_tune.controller.lease import Lease, LeaseLost, holder_description
from hpc_tune.errors import UserError
from hpc_tune.journal import Journal, load_view
from hpc_tune.protocol import read_json, write_json_atomic
from hpc_tune.spec import load_spec
from hpc_tune.study import create_study


def make_study(tmp_path, values="[0.1, 0.2, 0.3]"):
    path = tmp_path / "study.yml"
    path.write_text(textwrap.dedent(f"""
        hptuning:
          concurrency: 1
          metric: {{name: loss, optimization: minimize}}
          matrix:
            x: {{values: {values}}}
        run:
          cmd: "true"
    """))
    spec = load_spec(str(path))
    return create_study(str(path), spec, str(tmp_path / "state"), backend="fake", seed=1), spec


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def lease_of(study_dir, **fields):
    record = {"token": "earlier-run", "epoch": 4, "host": socket.gethostname(), "pid": os.getpid(), "job": "77",
              "t": time.time(), **fields}
    write_json_atomic(os.path.join(study_dir, "controller", "lease.json"), record)
    return record


def test_a_fresh_lease_is_free_only_when_its_holder_is_provably_dead():
    here = socket.gethostname()
    assert holder_description({"host": here, "pid": os.getpid(), "t": time.time()})
    assert holder_description({"host": here, "pid": dead_pid(), "t": time.time()}) is None
    assert holder_description({"host": "elsewhere", "pid": dead_pid(), "t": time.time()})  # cannot tell: held
    assert holder_description({"host": "elsewhere", "pid": 5, "t": time.time() - 61}) is None  # stale
    assert holder_description({"host": here, "pid": os.getpid(), "t": time.time(), "released": True}) is None


def test_a_fresh_lease_of_an_earlier_run_of_our_own_job_is_waited_for_not_taken(tmp_path, monkeypatch):
    study_dir, _ = make_study(tmp_path)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    holder = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        lease_of(study_dir, pid=holder.pid)  # our own job's earlier run, alive (its node lost only slurmd)
        lease = Lease(study_dir, Journal(study_dir))
        got = {}
        waiter = threading.Thread(target=lambda: got.setdefault("ok", lease.acquire(wait_s=0.05)), daemon=True)
        waiter.start()
        time.sleep(0.5)
        assert waiter.is_alive() and read_json(lease.path)["token"] == "earlier-run"
        assert not [e for e in Journal(study_dir).events() if e["e"] == "controller"]
    finally:
        holder.kill()
        holder.wait()
    waiter.join(timeout=10)  # its pid is gone on this host: provably dead, taken over
    assert got == {"ok": True}
    current = read_json(lease.path)
    assert current["token"] == lease.token and current["epoch"] == lease.epoch == 5
    start = [e for e in Journal(study_dir).events() if e["e"] == "controller"][-1]
    assert start["action"] == "start" and start["epoch"] == 5
    assert f"pid {holder.pid} " in start["took_over"] and "after waiting" in start["took_over"]
    lease.release()


def test_waiting_for_our_own_jobs_earlier_run_ends_when_the_study_has_ended(tmp_path, monkeypatch):
    study_dir, _ = make_study(tmp_path)
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    lease_of(study_dir)  # alive: this very process
    assert Lease(study_dir, Journal(study_dir)).acquire(study_over=lambda: True, wait_s=0.01) is False
    assert read_json(os.path.join(study_dir, "controller", "lease.json"))["token"] == "earlier-run"


def test_a_lease_held_by_another_job_is_refused(tmp_path, monkeypatch):
    study_dir, _ = make_study(tmp_path)
    monkeypatch.setenv("SLURM_JOB_ID", "78")
    lease_of(study_dir)
    with pytest.raises(UserError, match="already has a running controller"):
        Lease(study_dir, Journal(study_dir)).acquire(wait_s=0.01)


def test_a_controller_whose_lease_was_taken_over_appends_nothing_and_stops(tmp_path):
    study_dir, spec = make_study(tmp_path)
    journal = Journal(study_dir)
    old = Lease(study_dir, journal)
    assert old.acquire()
    backend = FakeBackend(lambda params, resource: [{"loss": 0.5}], manual=True)
    controller = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0, journal=journal,
                            lease_check=old.check, epoch=old.epoch)
    controller.cycle()  # trial 0 recorded and submitted under epoch 1
    events = journal.events()
    assert [e["epoch"] for e in events if e["e"] in ("trial", "submitted")] == [1, 1]
    # Another controller takes the lease over (as after a stale heartbeat).
    write_json_atomic(old.path, {**read_json(old.path), "t": time.time() - 61})
    new = Lease(study_dir, Journal(study_dir))
    assert new.acquire() and new.epoch == 2
    size = os.path.getsize(journal.path)
    for job in list(backend.requests):
        backend.finish(job)
    submitted = len(backend.requests)
    end = controller.run(max_cycles=5)
    assert end == {"state": "interrupted", "reason": "lease taken over by another controller"}
    assert os.path.getsize(journal.path) == size, "the old controller appended after the takeover"
    assert len(backend.requests) == submitted, "the old controller submitted after the takeover"
    with pytest.raises(LeaseLost):
        journal.append({"e": "warning", "message": "x"}, check=old.check)
    assert load_view(study_dir).trials[0].state.value != "completed"  # ended by the new holder, not the old
    new.release()
    old.release()  # not ours any more: left as it is
    assert read_json(old.path)["token"] == new.token
