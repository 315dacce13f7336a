"""Faults of running trials on the real Slurm cluster, and checkpoints of promoted trials.

* ``scontrol requeue`` of running trials, and their preemption by a job of the ``high``
  partition (PreemptMode=REQUEUE): Slurm requeues them under the same job id; they wait
  about ``cred_expire`` (30 s), start again in the same folder with SLURM_RESTART_COUNT > 0,
  continue from their checkpoints and finish. Free: no retry is counted.
* A time limit (``slurm: {time: "1"}``, a trial that would run 3 minutes): submitit does not
  requeue it; the controller resubmits it as a new attempt, counted against max_retries,
  and it continues from its checkpoint. With ``max_retries: 0`` it ends failed, saying why.
* Hyperband ``resume: true`` (local backend): a promoted configuration continues from its
  parent's checkpoints with its total budget as the resource.

The trial is tests/data/ckpt_trial.py: steps 1..N of about 1 s, a checkpoint after each.
"""
from __future__ import annotations

import glob
import os
import subprocess
import time
from typing import Any, Dict

import faultkit as fk
import pytest

TWO_TRIALS = """
    hptuning:
      concurrency: 2
      metric: {name: loss, optimization: minimize}
      matrix:
        x: {values: [0.1, 0.5]}
    slurm: {time: "{time}", gpus: {gpus}}
    run:
      cmd: PY CKPT --x={{ x }} --steps={steps} --sleep=1
    """
# Time limits: "11" for the preemption test, since submitit takes a signal to a job with a
# time limit of 10 minutes or less for a time-out (docs/slurm-facts.md); "3" otherwise, short enough for
# the backfill scheduler to start those trials while a GPU job (maybe the preemption test's)
# waits for a GPU at the head of the queue.
STEPS = {"requeue": 24, "preempt": 40}
FAULT_AT_STEP = 4  # a trial is requeued or preempted once its run is past this step...
LEFT_STEPS = 8  # ...and has at least this many steps to go
FIRST_WINDOW_S = 150  # how long the preemption test may hold the other Slurm scenarios back


class NotReady(Exception):
    """The trials did not get to a state to be preempted in time."""


def _ready(study_dir: str, tid: int, steps: int) -> bool:
    """The trial's current run is running, past FAULT_AT_STEP, with LEFT_STEPS to go."""
    if fk.record(study_dir, tid, "exit.json") is not None:
        return False
    lines = fk.results(study_dir, tid)
    heads = [i for i, x in enumerate(lines) if "ckpt_dir" in x]
    if not heads:
        return False
    in_run = [x for x in lines[heads[-1]:] if "step" in x]
    return len(in_run) >= FAULT_AT_STEP and fk.last_step(lines) <= steps - LEFT_STEPS


def _requeued_trials(workdir, owner: str, how: str, ready_timeout: float = 600,
                     after_faults=lambda: None) -> Dict[str, Any]:
    """Two trials; each is requeued (``scontrol requeue``) or preempted (a job of the `high`
    partition asking for every GPU) while its run is past step FAULT_AT_STEP. A trial hit
    before that (a preemption takes every GPU job) is hit again in its next run."""
    preempt = how == "preempt"
    steps = STEPS[how]
    study = fk.write_study(workdir, TWO_TRIALS, steps=steps, gpus=1 if preempt else 0,
                           time="11" if preempt else "3")
    state = workdir / "state"
    ctl = fk.start_cli(owner, workdir / "controller.log", "submit", study, "--state-dir", str(state),
                       "--backend", "slurm", "--poll-interval", "3", "--foreground")
    study_dir = fk.wait_for_study(state)
    fk.CLEANUP.study(owner, study_dir)
    at_fault: Dict[int, int] = {}
    highs = []
    deadline = time.time() + ready_timeout
    while len(at_fault) < 2:
        jobs = fk.check_exactly_once(fk.journal(study_dir))
        ready = [t for t in (0, 1) if t not in at_fault and (t, 0) in jobs and _ready(study_dir, t, steps)]
        if not ready:
            if time.time() > deadline or fk.ABORT.is_set():
                raise NotReady(f"trials not running past step {FAULT_AT_STEP} within {ready_timeout:.0f} s: "
                               f"{ {t: fk.last_step(fk.results(study_dir, t)) for t in (0, 1)} }")
            time.sleep(0.5)
            continue
        if how == "requeue":
            res = subprocess.run(["scontrol", "requeue", ",".join(jobs[(t, 0)] for t in ready)],
                                 capture_output=True, text=True)
            assert res.returncode == 0, res.stderr
        else:
            # Every GPU of the node, at a higher partition priority: our 1-GPU trials must go.
            # Other users' GPU jobs in `debug` would be requeued too (the cluster is shared):
            # wait a little for a moment when ours are the only ones; keep the preemptor short.
            quiet = time.time() + 20
            while fk.gpu_jobs_except(jobs.values()) and time.time() < quiet:
                time.sleep(0.5)
            high = fk.sbatch("-p", "high", "--gres=gpu:4", "-J", f"fx-high-{os.path.basename(study_dir)}",
                             "-o", "/dev/null", "--wrap", "sleep 5")
            fk.CLEANUP.job(owner, high)
            highs.append(high)
            fk.wait_for(lambda h=high: fk.sacct_history(h)[-1:] in (["RUNNING"], ["COMPLETED"]), 120,
                        f"preemptor {high} running")
        for t in ready:
            at_fault[t] = fk.last_step(fk.results(study_dir, t))
        time.sleep(2)  # the signalled runs end before readiness is looked at again
    after_faults()
    rc = fk.wait_proc(ctl, 300, "the controller")
    job_ids = sorted(fk.check_exactly_once(fk.journal(study_dir)).values())
    return {"study_dir": study_dir, "rc": rc, "jobs": job_ids, "steps_at_fault": at_fault, "highs": highs,
            "histories": {j: fk.sacct_history(j) for j in job_ids},
            "log": (workdir / "controller.log").read_text()[-4000:]}


fk.scenario("requeue", slurm=True, how="requeue")(_requeued_trials)


@fk.scenario("preempt", slurm=True)
def _preempted_trials(workdir, owner: str) -> Dict[str, Any]:
    """The preemptor may take the core of any `debug` job, not only the GPU trials it is
    aimed at (seen: a CPU-only trial of another scenario, whose short time limit then made
    submitit take the signal for a time-out). So it preempts while no other Slurm scenario
    of this session runs (faultkit.GATE): first, before they start, if the trials get GPUs
    within FIRST_WINDOW_S; else with a new study once they have all ended."""
    try:
        return _requeued_trials(workdir / "first", owner, "preempt", ready_timeout=FIRST_WINDOW_S,
                                after_faults=fk.GATE.release)
    except NotReady:
        fk.CLEANUP.run(owner)  # that study's controller and jobs
    finally:
        fk.GATE.release()
    fk.GATE.hold_when_others_done()
    try:
        return _requeued_trials(workdir / "last", owner, "preempt", ready_timeout=900)
    finally:
        fk.GATE.release()


@pytest.mark.slurm
@pytest.mark.parametrize("how", ["requeue", "preempt"])
@pytest.mark.scenario("{how}")
def test_requeued_trials_continue_from_checkpoint(scenario_result, how):
    r = scenario_result(1500)
    study_dir = r["study_dir"]
    assert r["rc"] == 0, r["log"]
    events = fk.journal(study_dir)
    assert [e["state"] for e in events if e["e"] == "study_end"] == ["finished"], r["log"]
    assert [e["state"] for e in events if e["e"] == "end"] == ["completed", "completed"]
    # Free: Slurm brought the jobs back itself; hpc-tune resubmitted nothing.
    assert not [e for e in events if e["e"] == "retry"], "a requeue is not a retry"
    jobs = fk.check_exactly_once(events)
    assert sorted(jobs.values()) == r["jobs"] and set(jobs) == {(0, 0), (1, 0)}
    for job, history in r["histories"].items():
        # A preempted trial requeues itself in its grace time (submitit, on the USR2 that
        # preempt_send_user_signal sends), so both show REQUEUED, then COMPLETED.
        assert "REQUEUED" in history and history[-1] == "COMPLETED", f"job {job}: sacct -D shows {history}"
        if how == "preempt":
            logs = "".join(open(p).read() for p in glob.glob(os.path.join(study_dir, "slurm", job, "*_log.err")))
            assert "this job is preempted" in logs, f"job {job} was not preempted: {logs[-2000:]}"
    if how == "preempt":
        assert all(fk.sacct_history(h)[-1] == "COMPLETED" for h in r["highs"]), "the high-priority jobs ran"
    for tid in (0, 1):
        job = jobs[(tid, 0)]
        lines = fk.results(study_dir, tid)
        runs = fk.runs_of(lines)
        trial_dir = os.path.join(study_dir, "trials", str(tid))
        # The same trial, job and folder came back, and knew it was restarted.
        assert len(runs) >= 2, f"trial {tid} was not restarted: {runs}"
        assert {x["job"] for x in runs} == {job}
        assert {x["trial_dir"] for x in runs} == {trial_dir}
        assert runs[0]["restart_count"] == 0 and all(x["restart_count"] > 0 for x in runs[1:]), runs
        started, ended = fk.record(study_dir, tid, "started.json"), fk.record(study_dir, tid, "exit.json")
        assert started["job_id"] == job and started["restart_count"] > 0, started
        assert ended["job_id"] == job and ended["restart_count"] > 0 and ended["exit_code"] == 0, ended
        # It continued from its checkpoint (a step was lost at most) and reported the last step.
        resumed = fk.resumed_from(lines)
        assert resumed and max(resumed) >= r["steps_at_fault"][tid] - 1 >= FAULT_AT_STEP - 1, \
            (resumed, r["steps_at_fault"])
        assert fk.check_continues(lines) >= 1
        assert fk.last_step(lines) == STEPS[how]
        steps = [int(x["step"]) for x in lines if "step" in x]
        assert sorted(set(steps)) == list(range(1, STEPS[how] + 1)), "no step skipped"
        assert len(steps) - len(set(steps)) <= len(runs) - 1, "at most the interrupted step is done again"
    fk.check_reports_match(study_dir, events)


# ------------------------------------------------------------------------- time limits

ONE_TRIAL = """
    hptuning:
      concurrency: 1
      metric: {name: loss, optimization: minimize}
      matrix:
        x: {values: [0.5]}
    slurm: {time: "1", max_retries: {retries}}
    run:
      cmd: PY CKPT --x={{ x }} --steps={steps} --sleep=1
    """
LONG_STEPS = 180  # three minutes of work under a one-minute limit


def _time_limited(workdir, owner: str, retries: int) -> Dict[str, Any]:
    study = fk.write_study(workdir, ONE_TRIAL, steps=LONG_STEPS, retries=retries)
    state = workdir / "state"
    ctl = fk.start_cli(owner, workdir / "controller.log", "submit", study, "--state-dir", str(state),
                       "--backend", "slurm", "--poll-interval", "3", "--foreground")
    study_dir = fk.wait_for_study(state)
    fk.CLEANUP.study(owner, study_dir)
    rc = fk.wait_proc(ctl, 540, "the controller")
    return {"study_dir": study_dir, "rc": rc, "log": (workdir / "controller.log").read_text()[-4000:]}


MAX_RETRIES = 15
fk.scenario("timeout-retried", slurm=True, retries=MAX_RETRIES)(_time_limited)
fk.scenario("timeout-no-retries", slurm=True, retries=0)(_time_limited)


@pytest.mark.slurm
@pytest.mark.scenario("timeout-retried")
def test_time_limit_resubmits_a_new_attempt_that_continues(scenario_result):
    r = scenario_result(1500)
    study_dir = r["study_dir"]
    events = fk.journal(study_dir)
    assert r["rc"] == 0, r["log"]
    assert [(e["state"], e["reason"]) for e in events if e["e"] == "end"] == [("completed", "")], r["log"]
    retries = [e for e in events if e["e"] == "retry"]
    assert retries, "a three-minute trial under a one-minute limit was never resubmitted"
    assert len(retries) <= MAX_RETRIES
    assert all(e["counted"] and "time limit" in e["reason"] for e in retries), retries
    assert [e["attempt"] for e in retries] == list(range(1, len(retries) + 1))
    jobs = fk.check_exactly_once(events)
    attempts = sorted(a for _, a in jobs)
    assert attempts == list(range(len(retries) + 1)), "one job per attempt"
    assert len(set(jobs.values())) == len(jobs), "each attempt is a new job"
    assert fk.sacct_jobs_by_trial(study_dir) == {0: [jobs[(0, a)] for a in attempts]}
    lines = fk.results(study_dir, 0)
    runs = fk.runs_of(lines)
    # Each attempt ran in its own job (one whose warning came before the trial even
    # started leaves no line), the last one to the end.
    assert all(x["job"] == jobs[(0, x["attempt"])] for x in runs), runs
    assert [x["attempt"] for x in runs] == sorted({x["attempt"] for x in runs}) and runs[-1]["attempt"] == attempts[-1]
    assert fk.check_continues(lines) >= 1, "no attempt continued from a checkpoint"
    assert fk.last_step(lines) == LONG_STEPS
    steps = [int(x["step"]) for x in lines if "step" in x]
    assert sorted(set(steps)) == list(range(1, LONG_STEPS + 1)), "no step skipped"
    assert fk.record(study_dir, 0, "exit.json")["attempt"] == attempts[-1]
    fk.check_reports_match(study_dir, events)


@pytest.mark.slurm
@pytest.mark.scenario("timeout-no-retries")
def test_time_limit_without_retries_fails_with_the_reason(scenario_result):
    r = scenario_result(1500)
    study_dir = r["study_dir"]
    events = fk.journal(study_dir)
    ends = [e for e in events if e["e"] == "end"]
    assert [e["state"] for e in ends] == ["failed"], r["log"]
    assert "time limit" in ends[0]["reason"] and "no retries left (0 used)" in ends[0]["reason"], ends[0]
    assert not [e for e in events if e["e"] == "retry"]
    assert len(fk.check_exactly_once(events)) == 1
    assert [e["state"] for e in events if e["e"] == "study_end"] == ["finished"]
    status = fk.cli("status", study_dir, "--json")
    assert '"failed": 1' in status.stdout
    lines = fk.results(study_dir, 0)
    assert fk.last_step(lines) < LONG_STEPS
    fk.check_reports_match(study_dir, events)


# ---------------------------------------------------------------- Hyperband resume: true

RESUME_STUDY = """
    hptuning:
      concurrency: 4
      seed: 7
      hyperband:
        max_iter: 9
        eta: 3
        resume: true
        resource: {name: resource, type: int}
        metric: {name: loss, optimization: minimize}
      matrix:
        x: {uniform: [0, 1]}
    run:
      cmd: PY CKPT --x={{ x }} --steps={{ resource }} --sleep=0.2
    """


@fk.scenario("hyperband-resume-local", slurm=False)
def _hyperband_resume(workdir, owner: str) -> Dict[str, Any]:
    study = fk.write_study(workdir, RESUME_STUDY)
    res = fk.cli("submit", study, "--state-dir", str(workdir / "state"), "--backend", "local",
                 "--poll-interval", "3", "--foreground", timeout=300)
    return {"study_dir": fk.only_study(workdir / "state"), "rc": res.returncode, "plan": fk.plan(study),
            "log": (res.stdout + res.stderr)[-4000:]}


@pytest.mark.scenario("hyperband-resume-local")
def test_hyperband_resume_continues_from_the_parents_checkpoint(scenario_result):
    r = scenario_result(1500)
    study_dir = r["study_dir"]
    assert r["rc"] == 0, r["log"]
    events = fk.journal(study_dir)
    trials = {e["id"]: e for e in events if e["e"] == "trial"}
    assert len(trials) == r["plan"]["n_trials"]
    assert all(e["state"] == "completed" for e in events if e["e"] == "end")
    planned = fk.planned_rungs(r["plan"])
    first = {tid: fk.runs_of(fk.results(study_dir, tid))[0] for tid in trials}
    promoted = {tid: t for tid, t in trials.items() if t["meta"]["parent"] is not None}
    assert len(promoted) == sum(n for (_, rung), (n, _) in planned.items() if rung > 0) > 0
    assert any(t["meta"]["rung"] == 2 for t in promoted.values()), "a promotion of a promotion is checked too"
    for tid, t in trials.items():
        lines = fk.results(study_dir, tid)
        own = os.path.join(study_dir, "trials", str(tid), "checkpoints")
        assert t["resource"] == planned[(t["meta"]["bracket"], t["meta"]["rung"])][1] == first[tid]["target"]
        if tid not in promoted:
            assert first[tid]["ckpt_dir"] == own and not fk.resumed_from(lines)
            steps = [x["step"] for x in lines if "step" in x]
            assert steps == list(range(1, t["resource"] + 1))
            continue
        parent = trials[t["meta"]["parent"]]
        assert t["meta"]["resume_from"] == parent["id"] and t["params"] == parent["params"]
        # HPC_TUNE_CHECKPOINT_DIR is the parent's: where the parent saved its checkpoints.
        assert first[tid]["ckpt_dir"] == first[parent["id"]]["ckpt_dir"], (tid, parent["id"])
        assert not first[tid]["ckpt_dir"].startswith(own)
        # Its total budget is its resource; it trains only the steps its parent did not.
        assert t["resource"] > parent["resource"]
        assert fk.resumed_from(lines) == [parent["resource"]], (tid, fk.resumed_from(lines))
        steps = [x["step"] for x in lines if "step" in x]
        assert steps == list(range(parent["resource"] + 1, t["resource"] + 1)), (tid, steps)
    fk.check_reports_match(study_dir, events)
