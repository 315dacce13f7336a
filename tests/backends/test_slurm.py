"""SlurmBackend on the REAL one-node cluster (4 fake GPUs). Other people use the cluster too,
so jobs may wait: the tests wait for states, not for fixed times."""
from __future__ import annotations

import json
import subprocess
import time
import uuid
from pathlib import Path
from typing import Dict, List

import pytest

from hpc_tune.backends import BackendError, JobRequest, JobState, JobStatus
from hpc_tune.backends.slurm import SlurmBackend
from hpc_tune.spec.model import SlurmOptions
from hpc_tune.trial import read_exit_record, read_started_record

pytestmark = pytest.mark.slurm

TIMEOUT_S = 240.0


@pytest.fixture
def prefix() -> str:
    return f"hpct-test-{uuid.uuid4().hex[:8]}-"


@pytest.fixture
def backend(tmp_path):
    b = SlurmBackend(str(tmp_path / "slurm"), SlurmOptions())
    yield b
    live = [j for j in getattr(b, "_since", {})]
    if live:  # leave nothing of ours on the shared cluster
        subprocess.run(["scancel", *live], capture_output=True)


def request(tmp_path: Path, prefix: str, i: int, command: str, gpus: int = 0) -> JobRequest:
    return JobRequest(trial_id=i, name=f"{prefix}t{i}", command=command, env={"TRIAL_NUMBER": str(i)},
                      trial_dir=str(tmp_path / f"t{i}"), cwd=str(tmp_path), gpus=gpus)


def poll_until(backend: SlurmBackend, ids: List[str], done, timeout: float = TIMEOUT_S) -> Dict[str, JobStatus]:
    """Poll every second; every poll must be exactly one sacct call (plus at most one squeue)."""
    deadline = time.time() + timeout
    while True:
        before = dict(backend.calls)
        got = backend.poll(ids)
        assert backend.calls["sacct"] - before.get("sacct", 0) == 1
        assert backend.calls["squeue"] - before.get("squeue", 0) <= 1
        if done(got):
            return got
        assert time.time() < deadline, {k: (v.state, v.raw, v.reason) for k, v in got.items()}
        time.sleep(1.0)


def all_final(got: Dict[str, JobStatus]) -> bool:
    return all(s.state.final for s in got.values())


def test_array_of_four_gpu_trials(backend, tmp_path, prefix):
    command = 'echo "$CUDA_VISIBLE_DEVICES" > "$HPC_TUNE_TRIAL_DIR/gpu"; sleep 4'
    ids = backend.submit([request(tmp_path, prefix, i, command, gpus=1) for i in range(4)])
    assert backend.calls["sbatch"] == 1  # one job array
    array = ids[0].split("_")[0]
    assert ids == [f"{array}_{i}" for i in range(4)]
    assert backend.find_jobs(prefix) == {ids[i]: f"{prefix}t{i}" for i in range(4)}
    assert backend.find_jobs(f"{prefix}t2") == {ids[2]: f"{prefix}t2"}

    got = poll_until(backend, ids, all_final)
    assert {s.state for s in got.values()} == {JobState.COMPLETED}
    spans = []
    for i, job_id in enumerate(ids):
        record = read_exit_record(str(tmp_path / f"t{i}"))
        assert record is not None and record["exit_code"] == 0 and record["job_id"] == job_id
        gpu = (tmp_path / f"t{i}" / "gpu").read_text().strip()
        assert gpu.isdigit()  # exactly one GPU
        spans.append((record["started"], record["ended"], gpu))
    for a in range(4):  # trials that ran at the same time had different GPUs
        for b in range(a + 1, 4):
            overlap = spans[a][0] < spans[b][1] and spans[b][0] < spans[a][1]
            assert not overlap or spans[a][2] != spans[b][2], spans
    assert not backend.find_jobs(prefix)


def test_failing_command_is_failed_with_its_exit_code(backend, tmp_path, prefix):
    [job_id] = backend.submit([request(tmp_path, prefix, 0, "echo failing; exit 3")])
    got = poll_until(backend, [job_id], all_final)
    assert got[job_id].state is JobState.FAILED and got[job_id].exit_code == 3
    assert read_exit_record(str(tmp_path / "t0"))["exit_code"] == 3


def test_cancel_gives_cancelled(backend, tmp_path, prefix):
    [job_id] = backend.submit([request(tmp_path, prefix, 0, "sleep 300")])
    poll_until(backend, [job_id], lambda g: read_started_record(str(tmp_path / "t0")) is not None)
    backend.cancel([job_id])
    assert backend.calls["scancel"] == 1
    got = poll_until(backend, [job_id], all_final, timeout=60)
    assert got[job_id].state is JobState.CANCELLED
    assert read_exit_record(str(tmp_path / "t0")) is None  # Slurm ended it: sacct says how


def test_preemption_signal_requeues_through_submitit(backend, tmp_path, prefix):
    """What a preemption sends (SIGUSR2 to the job step) kills the command; submitit's
    Checkpointable path requeues the job under the same id, which then completes."""
    command = 'if [ "${SLURM_RESTART_COUNT:-0}" = 0 ]; then sleep 300; else echo second run; fi'
    [job_id] = backend.submit([request(tmp_path, prefix, 0, command)])
    poll_until(backend, [job_id], lambda g: read_started_record(str(tmp_path / "t0")) is not None)
    subprocess.run(["scancel", "--signal=USR2", job_id], check=True)
    seen = set()

    def done(got):
        seen.add(got[job_id].state)
        if got[job_id].state.final:
            return True
        # The killed first run leaves no exit record; the second run writes its own a moment
        # before sacct says COMPLETED, so one may already be there.
        record = read_exit_record(str(tmp_path / "t0"))
        assert record is None or record["restart_count"] >= 1, record
        return False

    got = poll_until(backend, [job_id], done)
    assert got[job_id].state is JobState.COMPLETED
    assert seen & {JobState.REQUEUED, JobState.PENDING}
    record = read_exit_record(str(tmp_path / "t0"))
    assert record["exit_code"] == 0 and record["restart_count"] == 1 and record["job_id"] == job_id


def test_sbatch_errors_raise_backend_error(tmp_path, prefix):
    backend = SlurmBackend(str(tmp_path / "slurm"), SlurmOptions(partition="no-such-partition"))
    with pytest.raises(BackendError, match="(?i)partition") as info:
        backend.submit([request(tmp_path, prefix, 0, "true")])
    assert info.value.submitted == {}


def test_resources_reach_sbatch(tmp_path, prefix):
    options = SlurmOptions(partition="debug", time="00:10:00", mem="100M", cpus=1, extra=("--comment=hpc-tune-test",))
    backend = SlurmBackend(str(tmp_path / "slurm"), options)
    ids = backend.submit([request(tmp_path, prefix, i, "true") for i in range(2)])
    try:
        script = next((tmp_path / "slurm").glob("*/*_submission.sh")).read_text()
        for line in ("--partition=debug", "--time=00:10:00", "--mem=100M", "--cpus-per-task=1",
                     "--comment=hpc-tune-test", "--requeue", "--array=0-1%2"):
            assert f"#SBATCH {line}" in script
        manifest = json.loads(next((tmp_path / "slurm" / "arrays").glob("*.json")).read_text())
        assert manifest["names"] == [f"{prefix}t0", f"{prefix}t1"]
        poll_until(backend, ids, all_final)
    finally:
        subprocess.run(["scancel", *ids], capture_output=True)
