"""BOHB's KDE sampler: the rule of DIALECT.md ("BOHB"), checked piece by piece, and the
densities checked against statsmodels' KDEMultivariate where the two definitions agree."""
from __future__ import annotations

import math
import warnings
from typing import Any, Dict, List, Optional

import numpy as np
import pytest
from searcher_study import SearcherStudy

from hpc_tune.search.kde_sampler import KdeModel, Observation, child_rngs, fit_models, min_points, propose
from hpc_tune.space import Discrete, Space, Uniform
from hpc_tune.spec.model import SamplerConfig


def KdeConfig(**kw: Any) -> SamplerConfig:  # noqa: N802 - reads like the config it builds
    return SamplerConfig(kind="kde", **kw)


LINE = Space({"x": Uniform(0.0, 1.0)})
MIXED = Space({
    "lr": Uniform(math.log(1e-5), math.log(1e-1), log=True, kind="loguniform"),
    "width": Discrete((32, 64, 128, 256)),
    "opt": Discrete(("adam", "sgd", "rmsprop")),
})


def line_obs(xs: List[float], losses: List[Optional[float]], resource: float = 1.0) -> List[Observation]:
    return [Observation({"x": x}, resource, loss) for x, loss in zip(xs, losses)]


def good_near(centre: float, n_good: int, n_bad: int, resource: float = 1.0, seed: int = 0) -> List[Observation]:
    """n_good results near ``centre`` with low losses, n_bad spread elsewhere with high ones."""
    rng = np.random.default_rng(seed)
    xs = list(np.clip(centre + 0.02 * rng.standard_normal(n_good), 0, 1))
    far = [float(x) for x in rng.random(4 * n_bad) if abs(x - centre) > 0.3][:n_bad]
    return line_obs(xs + far, [0.1 * i / n_good for i in range(n_good)] + [1.0 + i for i in range(len(far))],
                    resource)


# ------------------------------------------------------------------ the density itself


def test_densities_match_statsmodels_kdemultivariate():
    sm = pytest.importorskip("statsmodels.nonparametric.kernel_density")
    rng = np.random.default_rng(0)
    for n, d in [(7, 2), (30, 3), (120, 5)]:
        X = np.c_[rng.random((n, d)), rng.integers(0, 3, n)]
        X[:3, -1] = [0, 1, 2]  # every category present: statsmodels counts them from the data
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = sm.KDEMultivariate(X, var_type="c" * d + "u", bw="normal_reference")
        ours = KdeModel(X, np.array([0] * d + [3]), min_bandwidth=1e-3)
        np.testing.assert_allclose(ours.bw[:d], ref.bw[:d], rtol=1e-12)
        assert ours.bw[d] == pytest.approx(min(ref.bw[d], 2 / 3))  # the uniform kernel caps it
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = sm.KDEMultivariate(X, var_type="c" * d + "u", bw=ours.bw)
        P = np.c_[rng.random((20, d)), rng.integers(0, 3, 20)]
        np.testing.assert_allclose(np.exp(ours.log_pdf(P)), ref.pdf(P), rtol=1e-9)


def test_a_category_missing_from_the_data_keeps_a_finite_density():
    # statsmodels would divide by (levels seen - 1) = 0 here
    X = np.array([[0.2, 1.0], [0.25, 1.0], [0.3, 1.0]])
    kde = KdeModel(X, np.array([0, 3]), min_bandwidth=1e-3)
    logp = kde.log_pdf(np.array([[0.25, 0.0], [0.25, 1.0], [0.25, 2.0]]))
    assert np.all(np.isfinite(logp))
    assert logp[1] > logp[0] == logp[2]


def test_categorical_bandwidth_is_at_most_the_uniform_kernel():
    X = np.c_[np.linspace(0, 1, 12), np.arange(12) % 10]
    kde = KdeModel(X, np.array([0, 10]), min_bandwidth=1e-3)
    assert kde.bw[1] <= 0.9 + 1e-12
    assert np.all(np.isfinite(kde.log_pdf(X)))


# --------------------------------------------------------------------- when a model exists


def test_min_points_in_model_defaults_to_parameters_plus_one():
    assert min_points(LINE, KdeConfig()) == 2
    assert min_points(MIXED, KdeConfig()) == 4
    assert min_points(MIXED, KdeConfig(min_points_in_model=7)) == 7
    assert min_points(MIXED, KdeConfig(min_points_in_model=2)) == 4  # raised to it, as HpBandSter does


def test_a_budget_needs_min_points_in_both_sets():
    cfg = KdeConfig()  # one parameter: min_points 2
    assert fit_models(LINE, cfg, line_obs([0.1, 0.2, 0.3], [1, 2, 3])) == {}
    assert fit_models(LINE, cfg, line_obs([0.1, 0.2, 0.3, 0.4], [1, 2, 3, 4])) == {1.0: (2, 2)}
    cfg = KdeConfig(min_points_in_model=3)
    assert fit_models(LINE, cfg, line_obs([0.1] * 5, [1, 2, 3, 4, 5])) == {}
    assert fit_models(LINE, cfg, line_obs([0.1] * 6, [1, 2, 3, 4, 5, 6])) == {1.0: (3, 3)}


def test_good_set_is_top_n_percent_with_at_least_min_points():
    xs = list(np.linspace(0, 1, 40))
    assert fit_models(LINE, KdeConfig(), line_obs(xs, xs)) == {1.0: (6, 34)}  # floor(0.15 * 40) = 6
    assert fit_models(LINE, KdeConfig(top_n_percent=50), line_obs(xs, xs)) == {1.0: (20, 20)}
    assert fit_models(LINE, KdeConfig(min_points_in_model=10), line_obs(xs, xs)) == {1.0: (10, 30)}


def test_failed_trials_count_as_bad_never_good():
    obs = line_obs([0.1, 0.2, 0.3, 0.4, 0.5, 0.6], [1.0, None, float("nan"), 2.0, None, None])
    assert fit_models(LINE, KdeConfig(), obs) == {1.0: (2, 4)}
    # three results, two failed: the good set would need a failure
    obs = line_obs([0.1, 0.2, 0.3, 0.4], [1.0, None, None, None])
    assert fit_models(LINE, KdeConfig(), obs) == {}


def test_failed_region_is_avoided():
    # the only finite results are equal everywhere; the failures sit at x > 0.5
    rng = np.random.default_rng(3)
    ok = line_obs(list(rng.random(20) * 0.5), [1.0] * 20)
    failed = line_obs(list(0.5 + rng.random(30) * 0.5), [None] * 30)
    cfg = KdeConfig(random_fraction=0.0, top_n_percent=40)
    props = propose(LINE, cfg, ok + failed, 200, np.random.default_rng(1))
    assert sum(p["x"] < 0.5 for p in props) >= 190


def test_model_of_the_largest_budget_with_enough_points():
    low = good_near(0.8, 10, 30, resource=1.0)
    mid = good_near(0.2, 3, 5, resource=3.0, seed=1)
    top = good_near(0.5, 1, 1, resource=9.0, seed=2)  # too few for a model
    obs = low + mid + top
    assert set(fit_models(LINE, KdeConfig(), obs)) == {1.0, 3.0}
    props = propose(LINE, KdeConfig(random_fraction=0.0), obs, 100, np.random.default_rng(0))
    xs = np.array([p["x"] for p in props])
    assert np.mean(np.abs(xs - 0.2) < 0.15) > 0.9


# ----------------------------------------------------------------------------- sampling


def test_without_a_model_every_proposal_is_a_random_draw():
    # each proposal tosses its random_fraction coin first, then samples from the same child stream
    obs = line_obs([0.1, 0.2, 0.3], [1, 2, 3])  # not enough for a model
    props = propose(LINE, KdeConfig(random_fraction=0.0), obs, 5, np.random.default_rng(9))
    assert props == [_sample_after_coin(LINE, r) for r in child_rngs(np.random.default_rng(9), 5)]
    props = propose(MIXED, KdeConfig(random_fraction=0.0), [], 5, np.random.default_rng(9))
    assert props == [_sample_after_coin(MIXED, r) for r in child_rngs(np.random.default_rng(9), 5)]


def _sample_after_coin(space: Space, rng: np.random.Generator) -> Dict[str, Any]:
    rng.random()
    return space.sample(rng)


def test_random_fraction_is_the_share_of_random_draws():
    obs = good_near(0.2, 10, 40)
    model_only = propose(LINE, KdeConfig(random_fraction=0.0), obs, 500, np.random.default_rng(0))
    assert all(abs(p["x"] - 0.2) < 0.2 for p in model_only)
    mixed = propose(LINE, KdeConfig(), obs, 3000, np.random.default_rng(0))
    far = np.mean([abs(p["x"] - 0.2) >= 0.2 for p in mixed])
    # a third of the draws are uniform, of which 0.6 fall outside [0, 0.4)
    assert abs(far - 0.6 / 3) < 0.03
    everything = propose(LINE, KdeConfig(random_fraction=1.0), obs, 2000, np.random.default_rng(0))
    assert abs(np.mean([abs(p["x"] - 0.2) >= 0.2 for p in everything]) - 0.6) < 0.04


def test_candidates_maximise_l_over_g():
    obs = good_near(0.2, 10, 40)
    one = propose(LINE, KdeConfig(random_fraction=0.0, num_samples=1), obs, 400, np.random.default_rng(0))
    many = propose(LINE, KdeConfig(random_fraction=0.0, num_samples=256), obs, 400, np.random.default_rng(0))
    spread = lambda ps: float(np.mean([abs(p["x"] - 0.2) for p in ps]))  # noqa: E731
    assert spread(many) < spread(one)


def test_categories_and_log_axes():
    rng = np.random.default_rng(4)
    obs = []
    for i in range(40):
        good = i < 8
        params = {
            "lr": float(math.exp(rng.uniform(math.log(1e-3), math.log(3e-3)) if good
                                 else rng.uniform(math.log(1e-5), math.log(1e-1)))),
            "width": int(rng.choice([32, 64, 128, 256])),
            "opt": "sgd" if good else str(rng.choice(["adam", "rmsprop"])),
        }
        obs.append(Observation(params, 1.0, float(i)))
    props = propose(MIXED, KdeConfig(random_fraction=0.0), obs, 200, np.random.default_rng(0))
    assert all(MIXED.contains(p) for p in props)
    assert np.mean([p["opt"] == "sgd" for p in props]) > 0.95
    # the log axis: good values lie in [1e-3, 3e-3]; a linear axis would put the
    # samples' bulk above 3e-3
    lrs = np.array([p["lr"] for p in props])
    assert np.median(lrs) < 4e-3 and np.median(lrs) > 5e-4


def test_observations_from_another_space_are_ignored():
    obs = good_near(0.2, 10, 40) + [Observation({"y": 1.0}, 1.0, 0.0), Observation({"x": "a"}, 1.0, 0.0)]
    props = propose(LINE, KdeConfig(random_fraction=0.0), obs, 10, np.random.default_rng(0))
    assert props == propose(LINE, KdeConfig(random_fraction=0.0), obs[:-2], 10, np.random.default_rng(0))


# ------------------------------------------------------------------------- determinism


def test_same_generator_same_proposals_and_prefixes_agree():
    obs = good_near(0.2, 10, 40)
    a = propose(MIXED, KdeConfig(), [], 6, np.random.default_rng(11))
    b = propose(MIXED, KdeConfig(), [], 6, np.random.default_rng(11))
    assert a == b
    full = propose(LINE, KdeConfig(), obs, 8, np.random.default_rng(5))
    assert propose(LINE, KdeConfig(), obs, 3, np.random.default_rng(5)) == full[:3]
    assert propose(LINE, KdeConfig(), obs, 8, np.random.default_rng(6)) != full
    assert propose(LINE, KdeConfig(), obs, 0, np.random.default_rng(5)) == []


# ------------------------------------------------------- inside Hyperband and ASHA, restart-exact


def test_hyperband_and_asha_with_the_kde_sampler_replay_exactly():
    from hpc_tune.search import asha, hyperband
    from hpc_tune.search.base import TrialRecord
    from hpc_tune.spec.model import AshaConfig, HyperbandConfig, Metric, ResourceConfig

    resource, metric = ResourceConfig("epochs", "int"), Metric("loss", "minimize")
    studies = [
        (hyperband, HyperbandConfig(max_iter=9, eta=3, resource=resource, metric=metric,
                                    sampler=SamplerConfig(kind="kde"))),
        (asha, AshaConfig(max_resource=9, resource=resource, metric=metric, n_trials=30, eta=3,
                          sampler=SamplerConfig(kind="kde"))),
    ]
    def value(t: TrialRecord, step: int) -> Optional[float]:
        if step % 7 == 3:  # some trials fail: they count as bad
            return None
        return (math.log(t.params["lr"]) + 7) ** 2 + (t.params["opt"] != "sgd") + 1 / t.resource

    for search, cfg in studies:
        st = SearcherStudy(search, MIXED, cfg, seed=5)
        st.play(3, value, steps=300)
        assert not st.live
        assert sum(1 for t in st.trials if t.meta.get("rung") == 0) >= 9  # enough fresh draws for models to form
        for history, n, result in st.calls:
            assert search.suggest(MIXED, cfg, history, 5, n) == result


def test_categories_keep_their_type_but_not_their_number_format():
    space = Space({"flag": Discrete((True, 1, "one")), "x": Uniform(0.0, 1.0)})
    from hpc_tune.search.kde_sampler import _Columns

    cols = _Columns(space)
    assert cols.encode({"flag": True, "x": 0.5})[0] == 0
    assert cols.encode({"flag": 1.0, "x": 0.5})[0] == 1  # a JSON round trip of 1
    assert cols.encode({"flag": "one", "x": 0.5})[0] == 2
    assert cols.encode({"flag": "two", "x": 0.5}) is None
