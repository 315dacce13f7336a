"""The controller's logic, driven through the journal with a process-free backend."""
from __future__ import annotations

import textwrap
from collections import Counter

import pytest
from fake_backend import FakeBackend

from hpc_tune.backends import JobState
from hpc_tune.controller import Controller
from hpc_tune.journal import Journal, load_view
from hpc_tune.search.hyperband import brackets
from hpc_tune.spec import load_spec
from hpc_tune.study import create_study


def make_study(tmp_path, yaml_text, seed=1):
    path = tmp_path / "study.yml"
    path.write_text(textwrap.dedent(yaml_text))
    spec = load_spec(str(path))
    study_dir = create_study(str(path), spec, str(tmp_path / "state"), backend="fake", seed=seed)
    return study_dir, spec


def run(study_dir, spec, backend, max_cycles=500):
    controller = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0)
    return controller.run(max_cycles=max_cycles)


def max_live(study_dir):
    """The largest number of trials that were live at once, from the journal."""
    live, peak = set(), 0
    for e in Journal(study_dir).events():
        if e["e"] == "trial":
            live.add(e["id"])
        elif e["e"] == "end":
            live.discard(e["id"])
        peak = max(peak, len(live))
    return peak


def quadratic(params, resource):
    x = float(params["x"])
    return [{"step": 1, "loss": (x - 0.3) ** 2}]


GRID = """
hptuning:
  concurrency: 3
  metric: {name: loss, optimization: minimize}
  matrix:
    x: {linspace: "0:1:8"}
run:
  cmd: echo --x={{ x }}
"""


def test_grid_study_runs_every_trial_within_concurrency(tmp_path):
    study_dir, spec = make_study(tmp_path, GRID)
    end = run(study_dir, spec, FakeBackend(quadratic))
    assert end["state"] == "finished"
    view = load_view(study_dir)
    assert [t.state.value for t in view.trials.values()] == ["completed"] * 8
    assert max_live(study_dir) <= 3
    best = min(view.trials.values(), key=lambda t: t.value)
    assert best.params["x"] == pytest.approx(2 / 7)
    assert all(t.value == pytest.approx((t.params["x"] - 0.3) ** 2) for t in view.trials.values())


def test_hyperband_runs_exactly_the_planned_rungs(tmp_path):
    study_dir, spec = make_study(tmp_path, """
        hptuning:
          concurrency: 4
          hyperband:
            max_iter: 9
            eta: 3
            resource: {name: resource, type: int}
            metric: {name: loss, optimization: minimize}
          matrix:
            x: {uniform: [0, 1]}
        run:
          cmd: echo --x={{ x }} --resource={{ resource }}
        """)
    end = run(study_dir, spec, FakeBackend(lambda p, r: [{"loss": (p["x"] - 0.3) ** 2 / r}]))
    assert end["state"] == "finished"
    view = load_view(study_dir)
    seen = Counter((t.meta["bracket"], t.meta["rung"]) for t in view.trials.values())
    planned = {(b.s, i): r.n for b in brackets(spec.algorithm) for i, r in enumerate(b.rungs)}
    assert dict(seen) == planned
    assert max_live(study_dir) <= 4


def test_bayes_study_finishes(tmp_path):
    study_dir, spec = make_study(tmp_path, """
        hptuning:
          concurrency: 2
          bo:
            n_initial_trials: 4
            n_iterations: 4
            metric: {name: loss, optimization: minimize}
          matrix:
            x: {uniform: [0, 1]}
        run:
          cmd: echo --x={{ x }}
        """)
    end = run(study_dir, spec, FakeBackend(quadratic))
    view = load_view(study_dir)
    assert end["state"] == "finished" and len(view.trials) == 8
    assert all(t.state.value == "completed" for t in view.trials.values())


def test_threshold_early_stop_cancels_live_trials(tmp_path):
    study_dir, spec = make_study(tmp_path, """
        hptuning:
          concurrency: 3
          random_search: {n_experiments: 20}
          early_stopping:
            - {metric: acc, value: 0.9, optimization: maximize}
          matrix:
            x: {uniform: [0, 1]}
        run:
          cmd: echo --x={{ x }}
        """)
    backend = FakeBackend(manual=True)
    controller = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0)
    controller.run(max_cycles=1)
    jobs = list(backend.requests)
    assert len(jobs) == 3
    backend.finish(jobs[0], reports=[{"acc": 0.95}])
    end = controller.run(max_cycles=3)
    assert end["state"] == "early_stopped" and "acc = 0.95" in end["reason"]
    view = load_view(study_dir)
    assert [t.state.value for t in view.trials.values()] == ["completed", "cancelled", "cancelled"]
    assert set(backend.cancelled) == set(jobs[1:])


def test_failure_percentage_stops_the_study(tmp_path):
    study_dir, spec = make_study(tmp_path, """
        matrix:
          kind: random
          numRuns: 10
          concurrency: 1
          metric: {name: loss, optimization: minimize}
          earlyStopping:
            - {kind: failure_early_stopping, percent: 50}
          params:
            x: {kind: uniform, value: [0, 1]}
        run:
          cmd: echo --x={{ x }}
        """)
    end = run(study_dir, spec, FakeBackend(lambda p, r: 1))
    assert end["state"] == "early_stopped" and "failed" in end["reason"]
    assert len(load_view(study_dir).trials) == 1


def test_exit_zero_without_the_metric_fails_the_trial(tmp_path):
    study_dir, spec = make_study(tmp_path, GRID)
    run(study_dir, spec, FakeBackend(lambda p, r: [{"other": 1.0}]))
    view = load_view(study_dir)
    assert all(t.state.value == "failed" for t in view.trials.values())
    assert "without reporting `loss`" in view.trials[0].reason


def test_garbage_result_lines_are_skipped_with_a_warning(tmp_path):
    study_dir, spec = make_study(tmp_path, GRID)
    end = run(study_dir, spec, FakeBackend(lambda p, r: ["{not json", "[1, 2]", {"loss": 0.5}, "\x00\x01"]))
    view = load_view(study_dir)
    assert end["state"] == "finished"
    assert all(t.state.value == "completed" and t.value == 0.5 for t in view.trials.values())
    assert sum("malformed" in w for w in view.warnings) == 3 * 8


def test_timeout_is_retried_up_to_the_limit_and_preemption_is_free(tmp_path):
    study_dir, spec = make_study(tmp_path, GRID.replace("concurrency: 3", "concurrency: 1")
                                 + "slurm: {max_retries: 2}\n")
    backend = FakeBackend(manual=True)
    controller = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0)
    controller.run(max_cycles=1)
    for state in (JobState.PREEMPTED, JobState.TIMEOUT, JobState.NODE_FAIL, JobState.TIMEOUT):
        job = list(backend.requests)[-1]
        backend.set_state(job, state)
        controller.run(max_cycles=1)
    view = load_view(study_dir)
    t0 = view.trials[0]
    assert t0.state.value == "failed" and "no retries left" in t0.reason
    assert t0.attempt == 3 and t0.retries == 2  # the preemption did not count
    # every attempt ran in the same trial folder, with its attempt number
    attempts = [r.env["HPC_TUNE_ATTEMPT"] for r in backend.requests.values() if r.trial_id == 0]
    assert attempts == ["0", "1", "2", "3"]


def test_a_trial_recorded_but_not_submitted_is_adopted_or_submitted(tmp_path):
    study_dir, spec = make_study(tmp_path, GRID)
    journal = Journal(study_dir)
    # a controller died after recording two trials; trial 0's job reached Slurm, trial 1's did not
    journal.append({"e": "trial", "id": 0, "params": {"x": 0.0}, "resource": None, "meta": {"index": 0}},
                   {"e": "trial", "id": 1, "params": {"x": 1 / 7}, "resource": None, "meta": {"index": 1}})
    backend = FakeBackend(manual=True)
    study_id = load_view(study_dir).study_id
    backend.live_names = {"999": f"hpct-{study_id}-0"}
    backend.set_state("999", JobState.RUNNING)
    controller = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0)
    controller.run(max_cycles=1)
    view = load_view(study_dir)
    assert view.trials[0].job_id == "999"
    assert view.trials[1].job_id is not None and view.trials[1].job_id != "999"
    assert [r.trial_id for r in backend.requests.values()].count(0) == 0  # adopted, not resubmitted


def test_restarts_never_duplicate_and_finish_the_plan(tmp_path):
    study_dir, spec = make_study(tmp_path, GRID)
    backend = FakeBackend(quadratic)
    for _ in range(20):  # a new controller every cycle
        end = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0).run(max_cycles=1)
        if end["state"] != "interrupted":
            break
    view = load_view(study_dir)
    assert view.ended["state"] == "finished"
    keys = [tuple(sorted(t.params.items())) for t in view.trials.values()]
    assert len(keys) == len(set(keys)) == 8


def test_cancel_event_stops_the_study(tmp_path):
    study_dir, spec = make_study(tmp_path, GRID)
    backend = FakeBackend(manual=True)
    controller = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0)
    controller.run(max_cycles=1)
    Journal(study_dir).append({"e": "cancel", "reason": "cancelled by the user"})
    end = controller.run(max_cycles=2)
    assert end["state"] == "cancelled"
    assert sorted(backend.cancelled) == sorted(backend.requests)
    assert all(t.state.value == "cancelled" for t in load_view(study_dir).trials.values())


def test_median_policy_stops_a_bad_trial(tmp_path):
    study_dir, spec = make_study(tmp_path, """
        matrix:
          kind: grid
          concurrency: 5
          metric: {name: loss, optimization: minimize}
          earlyStopping:
            - kind: metric_early_stopping
              metric: loss
              optimization: minimize
              policy: {kind: median, minSamples: 3, minInterval: 2}
          params:
            x: {kind: choice, value: [1, 2, 3, 4, 50]}
        run:
          cmd: echo --x={{ x }}
        """)
    backend = FakeBackend(manual=True)
    controller = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0)
    controller.run(max_cycles=1)
    jobs = list(backend.requests)
    for job in jobs[:4]:
        x = backend.requests[job].command.split("=")[-1]
        backend.finish(job, reports=[{"step": s, "loss": float(x) / s} for s in (1, 2, 3)])
    bad = jobs[4]
    with open(backend.requests[bad].env["HPC_TUNE_RESULT_FILE"], "a") as fh:
        fh.write('{"step": 1, "loss": 50}\n{"step": 2, "loss": 49}\n')
    controller.run(max_cycles=2)
    view = load_view(study_dir)
    assert view.trials[4].state.value == "stopped" and "median" in view.trials[4].reason
    assert bad in backend.cancelled


def test_a_cycle_journals_all_reports_in_one_append_and_all_ends_in_another(tmp_path, monkeypatch):
    """With many trials ending at once, a cycle's appends do not grow with the number of
    trials (each append locks, fsyncs and re-reads the journal)."""
    study_dir, spec = make_study(tmp_path, """
        hptuning:
          concurrency: 12
          metric: {name: loss, optimization: minimize}
          matrix:
            x: {linspace: "0:1:12"}
        run:
          cmd: echo --x={{ x }}
    """)
    backend = FakeBackend(quadratic, manual=True)
    controller = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0)
    controller.cycle()  # creates and submits the 12 trials
    assert len(controller.view.live()) == 12
    for job in list(backend.requests):
        backend.finish(job)
    appends = []
    real_append = Journal.append
    monkeypatch.setattr(Journal, "append", lambda self, *ev, **kw: (appends.append([e["e"] for e in ev]),
                                                                    real_append(self, *ev, **kw))[1])
    controller.cycle()
    assert appends[:2] == [["report"] * 12, ["end"] * 12]
    assert all(t.state.value == "completed" and t.value is not None for t in controller.view.trials.values())


def test_pause_between_cycles_is_short_with_few_live_trials_and_grows_with_many(tmp_path):
    from hpc_tune.controller import MAX_TICK, MIN_TICK

    study_dir, spec = make_study(tmp_path, """
        hptuning:
          concurrency: 100
          metric: {name: loss, optimization: minimize}
          matrix:
            x: {linspace: "0:1:100"}
        run:
          cmd: echo --x={{ x }}
    """)
    controller = Controller(study_dir, spec, FakeBackend(quadratic, manual=True), poll_interval=0.0)
    assert controller._sleep_time() == MIN_TICK  # nothing live yet: a freed slot is seen at once
    controller.cycle()
    assert len(controller.view.live()) == 100
    assert MIN_TICK < controller._sleep_time() < MAX_TICK  # 200 file checks a cycle: spread out
    assert Controller(study_dir, spec, FakeBackend(), tick=2.0)._sleep_time() == 2.0  # given: kept


def test_a_pending_trial_is_running_once_its_start_record_names_its_job(tmp_path, monkeypatch):
    import json
    import os

    from hpc_tune.controller import loop

    study_dir, spec = make_study(tmp_path, GRID)
    backend = FakeBackend(manual=True)  # PENDING to every poll
    controller = Controller(study_dir, spec, backend, poll_interval=3600.0, tick=0.0)
    controller.cycle()  # submits; the first poll is due at once
    controller.cycle()  # ... and done: no poll for an hour
    jobs = {t.trial_id: t.job_id for t in controller.view.live()}
    assert jobs and all(t.state.value == "pending" for t in controller.view.live())

    def start(tid, job):
        with open(os.path.join(study_dir, "trials", str(tid), "started.json"), "w") as fh:
            json.dump({"job_id": job, "attempt": 0}, fh)

    first, second = sorted(jobs)[:2]
    start(first, jobs[first])
    start(second, "an-earlier-job")  # a record left by another job of the folder: not this one
    clock = [1000.0]
    monkeypatch.setattr(loop.time, "monotonic", lambda: clock[0])
    controller._last_start_check = clock[0]  # just checked: the next check is a second away
    controller.cycle()
    assert controller.view.trials[first].state.value == "pending"
    clock[0] += loop.START_CHECK_EVERY_S
    controller.cycle()
    states = {t: controller.view.trials[t] for t in (first, second)}
    assert states[first].state.value == "running" and states[first].raw_state == "started"
    assert states[second].state.value == "pending"
