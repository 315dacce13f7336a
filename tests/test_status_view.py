"""`hpc-tune status` for people: progress against the plan, the table, choosing rows.

Studies here are journals written by hand (the fold and the view are what is tested);
tests/integration/test_status_cli.py runs real studies through the command line."""
from __future__ import annotations

import textwrap

import pytest

from hpc_tune.errors import UserError
from hpc_tune.journal import Journal, load_view
from hpc_tune.spec import load_spec
from hpc_tune.status_view import (
    format_numbers,
    format_progress,
    format_status,
    planned_trials,
    progress,
    select,
    status_dict,
)
from hpc_tune.study import create_study

GRID = """
    version: 1
    kind: group
    hptuning:
      concurrency: 2
      metric: {name: loss, optimization: minimize}
      matrix:
        lr: {values: [0.001, 0.0012345678, 0.01]}
        layers: {values: [1, 2]}
    run:
      cmd: python train.py --lr={{ lr }} --layers={{ layers }}
    """

HYPERBAND = """
    version: 1
    kind: group
    hptuning:
      concurrency: 4
      hyperband:
        max_iter: 9
        eta: 3
        resource: {name: epochs, type: int}
        metric: {name: loss, optimization: minimize}
      matrix:
        lr: {uniform: [0, 1]}
    run:
      cmd: python train.py --lr={{ lr }} --epochs={{ epochs }}
    """


def make_study(tmp_path, body):
    path = tmp_path / "study.yml"
    path.write_text(textwrap.dedent(body))
    spec = load_spec(str(path))
    study_dir = create_study(str(path), spec, str(tmp_path / "state"), backend="local", seed=1)
    return study_dir, Journal(study_dir), spec


def run_trial(journal, tid, params, losses, state="completed", t0=1000.0, meta=None, resource=None):
    events = [{"e": "trial", "id": tid, "params": params, "resource": resource, "meta": meta or {}, "t": t0},
              {"e": "submitted", "id": tid, "attempt": 0, "job": f"local-{tid}"},
              {"e": "state", "id": tid, "state": "running", "raw": "running", "t": t0}]
    events += [{"e": "report", "id": tid, "end": i + 1, "data": {"step": i, "loss": v, "acc": 1 - v}}
               for i, v in enumerate(losses)]
    if state != "running":
        events.append({"e": "end", "id": tid, "state": state, "value": losses[-1] if state == "completed" else None,
                       "reason": "", "ended": t0 + 60.0})
    journal.append(*events)


def test_grid_progress_counts_of_the_planned_total_with_rate_and_time_left(tmp_path):
    study_dir, journal, spec = make_study(tmp_path, GRID)
    assert planned_trials(spec) == 6
    run_trial(journal, 0, {"lr": 0.001, "layers": 1}, [0.5, 0.4], t0=1000.0)
    run_trial(journal, 1, {"lr": 0.001, "layers": 2}, [0.6, 0.3], t0=1000.0)
    run_trial(journal, 2, {"lr": 0.0012345678, "layers": 1}, [0.7], state="running", t0=1060.0)
    view = load_view(study_dir)
    p = progress(view, spec, "running", now=1120.0)
    assert (p.planned, p.ended, p.running, p.pending) == (6, 2, 1, 0)
    assert p.rate_per_h == pytest.approx(3600 * 2 / 120)  # 2 ended in the 120 s since the first trial
    assert p.eta_s == pytest.approx(4 * 60)  # 4 more at one per minute
    assert format_progress(p) == "2 of 6 trials ended (33 %), 1 running, 0 pending; 60 trials/h; about 0:04:00 left"
    text = format_status(view, spec=spec, now=1120.0)  # no controller holds this study: no time left
    line = next(x for x in text.splitlines() if x.startswith("progress: "))
    assert line.startswith("progress: 2 of 6 trials ended (33 %), 1 running, 0 pending; ") and "left" not in line
    assert "best:     trial 1, loss = 0.3" in text


def test_table_has_a_column_per_parameter_at_4_to_6_digits_and_the_metric(tmp_path):
    study_dir, journal, spec = make_study(tmp_path, GRID)
    run_trial(journal, 0, {"lr": 0.001, "layers": 1}, [0.123456789])
    run_trial(journal, 1, {"lr": 0.0012345678, "layers": 2}, [0.25])
    text = format_status(load_view(study_dir), spec=spec)
    header = next(line for line in text.splitlines() if line.startswith("trial"))
    assert header.split()[:5] == ["trial", "state", "lr", "layers", "loss"]
    assert "acc" not in header  # with a study metric, only it; every key is in --json
    row = next(line for line in text.splitlines() if line.startswith("1 "))
    assert "0.001235" in row and "0.25" in row
    assert "0.1235" in text  # 4 significant digits


def test_numbers_get_more_digits_only_when_4_would_merge_values():
    assert format_numbers([0.123456, 0.5, None, 3, "adam"]) == ["0.1235", "0.5", "", "3", "adam"]
    assert format_numbers([1.00001, 1.00002]) == ["1.00001", "1.00002"]  # 6 digits keep them apart
    assert format_numbers([0.0012345678, 0.0012349]) == ["0.0012346", "0.0012349"]


def test_without_a_metric_status_shows_the_last_value_of_each_reported_key(tmp_path):
    study_dir, journal, spec = make_study(tmp_path, GRID.replace("      metric: {name: loss, optimization: minimize}\n",
                                                                 ""))
    assert spec.metric is None
    run_trial(journal, 0, {"lr": 0.001, "layers": 1}, [0.5, 0.4])
    view = load_view(study_dir)
    header = next(line for line in format_status(view, spec=spec).splitlines() if line.startswith("trial"))
    assert header.split()[4:6] == ["loss", "acc"]
    status = status_dict(view, spec=spec)
    assert status["metric_names"] == ["loss", "acc"]
    assert status["trials"][0]["metrics"] == {"loss": 0.4, "acc": 0.6}
    assert status["progress"]["planned"] == 6


def test_sort_state_and_top_choose_rows(tmp_path):
    study_dir, journal, spec = make_study(tmp_path, GRID)
    for tid, loss in enumerate([0.5, 0.2, 0.9, 0.2]):
        run_trial(journal, tid, {"lr": 0.001 * (tid + 1), "layers": 1}, [loss])
    run_trial(journal, 4, {"lr": 0.01, "layers": 2}, [0.1], state="running")
    view = load_view(study_dir)
    assert [t.trial_id for t in select(view, top=2)] == [1, 3]  # the best by the metric; ties by trial id
    assert [t.trial_id for t in select(view, sort="loss")] == [4, 1, 3, 0, 2]
    assert [t.trial_id for t in select(view, sort="-loss")] == [2, 0, 1, 3, 4]
    assert [t.trial_id for t in select(view, sort="-lr", top=2)] == [4, 3]
    assert [t.trial_id for t in select(view, states="running")] == [4]
    assert [t.trial_id for t in select(view, states="completed,running", sort="acc", top=1)] == [2]
    for bad in ({"sort": "nope"}, {"states": "done"}, {"top": 0}):
        with pytest.raises(UserError) as err:
            select(view, **bad)
        assert "choose" in str(err.value) or "1 or more" in str(err.value)


def test_hyperband_shows_bracket_rung_and_the_current_rung(tmp_path):
    study_dir, journal, spec = make_study(tmp_path, HYPERBAND)
    assert planned_trials(spec) == 9 + 3 + 1 + 5 + 1 + 3  # brackets 2, 1, 0 of R=9, eta=3
    run_trial(journal, 0, {"lr": 0.1}, [0.5], meta={"bracket": 2, "rung": 0}, resource=1)
    run_trial(journal, 1, {"lr": 0.2}, [0.4], state="running", meta={"bracket": 2, "rung": 1}, resource=3)
    view = load_view(study_dir)
    text = format_status(view, spec=spec)
    assert "now:      bracket 2, rung 1 (resource 3)" in text
    header = next(line for line in text.splitlines() if line.startswith("trial"))
    assert header.split()[:6] == ["trial", "state", "bracket", "rung", "resource", "lr"]
    assert "1 of 22 trials ended" in text


def test_watch_frame_fits_the_terminal_with_the_header_first(tmp_path):
    study_dir, journal, spec = make_study(tmp_path, GRID.replace("[0.001, 0.0012345678, 0.01]",
                                                                 str([i / 100 for i in range(1, 41)])))
    for tid in range(60):
        run_trial(journal, tid, {"lr": 0.01 * (tid % 40 + 1), "layers": 1}, [1.0 / (tid + 1)])
    view = load_view(study_dir)
    frame = format_status(view, spec=spec, height=20).splitlines()
    assert len(frame) <= 20
    assert frame[0].startswith("study ") and frame[1].startswith("progress: 60 of 80 trials")
    assert any(line.startswith("trial") for line in frame)
    assert frame[-1].startswith("(") and "of 60 trials shown" in frame[-1]
    assert frame[-2].startswith("59 ")  # the newest trials
