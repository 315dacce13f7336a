"""The controller itself under Slurm's hand, and two controllers for one study.

* The controller job reaches its own time limit (``--controller-time 2
  --controller-signal 60``): it gets USR1 about a minute before the end, requeues itself
  (``scontrol requeue``), comes back as the same job after ``cred_expire`` (~30 s), takes
  the study's lease again (its own job's lease is never "someone else's": the test leaves
  it as a run killed before releasing it would) and finishes the Hyperband study with the
  planned trials.
* Two controllers at once: exactly one runs the study, the other exits non-zero with
  "already has a running controller". Local backend: two ``resume --foreground``
  processes started together. Slurm: a ``resume`` while the controller job is queued, and
  a second controller job from the same script, which must refuse and end at once.
"""
from __future__ import annotations

import glob
import os
import re
import socket
import subprocess
import time
from collections import Counter
from typing import Any, Dict

import faultkit as fk
import pytest

REFUSAL = "already has a running controller"

# ------------------------------------------------------------- controller time limit

HYPERBAND = """
    hptuning:
      concurrency: 2
      seed: 5
      hyperband:
        max_iter: 9
        eta: 3
        resource: {name: resource, type: int}
        metric: {name: loss, optimization: minimize}
      matrix:
        x: {uniform: [0, 1]}
    slurm: {time: "3"}
    run:
      cmd: PY CKPT --x={{ x }} --steps={{ resource }} --sleep=2
    """
# 78 steps of 2 s on 2 slots, plus scheduling: two minutes or more, longer than the
# controller's first run (Slurm checks limits every ~30 s: USR1 comes 30-60 s after it starts).


@fk.scenario("controller-requeue", slurm=True)
def _controller_requeue(workdir, owner: str) -> Dict[str, Any]:
    study = fk.write_study(workdir, HYPERBAND)
    state = workdir / "state"
    res = fk.cli("submit", study, "--state-dir", str(state), "--backend", "slurm", "--poll-interval", "3",
                 "--controller-time", "2", "--controller-signal", "60")
    assert res.returncode == 0, res.stdout + res.stderr
    study_dir = fk.only_study(state)
    fk.CLEANUP.study(owner, study_dir)
    job = re.search(r"Slurm job (\d+)", res.stdout).group(1)
    # Once the first run has stopped (USR1) and released its lease, make the lease look the
    # way a run killed before it could release it leaves it (e.g. after KillWait): fresh, not
    # released, held by this very job and by a pid of this host that is gone. The next run of
    # the job must take it over (its holder is provably dead), neither refuse nor wait. (A
    # live holder, even an earlier run of the same job, is waited for: tests/controller/test_lease.py.)
    lease = os.path.join(study_dir, "controller", "lease.json")

    def first_run_over():
        starts = [e for e in fk.journal(study_dir) if e["e"] == "controller" and e["action"] == "start"]
        return len(starts) == 1 and (fk.read_json(lease) or {}).get("released")

    fk.wait_for(first_run_over, 420, "the end of the controller's first run", every=0.5)
    gone = subprocess.Popen(["true"])
    gone.wait()
    fk.write_json_atomic(lease, {"token": "left-by-a-killed-run", "host": socket.gethostname(), "pid": gone.pid,
                                 "job": job, "t": time.time()})
    fk.wait_for(lambda: any(e["e"] == "study_end" for e in fk.journal(study_dir)), 600, "the study's end", every=3)
    # The job's last run ends right after the study: wait for Slurm to say so.
    fk.wait_for(lambda: fk.sacct_history(job)[-1:] == ["COMPLETED"], 120, f"controller job {job} COMPLETED")
    return {"study_dir": study_dir, "job": job, "plan": fk.plan(study), "history": fk.sacct_history(job),
            "dead_pid": gone.pid}


@pytest.mark.slurm
@pytest.mark.scenario("controller-requeue")
def test_controller_job_requeues_itself_at_its_time_limit(scenario_result):
    r = scenario_result(1500)
    study_dir, job = r["study_dir"], r["job"]
    events = fk.journal(study_dir)
    controllers = [e for e in events if e["e"] == "controller"]
    assert controllers[0] == {**controllers[0], "action": "submitted", "job": job}
    starts = [e for e in controllers if e["action"] == "start"]
    # The same Slurm job started twice or more: requeued, not resubmitted.
    assert len(starts) >= 2 and {e["job"] for e in starts} == {job}, controllers
    stops = [e for e in controllers if e["action"] == "stop"]
    assert stops and stops[0]["reason"] in ("SIGUSR1", "SIGTERM"), stops  # TERM: from its own requeue
    assert stops[0]["t"] < starts[1]["t"]
    # The second run found a fresh lease of its own job's earlier run, whose pid is gone: it
    # took it over.
    assert f"pid {r['dead_pid']} " in starts[1].get("took_over", ""), starts[1]
    assert "REQUEUED" in r["history"] and r["history"][-1] == "COMPLETED", r["history"]
    log = open(os.path.join(study_dir, "controller", "controller.log")).read()
    assert f"USR1: requeueing controller job {job}" in log and log.count("study finished") == 1
    assert os.path.exists(os.path.join(study_dir, "controller", f"slurm-{job}.out"))

    # The study went on: the planned trials, each completed once, nothing run twice.
    assert [e["state"] for e in events if e["e"] == "study_end"] == ["finished"]
    trials = {e["id"]: e for e in events if e["e"] == "trial"}
    planned = fk.planned_rungs(r["plan"])
    assert Counter((t["meta"]["bracket"], t["meta"]["rung"]) for t in trials.values()) == \
        {k: n for k, (n, _) in planned.items()}
    assert Counter(e["id"] for e in events if e["e"] == "end") == {tid: 1 for tid in trials}
    assert all(e["state"] == "completed" for e in events if e["e"] == "end")
    jobs = fk.check_exactly_once(events)
    assert fk.sacct_jobs_by_trial(study_dir) == {tid: [jobs[(tid, 0)]] for tid in trials}
    # The requeue came mid-study: the second run saw trials end.
    assert any(e["t"] > starts[1]["t"] for e in events if e["e"] == "end"), "the study had ended before the requeue"
    fk.check_reports_match(study_dir, events)


# ------------------------------------------------------------------ two controllers

GRID = """
    hptuning:
      concurrency: {concurrency}
      metric: {name: loss, optimization: minimize}
      matrix:
        x: {values: {values}}
    slurm: {time: "3"}
    run:
      cmd: PY PROBE --x={{ x }} --sleep={sleep}
    """


@fk.scenario("two-controllers-local", slurm=False)
def _two_local(workdir, owner: str) -> Dict[str, Any]:
    study = fk.write_study(workdir, GRID, sleep=10, concurrency=2, values="[0.1, 0.2, 0.3, 0.4]")
    state = workdir / "state"
    # A study with no controller: the first one is killed as soon as it holds the lease.
    res = fk.cli("submit", study, "--state-dir", str(state), "--backend", "local", "--poll-interval", "3",
                 "--foreground", env={"HPC_TUNE_FAULT": "cycle:1"})
    assert res.returncode == -9, res.stdout + res.stderr
    study_dir = fk.only_study(state)
    logs = [workdir / f"resume-{i}.log" for i in (0, 1)]
    procs = [fk.start_cli(owner, log, "resume", study_dir, "--foreground") for log in logs]
    rcs = [fk.wait_proc(p, 300, "a resume") for p in procs]
    return {"study_dir": study_dir, "rcs": rcs, "logs": [log.read_text() for log in logs]}


@pytest.mark.scenario("two-controllers-local")
def test_two_resumes_at_once_local_one_controller(scenario_result):
    r = scenario_result(1500)
    rcs, logs = r["rcs"], r["logs"]
    winner = [i for i in (0, 1) if rcs[i] == 0]
    loser = [i for i in (0, 1) if rcs[i] != 0]
    assert len(winner) == 1 and len(loser) == 1, (rcs, logs)
    assert REFUSAL in logs[loser[0]] and REFUSAL not in logs[winner[0]], logs
    events = fk.journal(r["study_dir"])
    starts = [e for e in events if e["e"] == "controller" and e["action"] == "start"]
    assert len(starts) == 2, "the killed first controller and exactly one of the two resumes"
    assert [e["state"] for e in events if e["e"] == "study_end"] == ["finished"]
    assert [e["state"] for e in events if e["e"] == "end"] == ["completed"] * 4
    jobs = fk.check_exactly_once(events)
    assert len(jobs) == 4
    fk.check_reports_match(r["study_dir"], events)


@fk.scenario("two-controllers-slurm", slurm=True)
def _two_slurm(workdir, owner: str) -> Dict[str, Any]:
    study = fk.write_study(workdir, GRID, sleep=12, concurrency=1, values="[0.1, 0.2]")
    state = workdir / "state"
    res = fk.cli("submit", study, "--state-dir", str(state), "--backend", "slurm", "--poll-interval", "3",
                 "--controller-time", "5")
    assert res.returncode == 0, res.stdout + res.stderr
    study_dir = fk.only_study(state)
    fk.CLEANUP.study(owner, study_dir)
    first = re.search(r"Slurm job (\d+)", res.stdout).group(1)
    # A second controller job from the very same script, and a resume, while the first is
    # queued or running.
    second = fk.sbatch(os.path.join(study_dir, "controller", "controller.sbatch"))
    resume = fk.cli("resume", study_dir)
    fk.wait_for(lambda: any(e["e"] == "study_end" for e in fk.journal(study_dir)), 300, "the study's end", every=3)
    done = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT")
    fk.wait_for(lambda: all(fk.sacct_history(j)[-1:] and fk.sacct_history(j)[-1].split()[0] in done
                            for j in (first, second)), 120, "both controller jobs ended")
    rows = {row[0]: row for row in fk.sacct_rows("-X", "-o", "JobID,State,ExitCode,ElapsedRaw", "-j",
                                                  f"{first},{second}")}
    logs = {}
    for j in (first, second):
        path = os.path.join(study_dir, "controller", f"slurm-{j}.out")
        logs[j] = open(path).read() if os.path.exists(path) else ""
    return {"study_dir": study_dir, "jobs": [first, second], "rows": rows, "logs": logs,
            "resume": (resume.returncode, resume.stdout + resume.stderr)}


@pytest.mark.slurm
@pytest.mark.scenario("two-controllers-slurm")
def test_two_controller_jobs_one_refuses(scenario_result):
    r = scenario_result(1500)
    rc, out = r["resume"]
    assert rc != 0 and REFUSAL in out, out  # the CLI sees the queued (or running) controller job
    refused = [j for j in r["jobs"] if REFUSAL in r["logs"][j]]
    ran = [j for j in r["jobs"] if j not in refused]
    assert len(refused) == 1 and len(ran) == 1, r["logs"]
    state, code, elapsed = r["rows"][refused[0]][1:4]
    assert state == "FAILED" and code == "2:0", r["rows"]
    assert int(elapsed) < 60, f"the refusing controller job ran {elapsed} s"
    assert r["rows"][ran[0]][1] == "COMPLETED", r["rows"]
    events = fk.journal(r["study_dir"])
    starts = [e for e in events if e["e"] == "controller" and e["action"] == "start"]
    assert [e["job"] for e in starts] == ran, starts
    assert [e["state"] for e in events if e["e"] == "study_end"] == ["finished"]
    assert [e["state"] for e in events if e["e"] == "end"] == ["completed"] * 2
    jobs = fk.check_exactly_once(events)
    assert fk.sacct_jobs_by_trial(r["study_dir"]) == {tid: [jobs[(tid, 0)]] for tid in range(2)}
    fk.check_reports_match(r["study_dir"], events)


# ------------------------------------------------------- what a trial job inherits

ENV_STUDY = """
    hptuning:
      concurrency: 1
      metric: {name: loss, optimization: minimize}
      matrix:
        x: {values: [0.1, 0.2, 0.3]}
    slurm: {time: "3"}
    run:
      cmd: env > "$HPC_TUNE_TRIAL_DIR/env.$SLURM_JOB_ID"; PY PROBE --x={{ x }} --sleep=8
    """


def _environ(pid: int) -> Dict[str, str]:
    with open(f"/proc/{pid}/environ", "rb") as fh:
        pairs = [item.decode(errors="replace").partition("=") for item in fh.read().split(b"\0") if item]
    return {k: v for k, _, v in pairs}


@fk.scenario("controller-env", slurm=True)
def _controller_env(workdir, owner: str) -> Dict[str, Any]:
    """A controller job requeued by Slurm (so it runs with SLURM_RESTART_COUNT=1, besides its
    own --mem and --cpus-per-task) submits trials; each trial writes the environment it got."""
    study = fk.write_study(workdir, ENV_STUDY)
    state = workdir / "state"
    res = fk.cli("submit", study, "--state-dir", str(state), "--backend", "slurm", "--poll-interval", "3",
                 "--controller-time", "10")
    assert res.returncode == 0, res.stdout + res.stderr
    study_dir = fk.only_study(state)
    fk.CLEANUP.study(owner, study_dir)
    job = re.search(r"Slurm job (\d+)", res.stdout).group(1)
    fk.wait_for(lambda: fk.check_exactly_once(fk.journal(study_dir)), 300, "the first trial submitted", every=0.5)
    requeue = subprocess.run(["scontrol", "requeue", job], capture_output=True, text=True, timeout=60)
    assert requeue.returncode == 0, requeue.stderr

    def second_start():
        starts = [e for e in fk.journal(study_dir) if e["e"] == "controller" and e["action"] == "start"]
        return starts[1] if len(starts) > 1 else None

    start = fk.wait_for(second_start, 300, "the requeued controller's start", every=0.5)
    controller_env = _environ(int(start["pid"]))  # the controller runs on this machine
    fk.wait_for(lambda: any(e["e"] == "study_end" for e in fk.journal(study_dir)), 300, "the study's end", every=2)
    trial_envs = {}
    for path in glob.glob(os.path.join(study_dir, "trials", "*", "env.*")):
        with open(path) as fh:
            env = dict(line.rstrip("\n").partition("=")[::2] for line in fh if "=" in line)
        trial_envs[(int(path.split(os.sep)[-2]), path.rpartition(".")[2])] = env
    return {"study_dir": study_dir, "job": job, "second_start": start, "controller_env": controller_env,
            "trial_envs": trial_envs}


@pytest.mark.slurm
@pytest.mark.scenario("controller-env")
def test_trials_of_a_requeued_controller_job_get_only_their_own_slurm_variables(scenario_result):
    r = scenario_result(1500)
    ctl = r["controller_env"]
    # The controller's own job: requeued once, with the memory and CPUs of controller.sbatch.
    assert ctl["SLURM_JOB_ID"] == r["job"] and ctl["SLURM_RESTART_COUNT"] == "1", ctl
    assert ctl["SLURM_MEM_PER_NODE"] == "1024" and ctl["SLURM_CPUS_PER_TASK"] == "1", ctl
    events = fk.journal(r["study_dir"])
    jobs = fk.check_exactly_once(events)
    assert [e["state"] for e in events if e["e"] == "end"] == ["completed"] * 3
    by_trial = {tid: job for (tid, _), job in jobs.items()}
    after = [e["id"] for e in events if e["e"] == "submitted" and e["t"] > r["second_start"]["t"]]
    assert after, "no trial was submitted by the requeued controller"
    assert {tid for tid, _ in r["trial_envs"]} == {0, 1, 2}
    for (tid, job), env in r["trial_envs"].items():
        assert job == by_trial[tid], (tid, job, by_trial)
        # Its own job's variables...
        assert env["SLURM_JOB_ID"] == job and env["SLURM_JOB_NAME"].endswith(f"-{tid}"), env
        # ...and none of the controller's: no restart count (never requeued itself), no memory
        # or CPUs that it did not ask for.
        assert "SLURM_RESTART_COUNT" not in env, (tid, env.get("SLURM_RESTART_COUNT"))
        assert "SLURM_MEM_PER_NODE" not in env and "SLURM_CPUS_PER_TASK" not in env, env
        assert env.get("SLURM_JOBID") == job and env.get("SLURM_JOB_NAME") != ctl["SLURM_JOB_NAME"], env
