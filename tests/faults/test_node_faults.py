"""Node faults on the three-node cluster (``scripts/slurm-cluster.sh multi up``: nodes n1..n3
on this machine, ``SlurmdTimeout=10``, ``cred_expire=20``), caused for real with the same
script: a whole node killed (its slurmd, its job steps and every process of its jobs) under
a trial and under the controller, ``drain`` then ``down``, the shared ``slurmdbd`` stopped
for 60 s, and ``slurmd`` alone killed (its jobs' processes keep running) on a trial's node,
with and without it coming back, and on the controller's node.

Each test checks, from the files and from ``sacct``: every trial ends once; the journal's
report lines are exactly the trial's result lines, written by runs that never overlapped
(``check_study``); ``concurrency`` never exceeded (the trials' own lines and sacct's run
rows); never two controllers acting at once (``faultkit.ControllerWatch``). Each also
measures what the fault cost: the time from the fault to the trial running again (the first
line of its next run), printed at the end of the session and written in docs/faults.md.
``slurmd`` alone killed leaves the old copies running while Slurm restarts their jobs: the
tests check that the old copy of a trial is fenced as soon as the new one starts, and that
the restarted controller job does not act while its earlier run does.

The scenarios run one after the other (a node fault hits every job on that node), beside the
one-node cluster's scenarios; each leaves the three nodes in service for the next.
"""
from __future__ import annotations

import os
import re
import time
from collections import Counter
from typing import Any, Dict, List, Optional

import faultkit as fk
import pytest

pytestmark = pytest.mark.slurm_multinode

CONCURRENCY = 2
STUDY = """
    hptuning:
      concurrency: 2
      metric: {name: loss, optimization: minimize}
      matrix:
        x: {values: {values}}
    slurm: {time: "15"}
    run:
      cmd: PY CKPT --x={{ x }} --steps={steps} --sleep=1
    """
FAULT_AT_STEP = 3  # a trial is hit once its run is past this step


def _start(workdir, owner: str, *, values: str, steps: int, controller_job: bool = False) -> Dict[str, Any]:
    """A study on the three-node cluster, its controller in the foreground (not on any node)
    or as a Slurm job of that cluster; watched from the start."""
    conf = fk.multinode_conf()
    env = {"SLURM_CONF": conf}
    study = fk.write_study(workdir, STUDY, values=values, steps=steps)
    state = workdir / "state"
    out: Dict[str, Any] = {"conf": conf, "workdir": workdir, "proc": None, "controller_job": None}
    if controller_job:
        res = fk.cli("submit", study, "--state-dir", str(state), "--backend", "slurm", "--poll-interval", "3",
                     "--controller-time", "15", env=env)
        assert res.returncode == 0, res.stdout + res.stderr
        out["controller_job"] = re.search(r"Slurm job (\d+)", res.stdout).group(1)
    else:
        out["proc"] = fk.start_cli(owner, workdir / "controller.log", "submit", study, "--state-dir", str(state),
                                   "--backend", "slurm", "--poll-interval", "3", "--foreground", env=env)
    out["study_dir"] = study_dir = fk.wait_for_study(state)
    fk.CLEANUP.study(owner, study_dir, conf)
    out["watch"] = fk.ControllerWatch(study_dir)
    return out


def _running_trial(s: Dict[str, Any], *, left: int, avoid_node: Optional[str] = None,
                   timeout: float = 400) -> Dict[str, Any]:
    """A trial whose current run is past FAULT_AT_STEP with at least ``left`` steps to go:
    {tid, job, node, pid, step}."""
    study_dir = s["study_dir"]

    def find():
        jobs = {tid: job for (tid, _), job in fk.check_exactly_once(fk.journal(study_dir)).items()}
        for tid, job in sorted(jobs.items()):
            lines = fk.results(study_dir, tid)
            runs = fk.runs_of(lines)
            if not runs or fk.record(study_dir, tid, "exit.json") is not None:
                continue
            head = runs[-1]
            steps = [int(x["step"]) for x in lines if "step" in x and x["pid"] == head["pid"]]
            if (len(steps) >= FAULT_AT_STEP and head["target"] - max(steps) >= left
                    and head["node"] != avoid_node):
                return {"tid": tid, "job": job, "node": head["node"], "pid": head["pid"], "step": max(steps)}
        return None

    return fk.wait_for(find, timeout, f"a trial running past step {FAULT_AT_STEP} with {left} steps to go",
                       every=0.5)


def _next_run_after(study_dir: str, tid: int, t: float) -> Optional[Dict[str, Any]]:
    return next((x for x in fk.runs_of(fk.results(study_dir, tid)) if x["started"] > t), None)


def _finish(s: Dict[str, Any], timeout: float = 600) -> Dict[str, Any]:
    """Wait for the study's end (and its controller's); gather what the checks need."""
    study_dir, conf = s["study_dir"], s["conf"]
    try:
        fk.wait_for(lambda: any(e["e"] == "study_end" for e in fk.journal(study_dir)), timeout, "the study's end",
                    every=2)
        if s["proc"] is not None:
            s["rc"] = fk.wait_proc(s["proc"], 120, "the controller")
        if s["controller_job"]:
            fk.wait_for(lambda: fk.sacct_history(s["controller_job"], conf)[-1:] in (["COMPLETED"], ["FAILED"]),
                        120, "the controller job's end")
    finally:
        s["watch"].stop()
    events = fk.journal(study_dir)
    trial_jobs = sorted(set(fk.check_exactly_once(events).values()))
    # sacct lists every run with its end (it may lag behind slurmdbd's return)
    fk.wait_for(lambda: all(r["end"] not in ("Unknown", "") for r in fk.sacct_runs(trial_jobs, conf)), 240,
                "sacct's final rows of the trial jobs", every=3)
    log = s["workdir"] / "controller.log"
    return {"study_dir": study_dir, "events": events, "conf": conf,
            "trials": {e["id"] for e in events if e["e"] == "trial"},
            "sacct": fk.sacct_runs(trial_jobs, conf),
            "controller_sacct": fk.sacct_runs([s["controller_job"]], conf) if s["controller_job"] else [],
            "controller_job": s["controller_job"], "rc": s.get("rc"),
            "acting_at_once": s["watch"].acting_at_once(events),
            "controller_log": open(os.path.join(study_dir, "controller", "controller.log")).read(),
            "log": log.read_text()[-4000:] if log.exists() else ""}


def check_study(r: Dict[str, Any], *, retries: int = 0) -> None:
    """What every node fault must leave: each trial ended once (completed), no retry counted
    (Slurm requeued the jobs), the journal's reports exactly the result lines, written by runs
    that never ran at once, every step done, concurrency kept, one controller at a time."""
    study_dir, events = r["study_dir"], r["events"]
    assert [e["state"] for e in events if e["e"] == "study_end"] == ["finished"], r["log"]
    assert Counter(e["id"] for e in events if e["e"] == "end") == {tid: 1 for tid in r["trials"]}
    assert all(e["state"] == "completed" for e in events if e["e"] == "end"), \
        [e for e in events if e["e"] == "end"]
    assert len([e for e in events if e["e"] == "retry"]) == retries
    fk.check_exactly_once(events)
    fk.check_reports_match(study_dir, events)
    for tid in r["trials"]:
        lines = fk.results(study_dir, tid)
        fk.check_runs_not_interleaved(tid, lines)
        target = fk.runs_of(lines)[0]["target"]
        steps = [int(x["step"]) for x in lines if "step" in x]
        assert sorted(set(steps)) == list(range(1, target + 1)), f"trial {tid}: a step is missing"
        runs = fk.runs_by_pid(lines)
        assert len(steps) - len(set(steps)) <= len(runs) - 1, f"trial {tid}: steps done twice: {steps}"
    # concurrency: from the trials' own lines, and from sacct's rows of every run
    from_files = fk.max_overlap([(a, b) for _, _, a, b in fk.run_intervals(study_dir, r["trials"])])
    assert from_files <= CONCURRENCY, f"{from_files} runs at once (result lines)"
    spans = []
    for row in r["sacct"]:
        a, b = fk.sacct_seconds(row["start"]), fk.sacct_seconds(row["end"])
        if a is not None and b is not None:
            spans.append((a, b))
    assert fk.max_overlap(spans) <= CONCURRENCY, f"sacct: more than {CONCURRENCY} trial jobs at once: {r['sacct']}"
    assert not r["acting_at_once"], r["acting_at_once"]


def _measure(name: str, **figures: Any) -> None:
    fk.MEASURED[name] = {k: (round(v, 1) if isinstance(v, float) else v) for k, v in figures.items()}


def _requeued_runs(r: Dict[str, Any], hit: List[int], t_fault: float, dead_node: str) -> List[float]:
    """Each hit trial ran again after the fault, requeued under its job (restart count > 0)
    on another node, from its checkpoint; the seconds from the fault to that run's start."""
    costs = []
    for tid in hit:
        lines = fk.results(r["study_dir"], tid)
        nxt = _next_run_after(r["study_dir"], tid, t_fault)
        assert nxt is not None, f"trial {tid} never ran again after the fault"
        first = fk.runs_of(lines)[0]
        assert nxt["job"] == first["job"] and nxt["restart_count"] > 0, (first, nxt)
        assert nxt["node"] != dead_node, nxt
        assert fk.check_continues(lines) >= 1
        costs.append(nxt["started"] - t_fault)
    return costs


# ---------------------------------------------------------------- a trial's node killed


@fk.scenario("node-kill-trial", slurm=fk.MULTINODE)
def _node_kill_trial(workdir, owner: str) -> Dict[str, Any]:
    s = _start(workdir, owner, values="[0.1, 0.2, 0.3]", steps=24)
    victim = _running_trial(s, left=10)
    on_node = [tid for tid in range(3) if (fk.runs_of(fk.results(s["study_dir"], tid)) or [{}])[-1].get("node")
               == victim["node"] and fk.record(s["study_dir"], tid, "exit.json") is None]
    t_fault = time.time()
    fk.cluster("node", "kill", victim["node"])
    r = _finish(s)
    r.update(victim=victim, hit=on_node, t_fault=t_fault)
    return r


@pytest.mark.scenario("node-kill-trial")
def test_node_of_a_trial_killed(scenario_result):
    r = scenario_result(1800)
    check_study(r)
    victim = r["victim"]
    assert "NODE_FAIL" in [x["state"] for x in r["sacct"] if x["job"] == victim["job"]], r["sacct"]
    costs = _requeued_runs(r, sorted(set(r["hit"]) | {victim["tid"]}), r["t_fault"], victim["node"])
    _measure("node-kill-trial", fault_to_running_again_s=max(costs), trials_hit=len(costs))


# ----------------------------------------------------------- the controller's node killed


@fk.scenario("node-kill-controller", slurm=fk.MULTINODE)
def _node_kill_controller(workdir, owner: str) -> Dict[str, Any]:
    s = _start(workdir, owner, values="[0.1, 0.2, 0.3, 0.4]", steps=20, controller_job=True)
    _running_trial(s, left=8)
    node = fk.node_of_job(s["controller_job"], s["conf"])
    assert node, "the controller job is not running"
    alive = [tid for tid in range(4) if fk.runs_of(fk.results(s["study_dir"], tid))
             and fk.record(s["study_dir"], tid, "exit.json") is None]
    hit = [tid for tid in alive if fk.runs_of(fk.results(s["study_dir"], tid))[-1]["node"] == node]
    t_fault = time.time()
    fk.cluster("node", "kill", node)
    r = _finish(s)
    r.update(node=node, hit=hit, t_fault=t_fault)
    return r


@pytest.mark.scenario("node-kill-controller")
def test_node_of_the_controller_killed(scenario_result):
    r = scenario_result(1800)
    check_study(r)
    starts = [e for e in r["events"] if e["e"] == "controller" and e["action"] == "start"]
    # The same controller job came back by itself (Slurm requeued it) and carried on.
    assert len(starts) == 2 and {e["job"] for e in starts} == {r["controller_job"]}, starts
    after = starts[1]
    assert after["t"] > r["t_fault"]
    states = [x["state"] for x in r["controller_sacct"]]
    assert "NODE_FAIL" in states and states[-1] == "COMPLETED", states
    assert any(e["t"] > after["t"] for e in r["events"] if e["e"] == "end"), "the requeued controller ended trials"
    costs = _requeued_runs(r, r["hit"], r["t_fault"], r["node"])
    _measure("node-kill-controller", fault_to_controller_running_again_s=after["t"] - r["t_fault"],
             fault_to_trial_running_again_s=max(costs) if costs else "no trial on that node", trials_hit=len(costs))


# ------------------------------------------------------------- slurmdbd stopped for 60 s

OUTAGE_S = 60


@fk.scenario("slurmdbd-down", slurm=fk.MULTINODE)
def _slurmdbd_down(workdir, owner: str) -> Dict[str, Any]:
    # Four trials of ~25 s on two slots: trials end and new ones start during the outage.
    s = _start(workdir, owner, values="[0.1, 0.2, 0.3, 0.4]", steps=25)
    _running_trial(s, left=5)
    t_stop = time.time()
    try:
        fk.cluster("slurmdbd", "stop")
        time.sleep(OUTAGE_S)
    finally:
        fk.cluster("slurmdbd", "start")
    t_start = time.time()
    r = _finish(s)
    r.update(t_stop=t_stop, t_start=t_start)
    return r


@pytest.mark.scenario("slurmdbd-down")
def test_slurmdbd_stopped_for_a_minute(scenario_result):
    r = scenario_result(1800)
    check_study(r)
    assert "sacct failed" in r["controller_log"], "the controller never saw sacct fail"
    events = r["events"]
    during = [e for e in events if e["e"] in ("end", "submitted") and r["t_stop"] < e["t"] < r["t_start"]]
    assert {e["e"] for e in during} == {"end", "submitted"}, "trials ended and started during the outage"
    # Nothing was interrupted: one run per trial.
    for tid in r["trials"]:
        assert len(fk.runs_by_pid(fk.results(r["study_dir"], tid))) == 1, tid
    # What it cost: how long after its exit record a trial's end was journaled, during the outage.
    lags = [e["t"] - e["ended"] for e in events if e["e"] == "end" and "ended" in e
            and r["t_stop"] < e["t"] < r["t_start"]]
    _measure("slurmdbd-down", outage_s=r["t_start"] - r["t_stop"], trials_interrupted=0,
             exit_to_journaled_end_during_outage_max_s=max(lags) if lags else "none")


# --------------------------------------------------------------------- drain, then down


@fk.scenario("drain-then-down", slurm=fk.MULTINODE)
def _drain_then_down(workdir, owner: str) -> Dict[str, Any]:
    s = _start(workdir, owner, values="[0.1, 0.2, 0.3]", steps=30)
    victim = _running_trial(s, left=18)
    t_drain = time.time()
    fk.cluster("node", "drain", victim["node"])
    time.sleep(8)  # drained: the trial runs on, nothing new starts there
    t_down = time.time()
    fk.cluster("node", "down", victim["node"])
    r = _finish(s)
    r.update(victim=victim, t_drain=t_drain, t_down=t_down)
    return r


@pytest.mark.scenario("drain-then-down")
def test_node_drained_then_down(scenario_result):
    r = scenario_result(1800)
    check_study(r)
    victim, study_dir = r["victim"], r["study_dir"]
    lines = fk.results(study_dir, victim["tid"])
    # Drained, the run went on until the node was set down.
    assert any(x["pid"] == victim["pid"] and r["t_drain"] + 1 < x["t"] < r["t_down"] for x in lines), \
        "the trial did not run on while its node was drained"
    # Nothing started on the node once it was drained.
    for tid in r["trials"]:
        for run in fk.runs_of(fk.results(study_dir, tid)):
            assert not (run["started"] > r["t_drain"] + 1 and run["node"] == victim["node"]), (tid, run)
    costs = _requeued_runs(r, [victim["tid"]], r["t_down"], victim["node"])
    _measure("drain-then-down", down_to_running_again_s=costs[0])


# ------------------------------------------------------------------- slurmd alone killed
# Slurm counts the node's jobs failed and requeues them while their processes run on
# (docs/slurm-facts.md, "Nodes that fail, and nodes that only seem to"). The requeued copy of
# a trial claims its folder and the old copy is fenced (hpc_tune.trial); a requeued
# controller waits for the lease of its job's earlier run, which is alive and acting
# (controller/lease.py).


@fk.scenario("slurmd-killed-trial-back", slurm=fk.MULTINODE, comes_back=True)
@fk.scenario("slurmd-killed-trial-gone", slurm=fk.MULTINODE, comes_back=False)
def _slurmd_killed_trial(workdir, owner: str, comes_back: bool) -> Dict[str, Any]:
    # Long trials: the old copy must still run when Slurm's requeued copy starts (~40 s on).
    s = _start(workdir, owner, values="[0.1, 0.2]", steps=70)
    victim = _running_trial(s, left=60)
    t_fault = time.time()
    fk.cluster("node", "kill-slurmd", victim["node"])
    if comes_back:
        # Back once the requeued copy runs: that slurmd then kills the copy it left behind.
        fk.wait_for(lambda: _next_run_after(s["study_dir"], victim["tid"], t_fault), 300,
                    "the requeued copy's start", every=0.5)
        time.sleep(5)
        fk.cluster("node", "start", victim["node"])
    r = _finish(s)
    r.update(victim=victim, t_fault=t_fault)
    return r


@pytest.mark.parametrize("back", ["back", "gone"])
@pytest.mark.scenario("slurmd-killed-trial-{back}")
def test_slurmd_alone_killed_on_a_trials_node(scenario_result, back):
    r = scenario_result(1800)
    check_study(r)
    victim = r["victim"]
    costs = _requeued_runs(r, [victim["tid"]], r["t_fault"], victim["node"])
    # The old copy ran on after the fault (Slurm had only lost its slurmd)...
    lines = fk.results(r["study_dir"], victim["tid"])
    assert any(x["pid"] == victim["pid"] and x["t"] > r["t_fault"] + 5 for x in lines), "the old copy did not run on"
    # ...and stopped once the requeued copy claimed the trial: no line of it after that start.
    nxt = _next_run_after(r["study_dir"], victim["tid"], r["t_fault"])
    assert not [x for x in lines if x["pid"] == victim["pid"] and x["t"] > nxt["started"]]
    runs = [e for e in r["events"] if e["e"] == "run" and e["id"] == victim["tid"]]
    assert [e["restart_count"] for e in runs][:2] == [0, 1] and runs[1]["node"] != victim["node"], runs
    assert "requeued" in (runs[1].get("after") or ""), runs[1]
    _measure(f"slurmd-killed-trial-{back}", fault_to_running_again_s=costs[0])


@fk.scenario("slurmd-killed-controller", slurm=fk.MULTINODE)
def _slurmd_killed_controller(workdir, owner: str) -> Dict[str, Any]:
    s = _start(workdir, owner, values="[0.1, 0.2, 0.3, 0.4]", steps=30, controller_job=True)
    _running_trial(s, left=15)
    node = fk.node_of_job(s["controller_job"], s["conf"])
    assert node, "the controller job is not running"
    t_fault = time.time()
    fk.cluster("node", "kill-slurmd", node)
    r = _finish(s)
    r.update(node=node, t_fault=t_fault)
    return r


@pytest.mark.scenario("slurmd-killed-controller")
def test_slurmd_alone_killed_on_the_controllers_node(scenario_result):
    r = scenario_result(1800)
    check_study(r)  # among others: never two controllers acting at once
    states = [x["state"] for x in r["controller_sacct"]]
    assert "NODE_FAIL" in states and states[-1] == "COMPLETED", states  # Slurm did restart the controller job
    starts = [e for e in r["events"] if e["e"] == "controller" and e["action"] == "start"]
    assert {e["job"] for e in starts} == {r["controller_job"]}, starts
    # The old controller ran on; the study went on without a pause for the fault.
    after = [e["t"] for e in r["events"] if e["t"] > r["t_fault"]]
    _measure("slurmd-killed-controller", controllers_started=len(starts),
             fault_to_next_journal_event_s=min(after) - r["t_fault"])
