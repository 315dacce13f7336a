"""The fold of the journal into a study view, and snapshots of it."""
import json
import os

from hpc_tune.journal import Journal, load_view, write_snapshot
from hpc_tune.journal.fold import StudyView
from hpc_tune.paths import SNAPSHOT_FILE


def fill(journal, first, n):
    for i in range(first, first + n):
        journal.append({"e": "trial", "id": i, "params": {"x": i}, "resource": None, "meta": {}},
                       {"e": "submitted", "id": i, "attempt": 0, "job": str(100 + i)},
                       *[{"e": "report", "id": i, "end": 10 * s, "data": {"step": s, "loss": 1.0 / (s + 1 + i)}}
                         for s in range(5)],
                       {"e": "end", "id": i, "state": "completed", "value": 1.0 / (5 + i)})


def summary(view):
    return {tid: (t.state.value, t.value, t.curve("loss"), t.last("loss"), t.n_reports, t.result_offset)
            for tid, t in view.trials.items()}


def new_study(tmp_path):
    j = Journal(str(tmp_path))
    j.append({"e": "study", "id": "s", "seed": 1, "metric": "loss"})
    return j


def test_snapshot_then_more_events_equals_a_full_replay(tmp_path):
    j = new_study(tmp_path)
    fill(j, 0, 20)
    write_snapshot(load_view(str(tmp_path)))
    fill(j, 20, 10)
    from_snapshot = load_view(str(tmp_path))
    os.remove(tmp_path / SNAPSHOT_FILE)
    full = load_view(str(tmp_path))
    assert summary(from_snapshot) == summary(full) and len(full.trials) == 30
    assert full.trials[3].curve("loss")[-1] == (4.0, 1.0 / 8)


def test_a_bad_or_foreign_snapshot_is_ignored(tmp_path):
    j = new_study(tmp_path)
    fill(j, 0, 5)
    (tmp_path / SNAPSHOT_FILE).write_bytes(b"garbage")
    assert len(load_view(str(tmp_path)).trials) == 5
    other = tmp_path / "other"
    other.mkdir()
    jo = Journal(str(other))
    jo.append({"e": "study", "id": "other", "seed": 2, "metric": "loss"})
    fill(jo, 0, 2)
    write_snapshot(load_view(str(other)))
    os.replace(other / SNAPSHOT_FILE, tmp_path / SNAPSHOT_FILE)  # a snapshot of another journal
    view = load_view(str(tmp_path))
    assert view.study_id == "s" and len(view.trials) == 5


def test_reports_keep_last_values_of_every_metric_and_the_study_curve(tmp_path):
    j = new_study(tmp_path)
    j.append({"e": "trial", "id": 0, "params": {}, "resource": None, "meta": {}},
             {"e": "report", "id": 0, "end": 5, "data": {"loss": 2, "acc": 0.5}},
             {"e": "report", "id": 0, "end": 9, "data": None},  # a malformed line that was skipped
             {"e": "report", "id": 0, "end": 14, "data": {"step": 7, "loss": 1.5, "flag": True, "name": "x"}})
    t = load_view(str(tmp_path)).trials[0]
    assert t.last("loss") == 1.5 and t.last("acc") == 0.5 and t.last("flag") is None
    assert t.curve("loss") == ((0.0, 2.0), (7.0, 1.5)) and t.result_offset == 14 and t.n_reports == 2


def test_late_events_do_not_reopen_an_ended_trial(tmp_path):
    j = new_study(tmp_path)
    j.append({"e": "trial", "id": 0, "params": {}, "resource": None, "meta": {}},
             {"e": "end", "id": 0, "state": "cancelled", "value": None, "reason": "user"},
             {"e": "state", "id": 0, "state": "running"},
             {"e": "end", "id": 0, "state": "completed", "value": 1.0})
    t = load_view(str(tmp_path)).trials[0]
    assert t.state.value == "cancelled" and t.value is None


def test_every_key_keeps_its_curve_on_one_step_column(tmp_path):
    j = new_study(tmp_path)
    j.append({"e": "trial", "id": 0, "params": {}, "resource": None, "meta": {}},
             {"e": "report", "id": 0, "end": 1, "data": {"step": 1, "loss": 0.9, "acc": 0.1, "time": 5.0}},
             {"e": "report", "id": 0, "end": 2, "data": {"step": 2, "loss": 0.8, "time": 6.0}},
             {"e": "report", "id": 0, "end": 3, "data": {"step": 2.5, "val": 3, "time": 7.0}},
             {"e": "report", "id": 0, "end": 4, "data": {"step": 4, "note": "only text"}},
             {"e": "report", "id": 0, "end": 5, "data": {"step": 3_000_000_000, "acc": 0.4}})
    t = load_view(str(tmp_path)).trials[0]
    assert t.metric_names() == ["loss", "acc", "val"]  # step and time are no metrics
    assert t.curve("loss") == ((1, 0.9), (2, 0.8))
    assert t.curve("acc") == ((1, 0.1), (3_000_000_000, 0.4))  # a step past 32 bits widens the column
    assert t.curve("val") == ((2.5, 3.0),)
    assert t.last("time") == 7.0 and t.n_reports == 5
    write_snapshot(load_view(str(tmp_path)))  # the snapshot keeps them all
    again = load_view(str(tmp_path)).trials[0]
    assert [again.curve(k) for k in ("loss", "acc", "val")] == [t.curve(k) for k in ("loss", "acc", "val")]


def test_the_fold_never_changes_a_trials_params_or_meta_after_creating_it():
    # TrialRecord's contract, which ASHA's memo relies on: replay journals of every kind of
    # event and check each trial keeps the very dicts it was created with, unchanged.
    data = os.path.join(os.path.dirname(__file__), "data")
    for name in ("grid_retries", "hyperband_threshold"):
        view = StudyView(data)
        created = {}
        with open(os.path.join(data, f"{name}.jsonl")) as fh:
            for line in fh:
                view.apply(json.loads(line))
                for tid, t in view.trials.items():
                    if tid not in created:
                        created[tid] = (t.params, t.meta, json.dumps([t.params, t.meta], sort_keys=True))
                    params, meta, content = created[tid]
                    assert t.params is params and t.meta is meta, (name, tid)
                    assert json.dumps([t.params, t.meta], sort_keys=True) == content, (name, tid)
        assert len(created) >= 5 and any(m for _, m, _ in created.values())
