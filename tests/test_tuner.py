"""The ask/tell Tuner: loops for grid, random, mapping and hyperopt, best(), done, failures."""
import math
from pathlib import Path

import pytest

from hpc_tune.search.base import TrialState
from hpc_tune.space import params_key
from hpc_tune.tuner import Trial, Tuner

DATA = Path(__file__).resolve().parent / "data"


def grid_dict(**extra):
    return {"matrix": {"kind": "grid", "params": {"a": {"kind": "choice", "value": [1, 2, 3]},
                                                  "b": {"kind": "choice", "value": ["x", "y"]}}, **extra}}


def loop(tuner, fn):
    trials = []
    while (t := tuner.ask()) is not None:
        assert isinstance(t, Trial)
        trials.append(t)
        tuner.tell(t, fn(t.params))
    return trials


# ------------------------------------------------------------------------------ loops


def test_grid_loop_from_dict():
    tuner = Tuner.from_dict(grid_dict())
    assert not tuner.done
    trials = loop(tuner, lambda p: p["a"] * (1 if p["b"] == "x" else 10))
    assert [t.trial_id for t in trials] == list(range(6))
    assert [t.params for t in trials] == [{"a": a, "b": b} for a in (1, 2, 3) for b in "xy"]
    assert tuner.done
    assert tuner.ask() is None
    best = tuner.best()
    assert best.params == {"a": 1, "b": "x"} and best.value == 1  # no metric: minimize
    assert [r.state for r in tuner.history] == [TrialState.COMPLETED] * 6


def test_grid_loop_from_file_maximize():
    tuner = Tuner.from_file(str(DATA / "grid_maximize.yml"))
    assert tuner.spec.metric.maximize
    trials = loop(tuner, lambda p: p["depth"] - p["lr"])
    assert len(trials) == 5  # n_experiments
    best = tuner.best()
    assert best.params == {"lr": 0.001, "depth": 3}
    assert best.value == pytest.approx(3 - 0.001)
    assert tuner.done


def test_random_loop_from_dict_and_file():
    tuner = Tuner.from_dict({"matrix": {"kind": "random", "numRuns": 7, "seed": 2,
                                        "params": {"u": {"kind": "uniform", "value": [0, 1]}}}})
    assert tuner.seed == 2
    trials = loop(tuner, lambda p: p["u"])
    assert len(trials) == 7
    assert len({params_key(t.params) for t in trials}) == 7
    assert tuner.best().value == min(t.params["u"] for t in trials)
    assert tuner.done

    tuner = Tuner.from_file(str(DATA / "random_pvalues.yml"))
    assert tuner.seed == 0  # `seed: 0` in the file is honoured
    trials = loop(tuner, lambda p: p["lr"] + (0 if p["opt"] == "adam" else 1))
    assert len(trials) == 6
    assert all(tuner.spec.space.contains(t.params) for t in trials)
    again = loop(Tuner.from_file(str(DATA / "random_pvalues.yml")), lambda p: 0.0)
    assert [t.params for t in again] == [t.params for t in trials]


def test_mapping_loop():
    rows = [{"lr": 0.1, "bs": 32}, {"lr": 0.01, "bs": 64}, {"lr": 0.001, "bs": 32}]
    tuner = Tuner.from_dict({"matrix": {"kind": "mapping", "values": rows,
                                        "metric": {"name": "acc", "optimization": "maximize"}}})
    trials = loop(tuner, lambda p: {0.1: 0.7, 0.01: 0.9, 0.001: 0.8}[p["lr"]])
    assert [t.params for t in trials] == rows
    assert tuner.best().params == rows[1]
    assert tuner.done


def test_hyperopt_loop_from_file_and_dict():
    pytest.importorskip("hyperopt")
    tuner = Tuner.from_file(str(DATA / "hyperopt_quadratic.yml"))
    trials = loop(tuner, lambda p: (p["x"] - 2) ** 2)
    assert len(trials) == 12
    assert all(-5 <= t.params["x"] <= 5 and t.params["act"] in ("relu", "tanh") for t in trials)
    assert tuner.best().value == min((t.params["x"] - 2) ** 2 for t in trials)
    assert tuner.done

    tuner = Tuner.from_dict({"matrix": {"kind": "hyperopt", "algorithm": "rand", "numRuns": 4,
                                        "metric": {"name": "acc", "optimization": "maximize"},
                                        "params": {"x": {"kind": "quniform", "value": [0, 10, 1]}}}}, seed=9)
    trials = loop(tuner, lambda p: p["x"])
    assert len(trials) == 4
    assert tuner.best().value == max(t.params["x"] for t in trials)


# ----------------------------------------------------------------------- best / done


@pytest.mark.parametrize("optimization, expected", [("minimize", -3.0), ("maximize", 5.0)])
def test_best_honours_the_metric(optimization, expected):
    tuner = Tuner.from_dict({"matrix": {"kind": "mapping", "values": [{"a": i} for i in range(4)],
                                        "metric": {"name": "m", "optimization": optimization}}})
    values = [1.0, 5.0, -3.0, 2.0]
    for v in values:
        tuner.tell(tuner.ask(), v)
    assert tuner.best().value == expected
    assert tuner.best().params == {"a": values.index(expected)}


def test_best_with_the_early_stopping_metric():
    # no algorithm metric: the threshold's metric and direction rank the trials
    tuner = Tuner.from_dict({"matrix": {"kind": "mapping", "values": [{"a": 1}, {"a": 2}],
                                        "earlyStopping": [{"metric": "acc", "value": 0.99,
                                                           "optimization": "maximize"}]}})
    tuner.tell(tuner.ask(), 0.5)
    tuner.tell(tuner.ask(), 0.7)
    assert tuner.best().params == {"a": 2}


def test_done_needs_every_trial_told():
    tuner = Tuner.from_dict(grid_dict())
    batch = tuner.ask_many(100)
    assert len(batch) == 6
    assert tuner.ask() is None
    assert not tuner.done  # six pending trials
    for t in batch[:-1]:
        tuner.tell(t, 1.0)
    assert not tuner.done
    tuner.tell(batch[-1].trial_id, 2.0)  # by id
    assert tuner.done


def test_ask_many_zero_and_negative():
    tuner = Tuner.from_dict(grid_dict())
    assert tuner.ask_many(0) == [] and tuner.ask_many(-3) == []
    assert len(tuner.history) == 0


# --------------------------------------------------------------------------- failures


def test_failed_tells():
    tuner = Tuner.from_dict(grid_dict(metric={"name": "loss"}))
    t = tuner.ask_many(6)
    tuner.tell(t[0], None)  # no value: failed
    tuner.tell(t[1], math.nan)  # not a number: failed
    tuner.tell(t[2], 0.5, state="failed")  # explicitly failed, value kept but not ranked
    tuner.tell(t[3], math.inf)
    assert tuner.best() is None
    states = [r.state for r in tuner.history]
    assert states[:4] == [TrialState.FAILED] * 4
    assert tuner.history.trials[2].value == 0.5
    tuner.tell(t[4], 3.0, state=TrialState.STOPPED)  # stopped early: its value counts
    tuner.tell(t[5], 0.0, state="cancelled")  # cancelled: no ranking
    best = tuner.best()
    assert best.trial_id == 4 and best.value == 3.0
    assert tuner.done


def test_tell_unknown_trial():
    tuner = Tuner.from_dict(grid_dict())
    with pytest.raises(KeyError):
        tuner.tell(0, 1.0)
    tuner.ask()
    with pytest.raises(KeyError):
        tuner.tell(5, 1.0)
    with pytest.raises(ValueError):
        tuner.tell(0, 1.0, state="exploded")


def test_retelling_replaces_the_result():
    tuner = Tuner.from_dict(grid_dict())
    t = tuner.ask()
    tuner.tell(t, None)
    assert tuner.best() is None
    tuner.tell(t, 4.0)
    assert tuner.best().value == 4.0


# ------------------------------------------------------------------------------ seeds


def test_seed_precedence_and_drawn_seed():
    spec_seed = Tuner.from_dict({"matrix": {"kind": "random", "numRuns": 3, "seed": 7,
                                            "params": {"u": {"kind": "uniform", "value": [0, 1]}}}})
    assert spec_seed.seed == 7
    override = Tuner(spec_seed.spec, seed=0)
    assert override.seed == 0
    drawn = Tuner.from_dict({"matrix": {"kind": "random", "numRuns": 3,
                                        "params": {"u": {"kind": "uniform", "value": [0, 1]}}}})
    assert isinstance(drawn.seed, int) and 0 <= drawn.seed < 2**31 - 1
    replay = Tuner(drawn.spec, seed=drawn.seed)
    assert [t.params for t in drawn.ask_many(3)] == [t.params for t in replay.ask_many(3)]


def test_a_tuner_rebuilt_from_its_history_continues_identically():
    data = {"matrix": {"kind": "random", "numRuns": 8, "seed": 4,
                       "params": {"u": {"kind": "uniform", "value": [0, 1]},
                                  "c": {"kind": "choice", "value": ["a", "b", "c"]}}}}
    whole = loop(Tuner.from_dict(data), lambda p: p["u"])
    first = Tuner.from_dict(data)
    for _ in range(3):
        first.tell(first.ask(), 0.0)
    resumed = Tuner(first.spec, seed=first.seed, trials=list(first.history.trials))
    rest = loop(resumed, lambda p: p["u"])
    assert [t.params for t in rest] == [t.params for t in whole[3:]]
    assert [t.trial_id for t in rest] == [3, 4, 5, 6, 7]
