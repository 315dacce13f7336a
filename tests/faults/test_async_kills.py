"""``kill -9`` of the controller of an ASHA study and of a PBT study at ten moments each,
each followed by ``resume``; on the real Slurm cluster and on the local backend.

The same fault points as test_controller_kills.py (cycle, recorded, submitted, reported,
ended). What must hold after the last ``resume``: the study finished; every trial was
submitted once and ended once; ASHA never created a (rung, configuration) twice and every
promotion continued its parent's checkpoint from the parent's last step; PBT created each
(member, interval) once, every interval after the first started from a copy of its
source's checkpoint at the source's last step, in its own folder, and only the members'
final checkpoints are left.
"""
from __future__ import annotations

import os
from collections import Counter
from typing import Any, Dict

import faultkit as fk
import pytest

FAULTS = ["recorded:1", "submitted:1", "cycle:1", "reported:1", "ended:1",
          "recorded:2", "submitted:2", "cycle:3", "reported:3", "ended:2"]
assert {f.split(":")[0] for f in FAULTS} == {"cycle", "recorded", "submitted", "reported", "ended"}

TRIAL_SECONDS = {"local": 6, "slurm": 4}

STUDIES = {
    "asha": """
        hptuning:
          concurrency: 2
          seed: 13
          asha:
            max_resource: 4
            eta: 2
            n_experiments: 8
            resource: {name: resource, type: int}
            metric: {name: loss, optimization: minimize}
          matrix:
            x: {uniform: [0, 1]}
        slurm: {time: "3"}
        run:
          cmd: PY CKPT --x={{ x }} --steps={{ resource }} --seconds={seconds} --heartbeat=0.5
        """,
    "pbt": """
        hptuning:
          seed: 13
          pbt:
            population_size: 3
            perturbation_interval: 1
            max_resource: 6
            resource: {name: resource, type: int}
            metric: {name: loss, optimization: minimize}
          matrix:
            x: {uniform: [0, 1]}
        slurm: {time: "3"}
        run:
          cmd: PY CKPT --x={{ x }} --steps={{ resource }} --seconds={seconds} --heartbeat=0.5
        """,
}


def _fault_sequence(workdir, owner: str, backend: str, algorithm: str) -> Dict[str, Any]:
    study = fk.write_study(workdir, STUDIES[algorithm], seconds=TRIAL_SECONDS[backend])
    state = workdir / "state"
    runs = []
    first = fk.cli("submit", study, "--state-dir", str(state), "--backend", backend, "--poll-interval", "3",
                   "--foreground", env={"HPC_TUNE_FAULT": FAULTS[0]}, timeout=300)
    study_dir = fk.only_study(state)
    fk.CLEANUP.study(owner, study_dir)
    runs.append({"fault": FAULTS[0], "rc": first.returncode, **fk.progress(study_dir)})
    forked = fk.ForkedCLI(owner)
    try:
        for i, fault in enumerate(FAULTS[1:], 1):
            log = workdir / f"run-{i:02d}-{fault.replace(':', '-')}.log"
            rc = forked.run("resume", study_dir, "--foreground", log=log, env={"HPC_TUNE_FAULT": fault})
            runs.append({"fault": fault, "rc": rc, "tail": log.read_text()[-1500:], **fk.progress(study_dir)})
    finally:
        forked.close()
    final = fk.cli("resume", study_dir, "--foreground", timeout=600)
    return {"study_dir": study_dir, "runs": runs, "final_rc": final.returncode,
            "final_out": final.stdout[-3000:] + final.stderr[-3000:]}


for _backend in ("local", "slurm"):
    for _algorithm in ("asha", "pbt"):
        fk.scenario(f"kill9-{_algorithm}-{_backend}", slurm=_backend == "slurm", backend=_backend,
                    algorithm=_algorithm)(_fault_sequence)


def _common(r, backend):
    study_dir, runs = r["study_dir"], r["runs"]
    table = "\n".join(f"{x['fault']:>12} rc={x['rc']} trials={x['trials']} ended={x['ended']} "
                      f"study_end={x['study_end']}" for x in runs)
    assert not [x for x in runs if x["rc"] != -9], f"runs not killed by their fault:\n{table}"
    assert runs[-1]["study_end"] is None, f"the study ended before the last fault:\n{table}"
    assert r["final_rc"] == 0, r["final_out"]
    events = fk.journal(study_dir)
    assert [e["state"] for e in events if e["e"] == "study_end"] == ["finished"]
    trials = {e["id"]: e for e in events if e["e"] == "trial"}
    assert Counter(e["id"] for e in events if e["e"] == "end") == {tid: 1 for tid in trials}
    not_completed = [e for e in events if e["e"] == "end" and e["state"] != "completed"]
    assert not not_completed, not_completed
    jobs = fk.check_exactly_once(events)
    assert set(jobs) == {(tid, 0) for tid in trials}, "every trial submitted once, as attempt 0"
    fk.check_reports_match(study_dir, events)
    lines = {}
    for tid, t in trials.items():
        lines[tid] = fk.results(study_dir, tid)
        seen = fk.runs_of(lines[tid])
        assert seen and {x["job"] for x in seen} == {jobs[(tid, 0)]}, (tid, seen)
        assert backend == "slurm" or len(seen) == 1, f"trial {tid} ran {len(seen)} times"
        assert fk.last_step(lines[tid]) == t["resource"]
    return study_dir, trials, lines


@pytest.mark.parametrize("backend", ["local", pytest.param("slurm", marks=pytest.mark.slurm)])
@pytest.mark.scenario("kill9-asha-{backend}")
def test_kill9_asha_then_resume(scenario_result, backend):
    study_dir, trials, lines = _common(scenario_result(1500), backend)
    keys = [(t["meta"]["rung"], t["meta"]["config"]) for t in trials.values()]
    assert len(keys) == len(set(keys)), "a (rung, configuration) was created twice"
    assert Counter(k for k, _ in keys)[0] == 8
    for tid, t in trials.items():
        parent = t["meta"]["resume_from"]
        first_run = fk.runs_of(lines[tid])[0]
        if parent is None:
            assert t["meta"]["rung"] == 0 and not fk.resumed_from(lines[tid][:2])
        else:
            assert trials[parent]["params"] == t["params"]
            assert trials[parent]["meta"]["rung"] == t["meta"]["rung"] - 1
            # the promotion found its parent's checkpoint at the parent's last step
            assert fk.resumed_from(lines[tid])[0] == trials[parent]["resource"], (tid, lines[tid][:3])
            assert first_run["ckpt_dir"] == fk.runs_of(lines[parent])[0]["ckpt_dir"]


@pytest.mark.parametrize("backend", ["local", pytest.param("slurm", marks=pytest.mark.slurm)])
@pytest.mark.scenario("kill9-pbt-{backend}")
def test_kill9_pbt_then_resume(scenario_result, backend):
    study_dir, trials, lines = _common(scenario_result(1500), backend)
    keys = [(t["meta"]["member"], t["meta"]["interval"]) for t in trials.values()]
    assert sorted(keys) == [(m, i) for m in range(3) for i in range(6)]
    for tid, t in trials.items():
        own = os.path.join(study_dir, "trials", str(tid), "checkpoints")
        assert fk.runs_of(lines[tid])[0]["ckpt_dir"] == own
        src = t["meta"]["resume_from"]
        if src is None:
            assert t["meta"]["interval"] == 0 and not fk.resumed_from(lines[tid][:2])
        else:
            assert fk.resumed_from(lines[tid])[0] == trials[src]["resource"], (tid, lines[tid][:3])
    kept = {tid for tid in trials if os.path.isdir(os.path.join(study_dir, "trials", str(tid), "checkpoints"))}
    assert kept == {tid for tid, t in trials.items() if t["meta"]["interval"] == 5}
