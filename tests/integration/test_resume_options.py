"""`resume` applies every option it accepts (per-trial Slurm options, --backend), or
refuses it with a message."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from hpc_tune.journal import Journal
from hpc_tune.spec import load_spec
from hpc_tune.study import create_study


def cli(*args, check=True, timeout=600):
    res = subprocess.run([sys.executable, "-m", "hpc_tune", *args], capture_output=True, text=True, timeout=timeout)
    if check and res.returncode != 0:
        raise AssertionError(f"hpc-tune {' '.join(args)} exited {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


def write_study(tmp_path, cmd, slurm="{}"):
    path = tmp_path / "study.yml"
    path.write_text(textwrap.dedent(f"""
        version: 1
        kind: group
        hptuning:
          concurrency: 1
          matrix:
            x: {{values: [1, 2]}}
        slurm: {slurm}
        run:
          cmd: {json.dumps(cmd)}
        """))
    return str(path)


def journal(study_dir):
    with open(os.path.join(study_dir, "journal.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def wait_for(condition, limit=180.0):
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.3)
    raise AssertionError("condition not met within the bound")


def submitted_jobs(study_dir):
    return {e["id"]: e["job"] for e in journal(study_dir) if e["e"] == "submitted"}


def interrupt_after_first_submission(tmp_path, study, backend, *extra):
    """Start the study's controller here, Ctrl-C it once trial 0 is submitted; the trial runs on."""
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "hpc_tune", "submit", study, "--backend", backend, "--foreground",
                             "--state-dir", str(state), "--poll-interval", "3", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        study_dir = wait_for(lambda: next((str(state / d) for d in os.listdir(state)), None) if state.exists()
                             else None)
        wait_for(lambda: 0 in submitted_jobs(study_dir))
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, out + err
    return study_dir


def test_resume_applies_the_per_trial_options_to_the_trials_it_submits(tmp_path):
    # Attempt 0 of each trial hangs past the file's 2 s limit; the file allows no retry.
    study = write_study(tmp_path, "[ \"$HPC_TUNE_ATTEMPT\" = 0 ] && sleep 300; true",
                        slurm='{time: "0:02", max_retries: 0}')
    study_dir = interrupt_after_first_submission(tmp_path, study, "local")
    res = cli("resume", study_dir, "--max-retries", "1", "--time", "0:30", "--mem", "1G")
    assert "from now on: time=0:30, mem=1G, max_retries=1" in res.stdout
    events = journal(study_dir)
    assert [e for e in events if e["e"] == "options"][0]["slurm"] == {"max_retries": 1, "time": "0:30", "mem": "1G"}
    ends = {e["id"]: e for e in events if e["e"] == "end"}
    assert ends[0]["state"] == ends[1]["state"] == "completed", ends  # each retried once, as resume said
    retries = [e for e in events if e["e"] == "retry"]
    # the warning (SIGUSR2) kills the shell: "time limit reached (exit code 140 after SIGUSR2)", as on Slurm
    assert [e["id"] for e in retries] == [0, 1]
    assert all(e["reason"].startswith("time limit reached (") and e["counted"] for e in retries)
    job = json.load(open(os.path.join(study_dir, "trials", "1", "job.json")))
    assert job["time_limit_s"] == 30.0  # the retried job got resume's limit


def test_a_bad_time_is_refused_before_anything_changes(tmp_path):
    study = write_study(tmp_path, "true")
    spec = load_spec(study)
    study_dir = create_study(study, spec, str(tmp_path / "state"), backend="local", seed=1)
    res = cli("resume", study_dir, "--time", "soon", check=False)
    assert res.returncode == 2 and "--time soon: not a Slurm time" in res.stderr and "Traceback" not in res.stderr
    assert [e["e"] for e in journal(study_dir)] == ["study"]


def test_backend_local_on_a_slurm_study_runs_locally_or_is_refused(tmp_path):
    study = write_study(tmp_path, "true")
    spec = load_spec(study)
    study_dir = create_study(study, spec, str(tmp_path / "state"), backend="slurm", seed=1)
    j = Journal(study_dir)
    j.append({"e": "trial", "id": 0, "params": {"x": 1}, "resource": None, "meta": {"index": 0}},
             {"e": "submitted", "id": 0, "attempt": 0, "job": "999999"})
    refused = cli("resume", study_dir, "--backend", "local", check=False)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "runs its trials on slurm, and 1 of them still do (trial 0)" in refused.stderr
    assert "options" not in [e["e"] for e in journal(study_dir)]

    j.append({"e": "end", "id": 0, "state": "completed", "value": None, "reason": ""})  # nothing left on Slurm
    res = cli("resume", study_dir, "--backend", "local")
    assert "from now on: backend local" in res.stdout
    jobs = submitted_jobs(study_dir)
    assert jobs[0] == "999999" and jobs[1].startswith("local-")  # trial 1 ran here, not on Slurm
    assert {e["id"]: e["state"] for e in journal(study_dir) if e["e"] == "end"} == {0: "completed", 1: "completed"}


def sacct_field(job, field):
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", field, "-j", job], capture_output=True, text=True,
                         check=True).stdout.split()
    return out[0] if out else ""


@pytest.mark.slurm
def test_resume_on_slurm_submits_with_the_new_options(tmp_path):
    study = write_study(tmp_path, "sleep 5", slurm='{time: "5"}')
    study_dir = interrupt_after_first_submission(tmp_path, study, "slurm")
    refused = cli("resume", study_dir, "--backend", "local", check=False)
    assert refused.returncode == 2 and "runs its trials on slurm" in refused.stderr
    res = cli("resume", study_dir, "--foreground", "--time", "7", "--mem", "300M", "--sbatch=--comment=resumed")
    assert "from now on: time=7, mem=300M, extra=['--comment=resumed']" in res.stdout
    jobs = submitted_jobs(study_dir)
    assert sacct_field(jobs[0], "Timelimit") == "00:05:00"  # submitted before the resume
    assert sacct_field(jobs[1], "Timelimit") == "00:07:00"
    assert sacct_field(jobs[1], "ReqMem").startswith("300M")
    shown = subprocess.run(["scontrol", "show", "job", jobs[1]], capture_output=True, text=True).stdout
    assert "Comment=resumed" in shown, shown  # slurmctld keeps an ended job for MinJobAge (300 s)
    ends = {e["id"]: e["state"] for e in journal(study_dir) if e["e"] == "end"}
    assert ends == {0: "completed", 1: "completed"}
