"""The sampler seam: ``samplers.propose`` dispatches on ``SamplerConfig.kind``, the
random sampler, the observations a history gives, and Hyperband/ASHA drawing their new
configurations through it (a recording sampler registered for the test)."""
from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, Dict, List

import numpy as np
import pytest

from hpc_tune.search import asha, hyperband, samplers
from hpc_tune.search.base import History, TrialRecord, TrialState
from hpc_tune.space import Discrete, Space, Uniform, params_key
from hpc_tune.spec.model import AshaConfig, HyperbandConfig, Metric, ResourceConfig, SamplerConfig

SPACE = Space({"x": Uniform(0.0, 1.0), "w": Discrete((1, 2))})
CALLS: List[Dict[str, Any]] = []


def recording_sampler(space, config, observations, n, rng, pending):
    """A sampler that records what it is given and answers x = number of observations / 100."""
    CALLS.append({"observations": list(observations), "n": n, "pending": list(pending),
                  "draw": float(rng.random())})
    return [{"x": len(observations) / 100, "w": 1} for _ in range(n)]


@pytest.fixture
def recording(monkeypatch):
    CALLS.clear()
    monkeypatch.setitem(samplers.SAMPLERS, "model", f"{__name__}:recording_sampler")
    return SamplerConfig(kind="model")


def test_random_sampler_draws_from_the_rng_and_avoids_what_was_seen():
    cfg = SamplerConfig()
    a = samplers.propose(SPACE, cfg, [], 3, np.random.default_rng(1))
    assert a == samplers.propose(SPACE, cfg, [], 3, np.random.default_rng(1))
    assert all(SPACE.contains(p) for p in a)
    small = Space({"w": Discrete((1, 2, 3))})
    seen = [samplers.Observation({"w": 1}, 1, 0.5)]
    out = samplers.propose(small, cfg, seen, 2, np.random.default_rng(0), pending=[{"w": 2}])
    assert out == [{"w": 3}, out[1]] and out[1] in ({"w": 1}, {"w": 2}, {"w": 3})  # then a repeat, never a hang


def test_unknown_or_misbehaving_samplers_are_refused(monkeypatch):
    with pytest.raises(ValueError, match="no sampler 'nope'"):
        samplers.propose(SPACE, SamplerConfig(kind="nope"), [], 1, np.random.default_rng(0))
    monkeypatch.setitem(samplers.SAMPLERS, "model", f"{__name__}:_short")
    with pytest.raises(RuntimeError, match="returned 0 configurations, 2 were asked"):
        samplers.propose(SPACE, SamplerConfig(kind="model"), [], 2, np.random.default_rng(0))


def _short(space, config, observations, n, rng, pending):
    return []


def test_observations_of_a_history():
    stopped = TrialRecord(3, {"x": 0.4}, TrialState.STOPPED, value=0.7, resource=9)
    for step, v in ((1, 0.9), (3, 0.7)):
        stopped.add_report({"step": step, "acc": v})
    trials = [
        TrialRecord(0, {"x": 0.1}, TrialState.COMPLETED, value=0.5, resource=3),
        TrialRecord(1, {"x": 0.2}, TrialState.FAILED, resource=3),
        TrialRecord(2, {"x": 0.3}, TrialState.RUNNING, resource=9),
        stopped,
        TrialRecord(4, {"x": 0.5}, TrialState.COMPLETED, value=math.nan, resource=3),
    ]
    observed, pending = samplers.observations_of(History.of(trials), Metric("acc", "maximize"))
    assert observed == [
        samplers.Observation({"x": 0.1}, 3, -0.5),  # to minimise
        samplers.Observation({"x": 0.2}, 3, None),
        samplers.Observation({"x": 0.4}, 3.0, -0.7),  # stopped: at the step it reached
        samplers.Observation({"x": 0.5}, 3, None),
    ]
    assert pending == [{"x": 0.3}]


def test_asha_draws_each_new_configuration_through_the_sampler(recording):
    cfg = AshaConfig(max_resource=9, resource=ResourceConfig("e", "int"), metric=Metric("loss"), n_trials=5,
                     sampler=recording)
    done = TrialRecord(0, {"x": 0.0, "w": 2}, TrialState.COMPLETED, value=1.0, resource=1,
                       meta={"rung": 0, "config": 0, "parent": None, "resume_from": None})
    result = asha.suggest(SPACE, cfg, History.of([done]), 4, 2)
    assert [s.params["x"] for s in result.suggestions] == [0.01, 0.01]
    assert [len(c["pending"]) for c in CALLS] == [0, 1]  # the first of this call is pending for the second
    assert CALLS[0]["observations"] == [samplers.Observation({"x": 0.0, "w": 2}, 1, 1.0)]
    # the rng is the configuration's own: the same j gives the same draw whatever else happened
    again = [c["draw"] for c in CALLS]
    CALLS.clear()
    asha.suggest(SPACE, cfg, History.of([done]), 4, 2)
    assert [c["draw"] for c in CALLS] == again


def test_hyperband_draws_fresh_configurations_through_a_non_random_sampler(recording):
    cfg = HyperbandConfig(max_iter=9, eta=3, resource=ResourceConfig("e", "int"), metric=Metric("loss"),
                          sampler=recording)
    first = hyperband.suggest(SPACE, cfg, History(), 1, 3).suggestions
    assert [s.params for s in first] == [{"x": 0.0, "w": 1}] * 3
    assert [c["n"] for c in CALLS] == [1, 1, 1] and [len(c["pending"]) for c in CALLS] == [0, 1, 2]
    # the random sampler keeps Hyperband's own draws (unchanged plans for existing studies)
    plain = hyperband.suggest(SPACE, replace(cfg, sampler=SamplerConfig()), History(), 1, 3).suggestions
    s_max = plain[0].meta["bracket"]
    assert [s.params for s in plain] == hyperband._fresh_configs(SPACE, 1, s_max, 3)[0]


def test_observed_keys_kept_between_calls_equal_the_keys_built_anew():
    def obs(params: Dict[str, Any]) -> samplers.Observation:
        return samplers.Observation(params, 1.0, 0.5)

    keyed = [obs(samplers.KeyedParams({"x": i, "y": "a"})) for i in range(5)]
    def fresh(observations: List[samplers.Observation]) -> set:
        return {params_key(ob.params) for ob in observations}

    for n in range(6):  # a history that grows, as ASHA's does
        assert samplers.observed_keys(keyed[:n]) == fresh(keyed[:n])
    got = samplers.observed_keys(keyed)
    got.add("mine")  # the caller's set is its own: the memo is not changed through it
    assert "mine" not in samplers.observed_keys(keyed)
    # other params objects in the prefix (equal or not), plain dicts, a shorter history
    other = [obs(samplers.KeyedParams({"x": 9, "y": "b"}))] + keyed[1:]
    assert samplers.observed_keys(other) == fresh(other)
    plain = [obs({"x": i, "y": "a"}) for i in range(7)]
    assert samplers.observed_keys(plain) == fresh(plain)
    plain[0].params["x"] = 42  # a plain dict may change between calls: it is never kept
    assert samplers.observed_keys(plain) == fresh(plain)
    assert samplers.observed_keys(keyed[:2]) == fresh(keyed[:2])
