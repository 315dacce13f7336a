"""Grid, random and mapping searchers: order, counts, seeds, weights, and termination."""
from collections import Counter
from pathlib import Path

import pytest

from hpc_tune.search import suggest
from hpc_tune.search.base import History, TrialRecord, TrialState
from hpc_tune.space import params_key
from hpc_tune.spec import load_spec, spec_from_dict
from hpc_tune.spec.model import GridConfig, RandomConfig
from hpc_tune.tuner import Tuner

REPO_ROOT = Path(__file__).resolve().parents[2]
DATA = REPO_ROOT / "tests" / "data"
CORPUS = REPO_ROOT / "tests" / "data" / "polyaxonfiles"  # public files; origins in its sources.txt


def v1(kind, params, **extra):
    return spec_from_dict({"matrix": {"kind": kind, "params": params, **extra}})


def choice(*values):
    return {"kind": "choice", "value": list(values)}


def history_of(param_sets, state=TrialState.PENDING):
    return History.of(TrialRecord(i, dict(p), state, value=None if state.live else float(i))
                      for i, p in enumerate(param_sets))


def all_params(spec, seed=0, n=10**6, history=None):
    result = suggest(spec.space, spec.algorithm, history or History(), seed, n)
    return [s.params for s in result.suggestions], result


def keys(param_sets):
    return [params_key(p) for p in param_sets]


# ----------------------------------------------------------------------------- grid


def test_grid_order_and_first_n_from_a_file():
    spec = load_spec(str(DATA / "grid_maximize.yml"))
    assert spec.algorithm == GridConfig(n_trials=5)
    params, result = all_params(spec)
    assert params == [
        {"lr": 0.001, "depth": 1}, {"lr": 0.001, "depth": 2}, {"lr": 0.001, "depth": 3},
        {"lr": 0.01, "depth": 1}, {"lr": 0.01, "depth": 2},
    ]
    assert result.exhausted
    assert [s.meta["index"] for s in result.suggestions] == [0, 1, 2, 3, 4]


def test_grid_gen_a_fraction_keeps_the_first_part():
    spec = load_spec(str(DATA / "genA_fraction_grid.yml"))
    params, result = all_params(spec)
    full = list(spec.space.grid())
    assert len(full) == 12
    assert params == full[:6]
    assert params[:4] == [{"lr": 0.1, "batch": b} for b in (16, 32, 64, 128)]
    assert result.exhausted


def test_grid_whole_product_in_key_order():
    spec = v1("grid", {"a": choice(1, 2), "b": choice("x", "y", "z")})
    params, result = all_params(spec)
    assert params == [{"a": a, "b": b} for a in (1, 2) for b in "xyz"]
    assert result.exhausted and result.notes == ()


def test_grid_in_batches_continues_where_the_history_ends():
    spec = v1("grid", {"a": choice(1, 2, 3), "b": choice(True, False)})
    full, _ = all_params(spec)
    got = []
    while True:
        result = suggest(spec.space, spec.algorithm, history_of(got), 0, 4)
        got += [s.params for s in result.suggestions]
        if result.exhausted:
            break
        assert len(result.suggestions) == 4
    assert got == full
    after = suggest(spec.space, spec.algorithm, history_of(got), 0, 4)
    assert after.suggestions == () and after.exhausted


def test_grid_n_zero_asks_nothing_and_is_not_exhausted():
    spec = v1("grid", {"a": choice(1, 2)})
    result = suggest(spec.space, spec.algorithm, History(), 0, 0)
    assert result.suggestions == () and not result.exhausted


def test_grid_keeps_value_types_of_each_study():
    # `1 == True` and `1 == 1.0`: plans cached for one space must not leak into another.
    ints = v1("grid", {"x": choice(1, 0)})
    bools = v1("grid", {"x": choice(True, False)})
    floats = v1("grid", {"x": choice(1.0, 0.0)})
    for spec, typ in ((ints, int), (bools, bool), (floats, float), (ints, int)):
        params, _ = all_params(spec)
        assert [type(p["x"]) for p in params] == [typ, typ]


# ---------------------------------------------------------------------------- random


def test_random_no_duplicates_and_inside_the_space():
    spec = load_spec(str(CORPUS / "genD_examples_keras_mnist_random.yml")) if CORPUS.is_dir() else v1(
        "random", {"a": choice(*range(10)), "u": {"kind": "uniform", "value": [0, 1]}}, numRuns=20)
    n = spec.algorithm.n_trials
    params, result = all_params(spec, seed=123)
    assert len(params) == n
    assert len(set(keys(params))) == n
    assert all(spec.space.contains(p) for p in params)
    assert result.exhausted


def test_random_discrete_no_duplicates_near_the_space_size():
    spec = v1("random", {"a": choice(*range(5)), "b": choice("x", "y", "z")}, numRuns=14)
    params, _ = all_params(spec, seed=5)
    assert len(params) == 14
    assert len(set(keys(params))) == 14


def test_random_capped_at_the_space_size_with_a_warning():
    spec = v1("random", {"a": choice(1, 2), "b": choice("x", "y")}, numRuns=10)
    assert spec.algorithm == RandomConfig(n_trials=4)
    assert any("10 trials asked" in w and "capped at 4" in w for w in spec.warnings)
    params, result = all_params(spec, seed=1)
    assert sorted(keys(params)) == sorted(keys(spec.space.grid()))
    assert result.exhausted


def test_random_is_deterministic_for_a_seed_including_zero():
    spec = v1("random", {"a": choice(*range(20)), "u": {"kind": "uniform", "value": [0, 1]}}, numRuns=15, seed=0)
    assert spec.seed == 0
    assert Tuner(spec).seed == 0  # 0 is a seed, not "no seed"
    first, _ = all_params(spec, seed=0)
    again, _ = all_params(spec, seed=0)
    assert first == again
    via_tuner = Tuner(spec).ask_many(100)
    assert [t.params for t in via_tuner] == first


def test_random_differs_between_seeds():
    spec = v1("random", {"a": choice(*range(50)), "u": {"kind": "uniform", "value": [0, 1]}}, numRuns=10)
    plans = [tuple(keys(all_params(spec, seed=s)[0])) for s in (0, 1, 2, 2**31 - 2)]
    assert len(set(plans)) == 4
    discrete = v1("random", {"a": choice(*range(50)), "b": choice(*range(50))}, numRuns=10)
    assert keys(all_params(discrete, seed=0)[0]) != keys(all_params(discrete, seed=1)[0])


def test_random_respects_pvalues_weights_discrete_space():
    # A finite space is sampled without replacement; its first draw follows the weights.
    spec = v1("random", {"opt": {"kind": "pchoice", "value": [["a", 0.7], ["b", 0.2], ["c", 0.1]]},
                         "k": choice(1, 2, 3, 4, 5)}, numRuns=1)
    counts = Counter(all_params(spec, seed=s)[0][0]["opt"] for s in range(400))
    assert 0.6 < counts["a"] / 400 < 0.8
    assert 0.12 < counts["b"] / 400 < 0.28
    assert 0.03 < counts["c"] / 400 < 0.17


def test_random_respects_pvalues_weights_with_a_distribution():
    spec = v1("random", {"opt": {"kind": "pchoice", "value": [["a", 0.7], ["b", 0.2], ["c", 0.1]]},
                         "u": {"kind": "uniform", "value": [0, 1]}}, numRuns=3000)
    params, _ = all_params(spec, seed=9)
    freq = Counter(p["opt"] for p in params)
    assert freq["a"] / 3000 == pytest.approx(0.7, abs=0.04)
    assert freq["b"] / 3000 == pytest.approx(0.2, abs=0.04)
    assert freq["c"] / 3000 == pytest.approx(0.1, abs=0.04)


def test_random_zero_probability_choice_finite_space_terminates():
    spec = v1("random", {"opt": {"kind": "pchoice", "value": [["x", 1], ["y", 0]]}, "k": choice(1, 2, 3)},
              numRuns=10)
    assert spec.algorithm.n_trials == 3  # only 3 drawable parameter sets
    assert any("capped at 3" in w for w in spec.warnings)
    params, result = all_params(spec, seed=4)
    assert len(params) == 3 and result.exhausted
    assert {p["opt"] for p in params} == {"x"}
    assert sorted(p["k"] for p in params) == [1, 2, 3]


def test_random_zero_probability_choice_with_a_distribution():
    spec = v1("random", {"opt": {"kind": "pchoice", "value": [["x", 1], ["y", 0]]},
                         "u": {"kind": "uniform", "value": [0, 1]}}, numRuns=50)
    params, _ = all_params(spec, seed=4)
    assert len(params) == 50
    assert {p["opt"] for p in params} == {"x"}


@pytest.mark.parametrize("extra", [{}, {"opt": {"kind": "pchoice", "value": [["x", 1], ["y", 0]]}}])
def test_random_coarse_quantised_range_stops_with_fewer_and_a_note(extra):
    spec = v1("random", {"q": {"kind": "quniform", "value": "0:1:0.5"}, **extra}, numRuns=100)
    params, result = all_params(spec, seed=0)
    assert sorted(p["q"] for p in params) == [0.0, 0.5, 1.0]
    assert result.exhausted
    assert len(result.notes) == 1
    assert "planned 3 of 100" in result.notes[0]
    tuner = Tuner(spec, seed=0)
    trials = []
    while (t := tuner.ask()) is not None:
        trials.append(t)
        tuner.tell(t, 1.0)
    assert len(trials) == 3
    assert tuner.done
    assert any("3 of 100" in n for n in tuner.notes)


def test_random_without_count_runs_the_whole_discrete_space_in_random_order():
    spec = spec_from_dict({"settings": {"search_method": "random"},
                           "matrix": {"a": {"values": [1, 2, 3]}, "b": {"values": ["x", "y"]}}})
    assert spec.generation == "A"
    params, _ = all_params(spec, seed=3)
    assert sorted(keys(params)) == sorted(keys(spec.space.grid()))


def test_random_notes_only_once_exhausted():
    spec = v1("random", {"q": {"kind": "quniform", "value": "0:1:0.5"}}, numRuns=100)
    first = suggest(spec.space, spec.algorithm, History(), 0, 2)
    assert len(first.suggestions) == 2 and not first.exhausted and first.notes == ()


# --------------------------------------------------------------------------- mapping


def test_mapping_returns_the_list_in_order():
    rows = [{"lr": 0.1, "act": "relu"}, {"lr": 0.01, "act": "tanh"}, {"lr": 0.001, "act": "relu"}]
    spec = spec_from_dict({"matrix": {"kind": "mapping", "values": rows}})
    params, result = all_params(spec)
    assert params == rows
    assert result.exhausted
    one = suggest(spec.space, spec.algorithm, History(), 0, 1)
    assert [s.params for s in one.suggestions] == rows[:1] and not one.exhausted
    assert spec.space["act"].values == ("relu", "tanh")


def test_mapping_from_the_corpus():
    if not CORPUS.is_dir():
        pytest.skip(f"corpus not found in {CORPUS}")
    spec = load_spec(str(CORPUS / "genD_examples_keras_mnist_mapping.yml"))
    params, _ = all_params(spec)
    assert [p["optimizer"] for p in params] == ["adam", "sgd", "rmsprop", "rmsprop"]
    assert [p["log_learning_rate"] for p in params] == [-5, -1, -2, -3]


# ----------------------------------------------------------------------------- purity


PURITY_SPECS = {
    "grid": lambda: v1("grid", {"a": choice(1, 2, 3), "b": choice("x", "y", "z")}),
    "random-discrete": lambda: v1("random", {"a": choice(*range(6)), "b": choice("x", "y")}, numRuns=9),
    "random-continuous": lambda: v1("random", {"a": choice(1, 2), "u": {"kind": "loguniform", "value": [-5, 0]}},
                                    numRuns=9),
    "mapping": lambda: spec_from_dict({"matrix": {"kind": "mapping",
                                                  "values": [{"a": i, "b": str(i)} for i in range(9)]}}),
}


@pytest.mark.parametrize("name", list(PURITY_SPECS))
@pytest.mark.parametrize("k", [0, 1, 4, 8])
@pytest.mark.parametrize("state", [TrialState.PENDING, TrialState.COMPLETED, TrialState.FAILED])
def test_suggest_is_pure_and_resumable(name, k, state):
    spec = PURITY_SPECS[name]()
    whole, whole_result = all_params(spec, seed=17)
    assert whole_result.exhausted
    first, _ = all_params(spec, seed=17, n=k)
    assert first == whole[:k]
    rest, result = all_params(spec, seed=17, history=history_of(first, state))
    assert first + rest == whole
    assert result.exhausted
    # asking again with the same history gives the same answer
    again, _ = all_params(spec, seed=17, history=history_of(first, state))
    assert again == rest
