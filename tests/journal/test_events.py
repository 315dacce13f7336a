"""The fold reads exactly the JSON form the event types write."""
from hpc_tune.journal import StudyView
from hpc_tune.journal import events as ev
from hpc_tune.trials import TrialState


def fold(*events):
    view = StudyView("/studies/s")
    for i, e in enumerate(events):
        view.apply({"v": 1, "t": float(i), **e.to_json()})
    return view


def test_every_kind_has_one_apply_method():
    assert {cls.KIND for cls in ev.EVENT_TYPES} == set(ev.BY_KIND)
    for kind in ev.BY_KIND:
        assert callable(getattr(StudyView, f"apply_{kind}", None)) or kind == "report"


def test_the_fold_reads_every_field_the_events_write():
    view = fold(ev.StudyCreated("s", 7, metric="loss", optimization="maximize"),
                ev.TrialCreated(0, {"x": 1}, 3.0, {"rung": 0}),
                ev.TrialCreated(1, {"x": 2}, 9.0, {"rung": 1}, resume_from=0),
                ev.Submitted(0, 0, "100"),
                ev.StateChanged(0, "running", "RUNNING"),
                ev.Reported(0, 20, {"step": 1, "loss": 0.5, "note": "a"}),
                ev.Reported(0, 30, None),
                ev.Retried(0, 1, "time limit reached (TIMEOUT)", counted=True),
                ev.Submitted(0, 1, "101"),
                ev.Ended(0, "completed", 0.5, "", "exit 0", started=10.0, ended=20.0),
                ev.Ended(0, "failed", None, "a second end is ignored"),
                ev.Submitted(1, 0, "102"),
                ev.Retried(1, 1, "preempted", counted=False),
                ev.Warned("study note"), ev.Warned("trial note", 1),
                ev.ControllerEvent("start", "host", 12, None), ev.ControllerEvent("submitted", job="55"),
                ev.OptionsChanged({"time": "7", "extra": ["--comment=a"]}, "local"),
                ev.OptionsChanged({"mem": "1G", "extra": ["--comment=b"]}),
                ev.CancelRequested("stop it"),
                ev.Ended(1, "cancelled", None, "stop it"),
                ev.StudyEnded("cancelled", "stop it"))
    assert view.study_id == "s" and view.seed == 7 and view.metric == "loss" and view.maximize
    t0, t1 = view.trials[0], view.trials[1]
    assert (t0.params, t0.resource, t0.meta, t0.resume_from) == ({"x": 1}, 3.0, {"rung": 0}, None)
    assert t1.resume_from == 0 and t1.resource == 9.0
    assert (t0.state, t0.value, t0.reason, t0.raw_state) == (TrialState.COMPLETED, 0.5, "", "exit 0")
    assert (t0.job_id, t0.attempt, t0.retries, t0.submitted) == ("101", 1, 1, True)
    assert (t0.started, t0.ended) == (10.0, 20.0)
    assert (t0.n_reports, t0.result_offset, t0.last_values) == (1, 30, {"step": 1, "loss": 0.5})  # garbage: no report
    assert t0.curve("loss") == ((1.0, 0.5),) and t0.has_value
    assert (t1.state, t1.attempt, t1.retries, t1.job_id, t1.submitted) == (TrialState.CANCELLED, 1, 0, None, False)
    assert view.warnings == ["study note", "trial 1: trial note"]
    assert [c["action"] for c in view.controllers] == ["start", "submitted"]
    assert view.info["slurm"] == {"time": "7", "mem": "1G", "extra": ["--comment=a", "--comment=b"]}
    assert view.info["backend"] == "local"
    assert view.cancel_requested == "stop it" and view.ended["state"] == "cancelled"
    assert view.best() is t0


def test_every_event_reads_back_as_itself():
    samples = [ev.StudyCreated("s", 1, "f.yml", "/c", "/b", "slurm", {"time": "1"}, "loss", "minimize", 5.0, "0.1"),
               ev.TrialCreated(3, {"x": 1}, None, {}, 2), ev.Submitted(3, 0, "9"), ev.StateChanged(3, "running"),
               ev.Reported(3, 10, {"a": 1}), ev.Retried(3, 1, "why", False), ev.Ended(3, "stopped", 1.5, "rule", None),
               ev.CancelRequested(), ev.StudyEnded("finished", "done"), ev.ControllerEvent("stop", "h", 1, reason="x"),
               ev.Warned("w", 3), ev.OptionsChanged({"time": "5"}, "slurm"), ev.OptionsChanged(),
               ev.RunStarted(3, 1, "9.2", "9", "n2", 2, 12.5, "requeued (PENDING)")]
    assert {type(e) for e in samples} == set(ev.EVENT_TYPES)
    for e in samples:
        assert ev.BY_KIND[e.KIND].from_json(e.to_json()) == e


def test_runs_restarts_and_the_time_they_lost():
    view = StudyView("/studies/s")
    events = [(0.0, ev.StudyCreated("s", 7, metric="loss")), (1.0, ev.TrialCreated(0, {"x": 1})),
              (2.0, ev.Submitted(0, 0, "100")),
              (3.0, ev.RunStarted(0, 0, "100.0", "100", "n1", 0, 3.0)),
              (3.0, ev.StateChanged(0, "running", "started")),
              (5.0, ev.Reported(0, 10, {"loss": 1.0})),
              (9.0, ev.StateChanged(0, "pending", "requeued (PENDING)")),
              (40.0, ev.RunStarted(0, 0, "100.1", "100", "n2", 1, 39.0, "requeued (PENDING)")),
              (41.0, ev.RunStarted(0, 0, "100.1", "100", "n2", 1, 39.0)),  # the same run again: nothing new
              (45.0, ev.Reported(0, 20, {"loss": 0.5}))]
    for t, e in events:
        view.apply({"v": 1, "t": t, **e.to_json()})
        if isinstance(e, ev.StateChanged) and e.state == "pending":
            assert view.trials[0].run_over and view.trials[0].run == "100.0"
    t0 = view.trials[0]
    assert (t0.run, t0.runs, t0.restarts, t0.run_over, t0.state) == ("100.1", 2, 1, False, TrialState.PENDING)
    assert t0.time_lost == 34.0  # from the last report of run 100.0 (at 5) to the start of 100.1 (at 39)
    assert t0.started == 3.0 and t0.run_started == 39.0
