"""A busy or failing scheduler, wherever the controller calls it (submit, poll, cancel,
adoption): the controller backs off under one rule and carries on; nothing is lost."""
from __future__ import annotations

import textwrap

import pytest
from fake_backend import FakeBackend

from hpc_tune.backends import BackendBusy, BackendError, JobState
from hpc_tune.backends.slurm_commands import Backoff, retrying
from hpc_tune.controller import Controller
from hpc_tune.journal import Journal, load_view
from hpc_tune.spec import load_spec
from hpc_tune.study import create_study

GRID = """
hptuning:
  concurrency: 3
  metric: {name: loss, optimization: minimize}
  matrix:
    x: {values: [1, 2, 3, 4, 5, 6]}
run:
  cmd: echo --x={{ x }}
"""


class FlakyBackend(FakeBackend):
    """Raises ``error`` from the calls named in ``fail`` while ``failures[call]`` > 0."""

    def __init__(self, *a, failures=None, error=BackendBusy, **kw):
        super().__init__(*a, **kw)
        self.failures = dict(failures or {})
        self.error = error
        self.raised = {}

    def _maybe_fail(self, call):
        if self.failures.get(call, 0) > 0:
            self.failures[call] -= 1
            self.raised[call] = self.raised.get(call, 0) + 1
            raise self.error(f"{call}: Socket timed out on send/recv operation")

    def submit(self, requests):
        self._maybe_fail("submit")
        return super().submit(requests)

    def poll(self, job_ids):
        self._maybe_fail("poll")
        return super().poll(job_ids)

    def cancel(self, job_ids):
        self._maybe_fail("cancel")
        return super().cancel(job_ids)

    def find_jobs(self, name_prefix):
        self._maybe_fail("find_jobs")
        return super().find_jobs(name_prefix)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def make(tmp_path, text=GRID):
    path = tmp_path / "study.yml"
    path.write_text(textwrap.dedent(text))
    spec = load_spec(str(path))
    return create_study(str(path), spec, str(tmp_path / "state"), backend="fake", seed=1), spec


def controller_with_clock(study_dir, spec, backend):
    c = Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0)
    clock = Clock()
    c.backoff = Backoff(clock)
    c.poll_backoff = Backoff(clock)
    return c, clock


def cycles(c, clock, n, dt=1.0):
    for _ in range(n):
        if c.view.ended is not None:
            return
        c.cycle()
        clock.now += dt


def test_the_back_off_rule():
    clock = Clock()
    b = Backoff(clock)
    assert b.ready()
    assert [b.failed() for _ in range(8)] == [5, 10, 20, 40, 80, 160, 300, 300]
    assert not b.ready()
    clock.now = 299.9
    assert not b.ready()
    clock.now = 300.0
    assert b.ready()
    b.succeeded()
    assert b.failed() == 5


def test_retrying_a_one_shot_command_backs_off_then_gives_up():
    slept, calls = [], []

    def busy():
        calls.append(1)
        raise BackendBusy("slurmctld busy")

    with pytest.raises(BackendBusy):
        retrying(busy, attempts=3, sleep=slept.append)
    assert len(calls) == 3 and slept == [5, 10]
    answers = iter([BackendBusy("busy"), "123"])

    def once_busy():
        a = next(answers)
        if isinstance(a, Exception):
            raise a
        return a

    assert retrying(once_busy, sleep=slept.append) == "123"


@pytest.mark.parametrize("error", [BackendBusy, BackendError])
def test_a_busy_or_failing_scheduler_during_a_cancel_does_not_stop_the_controller(tmp_path, error):
    study_dir, spec = make(tmp_path)
    backend = FlakyBackend(manual=True, failures={"cancel": 3}, error=error)
    c, clock = controller_with_clock(study_dir, spec, backend)
    cycles(c, clock, 1)
    Journal(study_dir).append({"e": "cancel", "reason": "cancelled by the user"})
    c.cycle()  # scancel is busy: nothing journaled, the controller lives on
    assert c.view.ended is None and backend.raised["cancel"] == 1
    c.cycle()  # backing off: scancel not even tried
    assert backend.raised["cancel"] == 1
    cycles(c, clock, 50, dt=60.0)
    view = load_view(study_dir)
    assert view.ended["state"] == "cancelled" and backend.raised["cancel"] == 3
    assert sorted(backend.cancelled) == sorted(backend.requests)
    assert all(t.state.value == "cancelled" for t in view.trials.values())


def test_a_busy_scheduler_during_early_stopping_delays_the_stop_and_loses_nothing(tmp_path):
    study_dir, spec = make(tmp_path, GRID.replace("  matrix:", "  early_stopping:\n    - {metric: loss, value: 0.1, "
                                                                 "optimization: minimize}\n  matrix:"))
    backend = FlakyBackend(manual=True, failures={"cancel": 2})
    c, clock = controller_with_clock(study_dir, spec, backend)
    cycles(c, clock, 1)
    jobs = list(backend.requests)
    backend.finish(jobs[0], reports=[{"loss": 0.05}])
    cycles(c, clock, 30, dt=30.0)
    view = load_view(study_dir)
    assert view.ended["state"] == "early_stopped" and backend.raised["cancel"] == 2
    assert view.trials[0].state.value == "completed" and view.trials[0].value == 0.05
    assert set(backend.cancelled) == set(jobs[1:])


def test_a_busy_scheduler_during_adoption_holds_submissions_back_until_it_answers(tmp_path):
    study_dir, spec = make(tmp_path)
    Journal(study_dir).append({"e": "trial", "id": 0, "params": {"x": 1}, "resource": None, "meta": {"index": 0}})
    backend = FlakyBackend(manual=True, failures={"find_jobs": 2})
    study_id = load_view(study_dir).study_id
    backend.live_names = {"999": f"hpct-{study_id}-0"}
    backend.set_state("999", JobState.RUNNING)
    c, clock = controller_with_clock(study_dir, spec, backend)
    c.cycle()
    assert backend.requests == {} and backend.raised["find_jobs"] == 1  # nothing submitted: it could run twice
    cycles(c, clock, 10, dt=30.0)
    view = load_view(study_dir)
    assert view.trials[0].job_id == "999"  # adopted, not resubmitted
    assert 0 not in [r.trial_id for r in backend.requests.values()]
    assert len(view.trials) == 3


def test_a_busy_scheduler_during_polls_and_submissions_still_finishes_the_study(tmp_path):
    from test_controller import quadratic

    study_dir, spec = make(tmp_path)
    backend = FlakyBackend(quadratic, failures={"poll": 3, "submit": 3})
    c, clock = controller_with_clock(study_dir, spec, backend)
    cycles(c, clock, 200, dt=30.0)
    view = load_view(study_dir)
    assert view.ended["state"] == "finished"
    assert backend.raised["submit"] == 3 and backend.raised["poll"] >= 1
    assert [t.state.value for t in view.trials.values()] == ["completed"] * 6


@pytest.mark.parametrize("error", [BackendBusy, BackendError])
def test_a_failing_poll_is_no_news_backs_off_the_polls_and_submissions_go_on(tmp_path, error):
    """A failed poll (on Slurm: sacct, i.e. slurmdbd) changes no trial, backs off only the
    polls, and the study still ends with every trial completed, each submitted once."""
    from test_controller import quadratic

    study_dir, spec = make(tmp_path)
    backend = FlakyBackend(quadratic, manual=True, failures={"poll": 3}, error=error)
    c, clock = controller_with_clock(study_dir, spec, backend)
    c.cycle()  # three trials submitted
    first = list(backend.requests)
    assert len(first) == 3
    before = [(t.state, t.raw_state) for t in load_view(study_dir).trials.values()]
    for job in first:
        backend.set_state(job, JobState.FAILED)  # what a poll would say, if it answered
    c.cycle()  # the poll fails: no news
    assert backend.raised["poll"] == 1
    assert [(t.state, t.raw_state) for t in load_view(study_dir).trials.values()] == before
    c.cycle()  # polls back off (5 s): not even tried
    assert backend.raised["poll"] == 1 and backend.calls["sacct"] == 0
    assert [(t.state, t.raw_state) for t in load_view(study_dir).trials.values()] == before
    backend.finish(first[0], reports=[{"loss": 0.5}])  # its exit record ends it: no poll needed
    c.cycle()
    view = load_view(study_dir)
    assert view.trials[0].state.value == "completed" and backend.raised["poll"] == 1
    assert len(backend.requests) == 4  # the free slot was filled while the polls back off
    for job in list(backend.requests)[1:]:
        backend.finish(job, reports=[{"loss": 0.25}])  # the jobs truly ended well
    backend.manual = False
    cycles(c, clock, 100, dt=30.0)
    view = load_view(study_dir)
    assert view.ended["state"] == "finished"
    assert [t.state.value for t in view.trials.values()] == ["completed"] * 6
    submitted = [e["id"] for e in Journal(study_dir).events() if e["e"] == "submitted"]
    assert sorted(submitted) == list(range(6))  # no trial submitted twice
