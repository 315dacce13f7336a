"""Bayesian optimisation: purity, phases, batches, kinds of parameters, robustness."""
from __future__ import annotations

import math
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import pytest

from hpc_tune.search import bayes
from hpc_tune.search.base import History, TrialRecord, TrialState, sub_rng
from hpc_tune.space import (
    Discrete,
    Normal,
    Space,
    Uniform,
    numpy_geomspace,
    numpy_logspace,
    params_key,
)
from hpc_tune.spec.model import BayesConfig, GaussianProcessConfig, Metric

SPACE_2D = Space({"x": Uniform(-1.0, 1.0), "y": Uniform(-1.0, 1.0)})


def quadratic(p: Dict[str, Any]) -> float:
    return (p["x"] - 0.3) ** 2 + (p["y"] + 0.2) ** 2


def config(n_initial: int = 5, n_iterations: int = 15, optimization: str = "minimize",
           **kw: Any) -> BayesConfig:
    gp = kw.pop("gaussian_process", GaussianProcessConfig())
    return BayesConfig(n_initial_trials=n_initial, n_iterations=n_iterations,
                       metric=Metric("loss", optimization), gaussian_process=gp, **kw)


def completed(trials: List[TrialRecord], params: Dict[str, Any], value: Optional[float],
              state: TrialState = TrialState.COMPLETED) -> List[TrialRecord]:
    return trials + [TrialRecord(len(trials), params, state, value)]


def optimise(space: Space, cfg: BayesConfig, f: Callable[[Dict[str, Any]], float], seed: int,
             n_trials: Optional[int] = None) -> List[TrialRecord]:
    """The sequential ask/tell loop: one suggestion at a time."""
    trials: List[TrialRecord] = []
    total = cfg.n_initial_trials + cfg.n_iterations if n_trials is None else n_trials
    for _ in range(total):
        res = bayes.suggest(space, cfg, History.of(trials), seed, 1)
        assert len(res.suggestions) == 1
        p = res.suggestions[0].params
        trials = completed(trials, p, f(p))
    return trials


def history_of(space: Space, f: Callable[[Dict[str, Any]], float], n: int, seed: int = 7) -> List[TrialRecord]:
    trials: List[TrialRecord] = []
    for i in range(n):
        p = space.sample(sub_rng(seed, 5, i))
        trials = completed(trials, p, f(p))
    return trials


def keys(result) -> List[Any]:
    return [params_key(s.params) for s in result.suggestions]


# --------------------------------------------------------------------------- purity


def test_same_history_and_seed_give_the_same_suggestions():
    trials = history_of(SPACE_2D, quadratic, 8)
    trials = trials + [TrialRecord(8, {"x": 0.1, "y": 0.1}, TrialState.RUNNING)]
    cfg = config(n_initial=5, n_iterations=20)
    a = bayes.suggest(SPACE_2D, cfg, History.of(trials), 3, 3)
    b = bayes.suggest(SPACE_2D, cfg, History.of(list(trials)), 3, 3)
    assert a == b
    assert len(a.suggestions) == 3
    c = bayes.suggest(SPACE_2D, cfg, History.of(trials), 4, 3)
    assert keys(c) != keys(a)


def test_a_replayed_study_is_identical():
    cfg = config(n_initial=4, n_iterations=6)
    first = optimise(SPACE_2D, cfg, quadratic, seed=11)
    second = optimise(SPACE_2D, cfg, quadratic, seed=11)
    assert [t.params for t in first] == [t.params for t in second]


# ------------------------------------------------------------------ initial phase


def test_initial_phase_is_seeded_random_sampling_within_bounds():
    space = Space({"lr": Uniform(math.log(1e-5), math.log(1e-1), log=True, kind="loguniform"),
                   "dropout": Uniform(0.0, 0.5), "units": Discrete((16, 32, 64, 128))})
    cfg = config(n_initial=6, n_iterations=4)
    res = bayes.suggest(space, cfg, History(), 42, 6)
    assert len(res.suggestions) == 6 and not res.exhausted
    for i, s in enumerate(res.suggestions):
        assert s.params == space.sample(sub_rng(42, 0, i))
        assert space.contains(s.params)
        assert s.meta["bo"] == "random"
    assert len(set(keys(res))) == 6


def test_initial_phase_avoids_duplicates_in_a_discrete_space():
    space = Space({"a": Discrete((1, 2, 3)), "b": Discrete(("x", "y"))})
    cfg = config(n_initial=6, n_iterations=0)
    res = bayes.suggest(space, cfg, History(), 0, 6)
    assert len(set(keys(res))) == 6
    assert res.exhausted


# -------------------------------------------------------------------- model phase


def test_model_phase_beats_random_search_on_a_quadratic():
    cfg = config(n_initial=5, n_iterations=15)
    bo_best, random_best = [], []
    for seed in range(5):
        trials = optimise(SPACE_2D, cfg, quadratic, seed)
        assert all(t.params == SPACE_2D.sample(sub_rng(seed, 0, i)) for i, t in enumerate(trials[:5]))
        bo_best.append(min(t.value for t in trials))
        random_best.append(min(quadratic(SPACE_2D.sample(sub_rng(seed, 0, i))) for i in range(20)))
    assert np.median(bo_best) < 1e-2
    assert np.median(bo_best) < np.median(random_best) / 5


def test_maximize_is_minimize_of_the_negation():
    cfg_min = config(n_initial=4, n_iterations=6)
    cfg_max = config(n_initial=4, n_iterations=6, optimization="maximize")
    low = optimise(SPACE_2D, cfg_min, quadratic, seed=2)
    high = optimise(SPACE_2D, cfg_max, lambda p: -quadratic(p), seed=2)
    assert [t.params for t in low] == [t.params for t in high]
    # and it does climb: the best of the model phase beats the initial design
    assert max(t.value for t in high[4:]) > max(t.value for t in high[:4])


def test_maximize_suggests_near_the_best_trials():
    trials = history_of(SPACE_2D, lambda p: -quadratic(p), 25)
    cfg = config(n_initial=5, n_iterations=30, optimization="maximize", acquisition="ucb", kappa=0.1)
    s = bayes.suggest(SPACE_2D, cfg, History.of(trials), 0, 1).suggestions[0]
    assert s.meta["bo"] == "model"
    assert quadratic(s.params) < 0.05


@pytest.mark.parametrize("acquisition", ["ucb", "ei", "poi"])
@pytest.mark.parametrize("gp", [GaussianProcessConfig(), GaussianProcessConfig(kernel="rbf"),
                                GaussianProcessConfig(kernel="matern", nu=1.9, length_scale=0.5,
                                                      n_restarts_optimizer=1),
                                GaussianProcessConfig(kernel="matern", nu=0.5)])
def test_every_acquisition_and_kernel_runs(acquisition, gp):
    trials = history_of(SPACE_2D, quadratic, 12)
    cfg = config(n_initial=5, n_iterations=20, acquisition=acquisition, eps=0.01, gaussian_process=gp)
    res = bayes.suggest(SPACE_2D, cfg, History.of(trials), 1, 2)
    assert len(res.suggestions) == 2
    for s in res.suggestions:
        assert SPACE_2D.contains(s.params)
        assert s.meta["bo"] == "model"
    # a model that has seen the bowl proposes inside it, whatever the settings
    assert min(quadratic(s.params) for s in res.suggestions) < 0.5


def test_general_nu_matern_gradient_is_analytic_and_right():
    X = np.random.default_rng(0).random((7, 3))
    k = bayes._Matern(length_scale=np.array([0.3, 0.7, 1.1]), nu=1.9)
    K, G = k(X, eval_gradient=True)
    h = 1e-6
    for j in range(3):
        theta = k.theta.copy()
        theta[j] += h
        num = (k.clone_with_theta(theta)(X) - K) / h
        assert np.allclose(G[:, :, j], num, atol=1e-4)
    assert np.allclose(K, bayes.Matern(length_scale=[0.3, 0.7, 1.1], nu=1.9)(X))


# ------------------------------------------------------------------------ batches


def test_a_batch_holds_distinct_points_away_from_pending_trials():
    trials = history_of(SPACE_2D, quadratic, 10)
    pending = [{"x": 0.3, "y": -0.2}, {"x": 0.25, "y": -0.15}]
    for p in pending:
        trials = completed(trials, p, None, TrialState.PENDING)
    cfg = config(n_initial=5, n_iterations=30)
    res = bayes.suggest(SPACE_2D, cfg, History.of(trials), 0, 4)
    assert len(res.suggestions) == 4
    points = [np.array([s.params["x"], s.params["y"]]) for s in res.suggestions]
    points += [np.array([p["x"], p["y"]]) for p in pending]
    gaps = [np.linalg.norm(a - b) for i, a in enumerate(points) for b in points[i + 1:]]
    assert min(gaps) > 1e-3


def test_a_batch_in_a_small_discrete_space_has_no_duplicates():
    space = Space({"a": Discrete((1, 2, 3, 4)), "b": Discrete(("u", "v", "w"))})
    trials = []
    for i, p in enumerate(space.grid()):
        if i % 3 == 0:
            trials = completed(trials, p, float(p["a"]) + (p["b"] == "v"))
    cfg = config(n_initial=2, n_iterations=20)
    res = bayes.suggest(space, cfg, History.of(trials), 0, 5)
    assert len(res.suggestions) == 5
    tried = {params_key(t.params) for t in trials}
    assert len(set(keys(res))) == 5 and not tried & set(keys(res))


def test_a_space_with_every_point_tried_is_exhausted():
    space = Space({"a": Discrete((1, 2, 3))})
    cfg = config(n_initial=1, n_iterations=10)
    trials: List[TrialRecord] = []
    for _ in range(3):
        res = bayes.suggest(space, cfg, History.of(trials), 0, 1)
        trials = completed(trials, res.suggestions[0].params, 1.0)
    assert sorted(t.params["a"] for t in trials) == [1, 2, 3]
    res = bayes.suggest(space, cfg, History.of(trials), 0, 1)
    assert res.suggestions == () and res.exhausted and res.notes


def test_foreign_trials_do_not_make_a_small_space_look_exhausted():
    space = Space({"a": Discrete((1, 2, 3))})
    trials = completed([], {"a": 1}, 0.5)
    trials = completed(trials, {"a": 7}, 0.1)  # not a value of this space
    trials = completed(trials, {"b": 2}, 0.1)
    res = bayes.suggest(space, config(n_initial=1, n_iterations=10), History.of(trials), 0, 5)
    assert sorted(s.params["a"] for s in res.suggestions) == [2, 3]
    assert res.exhausted and res.notes


# ------------------------------------------------------------------ kinds of params


def test_log_axis_and_unbounded_params_stay_in_their_support():
    space = Space({
        "lr": Uniform(math.log(1e-6), math.log(1e-1), log=True, kind="loguniform"),
        "wd": numpy_logspace(-6, -2, 5),
        "batch": numpy_geomspace(16, 512, 6),
        "q": Uniform(math.log(1), math.log(1000), q=5, log=True, kind="qloguniform"),
        "init": Normal(0.0, 1.0),
        "scale": Normal(0.0, 0.5, log=True, kind="lognormal"),
    })

    def f(p: Dict[str, Any]) -> float:
        return (math.log10(p["lr"]) + 3) ** 2 + (math.log10(p["wd"]) + 4) ** 2 + p["init"] ** 2

    trials = history_of(space, f, 10)
    cfg = config(n_initial=5, n_iterations=30)
    res = bayes.suggest(space, cfg, History.of(trials), 0, 3)
    for s in res.suggestions:
        assert space.contains(s.params), s.params
        assert 1e-6 * (1 - 1e-9) <= s.params["lr"] <= 1e-1 * (1 + 1e-9)
        assert s.params["scale"] > 0
    assert [s.meta["bo"] for s in res.suggestions] == ["model"] * 3


def test_categorical_params_decode_to_valid_values():
    space = Space({"act": Discrete(("relu", "tanh", "gelu")), "opt": Discrete(("adam", None, True)),
                   "x": Uniform(0.0, 1.0)})

    def f(p: Dict[str, Any]) -> float:
        return {"relu": 1.0, "tanh": 0.0, "gelu": 0.5}[p["act"]] + (p["opt"] is None) + (p["x"] - 0.5) ** 2

    cfg = config(n_initial=4, n_iterations=8)
    trials = optimise(space, cfg, f, seed=3)
    for t in trials:
        assert t.params["act"] in ("relu", "tanh", "gelu")
        assert any(t.params["opt"] is v or t.params["opt"] == v and type(v) is type(t.params["opt"])
                   for v in ("adam", None, True))
        assert space.contains(t.params)


def test_weighted_choice_never_suggests_a_zero_probability_value():
    space = Space({"a": Discrete(("x", "y", "z"), probabilities=(0.5, 0.5, 0.0)), "u": Uniform(0.0, 1.0)})
    trials = history_of(space, lambda p: p["u"], 8)
    res = bayes.suggest(space, config(n_initial=2, n_iterations=20), History.of(trials), 0, 4)
    assert all(s.params["a"] in ("x", "y") for s in res.suggestions)


# --------------------------------------------------------------------- robustness


def test_failed_cancelled_and_nan_trials_are_left_out_of_the_fit(monkeypatch):
    seen_sizes = []
    real_fit = bayes._fit_gp

    def spy(X, y, gpc, rng):
        seen_sizes.append(len(y))
        assert np.all(np.isfinite(y))
        return real_fit(X, y, gpc, rng)

    monkeypatch.setattr(bayes, "_fit_gp", spy)
    trials = history_of(SPACE_2D, quadratic, 6)
    trials = completed(trials, {"x": 0.3, "y": -0.2}, None, TrialState.FAILED)
    trials = completed(trials, {"x": 0.9, "y": 0.9}, -1e9, TrialState.FAILED)
    trials = completed(trials, {"x": 0.5, "y": 0.5}, float("nan"))
    trials = completed(trials, {"x": 0.4, "y": 0.5}, float("inf"))
    trials = completed(trials, {"x": 0.1, "y": 0.1}, None, TrialState.CANCELLED)
    trials = completed(trials, {"x": -0.5, "y": 0.0}, 0.5, TrialState.STOPPED)
    res = bayes.suggest(SPACE_2D, config(n_initial=3, n_iterations=20), History.of(trials), 0, 1)
    assert seen_sizes == [7]
    assert SPACE_2D.contains(res.suggestions[0].params)


@pytest.mark.parametrize("values", [[1.0], [2.0, 2.0, 2.0, 2.0]])
def test_one_observation_and_all_equal_values(values):
    trials: List[TrialRecord] = []
    for i, v in enumerate(values):
        trials = completed(trials, SPACE_2D.sample(sub_rng(9, i)), v)
    res = bayes.suggest(SPACE_2D, config(n_initial=1, n_iterations=10), History.of(trials), 0, 2)
    assert len(res.suggestions) == 2 and len(set(keys(res))) == 2
    assert all(s.meta["bo"] == "model" for s in res.suggestions)


def test_model_phase_without_any_value_falls_back_to_random():
    trials: List[TrialRecord] = []
    for i in range(3):
        trials = completed(trials, SPACE_2D.sample(sub_rng(1, i)), None, TrialState.FAILED)
    trials = completed(trials, SPACE_2D.sample(sub_rng(1, 9)), None, TrialState.RUNNING)
    res = bayes.suggest(SPACE_2D, config(n_initial=2, n_iterations=10), History.of(trials), 5, 2)
    assert [s.params for s in res.suggestions] == [SPACE_2D.sample(sub_rng(5, 0, 4)),
                                                  SPACE_2D.sample(sub_rng(5, 0, 5))]


def test_trials_of_another_space_are_ignored():
    trials = history_of(SPACE_2D, quadratic, 6)
    trials = completed(trials, {"x": 0.1, "z": 3}, 0.0)
    trials = completed(trials, {"x": 0.1, "y": "oops"}, 0.0)
    res = bayes.suggest(SPACE_2D, config(n_initial=2, n_iterations=20), History.of(trials), 0, 1)
    assert SPACE_2D.contains(res.suggestions[0].params)


def test_a_single_value_space():
    space = Space({"a": Discrete((4,)), "x": Uniform(0.0, 1.0)})
    trials = history_of(space, lambda p: p["x"], 4)
    res = bayes.suggest(space, config(n_initial=2, n_iterations=5), History.of(trials), 0, 2)
    assert all(s.params["a"] == 4 and 0 <= s.params["x"] <= 1 for s in res.suggestions)


# ----------------------------------------------------------------------- budget


def test_exhausted_once_the_budget_is_used():
    cfg = config(n_initial=2, n_iterations=3)
    trials = history_of(SPACE_2D, quadratic, 4)
    res = bayes.suggest(SPACE_2D, cfg, History.of(trials), 0, 3)
    assert len(res.suggestions) == 1 and res.exhausted  # the last one
    res = bayes.suggest(SPACE_2D, cfg, History.of(trials[:2]), 0, 1)
    assert len(res.suggestions) == 1 and not res.exhausted
    full = history_of(SPACE_2D, quadratic, 5)
    res = bayes.suggest(SPACE_2D, cfg, History.of(full), 0, 3)
    assert res.suggestions == () and res.exhausted


def test_failed_trials_count_against_the_budget_and_n_zero_asks_nothing():
    cfg = config(n_initial=1, n_iterations=1)
    trials = completed([], {"x": 0.0, "y": 0.0}, None, TrialState.FAILED)
    trials = completed(trials, {"x": 0.1, "y": 0.0}, None, TrialState.FAILED)
    assert bayes.suggest(SPACE_2D, cfg, History.of(trials), 0, 1).exhausted
    res = bayes.suggest(SPACE_2D, cfg, History(), 0, 0)
    assert res.suggestions == () and not res.exhausted
