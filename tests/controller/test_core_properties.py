"""Property tests of the decision core and the loop around it (hypothesis).

Random sequences of backend news (job states), trial files (result lines, garbage, torn
lines, exit records), kills (the controller dies at one of its fault points) and restarts
(a new controller reads the journal) never break the invariants:

* live trials <= concurrency, at every point of the journal;
* one end per trial;
* never two live jobs of one trial (checked by the backend at every submission);
* every complete result line reaches the journal exactly once, as written;
* a controller started on the journal decides exactly what the running one decides, given
  the same news (its fold equals the running one's, and so do the core's answers).
"""
from __future__ import annotations

import json
import os
import textwrap
from typing import Dict, List, Optional, Sequence

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import hpc_tune.controller.loop as loop_module
from hpc_tune.backends import Backend, JobRequest, JobState, JobStatus
from hpc_tune.controller import Controller
from hpc_tune.journal import Journal, load_view
from hpc_tune.protocol import EXIT_RECORD, write_json_atomic
from hpc_tune.spec import load_spec
from hpc_tune.study import create_study

CONCURRENCY = 2

SPECS = {
    "grid": """
        hptuning:
          concurrency: 2
          metric: {name: loss, optimization: minimize}
          matrix:
            x: {values: [1, 2, 3, 4, 5]}
        run:
          cmd: echo --x={{ x }}
        slurm: {max_retries: 1}
    """,
    "median": """
        matrix:
          kind: random
          numRuns: 6
          concurrency: 2
          metric: {name: loss, optimization: minimize}
          earlyStopping:
            - kind: metric_early_stopping
              metric: loss
              optimization: minimize
              policy: {kind: median, minSamples: 1, minInterval: 2}
          params:
            x: {kind: uniform, value: [0, 1]}
        run:
          cmd: echo --x={{ x }}
    """,
}


class Killed(BaseException):
    """The controller died here (as with kill -9): nothing after this point happens."""


class ScriptedBackend(Backend):
    """Jobs change state only when the test says so; refuses to run a trial twice at once."""

    name = "scripted"

    def __init__(self) -> None:
        super().__init__()
        self.jobs: Dict[str, JobRequest] = {}
        self.states: Dict[str, JobState] = {}
        self.n = 0

    def live_jobs(self) -> List[str]:
        return [j for j, s in self.states.items() if s.live]

    def submit(self, requests: Sequence[JobRequest]) -> List[str]:
        ids = []
        for r in requests:
            running = [j for j in self.live_jobs() if self.jobs[j].trial_id == r.trial_id]
            assert not running, f"trial {r.trial_id} submitted while its job {running} is live"
            self.n += 1
            job = f"job-{self.n}"
            self.jobs[job] = r
            self.states[job] = JobState.PENDING
            ids.append(job)
        return ids

    def poll(self, job_ids: Sequence[str]) -> Dict[str, JobStatus]:
        return {j: JobStatus(j, self.states.get(j, JobState.LOST), raw=self.states.get(j, JobState.LOST).value)
                for j in job_ids}

    def cancel(self, job_ids: Sequence[str]) -> None:
        for j in job_ids:
            if j in self.states and self.states[j].live:
                self.states[j] = JobState.CANCELLED

    def find_jobs(self, name_prefix: str) -> Dict[str, str]:
        return {j: self.jobs[j].name for j in self.live_jobs() if self.jobs[j].name.startswith(name_prefix)}

    # -- what a trial does
    def write_lines(self, job: str, lines: Sequence[str]) -> None:
        with open(self.jobs[job].env["HPC_TUNE_RESULT_FILE"], "a") as fh:
            fh.write("".join(lines))

    def exit(self, job: str, code: int) -> None:
        r = self.jobs[job]
        write_json_atomic(os.path.join(r.trial_dir, EXIT_RECORD),
                          {"exit_code": code, "signal": None, "job_id": job, "attempt": r.attempt,
                           "restart_count": 0, "signals_received": []})
        self.states[job] = JobState.COMPLETED if code == 0 else JobState.FAILED


line = st.one_of(
    st.builds(lambda s, v: json.dumps({"step": s, "loss": v}) + "\n", st.integers(1, 5),
              st.floats(0, 10, allow_nan=False)),
    st.sampled_from(["{not json\n", "[1, 2]\n", '{"other": 1}\n', '{"loss": 0.5, "step": 1}']),  # last: torn
)
action = st.one_of(
    st.just(("cycle",)),
    st.just(("restart",)),
    st.tuples(st.just("kill"), st.sampled_from(["cycle", "reported", "ended", "recorded", "submitted"])),
    st.tuples(st.just("job"), st.integers(0, 3),
              st.sampled_from([JobState.RUNNING, JobState.TIMEOUT, JobState.PREEMPTED, JobState.NODE_FAIL,
                               JobState.LOST, JobState.CANCELLED, JobState.FAILED, JobState.COMPLETED])),
    st.tuples(st.just("lines"), st.integers(0, 3), st.lists(line, max_size=3)),
    st.tuples(st.just("exit"), st.integers(0, 3), st.sampled_from([0, 0, 1]), st.lists(line, max_size=2)),
)


def make_study(tmp_path, text):
    path = tmp_path / "study.yml"
    path.write_text(textwrap.dedent(text))
    spec = load_spec(str(path))
    return create_study(str(path), spec, str(tmp_path / "state"), backend="scripted", seed=3), spec


def fold_summary(view):
    return ({tid: (t.state, t.value, t.job_id, t.attempt, t.retries, t.submitted, t.raw_state, t.n_reports,
                   t.result_offset, dict(t.last_values), t.reason) for tid, t in view.trials.items()},
            view.ended, view.cancel_requested, view.warnings)


def decisions(controller, view, news):
    core = controller.core
    as_json = lambda d: ([e.to_json() for e in d.events], d.cancel, d.submit)  # noqa: E731
    return ([e.to_json() for e in core.reports(view, news)], as_json(core.outcomes(view, news)),
            as_json(core.stopping(view)), as_json(core.new_trials(view)) if view.ended is None else None)


def check_journal(study_dir, backend):
    live, ends = set(), {}
    reports: Dict[int, List[int]] = {}
    for e in Journal(study_dir).events():
        if e["e"] == "trial":
            live.add(e["id"])
        elif e["e"] == "end":
            ends[e["id"]] = ends.get(e["id"], 0) + 1
            live.discard(e["id"])
        elif e["e"] == "report":
            reports.setdefault(e["id"], []).append((e["end"], e["data"]))
        assert len(live) <= CONCURRENCY, "more live trials than the concurrency"
    assert all(n == 1 for n in ends.values()), f"a trial ended twice: {ends}"
    for tid, got in reports.items():
        ends_at = [end for end, _ in got]
        assert ends_at == sorted(set(ends_at)), f"trial {tid}: a result line journaled twice"
        path = os.path.join(study_dir, "trials", str(tid), "result.jsonl")
        with open(path, "rb") as fh:
            data = fh.read()
        start = 0
        for end, copied in got:  # each report is the line that ends there, as written
            raw = data[start:end]
            assert raw.endswith(b"\n")
            try:
                obj = json.loads(raw)
            except ValueError:
                obj = None
            assert copied == (obj if isinstance(obj, dict) else None)
            start = end


@pytest.mark.parametrize("kind", sorted(SPECS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(steps=st.lists(action, min_size=3, max_size=40))
# the crashes that must not run a trial twice: between sbatch and the journal, after recording
@example(steps=[("kill", "submitted"), ("cycle",)])
@example(steps=[("kill", "recorded"), ("exit", 0, 0, []), ("cycle",)])
@example(steps=[("cycle",), ("exit", 0, 0, ['{"loss": 1}\n']), ("kill", "reported"), ("cycle",)])
@example(steps=[("cycle",), ("exit", 1, 0, ['{"loss": 1}\n']), ("kill", "ended"), ("cycle",)])
def test_random_news_kills_and_restarts_keep_the_invariants(tmp_path_factory, monkeypatch, kind, steps):
    tmp_path = tmp_path_factory.mktemp("study")
    study_dir, spec = make_study(tmp_path, SPECS[kind])
    backend = ScriptedBackend()
    armed: List[Optional[str]] = [None]

    def fault(point: str) -> None:
        if armed[0] == point:
            armed[0] = None
            raise Killed(point)

    monkeypatch.setattr(loop_module, "fault", fault)
    new = lambda: Controller(study_dir, spec, backend, poll_interval=0.0, tick=0.0)  # noqa: E731
    controller = new()
    controller._attach_live_jobs()

    for step in steps:
        live = backend.live_jobs()
        if step[0] == "cycle":
            controller.cycle()
        elif step[0] == "restart":
            controller = new()
            controller._attach_live_jobs()
        elif step[0] == "kill":
            armed[0] = step[1]
            try:
                controller.cycle()
            except Killed:
                pass
            armed[0] = None
            controller = new()  # the next start
            controller._attach_live_jobs()
        elif live and step[0] == "job":
            backend.states[live[step[1] % len(live)]] = step[2]
        elif live and step[0] == "lines":
            backend.write_lines(live[step[1] % len(live)], step[2])
        elif live and step[0] == "exit":
            job = live[step[1] % len(live)]
            backend.write_lines(job, step[3])
            backend.exit(job, step[2])
        # a controller started now on the journal decides what the running one decides
        fresh = new()
        assert fold_summary(fresh.view) == fold_summary(controller.view)
        if controller.view.ended is None:
            news = controller._read_news()
            assert decisions(fresh, fresh.view, news) == decisions(controller, controller.view, news)
        check_journal(study_dir, backend)

    # and the study can always be driven to its end
    for _ in range(200):
        if controller.view.ended is not None:
            break
        for job in backend.live_jobs():
            backend.exit(job, 0)
        controller.cycle()
    assert controller.view.ended is not None
    check_journal(study_dir, backend)
    assert load_view(study_dir).ended is not None
