"""`hpc-tune submit` run inside a Slurm allocation (salloc here; an srun step or a batch job are
the same case): the caller's SLURM_* variables (its job id, two tasks, memory per CPU) must not
reach the controller job, which gets exactly the resources the study asks for."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest
from test_studies import cli, journal, write_study

CALLER = {"SLURM_MEM_PER_CPU": "200", "SLURM_NTASKS": "2"}  # what `salloc -n2 --mem-per-cpu=200` sets


def _environ(pid: int) -> dict:
    with open(f"/proc/{pid}/environ", "rb") as fh:
        return dict(item.decode().split("=", 1) for item in fh.read().split(b"\0") if b"=" in item)


@pytest.mark.slurm
def test_submit_inside_salloc_gives_the_controller_job_its_own_resources_and_environment(tmp_path):
    salloc = shutil.which("salloc")
    if salloc is None:
        pytest.skip("salloc not found")
    study = write_study(tmp_path, """
        hptuning:
          concurrency: 1
          matrix:
            x: {values: [0.1, 0.2]}
        slurm: {time: "5"}
        run:
          cmd: PROBE --x={{ x }} --sleep=10
        """)
    state = tmp_path / "state"
    res = subprocess.run(
        [salloc, "-n2", "--mem-per-cpu=200", "--time=5", "--job-name=hpct-test-caller",
         sys.executable, "-c", "import os, sys; print('CALLER', os.environ['SLURM_JOB_ID'], flush=True); "
         "from hpc_tune.cli import main; sys.exit(main(sys.argv[1:]))",
         "submit", study, "--state-dir", str(state), "--backend", "slurm", "--poll-interval", "2",
         "--controller-time", "10", "--controller-partition", "high"],
        capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    caller = res.stdout.split("CALLER ", 1)[1].split()[0]
    (study_dir,) = [os.path.join(state, d) for d in os.listdir(state)]
    (controller_job,) = [e["job"] for e in journal(study_dir) if e["e"] == "controller" and e["action"] == "submitted"]
    assert controller_job != caller

    # The controller process, as its job started it: its own job's variables, none of the caller's.
    deadline = time.time() + 120
    start = None
    while start is None and time.time() < deadline:
        start = next((e for e in journal(study_dir) if e["e"] == "controller" and e["action"] == "start"), None)
        time.sleep(1)
    assert start is not None and start["job"] == controller_job, journal(study_dir)
    env = _environ(start["pid"])
    assert env["SLURM_JOB_ID"] == controller_job
    assert env.get("SLURM_NTASKS") == "1" and env.get("SLURM_CPUS_PER_TASK") == "1"
    assert "SLURM_MEM_PER_CPU" not in env, env["SLURM_MEM_PER_CPU"]  # the caller's 200, beside its own 1G
    assert env.get("SLURM_MEM_PER_NODE") == "1024"
    assert not [v for k, v in env.items() if k.startswith("SLURM_") and v == caller]

    deadline = time.time() + 300
    while time.time() < deadline:
        status = json.loads(cli("status", study_dir, "--json").stdout)
        if status["state"] == "finished":
            break
        time.sleep(2)
    assert status["state"] == "finished", status
    assert [r["state"] for r in status["trials"]] == ["completed"] * 2, status

    # The controller job's resources: what the template and the flags ask, not the caller's.
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-j", controller_job, "-o",
                          "Partition,ReqCPUS,ReqMem,Timelimit,AllocTRES"],
                         capture_output=True, text=True, check=True).stdout.split("\n")[0]
    partition, cpus, mem, limit, tres = out.split("|")
    assert (partition, cpus, mem, limit) == ("high", "1", "1G", "00:10:00"), out
    assert "cpu=1," in tres, out  # (memory is not a tracked TRES on this cluster: ReqMem above)
