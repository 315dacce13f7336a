"""``kill -9`` of the controller at 22 moments of one Hyperband study, each followed by
``resume``; on the real Slurm cluster and on the local backend.

The controller's fault hook (``HPC_TUNE_FAULT=POINT:N``, hpc_tune/controller/faults.py) kills it
with SIGKILL the N-th time it passes POINT:

    cycle      the start of a loop cycle
    recorded   trials written to the journal, not yet submitted
    submitted  jobs in the scheduler's queue, their ids not yet in the journal
    reported   after copying a trial's new result lines to the journal
    ended      after a trial's end event

The study (R=9, eta=2: 35 trials in 4 brackets, concurrency 2) is started by
``submit --foreground`` with the first fault and carried on by ``resume --foreground``
processes, each with the next fault of FAULTS, then by one ``resume`` without a fault until
it finishes. Every run must really be killed, so the study must outlast them: its trials
run on while no controller is there, and a run killed at ``recorded:N``, ``submitted:N``
or ``ended:N`` has first created about N more trials. Those are kept to small N; the many
``cycle`` and ``reported`` points (passed every second: the trials report a heartbeat)
cost only time. The faulted runs are forked from an interpreter that has imported
hpc_tune (cli_zygote.py), so a restart takes milliseconds, not the seconds importing scipy
takes on a busy machine; the first and the last run are plain ``hpc-tune`` processes.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Dict

import faultkit as fk
import pytest

FAULTS = [
    "recorded:1", "submitted:1", "cycle:1", "reported:1", "ended:1",
    "recorded:2", "submitted:2", "cycle:2", "reported:2", "ended:2",
    "submitted:3", "cycle:3", "reported:3", "ended:3",
    "cycle:4", "reported:4", "cycle:5", "reported:5",
    "cycle:6", "reported:6", "reported:7", "reported:8",
]
assert len(set(FAULTS)) == len(FAULTS) >= 20
assert {f.split(":")[0] for f in FAULTS} == {"cycle", "recorded", "submitted", "reported", "ended"}

# Seconds a trial takes, whatever its resource (Slurm adds a few of its own per job).
TRIAL_SECONDS = {"local": 8, "slurm": 5}

STUDY = """
    hptuning:
      concurrency: 2
      seed: 11
      hyperband:
        max_iter: 9
        eta: 2
        resource: {name: resource, type: int}
        metric: {name: loss, optimization: minimize}
      matrix:
        x: {uniform: [0, 1]}
    slurm: {time: "3"}  # short: the backfill scheduler starts such jobs soonest
    run:
      cmd: PY CKPT --x={{ x }} --steps={{ resource }} --seconds={seconds} --heartbeat=0.5
    """


def _fault_sequence(workdir, owner: str, backend: str) -> Dict[str, Any]:
    study = fk.write_study(workdir, STUDY, seconds=TRIAL_SECONDS[backend])
    the_plan = fk.plan(study)
    state = workdir / "state"
    runs = []
    first = fk.cli("submit", study, "--state-dir", str(state), "--backend", backend, "--poll-interval", "3",
                   "--foreground", env={"HPC_TUNE_FAULT": FAULTS[0]}, timeout=300)
    study_dir = fk.only_study(state)
    fk.CLEANUP.study(owner, study_dir)
    runs.append({"fault": FAULTS[0], "rc": first.returncode, "tail": (first.stdout + first.stderr)[-1500:],
                 **fk.progress(study_dir)})
    forked = fk.ForkedCLI(owner)
    try:
        for i, fault in enumerate(FAULTS[1:], 1):
            log = workdir / f"run-{i:02d}-{fault.replace(':', '-')}.log"
            rc = forked.run("resume", study_dir, "--foreground", log=log, env={"HPC_TUNE_FAULT": fault})
            runs.append({"fault": fault, "rc": rc, "tail": log.read_text()[-1500:], **fk.progress(study_dir)})
    finally:
        forked.close()
    final = fk.cli("resume", study_dir, "--foreground", timeout=600)
    return {"study_dir": study_dir, "plan": the_plan, "runs": runs, "final_rc": final.returncode,
            "final_out": final.stdout[-3000:] + final.stderr[-3000:]}


for _backend in ("local", "slurm"):
    fk.scenario(f"kill9-{_backend}", slurm=_backend == "slurm", backend=_backend)(_fault_sequence)


@pytest.mark.parametrize("backend", ["local", pytest.param("slurm", marks=pytest.mark.slurm)])
@pytest.mark.scenario("kill9-{backend}")
def test_kill9_at_22_moments_then_resume(scenario_result, backend):
    r = scenario_result(1500)
    study_dir, runs = r["study_dir"], r["runs"]
    table = "\n".join(f"{x['fault']:>12} rc={x['rc']} trials={x['trials']} ended={x['ended']} "
                      f"study_end={x['study_end']}" for x in runs)

    # Every faulted run was really killed (SIGKILL: -9), and not after the study ended.
    not_killed = [x for x in runs if x["rc"] != -9]
    assert not not_killed, f"runs not killed by their fault:\n{table}\n{not_killed[0]['tail']}"
    assert runs[-1]["study_end"] is None, f"the study ended before the last fault:\n{table}"
    assert r["final_rc"] == 0, r["final_out"]

    events = fk.journal(study_dir)
    starts = [e for e in events if e["e"] == "controller" and e.get("action") == "start"]
    assert len(starts) == len(FAULTS) + 1, "one lease taken per controller run"

    # The study ends with exactly the planned trials, each completed once.
    ends = [e for e in events if e["e"] == "study_end"]
    assert [e["state"] for e in ends] == ["finished"], ends
    trials = {e["id"]: e for e in events if e["e"] == "trial"}
    planned = fk.planned_rungs(r["plan"])
    assert len(trials) == r["plan"]["n_trials"] == 35
    assert Counter((t["meta"]["bracket"], t["meta"]["rung"]) for t in trials.values()) == \
        {k: n for k, (n, _) in planned.items()}
    trial_ends = Counter(e["id"] for e in events if e["e"] == "end")
    assert trial_ends == {tid: 1 for tid in trials}, "every trial ends exactly once"
    assert all(e["state"] == "completed" for e in events if e["e"] == "end")
    assert not [e for e in events if e["e"] == "retry"], "nothing here is a reason to resubmit a trial"

    # No parameter set twice in the same rung (the journal), and none run twice (the files).
    for rung in planned:
        params = [tuple(sorted(t["params"].items())) for t in trials.values()
                  if (t["meta"]["bracket"], t["meta"]["rung"]) == rung]
        assert len(params) == len(set(params)), f"rung {rung} holds a parameter set twice"
    jobs = fk.check_exactly_once(events)
    assert set(jobs) == {(tid, 0) for tid in trials}, "every trial submitted once, as attempt 0"
    for tid, t in trials.items():
        lines = fk.results(study_dir, tid)
        runs_seen = fk.runs_of(lines)
        # A second run of the trial under another job would show here (and resume its own
        # checkpoint); a Slurm requeue of the same job (another user's preemption) may.
        assert runs_seen and {x["job"] for x in runs_seen} == {jobs[(tid, 0)]}, (tid, runs_seen, jobs[(tid, 0)])
        assert [x["restart_count"] for x in runs_seen] == list(range(len(runs_seen))), (tid, runs_seen)
        if len(runs_seen) == 1:
            assert not fk.resumed_from(lines), f"trial {tid} found a checkpoint: it ran before"
        assert backend == "slurm" or len(runs_seen) == 1, f"trial {tid} ran {len(runs_seen)} times"
        assert fk.last_step(lines) == t["resource"], f"trial {tid} did not report its last step"

    # No reported result lost: the journal's reports are every trial's result.jsonl.
    fk.check_reports_match(study_dir, events)

    if backend == "slurm":
        # Exactly once in Slurm's own books: one job per (trial, attempt), by job name.
        by_trial = fk.sacct_jobs_by_trial(study_dir)
        assert {tid: sorted(j) for tid, j in by_trial.items()} == {tid: [jobs[(tid, 0)]] for tid in trials}
