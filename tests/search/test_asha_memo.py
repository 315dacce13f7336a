"""ASHA's memo changes no suggestion: on random histories (trials asked, finished,
failed, stopped, cancelled, put back to running, changed in place or replaced, curves
growing, replays of a prefix, another study's history in between, the memo emptied as
a restarted process has it), ``asha.suggest`` gives exactly what a from-scratch
computation gives. The reference below is ASHA's code before the memo (version 0.1.0's
rebuild of the rungs from the whole history on every call), kept as the oracle."""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Set, Tuple

import history_ops
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpc_tune.search import asha, samplers
from hpc_tune.search.base import History, SearchResult, Suggestion, TrialRecord, TrialState, minimizing, sub_rng
from hpc_tune.search.hyperband import _exact, ranked
from hpc_tune.space import Discrete, Space, Uniform
from hpc_tune.spec.model import AshaConfig, Metric, ResourceConfig, SamplerConfig

SPACE = Space({"x": Uniform(0.0, 1.0), "w": Discrete((1, 2, 3))})

# ----------------------------------------------------------------- the reference


def _tag(t: TrialRecord, key: str) -> Optional[int]:
    v = (t.meta or {}).get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _members(history: History, top: int) -> Dict[Tuple[int, int], TrialRecord]:
    trials: Dict[Tuple[int, int], TrialRecord] = {}
    for t in history.trials:
        k, j = _tag(t, "rung"), _tag(t, "config")
        if k is None or j is None or not 0 <= k <= top:
            continue
        trials.setdefault((k, j), t)
    return trials


def _promotion(trials: Dict[Tuple[int, int], TrialRecord], eta: Any, top: int, optimization: str,
               taken: Set[Tuple[int, int]]) -> Optional[Tuple[int, TrialRecord]]:
    for k in range(top - 1, -1, -1):
        best = ranked([t for (rk, _), t in trials.items() if rk == k], optimization)
        done = {j for (rk, j) in trials if rk == k + 1}
        for t in best[: math.floor(len(best) / eta)]:
            j = _tag(t, "config")
            if j not in done and (k, j) not in taken:
                return k, t
    return None


def _observations(history: History, config: AshaConfig, ladder_: List[Any]):
    if config.mode != "stopping":
        return samplers.observations_of(history, config.metric)
    observed, pending = [], []
    for t in history.trials:
        curve = t.curve(config.metric.name)
        for res in ladder_:
            at = next((v for step, v in curve if step >= res), None)
            if at is None:
                break
            value = minimizing(float(at), config.metric.optimization)
            observed.append(samplers.Observation(dict(t.params), res, value))
        if t.state.live:
            pending.append(dict(t.params))
        elif t.state in (TrialState.FAILED, TrialState.CANCELLED) and not curve:
            observed.append(samplers.Observation(dict(t.params), ladder_[0], None))
    return observed, pending


def _new_configs(space, config, history, seed, ids, ladder_):
    if not ids:
        return []
    observed, pending = _observations(history, config, ladder_)
    out = []
    for j in ids:
        params = samplers.propose(space, config.sampler, observed, 1, sub_rng(seed, j), pending)[0]
        pending.append(params)
        out.append(params)
    return out


def reference_suggest(space: Space, config: AshaConfig, history: History, seed: int, n: int) -> SearchResult:
    ladder_ = asha.ladder(config)
    top = len(ladder_) - 1
    if config.mode == "stopping":
        started = {j for t in history.trials if (j := _tag(t, "config")) is not None}
        first = max(started, default=-1) + 1
        new = list(range(first, min(config.n_trials, first + max(0, n))))
        configs = _new_configs(space, config, history, seed, new, ladder_)
        out = [Suggestion(params=p, resource=ladder_[-1], meta={"config": j, "rung": None})
               for j, p in zip(new, configs)]
        return SearchResult(tuple(out), exhausted=first + len(new) >= config.n_trials)
    trials = _members(history, top)
    n_configs = max((j for (k, j) in trials if k == 0), default=-1) + 1
    live = any(t.state.live for t in trials.values())
    eta = _exact(config.eta, "eta")
    taken: Set[Tuple[int, int]] = set()
    plan: List[Tuple[str, int, Optional[TrialRecord]]] = []
    next_config = n_configs
    for _ in range(max(0, n)):
        promotion = _promotion(trials, eta, top, config.metric.optimization, taken)
        if promotion is not None:
            k, t = promotion
            taken.add((k, _tag(t, "config")))  # type: ignore[arg-type]
            plan.append(("promote", k, t))
        elif next_config < config.n_trials:
            plan.append(("new", next_config, None))
            next_config += 1
        else:
            break
    new_ids = [j for what, j, _ in plan if what == "new"]
    fresh = dict(zip(new_ids, _new_configs(space, config, history, seed, new_ids, ladder_)))
    out: List[Suggestion] = []
    for _, k, t in plan:
        if t is None:
            out.append(Suggestion(params=fresh[k], resource=ladder_[0],
                                  meta={"rung": 0, "config": k, "parent": None, "resume_from": None}))
        else:
            resume_from = t.trial_id if config.resume else None
            out.append(Suggestion(params=dict(t.params), resource=ladder_[k + 1],
                                  meta={"rung": k + 1, "config": _tag(t, "config"), "parent": t.trial_id,
                                        "resume_from": resume_from}, resume_from=resume_from))
    exhausted = (not out and not live and n_configs >= config.n_trials
                 and _promotion(trials, eta, top, config.metric.optimization, set()) is None)
    return SearchResult(tuple(out), exhausted=exhausted)


# ------------------------------------------------------------------ the property

@st.composite
def configs(draw) -> AshaConfig:
    mode = draw(st.sampled_from(["promotion", "promotion", "stopping"]))
    R = draw(st.sampled_from([4, 9, 10, 27]))
    return AshaConfig(max_resource=R, resource=ResourceConfig("epochs", "int"),
                      metric=Metric("loss", draw(st.sampled_from(["minimize", "maximize"]))),
                      n_trials=draw(st.integers(1, 30)), min_resource=1, eta=draw(st.sampled_from([2, 3, 2.5])),
                      mode=mode, resume=draw(st.booleans()),
                      sampler=SamplerConfig(kind=draw(st.sampled_from(["random", "random", "kde"]))))


def check(cfg: AshaConfig, trials: List[TrialRecord], seed: int, n: int) -> SearchResult:
    history = History.of(trials)
    got = asha.suggest(SPACE, cfg, history, seed, n)
    assert got == reference_suggest(SPACE, cfg, history, seed, n)
    ladder_ = asha.ladder(cfg)  # what the sampler learns from, whichever sampler the study has
    with asha._MEMO.reading((cfg, seed), lambda: asha._State(cfg, ladder_), history.trials) as state:
        assert state.observations() == _observations(history, cfg, ladder_)
    return got


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cfg=configs(), seed=st.integers(0, 3), ops=st.lists(history_ops.OPS, max_size=60))
def test_memo_gives_what_a_computation_from_scratch_gives(cfg, seed, ops):
    history_ops.replay(ops, lambda trials, n: check(cfg, trials, seed, n), asha._MEMO.clear)


def test_a_record_whose_tags_or_params_are_replaced_is_seen():
    # A record's params and meta never change in place (TrialRecord's contract,
    # tests/journal/test_fold.py checks the fold keeps it); another dict in their place is seen.
    cfg = AshaConfig(max_resource=9, resource=ResourceConfig("epochs", "int"), metric=Metric("loss"), n_trials=9)
    trials = []
    for s in check(cfg, trials, 0, 3).suggestions:
        trials.append(history_ops.trial_of(s, len(trials), TrialState.COMPLETED, len(trials) / 10))
    promoted = check(cfg, trials, 0, 1).suggestions[0]
    assert promoted.meta["rung"] == 1 and promoted.meta["parent"] == 0
    trials[0].meta = dict(trials[0].meta, rung=5)  # no rung 5: trial 0 is no member any more
    trials[1].params = dict(trials[1].params, x=0.123)
    again = check(cfg, trials, 0, 1).suggestions[0]
    assert again.meta["rung"] == 0  # nothing to promote from two members: a new configuration
