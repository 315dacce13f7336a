"""LocalBackend with real subprocesses: exit codes, GPU slots, reattach, cancel."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Dict, Sequence

import pytest

from hpc_tune.backends import BackendError, JobRequest, JobState, JobStatus
from hpc_tune.backends.local import LocalBackend, process_start_ticks
from hpc_tune.trial import read_exit_record


def request(tmp_path: Path, i: int, command: str, gpus: int = 0, name: str = "") -> JobRequest:
    return JobRequest(
        trial_id=i, name=name or f"hpct-test-t{i}", command=command, env={"TRIAL_NUMBER": str(i)},
        trial_dir=str(tmp_path / f"t{i}"), cwd=str(tmp_path), gpus=gpus,
    )


def wait_until(backend: LocalBackend, ids: Sequence[str], done, timeout: float = 30.0) -> Dict[str, JobStatus]:
    deadline = time.time() + timeout
    while True:
        got = backend.poll(ids)
        if done(got):
            return got
        assert time.time() < deadline, {k: (v.state, v.reason) for k, v in got.items()}
        time.sleep(0.05)


def all_final(got: Dict[str, JobStatus]) -> bool:
    return all(s.state.final for s in got.values())


def test_three_trials_run_to_their_exit_codes(tmp_path):
    backend = LocalBackend(gpus_available=0)
    command = ('echo "out $TRIAL_NUMBER"; echo "err" >&2; '
               'echo "{\\"loss\\": $TRIAL_NUMBER}" >> "$HPC_TUNE_RESULT_FILE"; exit $TRIAL_NUMBER')
    ids = backend.submit([request(tmp_path, i, command) for i in range(3)])
    assert len(set(ids)) == 3 and all(i.startswith("local-") for i in ids)
    got = wait_until(backend, ids, all_final)
    assert [got[i].state for i in ids] == [JobState.COMPLETED, JobState.FAILED, JobState.FAILED]
    assert [got[i].exit_code for i in ids] == [0, 1, 2]
    for n, job_id in enumerate(ids):
        trial_dir = tmp_path / f"t{n}"
        assert (trial_dir / "stdout.log").read_text() == f"out {n}\n"
        assert (trial_dir / "stderr.log").read_text() == "err\n"
        assert json.loads((trial_dir / "result.jsonl").read_text()) == {"loss": n}
        record = read_exit_record(str(trial_dir))
        assert record["job_id"] == job_id and record["attempt"] == 0
        assert json.loads((trial_dir / "job.json").read_text())["env"]["HPC_TUNE_TRIAL_ID"] == str(n)


def test_a_missing_cwd_is_a_failed_trial_with_a_reason(tmp_path):
    backend = LocalBackend(gpus_available=0)
    req = JobRequest(0, "hpct-test-t0", "true", {}, str(tmp_path / "t0"), str(tmp_path / "no-such-dir"))
    [job_id] = backend.submit([req])
    got = wait_until(backend, [job_id], all_final)
    assert got[job_id].state is JobState.FAILED and got[job_id].exit_code == 127
    assert "no-such-dir" in read_exit_record(str(tmp_path / "t0"))["error"]


def test_gpu_slots_from_a_pool_of_two(tmp_path):
    backend = LocalBackend(gpus_available=2)
    go = tmp_path / "go"
    command = f'echo "$CUDA_VISIBLE_DEVICES" > gpu; while [ ! -e {go} ]; do sleep 0.05; done'
    reqs = [request(tmp_path, i, command, gpus=1) for i in range(3)]
    reqs = [JobRequest(**{**r.__dict__, "cwd": r.trial_dir}) for r in reqs]
    ids = backend.submit(reqs)

    got = wait_until(backend, ids, lambda g: sum(s.state is JobState.RUNNING for s in g.values()) == 2)
    time.sleep(0.5)  # the third must still wait
    got = backend.poll(ids)
    assert [got[i].state for i in ids] == [JobState.RUNNING, JobState.RUNNING, JobState.PENDING]
    assert got[ids[2]].reason == "waiting for GPUs"
    for n in range(2):
        while not (tmp_path / f"t{n}" / "gpu").exists():
            time.sleep(0.05)
    seen = {(tmp_path / f"t{n}" / "gpu").read_text().strip() for n in range(2)}
    assert seen == {"0", "1"}  # each running trial has its own GPU
    assert not (tmp_path / "t2" / "gpu").exists()

    go.touch()
    got = wait_until(backend, ids, all_final)
    assert {s.state for s in got.values()} == {JobState.COMPLETED}
    assert (tmp_path / "t2" / "gpu").read_text().strip() in {"0", "1"}


def test_more_gpus_than_the_machine_has_is_refused(tmp_path):
    with pytest.raises(BackendError, match="needs 3 GPUs"):
        LocalBackend(gpus_available=2).submit([request(tmp_path, 0, "true", gpus=3)])


def test_reattach_from_a_fresh_backend_and_cancel(tmp_path):
    first = LocalBackend(gpus_available=1)
    [job_id] = first.submit([request(tmp_path, 0, "sleep 60", gpus=1, name="hpct-reattach-t0")])
    wait_until(first, [job_id], lambda g: g[job_id].state is JobState.RUNNING)

    # a restarted controller: a new instance knows nothing until told (or until it finds it)
    second = LocalBackend(gpus_available=1)
    assert second.poll([job_id])[job_id].state is JobState.LOST
    second.attach(job_id, str(tmp_path / "t0"))
    assert second.poll([job_id])[job_id].state is JobState.RUNNING
    assert LocalBackend(gpus_available=1).find_jobs("hpct-reattach-") == {job_id: "hpct-reattach-t0"}
    assert LocalBackend(gpus_available=1).find_jobs("hpct-nothing-") == {}

    # its GPU counts as taken in the new instance
    [waiting] = second.submit([request(tmp_path, 1, "true", gpus=1)])
    time.sleep(0.3)
    assert second.poll([waiting])[waiting].state is JobState.PENDING

    t0 = time.time()
    second.cancel([job_id])
    assert time.time() - t0 < 3  # sleep dies of the forwarded SIGTERM: no need for SIGKILL
    got = wait_until(second, [job_id, waiting], all_final)
    assert got[job_id].state is JobState.CANCELLED
    assert got[waiting].state is JobState.COMPLETED  # the freed GPU went to the waiting job

    third = LocalBackend(gpus_available=1)  # the cancelled flag is on disk
    third.attach(job_id, str(tmp_path / "t0"))
    assert third.poll([job_id])[job_id].state is JobState.CANCELLED


def test_cancel_kills_a_command_that_ignores_sigterm(tmp_path):
    backend = LocalBackend(gpus_available=0, kill_wait_s=1.0)
    [job_id] = backend.submit([request(tmp_path, 0, "trap '' TERM; touch ready; while true; do sleep 0.05; done")])
    wait_until(backend, [job_id], lambda g: g[job_id].state is JobState.RUNNING)
    while not (tmp_path / "ready").exists():
        time.sleep(0.05)
    child = json.loads((tmp_path / "t0" / "started.json").read_text())["child_pid"]
    t0 = time.time()
    backend.cancel([job_id])
    assert 0.9 < time.time() - t0 < 5
    assert backend.poll([job_id])[job_id].state is JobState.CANCELLED
    deadline = time.time() + 5
    while process_start_ticks(child) is not None and _state(child) != "Z":
        assert time.time() < deadline, "the command survived SIGKILL"
        time.sleep(0.05)


def test_cancel_a_job_waiting_for_gpus(tmp_path):
    backend = LocalBackend(gpus_available=1)
    ids = backend.submit([request(tmp_path, 0, "sleep 30", gpus=1), request(tmp_path, 1, "touch ran", gpus=1)])
    wait_until(backend, ids, lambda g: g[ids[0]].state is JobState.RUNNING)
    backend.cancel(ids)
    got = wait_until(backend, ids, all_final)
    assert {s.state for s in got.values()} == {JobState.CANCELLED}
    assert not (tmp_path / "ran").exists()


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except OSError:
        return "gone"


def test_unknown_ids_are_lost_and_cancel_ignores_them(tmp_path):
    backend = LocalBackend(gpus_available=0)
    assert backend.poll(["local-999999999"])["local-999999999"].state is JobState.LOST
    backend.cancel(["local-999999999"])
    assert os.path.exists(tmp_path)
