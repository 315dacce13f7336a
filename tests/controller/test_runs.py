"""Runs of a trial (issue 12, item 1): only the current run's exit record ends a trial; a run
whose job the scheduler requeued is over even if its copy still runs and ends; each run start
is journaled with its job, node, restart count and why the run before it ended."""
from __future__ import annotations

import textwrap

from hpc_tune.backends import JobState, JobStatus
from hpc_tune.controller.core import REQUEUE_EVIDENCE_S, DecisionCore, News, TrialNews
from hpc_tune.journal import StudyView
from hpc_tune.journal import events as ev
from hpc_tune.spec import load_spec
from hpc_tune.trials import TrialState


def setup(tmp_path):
    path = tmp_path / "study.yml"
    path.write_text(textwrap.dedent("""
        hptuning:
          concurrency: 1
          metric: {name: loss, optimization: minimize}
          matrix:
            x: {values: [0.1]}
        run:
          cmd: "true"
    """))
    core = DecisionCore(load_spec(str(path)))
    view = StudyView(str(tmp_path / "s"))
    for t, e in [(0.0, ev.StudyCreated("s", 1, metric="loss")), (1.0, ev.TrialCreated(0, {"x": 0.1})),
                 (2.0, ev.Submitted(0, 0, "42")), (3.0, ev.Reported(0, 20, {"loss": 0.5}))]:
        view.apply({"v": 1, "t": t, **e.to_json()})
    return core, view


def journal(view, events, t):
    for e in events:
        view.apply({"v": 1, "t": t, **e.to_json()})


def started(run, restart, t, node="n1"):
    return {"run": run, "job_id": "42", "restart_count": restart, "attempt": 0, "started": t, "node": node}


def exit_of(run, restart):
    return {"exit_code": 0, "run": run, "job_id": "42", "restart_count": restart, "attempt": 0}


def test_each_run_start_is_journaled_once(tmp_path):
    core, view = setup(tmp_path)
    news = News({0: TrialNews(started=started("42.0", 0, 10.0))}, time=11.0)
    runs = core.runs(view, news)
    assert runs == [ev.RunStarted(0, 0, "42.0", "42", "n1", 0, 10.0, None)]
    journal(view, runs, 11.0)
    assert core.runs(view, news) == []
    # ...and the trial is running from that record, not from the next poll
    d = core.outcomes(view, news)
    assert d.events == [ev.StateChanged(0, "running", "started")]
    journal(view, d.events, 11.0)
    assert view.trials[0].state is TrialState.RUNNING


def test_a_requeued_runs_exit_record_does_not_end_the_trial_the_next_runs_does(tmp_path):
    core, view = setup(tmp_path)
    journal(view, [ev.RunStarted(0, 0, "42.0", "42", "n1", 0, 10.0), ev.StateChanged(0, "running", "started")], 10.0)
    # sacct shows the job pending soon after the start: a lag, not a requeue.
    lagging = JobStatus("42", JobState.PENDING, raw="PENDING")
    assert core.outcomes(view, News({}, {"42": lagging}, 10.0 + REQUEUE_EVIDENCE_S / 2)).events == []
    # Its node lost only slurmd: Slurm requeued the job; the old copy runs on and ends.
    requeued = JobStatus("42", JobState.PENDING, reason="BeginTime", raw="PENDING")
    now = 10.0 + REQUEUE_EVIDENCE_S + 20
    d = core.outcomes(view, News({0: TrialNews(exit=exit_of("42.0", 0))}, {"42": requeued}, now))
    assert d.events == [ev.StateChanged(0, "pending", "requeued (BeginTime)")] and not d.submit
    journal(view, d.events, now)
    assert view.trials[0].run_over
    # The requeued job runs again (sacct) before its new run's start record is read.
    d = core.outcomes(view, News({}, {"42": JobStatus("42", JobState.RUNNING, raw="RUNNING")}, now + 19))
    journal(view, d.events, now + 19)
    assert view.trials[0].run_over and view.trials[0].raw_state == "RUNNING"
    # Even without a poll, that run's exit record no longer counts.
    assert core.outcomes(view, News({0: TrialNews(exit=exit_of("42.0", 0))}, {}, now + 1)).events == []
    # The requeued copy starts: a new run, after the requeue; then its own exit record ends the trial.
    runs = core.runs(view, News({0: TrialNews(started=started("42.1", 1, now + 20, "n3"))}, time=now + 21))
    assert runs == [ev.RunStarted(0, 0, "42.1", "42", "n3", 1, now + 20, "requeued (BeginTime)")]
    journal(view, runs, now + 21)
    # An exit record of the old copy written late is still not the current run's.
    assert core.outcomes(view, News({0: TrialNews(exit=exit_of("42.0", 0))}, {}, now + 22)).events == []
    d = core.outcomes(view, News({0: TrialNews(exit=exit_of("42.1", 1))}, {"42": JobStatus("42", JobState.RUNNING)},
                                 now + 60))
    assert [(type(e), e.state) for e in d.events] == [(ev.Ended, "completed")]


def test_an_exit_record_of_a_run_a_newer_run_replaced_does_not_count(tmp_path):
    core, view = setup(tmp_path)
    journal(view, [ev.RunStarted(0, 0, "42.0", "42", "n1", 0, 10.0),
                   ev.RunStarted(0, 0, "42.1", "42", "n2", 1, 50.0)], 50.0)
    assert core.outcomes(view, News({0: TrialNews(exit=exit_of("42.0", 0))}, {}, 55.0)).events == []
    t = view.trials[0]
    assert (t.runs, t.restarts, t.time_lost) == (2, 1, 47.0)  # last report at 3, next run at 50


def test_a_record_without_a_run_counts_by_its_attempt(tmp_path):
    core, view = setup(tmp_path)  # a wrapper older than runs (a journal of 0.1.0 resumed)
    d = core.outcomes(view, News({0: TrialNews(exit={"exit_code": 0, "job_id": "42", "attempt": 0})}, {}, 5.0))
    assert [e.state for e in d.events] == ["completed"]


def test_status_and_export_show_restarts_and_the_time_lost(tmp_path):
    from hpc_tune.status_view import format_status
    from hpc_tune.summary import export_rows

    _, view = setup(tmp_path)
    journal(view, [ev.RunStarted(0, 0, "42.0", "42", "n1", 0, 10.0)], 10.0)
    journal(view, [ev.RunStarted(0, 0, "42.1", "42", "n2", 1, 68.0, "requeued (NODE_FAIL)")], 68.0)
    row = export_rows(view)[0]
    assert (row["runs"], row["restarts"], row["time_lost_s"]) == (2, 1, 65.0)
    text = format_status(view)
    assert "restarts: 1 by the scheduler" in text and "time lost to them: 0:01:05" in text
    assert "1 (lost 0:01:05)" in text
