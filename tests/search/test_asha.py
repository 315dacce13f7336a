"""ASHA (Li et al., MLSys 2020, Algorithm 2): the rung ladder, the free-slot rule
(promotion order, ties, failed trials), stopping mode's decisions through the stopping
interface, the end condition, and restart-exactness (same next suggestions at every
prefix of a history)."""
from __future__ import annotations

import math
from functools import partial
from typing import List

import pytest
from searcher_study import SearcherStudy

from hpc_tune.search import asha
from hpc_tune.search.asha import RungPolicy, rung_stops
from hpc_tune.search.base import History, TrialState
from hpc_tune.space import Discrete, Space, Uniform
from hpc_tune.spec.model import AshaConfig, Metric, ResourceConfig

SPACE = Space({"x": Uniform(0.0, 1.0), "w": Discrete((1, 2, 3))})


def config(n: int = 9, R: float = 9, eta: float = 3, r: float = 1, s: int = 0, mode: str = "promotion",
           resume: bool = True, optimization: str = "minimize", rtype: str = "int") -> AshaConfig:
    return AshaConfig(max_resource=R, resource=ResourceConfig("epochs", rtype), metric=Metric("loss", optimization),
                      n_trials=n, min_resource=r, eta=eta, min_early_stopping_rate=s, mode=mode, resume=resume)


Study = partial(SearcherStudy, asha, SPACE)  # Study(cfg, seed=...)


# ------------------------------------------------------------------------------ ladder


@pytest.mark.parametrize("r,R,eta,s,rtype,expected", [
    (1, 27, 3, 0, "int", [1, 3, 9, 27]),
    (1, 27, 3, 1, "int", [3, 9, 27]),
    (1, 30, 3, 0, "int", [1, 3, 9, 27, 30]),  # R off the ladder: one last rung at R
    (1, 243, 3, 0, "int", [1, 3, 9, 27, 81, 243]),  # exact: no float log (Polyaxon's 4 instead of 5)
    (0.5, 4, 2, 0, "float", [0.5, 1.0, 2.0, 4.0]),
    (1, 1, 3, 0, "int", [1]),
    (1, 10, 2.5, 0, "float", [1.0, 2.5, 6.25, 10.0]),
])
def test_rung_ladder(r, R, eta, s, rtype, expected):
    assert asha.rungs(r, R, eta, s, rtype) == expected


def test_min_early_stopping_rate_beyond_R_leaves_no_rung():
    assert asha.rungs(1, 8, 3, 2, "int") == []


# ------------------------------------------------------------------- promotion mode


def test_new_configurations_fill_the_slots_until_a_rung_has_eta_results():
    st = Study(config(n=9))
    first = st.ask(4).suggestions
    assert [s.meta["rung"] for s in first] == [0, 0, 0, 0]
    assert [s.meta["config"] for s in first] == [0, 1, 2, 3]
    assert all(s.resource == 1 and s.meta["resume_from"] is None for s in first)
    st.finish(0, 0.5)
    st.finish(1, 0.2)
    # two results at rung 0: floor(2/3) = 0 candidates, so a new configuration
    assert st.ask(1).suggestions[0].meta == {"rung": 0, "config": 4, "parent": None, "resume_from": None}
    st.finish(2, 0.9)
    # three results: the best (trial 1) goes to rung 1, told the total 3, resuming from trial 1
    s = st.ask(1).suggestions[0]
    assert s.meta == {"rung": 1, "config": 1, "parent": 1, "resume_from": 1}
    assert s.resource == 3 and s.params == st.trials[1].params


def test_a_promotion_from_the_highest_rung_goes_first():
    st = Study(config(n=30, R=9))
    st.ask(12)
    for tid in range(9):
        st.finish(tid, float(tid))  # rung 0: 9 results, top 3 = trials 0, 1, 2
    promos = st.ask(3).suggestions
    assert [(s.meta["rung"], s.meta["parent"]) for s in promos] == [(1, 0), (1, 1), (1, 2)]
    for s_id in (12, 13, 14):
        st.finish(s_id, {12: 0.5, 13: 0.1, 14: 0.7}[s_id])
    # rung 1 has 3 results: its best (trial 13) is promoted to rung 2 before anything else
    nxt = st.ask(2).suggestions
    assert (nxt[0].meta["rung"], nxt[0].meta["parent"], nxt[0].resource) == (2, 13, 9)
    assert nxt[1].meta["rung"] == 0  # nothing else promotable: a new configuration


def test_ties_go_to_the_earlier_trial():
    st = Study(config(n=9))
    st.ask(3)
    for tid in (2, 1, 0):
        st.finish(tid, 0.5)
    assert st.ask(1).suggestions[0].meta["parent"] == 0


def test_maximize_promotes_the_largest_value():
    st = Study(config(n=9, optimization="maximize"))
    st.ask(3)
    for tid, v in enumerate((0.1, 0.9, 0.5)):
        st.finish(tid, v)
    assert st.ask(1).suggestions[0].meta["parent"] == 1


def test_failed_and_cancelled_trials_are_not_rung_members():
    st = Study(config(n=9))
    st.ask(4)
    st.finish(0, None, TrialState.FAILED)
    st.finish(1, None, TrialState.CANCELLED)
    st.finish(2, 0.3)
    # one member only: floor(1/3) = 0, no promotion (a failed trial would have made 3)
    assert st.ask(1).suggestions[0].meta["rung"] == 0
    st.finish(3, 0.2)
    st.finish(4, 0.1)
    s = st.ask(1).suggestions[0]
    assert (s.meta["rung"], s.meta["parent"]) == (1, 4)


def test_a_configuration_is_promoted_from_a_rung_once_even_when_its_promotion_fails():
    st = Study(config(n=3))
    st.ask(3)
    for tid in range(3):
        st.finish(tid, float(tid))
    s = st.ask(1).suggestions[0]
    assert s.meta["parent"] == 0
    st.finish(3, None, TrialState.FAILED)
    result = st.ask(5)
    assert result.suggestions == () and result.exhausted  # n=3 started, nothing promotable, nothing live


def test_resume_off_gives_no_resume_from():
    st = Study(config(n=3, resume=False))
    st.ask(3)
    for tid in range(3):
        st.finish(tid, float(tid))
    s = st.ask(1).suggestions[0]
    assert s.meta["parent"] == 0 and s.meta["resume_from"] is None


def test_end_condition_and_a_whole_study():
    st = Study(config(n=27, R=27), seed=5)
    live: List[int] = []
    while True:
        result = st.ask(4 - len(live))
        live += [len(st.trials) - len(result.suggestions) + i for i in range(len(result.suggestions))]
        if not live:
            assert result.exhausted
            break
        assert not result.exhausted
        tid = live.pop(0)
        t = st.trials[tid]
        st.finish(tid, (t.params["x"] - 0.3) ** 2 + 1.0 / t.resource)
    rungs = [t.meta["rung"] for t in st.trials]
    assert rungs.count(0) == 27
    assert rungs.count(3) >= 1  # the top rung was reached
    for t in st.trials:  # every promotion continues its configuration from the rung below
        if t.meta["rung"] > 0:
            parent = st.trials[t.meta["parent"]]
            assert parent.meta["rung"] == t.meta["rung"] - 1 and parent.params == t.params
            assert t.resource == [1, 3, 9, 27][t.meta["rung"]]
    keys = [(t.meta["rung"], t.meta["config"]) for t in st.trials]
    assert len(keys) == len(set(keys))


def test_at_most_n_suggestions_and_exhausted_only_when_nothing_can_follow():
    st = Study(config(n=4))
    assert len(st.ask(2).suggestions) == 2
    result = st.ask(10)
    assert len(result.suggestions) == 2 and not result.exhausted
    result = st.ask(10)
    assert result.suggestions == () and not result.exhausted  # live trials may still promote


def test_restart_exact_same_next_suggestions_at_every_prefix():
    """Replaying the history at every prefix (as a restarted controller does) gives the
    same next suggestions as the run that created them."""
    st = Study(config(n=12, R=9), seed=11)
    live: List[int] = []
    while True:
        before = len(st.trials)
        st.ask(3 - len(live))
        live += list(range(before, len(st.trials)))
        if not live:
            break
        tid = live.pop(0)
        st.finish(tid, (st.trials[tid].params["x"] - 0.6) ** 2 + (0.0 if tid % 5 else math.nan))
        if tid % 5 == 0:
            st.finish(tid, None, TrialState.FAILED)
    for history, n, result in st.calls:
        again = asha.suggest(SPACE, st.cfg, history, st.seed, n).suggestions
        assert again == result.suggestions


def test_seed_changes_the_configurations():
    a = asha.suggest(SPACE, config(), History(), 1, 3).suggestions
    b = asha.suggest(SPACE, config(), History(), 2, 3).suggestions
    assert [s.params for s in a] != [s.params for s in b]


# -------------------------------------------------------------------- stopping mode


def test_stopping_mode_gives_one_trial_per_configuration_told_R():
    st = Study(config(n=5, R=9, mode="stopping"))
    result = st.ask(3)
    assert [s.resource for s in result.suggestions] == [9, 9, 9]
    assert [s.meta["config"] for s in result.suggestions] == [0, 1, 2]
    assert not result.exhausted
    result = st.ask(3)
    assert len(result.suggestions) == 2 and result.exhausted


def test_stopping_policy_rungs_are_below_the_top():
    assert asha.stopping_policy(config(R=27, mode="stopping")).rungs == (1.0, 3.0, 9.0)


def stops(policy, curves, live, excluded=frozenset()):
    """The trial ids the rule stops now."""
    return sorted(rung_stops(policy, curves, live, excluded))


def curve(*points):
    return tuple((float(s), float(v)) for s, v in points)


def test_rung_policy_keeps_while_the_rung_has_fewer_than_eta_results_then_keeps_the_top_fraction():
    policy = RungPolicy(Metric("loss"), rungs=(1.0, 3.0), eta=3.0)
    curves = {0: curve((1, 0.5)), 1: curve((1, 0.4))}
    assert stops(policy, curves, {0, 1}) == []  # 2 < eta results
    curves = {0: curve((1, 0.5), (2, 0.5)), 1: curve((1, 0.4), (2, 0.4)), 2: curve((1, 0.3))}
    # trial 2 has just reached rung 0: the best of 3 (top 1) -> kept; 0 and 1 have moved on
    assert stops(policy, curves, {0, 1, 2}) == []
    curves[3] = curve((1, 0.9))
    result = rung_stops(policy, curves, {0, 1, 2, 3})
    assert sorted(result) == [3] and "rung 0" in result[3] and "top 1 of the 4" in result[3]


def test_trials_that_reach_a_rung_together_are_judged_together():
    policy = RungPolicy(Metric("loss"), rungs=(1.0,), eta=3.0)
    curves = {t: curve((1, v)) for t, v in enumerate((0.5, 0.1, 0.9, 0.3, 0.2, 0.7))}
    assert stops(policy, curves, set(curves)) == [0, 2, 3, 5]  # top 2 of 6: trials 1 and 4


def test_a_trial_is_judged_only_when_its_latest_report_is_the_first_at_the_rung():
    policy = RungPolicy(Metric("loss"), rungs=(1.0, 3.0), eta=2.0)
    curves = {0: curve((1, 0.1)), 1: curve((1, 0.9), (2, 0.9))}
    assert stops(policy, curves, {1}) == []  # trial 1 passed rung 0 before: not judged again
    curves[1] = curve((1, 0.9), (2, 0.9), (3, 0.9))
    curves[0] = curve((1, 0.1), (3, 0.1))
    assert stops(policy, curves, {1}) == [1]  # reaching rung 1 now: behind trial 0


def test_ties_go_to_the_earlier_trial_and_a_report_past_several_rungs_is_judged_at_each():
    policy = RungPolicy(Metric("loss"), rungs=(2.0, 4.0), eta=2.0)
    curves = {0: curve((2, 0.5), (4, 0.5)), 1: curve((2, 0.5))}
    assert stops(policy, curves, {1}) == [1]  # tie at rung 0: trial 0 wins
    curves = {0: curve((2, 0.1), (4, 0.9)), 1: curve((5, 0.5))}
    result = rung_stops(policy, curves, {1})
    assert list(result) == [1] and "rung 0" in result[1]  # one report past both rungs: judged at rung 0 first


def test_rung_policy_ignores_failed_trials_and_only_stops_live_ones():
    policy = RungPolicy(Metric("loss", "maximize"), rungs=(1.0,), eta=2.0)
    curves = {0: curve((1, 0.9)), 1: curve((1, 0.1)), 2: curve((1, 0.5))}
    # without trial 0 (failed): 0.5 is the top 1 of {0.1, 0.5}
    assert stops(policy, curves, {1, 2}, excluded={0}) == [1]
    # with it: 0.9 leads the rung (top 1 of 3), so 0.1 and 0.5 are stopped
    assert stops(policy, curves, {1, 2}) == [1, 2]
    assert stops(policy, curves, {2}) == [2]  # only live trials are stopped
