"""Whole studies through the real command line, on the real one-node Slurm cluster
(4 fake GPUs) and on the local backend."""
from __future__ import annotations

import csv
import io
import json
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest

PROBE = Path(__file__).resolve().parents[1] / "data" / "probe_trial.py"
BACKENDS = [pytest.param("slurm", marks=pytest.mark.slurm), "local"]


def cli(*args, check=True, timeout=600, env=None):
    res = subprocess.run([sys.executable, "-m", "hpc_tune", *args], capture_output=True, text=True,
                         timeout=timeout, env={**os.environ, **(env or {})})
    if check and res.returncode != 0:
        raise AssertionError(f"hpc-tune {' '.join(args)} exited {res.returncode}\n{res.stdout}\n{res.stderr}")
    return res


def write_study(tmp_path, body: str) -> str:
    path = tmp_path / "study.yml"
    path.write_text(textwrap.dedent(body).replace("PROBE", f"{sys.executable} {PROBE}"))
    return str(path)


def submit(tmp_path, study_file, backend, *extra, env=None):
    """Run a study to its end; on Slurm the controller is a Slurm job (`submit --wait`)."""
    state = str(tmp_path / "state")
    args = ["submit", study_file, "--state-dir", state, "--backend", backend, "--poll-interval", "3", *extra]
    if backend == "slurm":
        args.append("--wait")
    res = cli(*args, env=env, check=False)
    studies = [d for d in os.listdir(state)]
    assert len(studies) == 1, res.stdout + res.stderr
    return os.path.join(state, studies[0]), res


def journal(study_dir):
    with open(os.path.join(study_dir, "journal.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def results(study_dir, trial):
    path = os.path.join(study_dir, "trials", str(trial), "result.jsonl")
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def sacct_states(job_ids):
    out = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "JobID,State", "-j", ",".join(job_ids)],
                         capture_output=True, text=True, check=True).stdout
    return {line.split("|")[0]: line.split("|")[1] for line in out.splitlines() if line}


@pytest.mark.parametrize("backend", BACKENDS)
def test_gpu_grid_of_8_trials(tmp_path, backend):
    study = write_study(tmp_path, """
        hptuning:
          concurrency: 8
          metric: {name: loss, optimization: minimize}
          matrix:
            x: {linspace: "0:1:8"}
        slurm: {gpus: 1, time: "5"}
        run:
          cmd: PROBE --x={{ x }} --sleep=4
        """)
    env = {"CUDA_VISIBLE_DEVICES": "0,1,2,3"} if backend == "local" else None
    study_dir, res = submit(tmp_path, study, backend, env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    status = json.loads(cli("status", study_dir, "--json").stdout)
    assert status["state"] == "finished" and status["counts"] == {"completed": 8}
    spans = []
    for t in range(8):
        first, last = results(study_dir, t)[0], results(study_dir, t)[-1]
        assert first["cuda"] != "", f"trial {t} saw no CUDA_VISIBLE_DEVICES"
        spans.append((first["started"], last["ended"], first["cuda"]))
    for start, _, _ in spans:  # the trials running at the moment each one started
        running = [s for s in spans if s[0] <= start < s[1]]
        assert len(running) <= 4, "more than 4 one-GPU trials ran at once on a 4-GPU node"
        assert len({s[2] for s in running}) == len(running), "two running trials shared a GPU"


@pytest.mark.parametrize("backend", BACKENDS)
def test_hyperband_runs_the_planned_rungs(tmp_path, backend):
    study = write_study(tmp_path, """
        hptuning:
          concurrency: 6
          seed: 3
          hyperband:
            max_iter: 9
            eta: 3
            resource: {name: resource, type: int}
            metric: {name: loss, optimization: minimize}
          matrix:
            x: {uniform: [0, 1]}
        slurm: {time: "5"}
        run:
          cmd: PROBE --x={{ x }} --resource={{ resource }}
        """)
    plan = json.loads(cli("plan", study, "--json").stdout)
    study_dir, res = submit(tmp_path, study, backend)
    assert res.returncode == 0, res.stdout + res.stderr
    trials = [e for e in journal(study_dir) if e["e"] == "trial"]
    ran = Counter((e["meta"]["bracket"], e["meta"]["rung"]) for e in trials)
    planned = {(b["bracket"], i): r["n"] for b in plan["brackets"] for i, r in enumerate(b["rungs"])}
    assert dict(ran) == planned
    resources = {(b["bracket"], i): r["resource"] for b in plan["brackets"] for i, r in enumerate(b["rungs"])}
    assert all(e["resource"] == resources[(e["meta"]["bracket"], e["meta"]["rung"])] for e in trials)
    rows = list(csv.DictReader(io.StringIO(cli("export", study_dir, "--format", "csv").stdout)))
    assert len(rows) == plan["n_trials"] and {r["state"] for r in rows} == {"completed"}


@pytest.mark.parametrize("backend", BACKENDS)
def test_bayes_study_finishes_and_reports_agree(tmp_path, backend):
    study = write_study(tmp_path, """
        hptuning:
          concurrency: 3
          bo:
            n_initial_trials: 4
            n_iterations: 3
            metric: {name: loss, optimization: minimize}
          matrix:
            x: {uniform: [0, 1]}
        slurm: {time: "5"}
        run:
          cmd: PROBE --x={{ x }}
        """)
    study_dir, res = submit(tmp_path, study, backend)
    assert res.returncode == 0, res.stdout + res.stderr
    ends = {e["id"]: e for e in journal(study_dir) if e["e"] == "end"}
    assert len(ends) == 7 and all(e["state"] == "completed" for e in ends.values())
    best = json.loads(cli("best", study_dir, "--json").stdout)
    assert best["value"] == min(e["value"] for e in ends.values())
    assert best["value"] == pytest.approx((best["params"]["x"] - 0.3) ** 2)
    exported = json.loads(cli("export", study_dir, "--format", "json").stdout)
    for row in exported:  # the journal's value is the trial's last reported loss
        assert row["value"] == results(study_dir, row["trial"])[-1]["loss"]


@pytest.mark.parametrize("backend", BACKENDS)
def test_threshold_early_stop_cancels_the_others(tmp_path, backend):
    study = write_study(tmp_path, """
        hptuning:
          concurrency: 3
          early_stopping:
            - {metric: acc, value: 0.9, optimization: maximize}
          matrix:
            x: {values: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6]}
            acc: {values: [0.95, 0.1, 0.2]}
        slurm: {time: "5"}
        run:
          cmd: PROBE --x={{ x }} --acc={{ acc }} --sleep=$( [ {{ acc }} = 0.95 ] && echo 2 || echo 120 )
        """)
    study_dir, res = submit(tmp_path, study, backend)
    status = json.loads(cli("status", study_dir, "--json").stdout)
    assert status["state"] == "early_stopped", status
    assert "acc = 0.95" in status["reason"]
    rows = {r["trial"]: r for r in status["trials"]}
    assert len(rows) == 3  # no trial was started after the stop
    assert rows[0]["state"] in ("completed", "stopped") and rows[0]["metrics"]["acc"] == 0.95
    cancelled = [r for r in rows.values() if r["state"] == "cancelled"]
    assert len(cancelled) == 2
    if backend == "slurm":
        deadline = time.time() + 60
        while True:
            states = sacct_states([r["job_id"] for r in cancelled])
            if all(s.startswith("CANCELLED") for s in states.values()) or time.time() > deadline:
                break
            time.sleep(2)
        assert all(s.startswith("CANCELLED") for s in states.values()), states


@pytest.mark.slurm
def test_cancel_leaves_no_job_of_the_study(tmp_path):
    study = write_study(tmp_path, """
        hptuning:
          concurrency: 3
          random_search: {n_experiments: 10}
          metric: {name: loss, optimization: minimize}
          matrix:
            x: {uniform: [0, 1]}
        slurm: {time: "5"}
        run:
          cmd: PROBE --x={{ x }} --sleep=300
        """)
    state = str(tmp_path / "state")
    cli("submit", study, "--state-dir", state, "--backend", "slurm", "--poll-interval", "3")
    study_dir = os.path.join(state, os.listdir(state)[0])
    study_id = os.path.basename(study_dir)
    deadline = time.time() + 120
    while time.time() < deadline:  # wait until trials are in Slurm's queue
        if len([e for e in journal(study_dir) if e["e"] == "submitted"]) == 3:
            break
        time.sleep(2)
    else:
        pytest.fail("the controller job never submitted its trials")
    cli("cancel", study_dir, timeout=180)
    names = subprocess.run(["squeue", "-h", "-o", "%j"], capture_output=True, text=True).stdout.split()
    assert not [n for n in names if study_id in n], names
    status = json.loads(cli("status", study_dir, "--json").stdout)
    assert status["state"] == "cancelled"
    assert all(r["state"] == "cancelled" for r in status["trials"])
