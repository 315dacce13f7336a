"""Hyperopt (tpe, rand, anneal) and iterative (a user function) searchers."""
import statistics
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from hpc_tune.errors import SpecError, UserError
from hpc_tune.search import suggest
from hpc_tune.search.base import History, TrialRecord, TrialState
from hpc_tune.spec import load_spec, spec_from_dict
from hpc_tune.spec.model import HyperoptConfig, IterativeConfig
from hpc_tune.tuner import Tuner

pytest.importorskip("hyperopt")

DATA = Path(__file__).resolve().parents[2] / "tests" / "data"

MIXED_PARAMS = {
    "u": {"kind": "uniform", "value": [-1, 1]},
    "qu": {"kind": "quniform", "value": [0, 10, 2]},
    "lu": {"kind": "loguniform", "value": [-7, -1]},
    "qlu": {"kind": "qloguniform", "value": [0, 5, 5]},
    "n": {"kind": "normal", "value": [0, 2]},
    "qn": {"kind": "qnormal", "value": [10, 3, 0.5]},
    "ln": {"kind": "lognormal", "value": [0, 0.5]},
    "qln": {"kind": "qlognormal", "value": [2, 0.5, 1]},
    "act": {"kind": "choice", "value": ["relu", "tanh", "elu"]},
    "opt": {"kind": "pchoice", "value": [["adam", 0.6], ["sgd", 0.4]]},
    "layers": {"kind": "range", "value": "1:6:1"},
    "lr": {"kind": "linspace", "value": "0.001:0.1:5"},
}


def hyperopt_spec(params, algorithm="tpe", n=20, optimization="minimize", seed=None):
    matrix = {"kind": "hyperopt", "algorithm": algorithm, "numRuns": n, "params": params,
              "metric": {"name": "loss", "optimization": optimization}}
    if seed is not None:
        matrix["seed"] = seed
    return spec_from_dict({"matrix": matrix})


def objective(params):
    return sum(float(v) ** 2 for v in params.values() if isinstance(v, (int, float)) and not isinstance(v, bool))


def run_loop(tuner, fn):
    seen = []
    while (t := tuner.ask()) is not None:
        seen.append(t)
        tuner.tell(t, fn(t.params))
    return seen


# --------------------------------------------------------------------------- hyperopt


@pytest.mark.parametrize("algorithm", ["tpe", "rand", "anneal"])
def test_hyperopt_suggestions_lie_in_the_space(algorithm):
    spec = hyperopt_spec(MIXED_PARAMS, algorithm, n=25)
    assert spec.algorithm == HyperoptConfig(n_trials=25, metric=spec.metric, algorithm=algorithm)
    tuner = Tuner(spec, seed=3)
    trials = run_loop(tuner, objective)
    assert len(trials) == 25
    assert tuner.done
    for t in trials:
        assert spec.space.contains(t.params), t.params
        assert set(t.params) == set(MIXED_PARAMS)
    assert {t.params["act"] for t in trials} <= {"relu", "tanh", "elu"}
    assert all(t.params["qu"] % 2 == 0 for t in trials)


@pytest.mark.parametrize("algorithm", ["tpe", "rand", "anneal"])
def test_hyperopt_is_deterministic_for_a_seed_and_history(algorithm):
    spec = hyperopt_spec(MIXED_PARAMS, algorithm, n=24)
    tuner = Tuner(spec, seed=11)
    run_loop_n(tuner, 21)  # past TPE's 20 start-up trials
    history = tuner.history
    a = suggest(spec.space, spec.algorithm, history, 11, 3)
    b = suggest(spec.space, spec.algorithm, history, 11, 3)
    assert [s.params for s in a.suggestions] == [s.params for s in b.suggestions]
    assert len(a.suggestions) == 3
    c = suggest(spec.space, spec.algorithm, history, 12, 3)
    assert [s.params for s in c.suggestions] != [s.params for s in a.suggestions]
    # a whole study replays exactly
    small = hyperopt_spec({k: MIXED_PARAMS[k] for k in ("u", "lu", "act")}, algorithm, n=24)
    first = [t.params for t in run_loop(Tuner(small, seed=5), objective)]
    second = [t.params for t in run_loop(Tuner(small, seed=5), objective)]
    assert first == second


def run_loop_n(tuner, n):
    for _ in range(n):
        t = tuner.ask()
        tuner.tell(t, objective(t.params))


def test_hyperopt_exhausted_at_n_trials():
    spec = hyperopt_spec({"x": {"kind": "uniform", "value": [0, 1]}}, n=5)
    tuner = Tuner(spec, seed=1)
    batch = tuner.ask_many(100)
    assert len(batch) == 5  # never more than numRuns
    assert tuner.ask() is None
    assert not tuner.done  # pending trials
    for t in batch:
        tuner.tell(t, t.params["x"])
    assert tuner.done
    full = History.of(TrialRecord(i, {"x": 0.5}, TrialState.COMPLETED, value=1.0) for i in range(5))
    result = suggest(spec.space, spec.algorithm, full, 1, 3)
    assert result.suggestions == () and result.exhausted
    almost = History.of(full.trials[:4])
    result = suggest(spec.space, spec.algorithm, almost, 1, 3)
    assert len(result.suggestions) == 1 and result.exhausted


def test_hyperopt_handles_failed_and_pending_trials():
    spec = hyperopt_spec({"x": {"kind": "uniform", "value": [0, 1]}, "c": {"kind": "choice", "value": ["a", "b"]}},
                         n=10)
    trials = [
        TrialRecord(0, {"x": 0.1, "c": "a"}, TrialState.COMPLETED, value=0.3),
        TrialRecord(1, {"x": 0.2, "c": "b"}, TrialState.FAILED),
        TrialRecord(2, {"x": 0.3, "c": "a"}, TrialState.RUNNING),
        TrialRecord(3, {"x": 0.4, "c": "b"}, TrialState.STOPPED, value=0.5),
        TrialRecord(4, {"x": 0.5, "c": "a"}, TrialState.CANCELLED),
    ]
    result = suggest(spec.space, spec.algorithm, History.of(trials), 2, 2)
    assert len(result.suggestions) == 2
    assert all(spec.space.contains(s.params) for s in result.suggestions)
    assert not result.exhausted


def test_tpe_concentrates_near_the_optimum_better_than_rand():
    # After its 20 random start-up trials TPE samples near the best points; random
    # search keeps spreading over [-10, 10]. Median over seeds, loose bound.
    def late_distance(algorithm, seed):
        spec = hyperopt_spec({"x": {"kind": "uniform", "value": [-10, 10]}}, algorithm, n=40)
        trials = run_loop(Tuner(spec, seed=seed), lambda p: (p["x"] - 3.0) ** 2)
        return statistics.median(abs(t.params["x"] - 3.0) for t in trials[20:])

    tpe = statistics.median(late_distance("tpe", s) for s in range(5))
    rand = statistics.median(late_distance("rand", s) for s in range(5))
    assert tpe < 0.8 * rand, (tpe, rand)


@pytest.mark.parametrize("algorithm", ["tpe", "anneal"])
def test_hyperopt_maximize_is_minimize_of_the_negation(algorithm):
    def f(p):
        return -abs(p["x"] + 4.0) - (0.5 if p["c"] == "a" else 0.0)

    params = {"x": {"kind": "uniform", "value": [-10, 10]}, "c": {"kind": "choice", "value": ["a", "b"]}}
    up = run_loop(Tuner(hyperopt_spec(params, algorithm, n=26, optimization="maximize"), seed=1), f)
    down = run_loop(Tuner(hyperopt_spec(params, algorithm, n=26, optimization="minimize"), seed=1),
                    lambda p: -f(p))
    assert [t.params for t in up] == [t.params for t in down]
    wrong = run_loop(Tuner(hyperopt_spec(params, algorithm, n=26, optimization="minimize"), seed=1), f)
    assert [t.params for t in wrong] != [t.params for t in up]


@pytest.mark.parametrize("algorithm", ["tpe", "rand", "anneal"])
@pytest.mark.parametrize("n_done", [3, 22])  # before and after TPE's 20 start-up trials
def test_hyperopt_batch_equals_one_at_a_time_with_pending(algorithm, n_done):
    spec = hyperopt_spec(MIXED_PARAMS, algorithm, n=40)
    tuner = Tuner(spec, seed=8)
    run_loop_n(tuner, n_done)
    history = tuner.history
    batch = suggest(spec.space, spec.algorithm, history, 8, 3)
    assert len(batch.suggestions) == 3  # as many as asked, whatever the algorithm
    one_by_one = []
    trials = list(history.trials)
    for _ in range(3):
        result = suggest(spec.space, spec.algorithm, History.of(trials), 8, 1)
        (s,) = result.suggestions
        one_by_one.append(s.params)
        trials.append(TrialRecord(len(trials), s.params, TrialState.PENDING))
    assert [s.params for s in batch.suggestions] == one_by_one
    assert len({tuple(sorted(p.items())) for p in one_by_one}) == 3


def test_hyperopt_from_a_file_and_v2_tpe_kind():
    spec = load_spec(str(DATA / "hyperopt_quadratic.yml"))
    assert spec.seed == 3
    trials = run_loop(Tuner(spec), lambda p: (p["x"] - 1) ** 2 + (0 if p["act"] == "tanh" else 1))
    assert len(trials) == 12
    tpe = spec_from_dict({"matrix": {"kind": "tpe", "numRuns": 4, "metric": {"name": "loss"},
                                     "params": {"x": {"kind": "uniform", "value": [0, 1]}}}})
    assert isinstance(tpe.algorithm, HyperoptConfig) and tpe.algorithm.algorithm == "tpe"


def test_hyperopt_missing_gives_a_clear_message(monkeypatch):
    spec = hyperopt_spec({"x": {"kind": "uniform", "value": [0, 1]}}, n=3)
    monkeypatch.setitem(sys.modules, "hyperopt", None)  # `import hyperopt` now raises ImportError
    with pytest.raises(UserError) as info:
        suggest(spec.space, spec.algorithm, History(), 0, 1)
    assert "hyperopt" in str(info.value)
    assert "pip install" in str(info.value)
    with pytest.raises(UserError, match="pip install"):
        Tuner(spec, seed=0).ask()


# -------------------------------------------------------------------------- iterative


@pytest.fixture
def user_module(tmp_path, monkeypatch):
    """Write a Python module into a temporary folder on sys.path; return its name."""
    monkeypatch.syspath_prepend(str(tmp_path))
    created = []

    def make(source):
        name = f"hpc_tune_iter_{uuid.uuid4().hex[:10]}"
        (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
        created.append(name)
        return name

    yield make
    for name in created:
        sys.modules.pop(name, None)


def iterative_spec(ref, n=5, params=None):
    return spec_from_dict({"matrix": {
        "kind": "iterative", "function": ref, "numRuns": n,
        "metric": {"name": "loss", "optimization": "minimize"},
        "params": params or {"x": {"kind": "uniform", "value": [0, 10]}, "c": {"kind": "choice", "value": ["a", "b"]}},
    }})


RECORDING = """
CALLS = []

def propose(history, n, seed, space):
    CALLS.append({"history": history, "n": n, "seed": seed, "space": space})
    start = len(history)
    return [{"x": float(start + i), "c": "a" if (start + i) % 2 == 0 else "b"} for i in range(n)]
"""


def test_iterative_gets_the_history_and_its_suggestions_are_used(user_module):
    mod = user_module(RECORDING)
    spec = iterative_spec(f"{mod}:propose", n=4)
    assert spec.algorithm == IterativeConfig(function=f"{mod}:propose", n_trials=4, metric=spec.metric)
    tuner = Tuner(spec, seed=42)
    t0 = tuner.ask()
    assert t0.params == {"x": 0.0, "c": "a"}
    tuner.tell(t0, 1.5)
    t1 = tuner.ask()
    assert t1.params == {"x": 1.0, "c": "b"}
    tuner.tell(t1, None)  # no value: a failure

    calls = sys.modules[mod].CALLS
    assert calls[0]["history"] == [] and calls[0]["n"] == 1 and calls[0]["seed"] == 42
    assert calls[0]["space"] == {"x": "uniform", "c": "values"}
    assert calls[1]["history"] == [{"trial_id": 0, "params": {"x": 0.0, "c": "a"}, "state": "completed",
                                    "value": 1.5, "resource": None}]

    batch = tuner.ask_many(10)
    assert [t.params["x"] for t in batch] == [2.0, 3.0]  # capped at numRuns
    assert calls[-1]["n"] == 2
    assert calls[-1]["history"][1]["state"] == "failed"
    assert tuner.ask() is None
    for t in batch:
        tuner.tell(t, 0.0)
    assert tuner.done
    assert tuner.best().value == 0.0


def test_iterative_longer_list_is_truncated_and_empty_list_means_wait(user_module):
    mod = user_module("""
    def many(history, n, seed, space):
        return [{"x": 1.0, "c": "a"}] * (n + 5)

    def wait(history, n, seed, space):
        return []
    """)
    spec = iterative_spec(f"{mod}:many", n=10)
    result = suggest(spec.space, spec.algorithm, History(), 0, 3)
    assert len(result.suggestions) == 3 and not result.exhausted
    spec = iterative_spec(f"{mod}:wait", n=10)
    result = suggest(spec.space, spec.algorithm, History(), 0, 3)
    assert result.suggestions == () and not result.exhausted


@pytest.mark.parametrize("body, words", [
    ("return None", ["must return a list", "NoneType"]),
    ("return {'x': 1.0, 'c': 'a'}", ["must return a list", "dict"]),
    ("return [1.0]", ["returned 1.0", "exactly the parameters", "['c', 'x']"]),
    ("return [{'x': 1.0}]", ["exactly the parameters"]),
    ("return [{'x': 1.0, 'c': 'a', 'extra': 2}]", ["exactly the parameters"]),
])
def test_iterative_bad_returns_give_user_errors(user_module, body, words):
    mod = user_module(f"def bad(history, n, seed, space):\n    {body}\n")
    spec = iterative_spec(f"{mod}:bad")
    with pytest.raises(UserError) as info:
        suggest(spec.space, spec.algorithm, History(), 0, 1)
    for w in words:
        assert w in str(info.value)
    assert f"{mod}:bad" in str(info.value)


def test_iterative_missing_module_or_function(user_module):
    spec = iterative_spec("no_such_module_hpc_tune_xyz:f")
    with pytest.raises(UserError, match="cannot import `no_such_module_hpc_tune_xyz`"):
        suggest(spec.space, spec.algorithm, History(), 0, 1)
    mod = user_module("VALUE = 3\n")
    for attr in ("missing", "VALUE"):
        spec = iterative_spec(f"{mod}:{attr}")
        with pytest.raises(UserError, match=f"has no function `{attr}`"):
            suggest(spec.space, spec.algorithm, History(), 0, 1)


def test_iterative_exhausted_at_n_trials(user_module):
    mod = user_module(RECORDING)
    spec = iterative_spec(f"{mod}:propose", n=2)
    full = History.of(TrialRecord(i, {"x": 0.0, "c": "a"}, TrialState.COMPLETED, value=1.0) for i in range(2))
    result = suggest(spec.space, spec.algorithm, full, 0, 5)
    assert result.suggestions == () and result.exhausted
    assert sys.modules.get(mod) is None or not sys.modules[mod].CALLS  # not even called


def test_iterative_spec_errors():
    with pytest.raises(SpecError, match="module:function"):
        iterative_spec("just_a_module")
    with pytest.raises(SpecError, match="iterative needs `function"):
        spec_from_dict({"matrix": {"kind": "iterative", "numRuns": 2,
                                   "params": {"x": {"kind": "uniform", "value": [0, 1]}}}})
    with pytest.raises(SpecError, match="numRuns"):
        spec_from_dict({"matrix": {"kind": "iterative", "function": "m:f",
                                   "params": {"x": {"kind": "uniform", "value": [0, 1]}}}})
