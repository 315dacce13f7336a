"""Hyperband's memo changes no suggestion: on random histories (trials asked, finished,
failed, stopped, cancelled, put back to running, changed in place or replaced, curves
growing, replays of a prefix, another study's history in between, the memo emptied as
a restarted process has it), ``hyperband.suggest`` and ``hyperband.promotions`` give
exactly what a reading built from scratch of the same history gives."""
from __future__ import annotations

from typing import List

import history_ops
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpc_tune.search import hyperband, samplers
from hpc_tune.search.base import History, SearchResult, TrialRecord, TrialState
from hpc_tune.space import Discrete, Space, Uniform, params_key
from hpc_tune.spec.model import HyperbandConfig, Metric, ResourceConfig, SamplerConfig

SPACE = Space({"x": Uniform(0.0, 1.0), "w": Discrete((1, 2, 3))})

@st.composite
def configs(draw) -> HyperbandConfig:
    return HyperbandConfig(max_iter=draw(st.sampled_from([2, 4, 9, 10])), eta=draw(st.sampled_from([2, 3, 2.5])),
                           resource=ResourceConfig("epochs", "int"),
                           metric=Metric("loss", draw(st.sampled_from(["minimize", "maximize"]))),
                           resume=draw(st.booleans()), iterations=draw(st.integers(1, 3)),
                           sampler=SamplerConfig(kind=draw(st.sampled_from(["random", "random", "kde"]))))


def check(cfg: HyperbandConfig, trials: List[TrialRecord], seed: int, n: int) -> SearchResult:
    history = History.of(trials)
    got = hyperband.suggest(SPACE, cfg, history, seed, n)
    fresh = hyperband._Reading(cfg)  # from scratch, the memo left as it is
    assert fresh.extend(history.trials)
    assert got == hyperband._suggest(SPACE, cfg, history, seed, n, fresh)
    for k in range(cfg.iterations):
        want = {(b.s, i): ids for (kk, b), state in zip(fresh.plan, fresh.states()) if kk == k
                for i, ids in state.promoted.items()}
        assert hyperband.promotions(cfg, history, k) == want
    with hyperband._MEMO.reading(cfg, lambda: hyperband._Reading(cfg), history.trials) as reading:
        assert reading.observations() == fresh.observations()
        if reading.learns:  # what the sampler learns from, against the seam's own reading of a history
            assert reading.observations() == samplers.observations_of(history, cfg.metric)
            assert reading.keys == {params_key(t.params) for t in history.trials}
    return got


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), seed=st.integers(0, 3), ops=st.lists(history_ops.OPS, max_size=60))
def test_memo_gives_what_a_reading_from_scratch_gives(cfg, seed, ops):
    history_ops.replay(ops, lambda trials, n: check(cfg, trials, seed, n), hyperband._MEMO.clear)


def test_a_record_whose_tags_are_replaced_is_seen():
    # A record's meta never changes in place (TrialRecord's contract); another dict in its
    # place is seen, and the reading is built anew.
    cfg = HyperbandConfig(max_iter=9, eta=3, resource=ResourceConfig("epochs", "int"), metric=Metric("loss"))
    trials: List[TrialRecord] = []
    for s in check(cfg, trials, 0, 9).suggestions:
        trials.append(history_ops.trial_of(s, len(trials), TrialState.COMPLETED, len(trials) / 10))
    promoted = check(cfg, trials, 0, 1).suggestions[0]
    assert promoted.meta["rung"] == 1 and promoted.meta["parent"] == 0
    trials[0].meta = dict(trials[0].meta, rung=7)  # no rung 7: trial 0 is nobody's member any more
    again = check(cfg, trials, 0, 1).suggestions[0]
    assert again.meta["rung"] == 0 and again.meta["config"] == 0  # its place at rung 0 is free again
