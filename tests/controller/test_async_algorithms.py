"""ASHA and PBT through the controller with a process-free backend: the resource on the
command line, promotions continuing in their chain's checkpoint folder, PBT's copies
made before submission (checked from what each fake trial found in its own folder),
pruning of checkpoints no trial may start from, and ASHA's stopping mode."""
from __future__ import annotations

import json
import os
import textwrap

from fake_backend import FakeBackend, _params_of

from hpc_tune.controller import Controller
from hpc_tune.journal import load_view
from hpc_tune.paths import StudyPaths
from hpc_tune.search import pbt
from hpc_tune.spec import load_spec
from hpc_tune.study import create_study


def trial_dir(study_dir, tid):
    return StudyPaths(study_dir).trial(tid).root


def make_study(tmp_path, yaml_text, seed=1):
    path = tmp_path / "study.yml"
    path.write_text(textwrap.dedent(yaml_text))
    spec = load_spec(str(path))
    study_dir = create_study(str(path), spec, str(tmp_path / "state"), backend="fake", seed=seed)
    return study_dir, spec


class CheckpointingBackend(FakeBackend):
    """Each trial, when submitted, reads ``trail.json`` from its checkpoint folder (the
    trial ids that trained this model so far), records what it found in its own folder,
    appends its id and saves it back, then reports ``loss``."""

    def __init__(self, loss):
        super().__init__(objective=None, manual=True)
        self.loss = loss
        self.found = {}

    def submit(self, requests):
        ids = super().submit(requests)
        for job, r in zip(ids, requests):
            ckpt = r.env["HPC_TUNE_CHECKPOINT_DIR"]
            path = os.path.join(ckpt, "trail.json")
            trail = json.load(open(path)) if os.path.exists(path) else []
            tid = int(r.env["HPC_TUNE_TRIAL_ID"])
            self.found[tid] = {"trail": list(trail), "ckpt": ckpt}
            json.dump(trail + [tid], open(path, "w"))
            params = _params_of(r)
            self.finish(job, reports=[{"step": params["epochs"], "loss": self.loss(params)}])
        return ids


ASHA = """
hptuning:
  concurrency: 3
  seed: 4
  asha:
    max_resource: 9
    eta: 3
    n_experiments: 9
    resource: {name: epochs, type: int}
    metric: {name: loss, optimization: minimize}
  matrix:
    x: {uniform: [0, 1]}
run:
  cmd: echo --x={{ x }} --epochs={{ epochs }}
"""


def test_asha_promotions_continue_in_their_chain_folder_told_the_total(tmp_path):
    study_dir, spec = make_study(tmp_path, ASHA)
    backend = CheckpointingBackend(lambda p: (p["x"] - 0.3) ** 2 + 1.0 / p["epochs"])
    end = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0).run(max_cycles=200)
    assert end["state"] == "finished"
    view = load_view(study_dir)
    trials = view.trials
    assert sum(t.meta["rung"] == 0 for t in trials.values()) == 9
    assert any(t.meta["rung"] == 2 for t in trials.values())
    for tid, t in trials.items():
        assert backend.found[tid]["trail"] == ([] if t.meta["rung"] == 0 else
                                               backend.found[t.meta["parent"]]["trail"] + [t.meta["parent"]])
        root = tid
        while trials[root].resume_from is not None:
            root = trials[root].resume_from
        assert backend.found[tid]["ckpt"] == os.path.join(trial_dir(study_dir, root), "checkpoints")
        assert t.resource == [1, 3, 9][t.meta["rung"]]


PBT = """
matrix:
  kind: pbt
  seed: 2
  populationSize: 4
  perturbationInterval: 1
  maxResource: 4
  keepCheckpoints: {keep}
  resource: {{name: epochs, type: int}}
  metric: {{name: loss, optimization: minimize}}
  params:
    x: {{kind: uniform, value: [0, 1]}}
run:
  cmd: echo --x={{{{ x }}}} --epochs={{{{ epochs }}}}
"""


def _run_pbt(tmp_path, keep):
    study_dir, spec = make_study(tmp_path, PBT.format(keep=keep))
    assert spec.concurrency == 4
    backend = CheckpointingBackend(lambda p: abs(p["x"] - 0.7))
    end = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0).run(max_cycles=200)
    assert end["state"] == "finished"
    return study_dir, spec, backend, load_view(study_dir)


def test_pbt_copies_the_source_checkpoint_into_the_trials_own_folder_before_submission(tmp_path):
    study_dir, spec, backend, view = _run_pbt(tmp_path, "all")
    trials = view.trials
    assert len(trials) == 16
    assert any(t.meta["donor"] is not None for t in trials.values())  # someone exploited
    for tid, t in trials.items():
        own = os.path.join(trial_dir(study_dir, tid), "checkpoints")
        assert backend.found[tid]["ckpt"] == own  # every trial writes only its own folder
        src = t.resume_from
        assert src == t.meta["resume_from"]
        # what it found is exactly what its source had saved: a copy made before it ran
        assert backend.found[tid]["trail"] == ([] if src is None else backend.found[src]["trail"] + [src])
        # and the source's own checkpoint was never changed by anyone after it
        assert json.load(open(os.path.join(own, "trail.json"))) == backend.found[tid]["trail"] + [tid]
    assert not [p for p in os.listdir(os.path.join(study_dir, "trials"))
                if p.endswith(".copying")]


def test_pbt_prunes_the_checkpoints_no_trial_may_start_from(tmp_path):
    study_dir, spec, backend, view = _run_pbt(tmp_path, "needed")
    kept = {tid for tid in view.trials if os.path.isdir(os.path.join(trial_dir(study_dir, tid), "checkpoints"))}
    final = {tid for tid, t in view.trials.items() if t.meta["interval"] == 3}
    assert kept == final == pbt.checkpoints_needed(spec.algorithm, view.history())


ASHA_STOPPING = """
hptuning:
  concurrency: 9
  seed: 4
  asha:
    max_resource: 9
    eta: 3
    n_experiments: 9
    mode: stopping
    resource: {name: epochs, type: int}
    metric: {name: loss, optimization: minimize}
  matrix:
    x: {uniform: [0, 1]}
run:
  cmd: echo --x={{ x }} --epochs={{ epochs }}
"""


def test_asha_stopping_mode_stops_trials_at_the_rungs_through_the_stopping_rules(tmp_path):
    study_dir, spec = make_study(tmp_path, ASHA_STOPPING)
    backend = FakeBackend(manual=True)
    controller = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0)
    controller.run(max_cycles=1)
    jobs = {int(r.env["HPC_TUNE_TRIAL_ID"]): job for job, r in backend.requests.items()}
    assert len(jobs) == 9 and all(r.command.endswith("--epochs=9") for r in backend.requests.values())
    # every trial reports step by step; the controller looks after each step
    early = dict(enumerate((0.5, 0.4, 0.3, 0.2, 0.1, 0.6, 0.7, 0.8, 0.9)))  # steps 1-2 (rung 0 is at 1)
    late = {2: 0.3, 3: 0.1, 4: 0.2}  # steps 3-9 (rung 1 is at 3)
    for step in range(1, 10):
        for tid, job in sorted(jobs.items()):
            if load_view(study_dir).trials[tid].state.finished:
                continue
            r = backend.requests[job]
            loss = early[tid] if step < 3 else late[tid]
            with open(r.env["HPC_TUNE_RESULT_FILE"], "a") as fh:
                fh.write(json.dumps({"step": step, "loss": loss}) + "\n")
            if step == 9:
                backend.finish(job, reports=[])
        controller.run(max_cycles=1)
    view = load_view(study_dir)
    states = {tid: view.trials[tid].state.value for tid in jobs}
    # rung 0: all nine arrive together, the top 3 of 9 (trials 4, 3, 2) go on; rung 1: the
    # top 1 of those 3 (trial 3) goes on to R
    assert states == {0: "stopped", 1: "stopped", 2: "stopped", 3: "completed", 4: "stopped", 5: "stopped",
                      6: "stopped", 7: "stopped", 8: "stopped"}
    for tid, t in view.trials.items():
        if tid == 3:
            continue
        rung = 1 if tid in (2, 4) else 0
        assert "ASHA" in t.reason and f"rung {rung}" in t.reason, t.reason
        assert t.value == (late if rung else early)[tid]
        assert bk_cancelled(backend, jobs[tid])
    assert view.ended["state"] == "finished"


def bk_cancelled(backend, job):
    return job in backend.cancelled


def loss(p):
    return (p["x"] - 0.3) ** 2 + 1.0 / p["epochs"]


def _trials_of(study_dir):
    view = load_view(study_dir)
    return [(t.params, t.resource, t.meta) for _, t in sorted(view.trials.items())]


def test_a_controller_restarted_every_cycle_creates_the_same_trials(tmp_path):
    """Restart-exactness through the journal: a new controller (replaying the journal) at
    every cycle creates exactly the trials one uninterrupted controller creates."""
    for name, text in (("asha", ASHA), ("pbt", PBT.format(keep="needed"))):
        for sub in ("one", "many"):
            (tmp_path / name / sub).mkdir(parents=True)
        one_dir, spec = make_study(tmp_path / name / "one", text)
        Controller(one_dir, spec, CheckpointingBackend(loss), poll_interval=0.0, tick=0.0).run(max_cycles=200)
        many_dir, spec = make_study(tmp_path / name / "many", text)
        backend = CheckpointingBackend(loss)
        for _ in range(200):
            end = Controller(many_dir, spec, backend, poll_interval=0.0, tick=0.0).run(max_cycles=1)
            if end["state"] == "finished":
                break
        assert load_view(many_dir).ended["state"] == "finished"
        assert _trials_of(many_dir) == _trials_of(one_dir)
