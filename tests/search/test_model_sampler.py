"""The model sampler (``sampler: model``): when the model speaks, what it proposes, and
that it is a pure function of its arguments (no timed assertions: fixed seeds)."""
from __future__ import annotations

import math
from typing import Any, Dict, List

import numpy as np
from searcher_study import SearcherStudy

from hpc_tune.search import hyperband, model_sampler, samplers
from hpc_tune.search.model_sampler import ModelSamplerConfig, hyperparameter_fit_size, propose, warp
from hpc_tune.search.samplers import Observation
from hpc_tune.space import Discrete, Space, Uniform, params_key
from hpc_tune.spec.model import HyperbandConfig, Metric, ResourceConfig, SamplerConfig

SQUARE = Space({"x": Uniform(0.0, 1.0), "y": Uniform(0.0, 1.0)})
OPTIMUM = (0.7, 0.2)


def config(**kw: Any) -> SamplerConfig:
    return SamplerConfig(kind="model", model=ModelSamplerConfig(**kw))


def loss(p: Dict[str, Any], r: float) -> float:
    """Best at OPTIMUM at every budget, a little better with more resource."""
    return (p["x"] - OPTIMUM[0]) ** 2 + (p["y"] - OPTIMUM[1]) ** 2 + 0.3 / r


def random_obs(n: int, resource: float, seed: int = 0, f=loss) -> List[Observation]:
    rng = np.random.default_rng(seed)
    return [Observation(p, resource, f(p, resource)) for p in (SQUARE.sample(rng) for _ in range(n))]


def distance(p: Dict[str, Any]) -> float:
    return math.hypot(p["x"] - OPTIMUM[0], p["y"] - OPTIMUM[1])


# ------------------------------------------------------------------------ the model


def test_random_until_a_budget_has_min_points_in_model():
    obs = random_obs(2, 1.0) + random_obs(2, 3.0, seed=1)  # two parameters: 3 results needed
    model = propose(SQUARE, config(random_fraction=0.0), obs, 5, np.random.default_rng(3))
    random = propose(SQUARE, config(random_fraction=1.0), obs, 5, np.random.default_rng(3))
    assert model == random
    obs += random_obs(1, 3.0, seed=2)
    assert propose(SQUARE, config(random_fraction=0.0), obs, 5, np.random.default_rng(3)) != random
    # a larger threshold keeps it random
    assert propose(SQUARE, config(random_fraction=0.0, min_points_in_model=4), obs, 5,
                   np.random.default_rng(3)) == random


def test_proposals_concentrate_on_the_optimum_better_than_random():
    wins = 0
    for seed in range(6):
        # b* = 3: the largest budget with 9 results
        obs = random_obs(27, 1.0, seed) + random_obs(9, 3.0, seed + 100) + random_obs(3, 9.0, seed + 200)
        model = propose(SQUARE, config(random_fraction=0.0, min_points_in_model=9), obs, 8,
                        np.random.default_rng(seed))
        random = propose(SQUARE, config(random_fraction=1.0), obs, 8, np.random.default_rng(seed))
        assert np.median([distance(p) for p in model]) < 0.25
        wins += np.median([distance(p) for p in model]) < np.median([distance(p) for p in random])
    assert wins == 6


def test_the_model_reads_the_results_at_b_star_alone():
    # a biased low fidelity (best at (0.1, 0.9)) does not move proposals made at b* = 9
    def biased(p: Dict[str, Any], r: float) -> float:
        return math.hypot(p["x"] - 0.1, p["y"] - 0.9)
    obs = random_obs(12, 9.0, 3)
    more = random_obs(40, 1.0, 4, biased) + obs + random_obs(30, 3.0, 5, biased)
    assert propose(SQUARE, config(), more, 6, np.random.default_rng(2)) == \
        propose(SQUARE, config(), obs, 6, np.random.default_rng(2))


def test_acquisition_at_the_largest_budget_with_enough_results():
    # the budgets disagree: at r=1 the best region is (0.1, 0.9), at r=9 it is OPTIMUM
    def shifted(p: Dict[str, Any], r: float) -> float:
        target = OPTIMUM if r >= 9 else (0.1, 0.9)
        return (p["x"] - target[0]) ** 2 + (p["y"] - target[1]) ** 2
    obs = random_obs(40, 1.0, 0, shifted) + random_obs(12, 9.0, 1, shifted)
    props = propose(SQUARE, config(random_fraction=0.0), obs, 6, np.random.default_rng(0))
    assert np.median([distance(p) for p in props]) < 0.2
    # with r=9 below the threshold, r=1 decides
    props = propose(SQUARE, config(random_fraction=0.0, min_points_in_model=13), obs, 6, np.random.default_rng(0))
    assert np.median([math.hypot(p["x"] - 0.1, p["y"] - 0.9) for p in props]) < 0.2


def test_concurrent_proposals_differ_and_pending_is_believed():
    obs = random_obs(30, 1.0, 4)
    props = propose(SQUARE, config(random_fraction=0.0), obs, 4, np.random.default_rng(0))
    assert len({params_key(p) for p in props}) == 4
    # the first proposal, handed in as pending, changes the next one
    first = props[:1]
    again = propose(SQUARE, config(random_fraction=0.0), obs, 1, np.random.default_rng(0), pending=first)
    assert again != first


def test_no_repeat_of_an_observed_or_pending_configuration_while_others_exist():
    space = Space({"a": Discrete((1, 2, 3)), "b": Discrete(("p", "q"))})
    rng = np.random.default_rng(0)
    obs = [Observation({"a": a, "b": b}, 1.0, float(a) + (b == "q")) for a in (1, 2, 3) for b in ("p",)]
    obs += [Observation({"a": 1, "b": "q"}, 1.0, 2.0)]
    props = propose(space, config(random_fraction=0.0), obs, 2, rng, pending=[])
    seen = {params_key(o.params) for o in obs}
    assert all(params_key(p) not in seen for p in props)
    assert len({params_key(p) for p in props}) == 2
    # everything seen: a repeat rather than fewer proposals
    assert len(propose(space, config(random_fraction=0.0), obs, 4, rng, pending=props)) == 4


def test_failed_and_foreign_results_are_left_out():
    obs = random_obs(20, 1.0, 5)
    noisy = obs + [Observation({"x": 0.5, "y": 0.5}, 1.0, None), Observation({"z": 1.0}, 1.0, 0.0),
                   Observation({"x": 0.5, "y": 0.5}, None, 1.0), Observation({"x": 0.4, "y": 0.5}, 1.0, math.nan)]
    assert propose(SQUARE, config(), noisy, 3, np.random.default_rng(1)) == \
        propose(SQUARE, config(), obs, 3, np.random.default_rng(1))


def test_categories_and_log_axes_round_trip():
    space = Space({"lr": Uniform(math.log(1e-5), math.log(1e-1), log=True, kind="loguniform"),
                   "opt": Discrete(("adam", "sgd"))})
    rng = np.random.default_rng(0)
    obs = []
    for _ in range(30):
        p = space.sample(rng)
        obs.append(Observation(p, 1.0, (math.log(p["lr"]) - math.log(1e-3)) ** 2 + (p["opt"] == "sgd")))
    props = propose(space, config(random_fraction=0.0), obs, 6, np.random.default_rng(0))
    assert all(space.contains(p) for p in props)
    assert sum(p["opt"] == "adam" for p in props) >= 5
    assert np.median([abs(math.log10(p["lr"]) + 3) for p in props]) < 1.0


# ------------------------------------------------------------------------- purity


def test_same_arguments_same_proposals_and_prefixes_agree():
    obs = random_obs(25, 1.0, 6) + random_obs(8, 3.0, 7)
    full = propose(SQUARE, config(), obs, 5, np.random.default_rng(2))
    assert propose(SQUARE, config(), obs, 5, np.random.default_rng(2)) == full
    assert propose(SQUARE, config(), obs, 2, np.random.default_rng(2)) == full[:2]


def test_the_memo_changes_no_result():
    obs = random_obs(25, 1.0, 8) + random_obs(8, 3.0, 9)
    model_sampler._KERNELS.clear()
    model_sampler._ENCODINGS.clear()
    model_sampler._ACQUIRERS.clear()
    model_sampler._ROWS.clear()
    cold = propose(SQUARE, config(random_fraction=0.0), obs, 3, np.random.default_rng(4))
    warm = propose(SQUARE, config(random_fraction=0.0), obs, 3, np.random.default_rng(4))
    model_sampler._KERNELS.clear()
    model_sampler._ENCODINGS.clear()
    model_sampler._ACQUIRERS.clear()
    model_sampler._ROWS.clear()
    assert cold == warm == propose(SQUARE, config(random_fraction=0.0), obs, 3, np.random.default_rng(4))


def test_a_growing_pending_list_gives_what_a_cold_call_gives():
    """Hyperband asks one configuration at a time against the same results: the memo
    starts each call from the last one's believed points; a cold call believes them all."""
    obs = random_obs(25, 1.0, 10) + random_obs(8, 3.0, 11)
    model_sampler._ACQUIRERS.clear()
    model_sampler._ROWS.clear()
    pending: List[Dict[str, Any]] = []
    for i in range(6):
        warm = propose(SQUARE, config(random_fraction=0.0), obs, 1, np.random.default_rng(i), pending)
        model_sampler._ACQUIRERS.clear()
        model_sampler._ROWS.clear()
        cold = propose(SQUARE, config(random_fraction=0.0), obs, 1, np.random.default_rng(i), pending)
        assert warm == cold
        pending.append(warm[0])


def test_observations_read_from_the_last_calls_give_what_a_cold_call_gives():
    """Results appended, one changed in the middle (a value corrected), one removed: the
    rows memo rereads from the first difference."""
    obs = random_obs(30, 1.0, 14) + random_obs(9, 3.0, 15)
    variants = [obs[:20], obs[:25], obs, obs[:10] + [Observation(obs[10].params, 1.0, 5.0)] + obs[11:],
                obs[:5] + obs[6:], obs[:3]]
    for variant in variants:
        warm = propose(SQUARE, config(random_fraction=0.0), variant, 2, np.random.default_rng(1))
        model_sampler._ROWS.clear()
        model_sampler._ACQUIRERS.clear()
        model_sampler._KERNELS.clear()
        cold = propose(SQUARE, config(random_fraction=0.0), variant, 2, np.random.default_rng(1))
        assert warm == cold


def test_the_rank_one_believer_matches_a_new_factorisation():
    obs = random_obs(30, 1.0, 12) + random_obs(9, 3.0, 13)
    seen: set = set()
    data = model_sampler._at(model_sampler._data(SQUARE, obs, seen), 1.0)
    fast = model_sampler._Acquirer(SQUARE, data).model
    slow = model_sampler._Acquirer(SQUARE, data).model
    rng = np.random.default_rng(5)
    for x in rng.random((10, 2)):
        fast.believe(x)
        super(model_sampler._Believer, slow).believe(x)
    np.testing.assert_allclose(fast.L, slow.L, atol=1e-8)
    np.testing.assert_allclose(fast.alpha, slow.alpha, rtol=1e-6, atol=1e-6)
    C = rng.random((50, 2))
    np.testing.assert_allclose(fast.acquisition(C), slow.acquisition(C), rtol=1e-6, atol=1e-8)


def test_hyperparameters_are_refitted_on_a_geometric_grid():
    sizes = [hyperparameter_fit_size(n) for n in range(1, 301)]
    assert sizes[:10] == list(range(1, 11))
    assert all(a <= b for a, b in zip(sizes, sizes[1:]))
    assert all(s <= n for n, s in enumerate(sizes, start=1))
    assert len(set(sizes)) < 35  # about log(300) / log(1.2) refits, not 300
    assert all(s >= n / 1.25 for n, s in enumerate(sizes, start=1))


def test_warp_matches_the_bo_searchers():
    from hpc_tune.search.bayes import _transform_y

    for seed in range(4):
        y = np.exp(np.random.default_rng(seed).standard_normal(60) * (seed + 1))
        np.testing.assert_allclose(warp(y), _transform_y(y), atol=1e-3)
    assert not np.any(warp(np.ones(5)))


# ------------------------------------------------------------- inside Hyperband, restart-exact


def _hyperband_study(sampler: str, seed: int, slots: int = 3):
    cfg = HyperbandConfig(max_iter=9, eta=3, resource=ResourceConfig("epochs", "int"),
                          metric=Metric("loss", "minimize"), sampler=SamplerConfig(kind=sampler))
    st = SearcherStudy(hyperband, SQUARE, cfg, seed)
    # the oldest live trial finishes each round: the proposals see a growing history
    st.play(slots, lambda t, step: loss(t.params, t.resource), steps=200)
    return cfg, st.trials, st.calls


def test_hyperband_with_the_model_sampler_is_restart_exact_and_beats_random():
    wins = 0
    for seed in range(3):
        cfg, trials, calls = _hyperband_study("model", seed)
        for history, n, result in calls[::4]:  # replaying any prefix gives the same next trials
            assert hyperband.suggest(SQUARE, cfg, history, seed, n) == result
        _, random_trials, _ = _hyperband_study("random", seed)
        best = min(distance(t.params) for t in trials if t.resource == 9)
        best_random = min(distance(t.params) for t in random_trials if t.resource == 9)
        wins += best < best_random
    assert wins >= 2


def test_registered_on_the_seam():
    assert samplers.available("model") and samplers.available("kde")
    obs = random_obs(10, 1.0)
    rng_a, rng_b = np.random.default_rng(0), np.random.default_rng(0)
    assert samplers.propose(SQUARE, config(), obs, 2, rng_a) == propose(SQUARE, config(), obs, 2, rng_b)


def test_asha_with_the_model_sampler_replays_exactly():
    from hpc_tune.search import asha
    from hpc_tune.spec.model import AshaConfig

    cfg = AshaConfig(max_resource=9, resource=ResourceConfig("epochs", "int"), metric=Metric("loss", "minimize"),
                     n_trials=20, eta=3, sampler=SamplerConfig(kind="model"))
    st = SearcherStudy(asha, SQUARE, cfg, seed=3)
    st.play(3, lambda t, step: None if step % 11 == 5 else loss(t.params, t.resource), steps=200,
            pick=lambda live, step: live[-1] if step % 3 else live[0])  # out of creation order now and then
    assert not st.live and len(st.trials) > 20
    for history, n, result in st.calls[::3]:
        assert asha.suggest(SQUARE, cfg, history, 3, n) == result
