"""hpc_tune.load_study against the studies' own files: the trials' result lines, the
journal, and what `status`, `best` and `export` say."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from conftest import TRIAL, cli
from synthetic import write_study

import hpc_tune
from hpc_tune.errors import UserError


def result_lines(study_dir: str, trial: int):
    path = os.path.join(study_dir, "trials", str(trial), "result.jsonl")
    if not os.path.exists(path):
        return []
    with open(path) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def journal(study_dir: str):
    with open(os.path.join(study_dir, "journal.jsonl")) as fh:
        return [json.loads(line) for line in fh if line.strip()]


def test_every_reported_number_is_in_the_study(studies):
    study_dir = studies["random"]
    study = hpc_tune.load_study(study_dir)
    assert study.algorithm == "random" and study.metric == "loss" and study.optimization == "minimize"
    assert len(study.trials) == 12
    for t in study.trials:
        lines = result_lines(study_dir, t.id)
        # a completed trial's every line is in the journal; a stopped or failed one may have
        # written more after the controller ended it, which do not count
        assert t.n_reports == len(lines) if t.state == "completed" else t.n_reports <= len(lines)
        lines = lines[:t.n_reports]
        expected = {}
        for n, line in enumerate(lines):
            for k, v in line.items():
                if k not in ("step", "time") and isinstance(v, (int, float)):
                    expected.setdefault(k, []).append((line.get("step", n), v))
        assert {m: t.curve(m) for m in t.curves} == expected, t.id
        assert t.last == {m: pts[-1][1] for m, pts in expected.items()}
        assert study.best_values(t).get("loss") == (min(v for _, v in expected["loss"]) if "loss" in expected
                                                   else None)
        assert t.minimum["acc"] == min(v for _, v in expected["acc"])
    states = {t.state for t in study.trials}
    assert {"completed", "stopped", "failed"} <= states, "the study should show every way a trial ends"
    stopped = [t for t in study.trials if t.state == "stopped"]
    assert all("median rule" in t.reason and t.value == t.last["loss"] for t in stopped)


def test_agrees_with_status_best_and_the_journal(studies):
    study_dir = studies["random"]
    study = hpc_tune.load_study(study_dir)
    status = json.loads(cli("status", study_dir, "--json").stdout)
    assert study.counts() == status["counts"] and study.state == status["state"] == "finished"
    best = json.loads(cli("best", study_dir, "--json").stdout)
    assert (study.best.id, study.best.value, study.best.params) == (best["trial"], best["value"], best["params"])
    jobs = {}
    for e in journal(study_dir):
        if e["e"] == "submitted":
            jobs.setdefault(e["id"], []).append(e["job"])
    for t in study.trials:
        assert t.job_ids == jobs[t.id]
        (a,) = t.attempts
        assert a.queued <= a.started <= a.ended and a.outcome == t.state and a.node


def test_by_id_or_prefix_under_a_state_dir(studies):
    study_dir = Path(studies["hyperband"])
    by_id = hpc_tune.load_study(study_dir.name, state_dir=str(study_dir.parent))
    by_prefix = hpc_tune.load_study(study_dir.name[:8], state_dir=str(study_dir.parent))
    assert by_id.id == by_prefix.id == study_dir.name and len(by_id) == len(by_prefix) > 0
    with pytest.raises(UserError, match="no study 'nothing-here' under"):
        hpc_tune.load_study("nothing-here", state_dir=str(study_dir.parent))


def test_hyperband_records_and_best(studies):
    study = hpc_tune.load_study(studies["hyperband"])
    assert study.algorithm_settings["resource"] == "resource" and study.log_params == ("lr",)
    assert all({"bracket", "rung"} <= set(t.meta) for t in study.trials)
    # each trial's curve has as many steps as its budget (curve_trial.py reports one per unit)
    assert all(len(t.curves["loss"]) == t.resource for t in study.trials)
    valued = [t for t in study.trials if t.value is not None]
    assert study.best.value == min(t.value for t in valued)


def test_without_a_metric(studies):
    study = hpc_tune.load_study(studies["grid"])
    assert study.metric is None and study.best is None and len(study) == 12
    assert all(t.value is None and t.last["loss"] > 0 for t in study.trials)
    assert set(study.metrics) == {"loss", "acc", "lr_now"}


def test_to_dataframe_and_curves(studies):
    pd = pytest.importorskip("pandas")
    study = hpc_tune.load_study(studies["bo"])
    frame = study.to_dataframe()
    assert isinstance(frame, pd.DataFrame) and list(frame["trial"]) == [t.id for t in study.trials]
    for col in ("state", "value", "param.x", "param.y", "last.acc", "best.acc", "last.loss", "job_ids", "run_time_s"):
        assert col in frame.columns, col
    assert "best.loss" not in frame.columns  # the study says nothing of loss's direction
    assert list(frame["best.acc"]) == [max(t.curves["acc"].values) for t in study.trials]
    long = study.curves()
    assert list(long.columns) == ["trial", "metric", "step", "value", "time"]
    assert len(long) == sum(len(c) for t in study.trials for c in t.curves.values())
    one = long[(long.trial == 3) & (long.metric == "acc")]
    assert list(zip(one.step, one.value)) == study.trial(3).curve("acc")
    assert one.time.notna().all()


def test_pandas_missing_is_one_clear_message(studies, monkeypatch):
    study = hpc_tune.load_study(studies["bo"])
    monkeypatch.setitem(sys.modules, "pandas", None)
    with pytest.raises(UserError, match=r"pip install 'hpc-tune\[report\]'"):
        study.to_dataframe()
    with pytest.raises(UserError, match="pandas"):
        study.curves()
    assert study.rows()[0]["trial"] == 0  # plain rows need nothing


def test_attempts_of_resubmitted_and_requeued_jobs(tmp_path):
    study_dir = write_study(str(tmp_path / "syn"), n_trials=80, n_steps=5, seed=1)
    study = hpc_tune.load_study(study_dir)
    raw = journal(study_dir)
    retries = {e["id"]: e for e in raw if e["e"] == "retry"}
    assert retries, "the synthetic study has resubmissions"
    for t in study.trials:
        started = json.loads((tmp_path / "syn" / "trials" / str(t.id) / "started.json").read_text())
        assert len(t.attempts) == (2 if t.id in retries else 1)
        assert t.attempts[-1].node == started["host"] and t.attempts[-1].requeues == started["restart_count"]
        if t.id in retries:
            first = t.attempts[0]
            assert first.outcome == ("preempted" if "preempt" in retries[t.id]["reason"] else "retried")
            assert first.reason == retries[t.id]["reason"] and first.ended == retries[t.id]["t"]
            assert first.node is None  # only the last job's records survive
    assert study.gpus_per_trial == 1 and study.state == "finished"


def test_a_running_study_is_read_as_it_is_now(tmp_path):
    study_file = tmp_path / "slow.yml"
    study_file.write_text(textwrap.dedent(f"""
        hptuning:
          concurrency: 2
          random_search: {{n_experiments: 4}}
          metric: {{name: loss, optimization: minimize}}
          matrix:
            x: {{uniform: [0, 1]}}
        run:
          cmd: {TRIAL} --x={{{{ x }}}} --steps=8 --sleep=1
        """))
    state = tmp_path / "state"
    proc = subprocess.Popen([sys.executable, "-m", "hpc_tune", "submit", str(study_file), "--state-dir", str(state),
                             "--backend", "local", "--poll-interval", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 120
        study = None
        while time.time() < deadline:
            if state.exists() and any(state.iterdir()):
                study = hpc_tune.load_study(str(next(state.iterdir())))
                if any(t.n_reports >= 2 for t in study.trials):
                    break
            time.sleep(0.3)
        assert study is not None and study.ended is None and study.state == "running"
        live = [t for t in study.trials if t.state in ("pending", "running")]
        assert live and all(t.ended is None for t in live)
        assert any(t.run_time is not None and t.run_time > 0 for t in live)
        pytest.importorskip("matplotlib")
        from hpc_tune.htmlreport import write_report

        write_report(study, str(tmp_path / "now.html"))
        page = (tmp_path / "now.html").read_text()
        assert "the study was still running: a snapshot of that moment" in page
        assert 'data-plot="timeline"' in page and 'data-plot="curves"' in page
        assert proc.wait(timeout=180) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    done = hpc_tune.load_study(str(next(state.iterdir())))
    assert done.state == "finished" and done.ended is not None and all(len(t.curves["loss"]) == 8 for t in done)
    assert not math.isnan(done.best.value)


@pytest.mark.parametrize("name", ["grid_retries", "hyperband_threshold"])
def test_a_010_journal_loads_as_010_folded_it(tmp_path, name):
    """The journals hpc-tune 0.1.0 wrote (tests/journal/data) read back as its fold read them,
    with every reported key's curve and one attempt per job."""
    data = Path(__file__).resolve().parents[1] / "journal" / "data"
    study_dir = tmp_path / name
    study_dir.mkdir()
    (study_dir / "journal.jsonl").write_bytes((data / f"{name}.jsonl").read_bytes())
    expected = json.loads((data / f"{name}.expected.json").read_text())
    study = hpc_tune.load_study(str(study_dir))
    assert study.id == expected["study_id"] and study.metric == expected["metric"]
    assert study.state == expected["ended"]["state"] and study.reason == expected["ended"]["reason"]
    assert study.algorithm == "unknown"  # no spec.yml beside the fixture: the report does without it
    events = journal(str(study_dir))
    for t in study.trials:
        e = expected["trials"][str(t.id)]
        assert (t.state, t.value, t.params, t.reason, t.n_reports) == (e["state"], e["value"], e["params"],
                                                                       e["reason"], e["n_reports"])
        assert t.last == {k: v for k, v in e["last_values"].items() if k not in ("step", "time")}
        for m, (steps, values) in e["curves"].items():
            assert t.curve(m) == list(zip(steps, values))
        submitted = [x for x in events if x["e"] == "submitted" and x["id"] == t.id]
        assert len(t.attempts) == e["attempt"] + 1 if submitted else t.attempts[0].job_id is None
        if submitted:
            assert t.job_ids[-1] == e["job_id"]
    if name == "grid_retries":
        outcomes = {a.outcome for t in study.trials for a in t.attempts}
        assert {"completed", "failed", "cancelled", "retried", "preempted"} <= outcomes


def test_asha_and_pbt_records(studies):
    asha = hpc_tune.load_study(studies["asha"])
    assert asha.algorithm == "asha" and asha.algorithm_settings["resource"] == "resource"
    promoted = [t for t in asha.trials if t.meta.get("parent") is not None]
    assert promoted, "ASHA promoted nothing"
    for t in promoted:
        parent = asha.trial(t.meta["parent"])
        assert t.meta["rung"] == parent.meta["rung"] + 1 and t.resource > parent.resource
        assert t.params == parent.params and t.resume_from == parent.id  # resume: true
    pbt = hpc_tune.load_study(studies["pbt"])
    assert pbt.algorithm == "pbt" and sorted({t.meta["member"] for t in pbt.trials}) == [0, 1, 2, 3]
    for t in pbt.trials:
        if t.meta["interval"] == 0:
            assert t.resume_from is None
        else:  # a later interval starts from its own member's last checkpoint, or a donor's (exploit)
            source = pbt.trial(t.resume_from)
            # (an exploit may take a donor's checkpoint of the same interval: asynchronous PBT)
            assert source.id < t.id and source.resource <= t.resource
            if t.meta.get("donor") is None:
                assert (source.meta["member"], source.meta["interval"]) == (t.meta["member"], t.meta["interval"] - 1)
            else:
                assert source.meta["member"] == t.meta["donor"] != t.meta["member"]
    rows = pbt.rows()
    assert all("resume_from" in r and "member" in r and "interval" in r for r in rows)


def test_a_job_that_started_before_its_submission_was_journaled_was_queued_by_then(tmp_path):
    # the local backend starts a job before the controller journals "submitted"
    from hpc_tune.results import _AttemptsAndCurves

    seen = _AttemptsAndCurves()
    seen.apply({"e": "submitted", "id": 0, "attempt": 0, "job": "local-1", "t": 100.002})
    seen.apply({"e": "run", "id": 0, "job": "local-1", "node": "n1", "started": 100.0, "t": 100.1})
    seen.apply({"e": "end", "id": 0, "state": "completed", "ended": 101.0, "t": 101.0})
    (a,) = seen.attempts_of(str(tmp_path), 0, None)
    assert a.queued == a.started == 100.0 and a.ended == 101.0
