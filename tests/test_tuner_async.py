"""Ask/tell for ASHA, BOHB-style Hyperband, PBT: trials carry `resource` (the total to
reach) and `resume_from`; ASHA's stopping mode through `report()`; and `plan` for them."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from hpc_tune.plan import format_plan, make_plan
from hpc_tune.search import samplers
from hpc_tune.search.base import TrialState
from hpc_tune.spec import spec_from_dict
from hpc_tune.tuner import Tuner

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
MATRIX = {"x": {"uniform": [0, 1]}}
RESOURCE = {"name": "epochs", "type": "int"}
METRIC = {"name": "loss", "optimization": "minimize"}


def study(block, **algo):
    return {"hptuning": {"seed": 2, block: {"resource": RESOURCE, "metric": METRIC, **algo}, "matrix": MATRIX}}


def drive(tuner, slots, loss):
    """Keep `slots` trials pending, tell the oldest; returns every trial handed out."""
    pending, out = [], []
    while True:
        while len(pending) < slots and (t := tuner.ask()) is not None:
            pending.append(t)
            out.append(t)
        if not pending:
            return out
        t = pending.pop(0)
        tuner.tell(t, loss(t))


def test_asha_ask_tell_gives_totals_and_resume_from():
    tuner = Tuner.from_dict(study("asha", max_resource=9, n_experiments=9))
    trials = drive(tuner, 3, lambda t: (t.params["x"] - 0.3) ** 2 + 1 / t.resource)
    assert tuner.done
    by_id = {t.trial_id: t for t in trials}
    promoted = [t for t in trials if t.resume_from is not None]
    assert promoted and sum(t.resume_from is None for t in trials) == 9
    for t in promoted:
        parent = by_id[t.resume_from]
        assert parent.params == t.params and t.resource > parent.resource
        assert t.meta["rung"] == parent.meta["rung"] + 1
    assert tuner.best().resource == 9


def test_hyperband_with_resume_gives_resume_from_and_without_it_none():
    base = {"max_iter": 9, "eta": 3}
    for resume in (True, False):
        tuner = Tuner.from_dict(study("hyperband", resume=resume, **base))
        trials = drive(tuner, 100, lambda t: t.params["x"])
        promoted = [t for t in trials if t.meta["parent"] is not None]
        assert promoted
        assert all(t.resume_from == (t.meta["parent"] if resume else None) for t in promoted)


def test_pbt_ask_tell_runs_every_interval_of_every_member():
    tuner = Tuner.from_dict(study("pbt", population_size=4, perturbation_interval=2, max_resource=6))
    trials = drive(tuner, 4, lambda t: abs(t.params["x"] - 0.3))
    assert tuner.done and len(trials) == 12
    assert sorted((t.meta["member"], t.meta["interval"]) for t in trials) == \
        [(m, i) for m in range(4) for i in range(3)]
    for t in trials:
        assert t.resource == [2, 4, 6][t.meta["interval"]]
        assert (t.resume_from is None) == (t.meta["interval"] == 0)


def test_asha_stopping_mode_with_report():
    tuner = Tuner.from_dict(study("asha", max_resource=9, n_experiments=9, mode="stopping"))
    stopped = 0
    while (t := tuner.ask()) is not None:
        for step in range(1, 10):
            if tuner.report(t, step, (t.params["x"] - 0.3) ** 2 + 1 / step):
                stopped += 1
                break
        else:
            tuner.tell(t, (t.params["x"] - 0.3) ** 2 + 1 / 9)
    states = [r.state for r in tuner.history]
    assert tuner.done and len(states) == 9
    assert states.count(TrialState.STOPPED) == stopped > 0
    with pytest.raises(ValueError, match="has ended"):
        tuner.report(0, 10, 1.0)


def test_report_without_stopping_rules_never_stops():
    tuner = Tuner.from_dict(study("asha", max_resource=9, n_experiments=3))
    t = tuner.ask()
    assert tuner.report(t, 1, 5.0) is False
    assert tuner.history.trials[0].state is TrialState.RUNNING


# ------------------------------------------------------------------------------ plan


def test_plan_asha_shows_rungs_and_resources():
    spec = spec_from_dict(study("asha", max_resource=30, n_experiments=27, min_early_stopping_rate=1))
    plan = make_plan(spec, 2)
    assert plan["rungs"] == [{"rung": 0, "resource": 3}, {"rung": 1, "resource": 9},
                             {"rung": 2, "resource": 27}, {"rung": 3, "resource": 30}]
    assert plan["mode"] == "promotion" and plan["n_configurations"] == 27
    assert plan["sampler"] == {"kind": "model", "random_fraction": 1 / 3, "min_points_in_model": None}
    text = format_plan(plan)
    assert "min_early_stopping_rate=1" in text and "rung" in text and "27" in text
    assert "sampler:      model (random_fraction=0.333333, min_points_in_model=parameters + 1)" in text


def test_plan_pbt_shows_population_interval_and_trials():
    spec = spec_from_dict(study("pbt", population_size=8, perturbation_interval=3, max_resource=10))
    plan = make_plan(spec, 2)
    assert (plan["population_size"], plan["perturbation_interval"], plan["intervals"], plan["n_trials"]) == \
        (8, 3, [3, 6, 9, 10], 32)
    assert plan["exploit"]["quantile"] == 2 and plan["concurrency"] == 8
    text = format_plan(plan)
    assert "8 members" in text and "4 intervals" in text and "trials:       32" in text


def test_plan_bohb_shows_brackets_and_model_settings(monkeypatch):
    monkeypatch.setitem(samplers.SAMPLERS, "kde", "hpc_tune.search.samplers:propose_random")
    spec = spec_from_dict(study("bohb", max_iter=9, num_samples=32))
    plan = make_plan(spec, 2)
    assert plan["algorithm"] == "bohb" and len(plan["brackets"]) == 3
    assert plan["sampler"]["kind"] == "kde" and plan["sampler"]["num_samples"] == 32
    assert plan["sampler"]["top_n_percent"] == 15.0 and plan["sampler"]["min_points_in_model"] is None
    assert "sampler:      kde (top_n_percent=15, random_fraction=0.333333, num_samples=32" in format_plan(plan)


def test_plan_cli_on_the_example_files():
    for name in ("asha_digits.yml", "pbt_digits.yml"):
        res = subprocess.run([sys.executable, "-m", "hpc_tune", "plan", str(CONFIGS / name), "--json"],
                             capture_output=True, text=True)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["algorithm"] in ("asha", "pbt")
