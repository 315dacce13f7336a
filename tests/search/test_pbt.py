"""PBT (Jaderberg et al. 2017), asynchronous: intervals, quantiles, exploit (who copies
whom), explore (resample, factors, clipping, re-quantising, neighbours, categories),
members that fail, the end condition, the checkpoints still needed, restart-exactness."""
from __future__ import annotations

import math
from functools import partial
from typing import List

import numpy as np
import pytest
from searcher_study import SearcherStudy

from hpc_tune.search import pbt
from hpc_tune.search.base import TrialState
from hpc_tune.space import Discrete, Normal, Space, Uniform, numpy_linspace
from hpc_tune.spec.model import Metric, PbtConfig, ResourceConfig

SPACE = Space({"lr": Uniform(math.log(1e-4), math.log(1e-1), log=True, kind="loguniform"),
               "m": Uniform(0.0, 1.0, q=0.05, kind="quniform"),
               "opt": Discrete(("adam", "sgd", "rms")),
               "layers": numpy_linspace(1, 5, 5)})


def config(P: int = 4, T: float = 2, R: float = 8, q: float = 0.25, resample: float = 0.25,
           factors=(0.8, 1.2), optimization: str = "minimize") -> PbtConfig:
    return PbtConfig(population_size=P, resource=ResourceConfig("epochs", "int"), perturbation_interval=T,
                     max_resource=R, metric=Metric("loss", optimization), quantile_fraction=q,
                     resample_probability=resample, perturbation_factors=tuple(factors))


Study = partial(SearcherStudy, pbt, SPACE)  # Study(cfg, seed=...)


def test_intervals_and_trial_count():
    assert pbt.intervals(config(T=2, R=8)) == [2, 4, 6, 8]
    assert pbt.intervals(config(T=3, R=8)) == [3, 6, 8]  # the last interval ends at max_resource
    assert pbt.n_trials(config(P=4, T=3, R=8)) == 12


@pytest.mark.parametrize("P,q,k", [(4, 0.25, 1), (8, 0.25, 2), (3, 0.25, 1), (10, 0.5, 5), (20, 0.2, 4)])
def test_quantile_size_is_floor_at_least_one(P, q, k):
    assert pbt.quantile_size(config(P=P, q=q)) == k


def test_initial_population_is_distinct_random_draws_with_no_checkpoint():
    st = Study(config(P=4))
    result = st.ask(10)
    assert len(result.suggestions) == 4 and not result.exhausted
    assert [s.meta for s in result.suggestions] == [
        {"member": m, "interval": 0, "resume_from": None, "donor": None} for m in range(4)]
    assert all(s.resource == 2 for s in result.suggestions)
    assert len({tuple(sorted(s.params.items())) for s in result.suggestions}) == 4
    assert all(SPACE.contains(s.params) for s in result.suggestions)


def test_a_member_continues_its_own_checkpoint_until_ranked_in_the_bottom():
    st = Study(config(P=4))
    st.ask(4)
    st.finish(0, 0.9)  # only member ranked: it is in the top, it continues
    s = st.ask(4).suggestions
    assert len(s) == 1 and s[0].meta == {"member": 0, "interval": 1, "resume_from": 0, "donor": None}
    assert s[0].params == st.trials[0].params and s[0].resource == 4


def test_the_bottom_quantile_copies_a_top_member_and_explores():
    st = Study(config(P=4), seed=3)
    st.ask(4)
    for tid, v in enumerate((0.4, 0.1, 0.3, 0.9)):
        st.finish(tid, v)
    nxt = {s.meta["member"]: s for s in st.ask(4).suggestions}
    assert set(nxt) == {0, 1, 2, 3}
    # worst (member 3) copies the best (member 1, k=1) with explored parameters
    assert nxt[3].meta == {"member": 3, "interval": 1, "resume_from": 1, "donor": 1}
    assert nxt[3].params != st.trials[1].params and SPACE.contains(nxt[3].params)
    for m in (0, 1, 2):
        assert nxt[m].meta["resume_from"] == m and nxt[m].meta["donor"] is None
        assert nxt[m].params == st.trials[m].params


def test_maximize_flips_the_ranking():
    st = Study(config(P=4, optimization="maximize"), seed=3)
    st.ask(4)
    for tid, v in enumerate((0.4, 0.1, 0.3, 0.9)):
        st.finish(tid, v)
    nxt = {s.meta["member"]: s for s in st.ask(4).suggestions}
    assert nxt[1].meta["donor"] == 3 and nxt[1].meta["resume_from"] == 3


def test_ranking_uses_each_members_latest_completed_interval_and_ties_favour_the_lower_member():
    st = Study(config(P=4), seed=1)
    st.ask(4)
    for tid in range(4):
        st.finish(tid, 0.5)  # all tied: member 0 ranks best, member 3 worst
    nxt = {s.meta["member"]: s for s in st.ask(4).suggestions}
    assert nxt[3].meta["donor"] == 0
    # member 0's second interval gets worse: its latest completed value now counts
    tid0 = next(s for s in st.trials if s.meta == nxt[0].meta).trial_id
    st.finish(tid0, 2.0)
    s = st.ask(4).suggestions
    assert len(s) == 1 and s[0].meta["member"] == 0
    assert s[0].meta["donor"] == 1  # member 1 (0.5, tie broken by number) is the top now


def test_donors_are_drawn_uniformly_from_the_top_quantile():
    donors = []
    for seed in range(60):
        st = Study(config(P=8), seed=seed)  # k = 2
        st.ask(8)
        for tid in range(8):
            st.finish(tid, float(tid))
        nxt = {s.meta["member"]: s for s in st.ask(8).suggestions}
        assert {m for m, s in nxt.items() if s.meta["donor"] is not None} == {6, 7}
        donors += [nxt[6].meta["donor"], nxt[7].meta["donor"]]
    assert set(donors) == {0, 1}
    assert 0.3 < donors.count(0) / len(donors) < 0.7


def test_a_failed_member_leaves_the_population_and_is_never_a_donor():
    st = Study(config(P=4), seed=2)
    st.ask(4)
    st.finish(0, None, TrialState.FAILED)
    for tid, v in ((1, 0.5), (2, 0.6), (3, 0.7)):
        st.finish(tid, v)
    nxt = st.ask(4).suggestions
    assert sorted(s.meta["member"] for s in nxt) == [1, 2, 3]
    assert all(s.meta["resume_from"] != 0 for s in nxt)


def test_end_condition_every_member_reaches_max_resource():
    st = Study(config(P=3, T=2, R=6), seed=4)
    live: List[int] = []
    while True:
        before = len(st.trials)
        result = st.ask(3)
        live += list(range(before, len(st.trials)))
        if not live:
            assert result.exhausted
            break
        assert not result.exhausted or not result.suggestions
        tid = live.pop(0)
        st.finish(tid, (st.trials[tid].params["m"] - 0.4) ** 2)
    assert len(st.trials) == pbt.n_trials(st.cfg) == 9
    for m in range(3):
        mine = [t for t in st.trials if t.meta["member"] == m]
        assert [t.meta["interval"] for t in mine] == [0, 1, 2]
        assert [t.resource for t in mine] == [2, 4, 6]
        for t in mine[1:]:  # every later interval starts from a checkpoint: own or a donor's
            src = st.trials[t.meta["resume_from"]]
            assert src.meta["interval"] == t.meta["interval"] - 1 or t.meta["donor"] is not None
            assert src.state is TrialState.COMPLETED


def test_restart_exact_same_next_suggestions_at_every_prefix():
    st = Study(config(P=4, T=1, R=5), seed=9)
    live: List[int] = []
    step = 0
    while True:
        before = len(st.trials)
        st.ask(4 - len(live))
        live += list(range(before, len(st.trials)))
        if not live:
            break
        step += 1
        tid = live.pop(step % len(live))  # finish out of order: asynchronous
        p = st.trials[tid].params
        st.finish(tid, abs(math.log(p["lr"]) + 5) + p["m"])
    assert any(s.meta["donor"] is not None for s in (x for _, _, result in st.calls for x in result.suggestions))
    for history, n, result in st.calls:
        assert pbt.suggest(SPACE, st.cfg, history, st.seed, n).suggestions == result.suggestions


# ------------------------------------------------------------------------ explore


def test_explore_without_resampling_perturbs_clips_requantises_and_moves_to_neighbours():
    cfg = config(resample=0.0, factors=(0.8, 1.2))
    params = {"lr": 0.01, "m": 0.5, "opt": "sgd", "layers": 3.0}
    seen_lr, seen_m, seen_layers = set(), set(), set()
    for seed in range(200):
        out = pbt.explore(SPACE, params, cfg, np.random.default_rng(seed))
        assert SPACE.contains(out), out
        seen_lr.add(out["lr"])
        seen_m.add(out["m"])
        seen_layers.add(out["layers"])
    assert seen_lr == {0.008, 0.012}
    assert seen_m == {0.4, 0.6}  # 0.5 * 0.8 / 1.2, on the q = 0.05 grid
    assert seen_layers == {2.0, 4.0}  # a neighbour, never itself or further


def test_explore_clips_to_the_bounds_of_the_kind():
    cfg = config(resample=0.0, factors=(2.0,))
    out = pbt.explore(SPACE, {"lr": 0.09, "m": 0.95, "opt": "adam", "layers": 5.0}, cfg, np.random.default_rng(0))
    assert out["lr"] == pytest.approx(0.1) and out["m"] == 1.0
    assert out["layers"] == 4.0  # at an end: the only neighbour
    cfg = config(resample=0.0, factors=(0.01,))
    out = pbt.explore(SPACE, {"lr": 0.001, "m": 0.5, "opt": "adam", "layers": 1.0}, cfg, np.random.default_rng(0))
    assert out["lr"] == pytest.approx(1e-4) and out["m"] == 0.0 and out["layers"] == 2.0


def test_explore_resamples_categories_and_resamples_everything_with_probability_one():
    cfg = config(resample=0.0)
    opts = {pbt.explore(SPACE, {"lr": 0.01, "m": 0.5, "opt": "sgd", "layers": 3.0}, cfg,
                        np.random.default_rng(s))["opt"] for s in range(50)}
    assert opts == {"adam", "sgd", "rms"}
    cfg = config(resample=1.0)
    lrs = {pbt.explore(SPACE, {"lr": 0.01, "m": 0.5, "opt": "sgd", "layers": 3.0}, cfg,
                       np.random.default_rng(s))["lr"] for s in range(50)}
    assert len(lrs) == 50 and all(1e-4 <= x <= 0.1 + 1e-12 for x in lrs)


def test_explore_keeps_a_lognormal_positive_and_a_normal_unbounded():
    space = Space({"a": Normal(0.0, 1.0, log=True, kind="lognormal"), "b": Normal(0.0, 1.0, q=0.5, kind="qnormal")})
    cfg = config(resample=0.0, factors=(1.2,))
    out = pbt.explore(space, {"a": 2.0, "b": 10.0}, cfg, np.random.default_rng(0))
    assert out == {"a": 2.4, "b": 12.0}


# ------------------------------------------------------------------- checkpoints


def test_checkpoints_needed_are_the_live_trials_their_sources_and_each_members_latest():
    st = Study(config(P=4), seed=3)
    st.ask(4)
    for tid, v in enumerate((0.4, 0.1, 0.3, 0.9)):
        st.finish(tid, v)
    st.ask(4)  # trials 4..7, member 3 copies member 1 (trial 1)
    assert pbt.checkpoints_needed(st.cfg, st.history) == {0, 1, 2, 3, 4, 5, 6, 7}
    for tid in (4, 5, 6, 7):
        st.finish(tid, 0.5)
    # interval 0's checkpoints are no one's source any more
    assert pbt.checkpoints_needed(st.cfg, st.history) == {4, 5, 6, 7}
    st.finish(7, None, TrialState.FAILED)  # member 3 leaves: its checkpoints are not needed
    assert pbt.checkpoints_needed(st.cfg, st.history) == {4, 5, 6}


def test_a_member_behind_copies_the_donors_checkpoint_of_its_own_interval():
    """A donor already an interval ahead: the member copies the donor's checkpoint of the
    member's own interval (kept until then), never the later one, which would leave its
    next interval nothing to train (found by the local PBT study: 'exited 0 without reporting')."""
    st = Study(config(P=4), seed=3)
    st.ask(4)  # trials 0..3, interval 0
    for tid, v in ((0, 0.1), (1, 0.3), (2, 0.2)):
        st.finish(tid, v)
    ahead = {s.meta["member"]: tid for tid, s in zip(range(4, 7), st.ask(4).suggestions)}
    st.finish(ahead[0], 0.05)  # member 0 completes interval 1 while member 3 still runs interval 0
    assert 0 in pbt.checkpoints_needed(st.cfg, st.history)  # member 3 may still copy it
    st.finish(3, 0.9)  # member 3: the worst, copies member 0 (the best, k = 1)
    nxt = {s.meta["member"]: s for s in st.ask(4).suggestions}
    assert nxt[3].meta == {"member": 3, "interval": 1, "resume_from": 0, "donor": 0}
    assert nxt[3].resource == 4 and nxt[3].resume_from == 0
