"""ASHA: asynchronous successive halving (Li et al., MLSys 2020, Algorithm 2), as
DIALECT.md pins it down.

Public entry points (stable: the benchmarks call them):

* ``suggest(space, config, history, seed, n) -> SearchResult``: the searcher;
* ``rungs(min_resource, max_resource, eta, min_early_stopping_rate, type)``: the
  resources of the rungs, bottom first; ``ladder(config)`` for a config;
* ``stopping_policy(config)``: the ``RungPolicy`` that carries stopping mode's
  decisions through the controller's stopping interface (``controller.stopping.RungRule``)
  and the ask/tell ``Tuner.report``, and
  ``rung_stops(policy, curves, live, excluded)``: those decisions, a pure function of
  the recorded curves.

With r = ``min_resource``, R = ``max_resource``, η = ``eta`` and s =
``min_early_stopping_rate``, rung k trains to r·η^(s+k); the top rung is the largest k
with r·η^(s+k) ≤ R (exact arithmetic), plus one last rung at R when R is not on that
ladder. ``int`` resources are rounded as Hyperband's are.

**Promotion mode.** Each (configuration, rung) is a trial that ends at its rung's
resource, tagged ``meta = {"rung": k, "config": j, "parent": trial id or None,
"resume_from": trial id or None}`` (``resume_from`` also as ``Suggestion.resume_from``,
which the controller reads). For each free slot: for k from the top rung − 1 down
to 0, the candidates are the best ⌊|rung k| / η⌋ trials that completed rung k (failed and
cancelled trials are not members; ties: the earlier trial wins); the best candidate whose
configuration was not promoted from rung k yet goes to rung k + 1, as a new trial told
the total resource of rung k + 1 and, with ``resume``, ``resume_from`` the trial below
(whose checkpoint it continues). If there is no such candidate anywhere, a new
configuration starts at rung 0 while fewer than ``n_trials`` have started. The study ends
when nothing is live, all ``n_trials`` configurations have started and nothing is
promotable. A promotion that fails is not retried: its configuration was promoted.

**Stopping mode.** Each configuration is one trial told R, tagged ``{"config": j,
"rung": None}``; it reports its curve (``step`` = resource reached). The controller's
per-trial stopping rules (``stopping_policy(config)``) apply ``rung_stops``: a trial's
value at rung k is its first report at a step ≥ r_k; when that report is the trial's
latest (it has just reached the rung), it is stopped unless it is in the top ⌊n/η⌋ of the
n values the rung holds so far (itself included; kept while n < η; ties: the earlier
trial wins). A report that reaches several rungs at once is judged at each. Failed and
cancelled trials are not members of a rung (``excluded``). The decision reads only the
recorded curves, nothing of an earlier look: a trial still at its rung (no report since
it reached it) is judged again at every look against the rung as it has grown, so a
restarted controller judges it as the running one would have with the same journal.

New bottom-rung configurations come from ``samplers.propose`` with the study's
``sampler`` (model, the default of a study file, random or kde), configuration j drawn
with ``sub_rng(seed, j)`` from the history as it is when j is created: the searcher is a
pure function of (space, config, history, seed), and the journal keeps every
configuration it handed out.

The state read from the history (rung members, promotions, what the sampler learns
from) is kept between calls in a memo by (config, seed) and brought up to date with only
the trials that are new or changed since (``_State``): a pure cache, checked against the
history it is handed, so the suggestions are those of a computation from scratch.
"""
from __future__ import annotations

import bisect
import functools
import itertools
import math
from dataclasses import dataclass
from fractions import Fraction
from typing import AbstractSet, Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ..space import Space
from ..spec.model import AshaConfig, Metric
from . import memo, samplers
from .base import History, SearchResult, Suggestion, TrialRecord, TrialState, minimizing, sub_rng
from .hyperband import _exact, _has_value, _resource

Resource = Union[int, float]


def rungs(min_resource: Any, max_resource: Any, eta: Any, min_early_stopping_rate: int = 0,
          resource_type: str = "float") -> List[Resource]:
    """The rung resources, bottom first: r·η^(s+k) while ≤ R, then R if it is not on
    the ladder. Empty when r·η^s is already beyond R."""
    r, R, e = _exact(min_resource, "min_resource"), _exact(max_resource, "max_resource"), _exact(eta, "eta")
    if e <= 1 or r <= 0 or R < r:
        raise ValueError(f"ASHA needs eta > 1 and 0 < min_resource <= max_resource, got eta={eta!r}, "
                         f"min_resource={min_resource!r}, max_resource={max_resource!r}")
    out: List[Fraction] = []
    x = r * e ** int(min_early_stopping_rate)
    while x <= R:
        out.append(x)
        x *= e
    if out and out[-1] != R:
        out.append(R)
    values: List[Resource] = []
    for v in out:
        res = _resource(v, resource_type, R)
        if not values or res != values[-1]:  # int rounding can merge the lowest rungs
            values.append(res)
    return values


def ladder(config: AshaConfig) -> List[Resource]:
    return list(_ladder(config.min_resource, config.max_resource, config.eta, config.min_early_stopping_rate,
                        config.resource.type))


@functools.lru_cache(maxsize=64)
def _ladder(*args: Any) -> Tuple[Resource, ...]:
    # once per study, not once per suggest: exact fractions cost a tenth of a cheap suggest
    return tuple(rungs(*args))


# ------------------------------------------------------------------ stopping mode

Curve = Sequence[Tuple[float, float]]  # (step, value), in report order


@dataclass(frozen=True)
class RungPolicy:
    """ASHA's stopping mode as a per-trial rule: ``rungs`` are the resources of every
    rung below the top one (the top one, R, ends the trial anyway)."""

    metric: Metric
    rungs: Tuple[float, ...]
    eta: float
    kind: str = "asha"


def _at_rung(curve: Curve, resource: float) -> Optional[Tuple[int, float]]:
    """(position, value) of the first report at a step >= ``resource``."""
    for i, (s, v) in enumerate(curve):
        if s >= resource:
            return i, v
    return None


def rung_stops(policy: RungPolicy, curves: Mapping[int, Curve], live: Set[int],
               excluded: AbstractSet[int] = frozenset()) -> Dict[int, str]:
    """{trial id: reason} for the ``live`` trials that stopping mode stops now (see the
    module doc). ``curves``: trial id -> the curve of the policy's metric; ``excluded``:
    failed trials (not rung members)."""
    sign = -1.0 if policy.metric.maximize else 1.0
    name = policy.metric.name
    # rung k -> {trial id: value to minimise} of every member: its first report at r_k or beyond
    members: List[Dict[int, float]] = [{} for _ in policy.rungs]
    arrived: Dict[int, List[int]] = {}  # live trial -> the rungs its last report reached first
    for tid, curve in curves.items():
        if tid in excluded or not curve:
            continue
        for k, resource in enumerate(policy.rungs):
            hit = _at_rung(curve, resource)
            if hit is None:
                break
            if math.isfinite(hit[1]):
                members[k][tid] = sign * hit[1]
                if tid in live and hit[0] == len(curve) - 1:
                    arrived.setdefault(tid, []).append(k)
    out: Dict[int, str] = {}
    for tid in sorted(arrived):
        for k in arrived[tid]:
            rung = members[k]
            if len(rung) < policy.eta:
                continue
            keep = math.floor(len(rung) / policy.eta)
            rank = sorted((v, t) for t, v in rung.items()).index((rung[tid], tid))
            if rank >= keep:
                out[tid] = (f"ASHA: {name} {sign * rung[tid]:g} at rung {k} ({policy.rungs[k]:g}) is not in the top "
                            f"{keep} of the {len(rung)} recorded there so far")
                break
    return out


def stopping_policy(config: AshaConfig) -> RungPolicy:
    """Stopping mode's rule for the per-trial stopping interface."""
    return RungPolicy(metric=config.metric, rungs=tuple(float(x) for x in ladder(config)[:-1]),
                      eta=float(config.eta))


# ------------------------------------------------------------ state from the history


def _tag(t: TrialRecord, key: str) -> Optional[int]:
    return _checked_int((t.meta or {}).get(key))


class _State:
    """What ``suggest`` reads from a history, built trial by trial.

    Promotion mode: the first trial tagged (rung k, configuration j) is that pair's member
    (later ones with the same tags are ignored); ``ranked[k]`` holds rung k's members with
    a finite value as (value to minimise, trial id, position), best first, which is
    ``hyperband.ranked``'s order (ties: the earlier trial); ``promoted[k]``: the
    configurations created at rung k + 1 (whatever became of them). Both modes: what the
    sampler learns from, per trial (``_contribution``).

    ``extend`` brings a state built from an earlier history up to date with a later one
    (the same trials, maybe changed, plus new ones), touching only the trials that are
    new or whose fingerprint changed; it refuses (returns False) when a trial's identity,
    tags or parameters changed or trials went away, and the caller builds a new state.
    So a state always equals the one built from scratch from the same history
    (``tests/search/test_asha_memo.py`` checks it on random histories)."""

    def __init__(self, config: AshaConfig, ladder_: List[Resource]):
        self.config, self.ladder = config, ladder_
        self.top = len(ladder_) - 1
        self.prints: List[Tuple[Any, ...]] = []
        self.tags: List[Optional[Tuple[int, int]]] = []  # per position: (rung, config) when it is that pair's member
        self.first: Set[Tuple[int, int]] = set()
        self.entry: List[Optional[Tuple[float, int, int]]] = []  # per position: its item in ranked[rung]
        self.live: List[bool] = []  # per position: a live member
        self.n_live = 0
        self.ranked: List[List[Tuple[float, int, int]]] = [[] for _ in ladder_]
        self.promoted: List[Set[int]] = [set() for _ in ladder_]
        self.n_configs = 0  # 1 + the largest configuration started at rung 0 (promotion mode)
        self.any_config = -1  # the largest configuration tag of any trial (stopping mode)
        self.observed: List[Tuple[samplers.Observation, ...]] = []  # per position
        self.pending: List[Optional[Dict[str, Any]]] = []  # per position: its params when live

    def extend(self, trials: Sequence[TrialRecord]) -> bool:
        found = memo.changes(trials, self.prints, _tags)
        if found is None:
            return False
        prints, changed = found
        n_old = len(self.prints)
        for i in changed:
            self._retract(i)
            self._contribute(i, trials[i])
        self.prints = prints
        for i in range(n_old, len(trials)):
            self.tags.append(None)
            self.entry.append(None)
            self.live.append(False)
            self.observed.append(())
            self.pending.append(None)
            t = trials[i]
            k, j = _tags(t.meta)
            if j is not None:
                self.any_config = max(self.any_config, j)
            if k is not None and j is not None and 0 <= k <= self.top and (k, j) not in self.first:
                self.first.add((k, j))
                self.tags[i] = (k, j)
                if k == 0:
                    self.n_configs = max(self.n_configs, j + 1)
                else:
                    self.promoted[k - 1].add(j)
            self._contribute(i, t)
        return True

    def _contribute(self, i: int, t: TrialRecord) -> None:
        tag = self.tags[i]
        if tag is not None:
            if t.state.live:
                self.live[i] = True
                self.n_live += 1
            if _has_value(t):
                value = minimizing(float(t.value), self.config.metric.optimization)  # type: ignore[arg-type]
                entry = (value, t.trial_id, i)
                bisect.insort(self.ranked[tag[0]], entry)
                self.entry[i] = entry
        self.observed[i], self.pending[i] = _contribution(t, self.config, self.ladder)

    def _retract(self, i: int) -> None:
        if self.live[i]:
            self.live[i] = False
            self.n_live -= 1
        entry = self.entry[i]
        if entry is not None:
            self.ranked[self.tags[i][0]].remove(entry)  # type: ignore[index]
            self.entry[i] = None

    def observations(self) -> Tuple[List[samplers.Observation], List[Dict[str, Any]]]:
        """The sampler's ``observations`` and ``pending``, in history order."""
        return (list(itertools.chain.from_iterable(self.observed)),
                [p for p in self.pending if p is not None])

    def promotion(self, trials: Sequence[TrialRecord], eta: Fraction,
                  taken: AbstractSet[Tuple[int, int]]) -> Optional[Tuple[int, TrialRecord]]:
        """The next promotion (rung it leaves, trial) by the free-slot rule, or None."""
        for k in range(self.top - 1, -1, -1):
            best = self.ranked[k]
            done = self.promoted[k]
            for _, _, i in itertools.islice(best, math.floor(len(best) / eta)):
                j = self.tags[i][1]  # type: ignore[index]
                if j not in done and (k, j) not in taken:
                    return k, trials[i]
        return None


def _tags(meta: Optional[Mapping[str, Any]]) -> Tuple[Optional[int], Optional[int]]:
    """(rung, configuration) of a trial's meta, each None when it is not an int."""
    meta = meta or {}
    return _checked_int(meta.get("rung")), _checked_int(meta.get("config"))


def _checked_int(v: Any) -> Optional[int]:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _contribution(t: TrialRecord, config: AshaConfig, ladder_: List[Resource]) \
        -> Tuple[Tuple[samplers.Observation, ...], Optional[Dict[str, Any]]]:
    """What the sampler learns from one trial: its observations and, when it is live, its
    params (pending). Promotion mode: ``samplers.observation_of``. Stopping mode: the trial
    counts once per rung it reached (its value at that rung's resource), as promotion
    mode's trials do."""
    params = samplers.KeyedParams(t.params)
    if config.mode != "stopping":
        ob = samplers.observation_of(t, config.metric, params)
        return ((), params) if ob is None else ((ob,), None)
    observed: List[samplers.Observation] = []
    curve = t.curve(config.metric.name)
    for res in ladder_:
        at = next((v for step, v in curve if step >= res), None)
        if at is None:
            break
        observed.append(samplers.Observation(params, res, minimizing(float(at), config.metric.optimization)))
    if t.state.live:
        return tuple(observed), params
    if t.state in (TrialState.FAILED, TrialState.CANCELLED) and not curve:
        observed.append(samplers.Observation(params, ladder_[0], None))
    return tuple(observed), None


# The states of recent studies, by (config, seed): rebuilding the state from the whole
# history on every call made a study quadratic (26 ms a call at 400 trials). See memo.py.
_MEMO: "memo.Memo[_State]" = memo.Memo()


# -------------------------------------------------------------------------- public


def suggest(space: Space, config: AshaConfig, history: History, seed: int, n: int) -> SearchResult:
    """Up to ``n`` trials for the free slots, by the rule of the module doc."""
    ladder_ = ladder(config)
    with _MEMO.reading((config, seed), lambda: _State(config, ladder_), history.trials) as state:
        return _suggest(space, config, history, seed, n, ladder_, state)


def _suggest(space: Space, config: AshaConfig, history: History, seed: int, n: int, ladder_: List[Resource],
             state: _State) -> SearchResult:
    if config.mode == "stopping":
        first = state.any_config + 1
        new = list(range(first, min(config.n_trials, first + max(0, n))))
        configs = _new_configs(space, config, state, seed, new)
        out = [Suggestion(params=p, resource=ladder_[-1], meta={"config": j, "rung": None})
               for j, p in zip(new, configs)]
        return SearchResult(tuple(out), exhausted=first + len(new) >= config.n_trials)

    trials = history.trials
    eta = _exact(config.eta, "eta")
    taken: Set[Tuple[int, int]] = set()
    plan: List[Tuple[str, int, Optional[TrialRecord]]] = []  # ("promote", rung it leaves, trial) | ("new", j, None)
    next_config = state.n_configs
    for _ in range(max(0, n)):
        promotion = state.promotion(trials, eta, taken)
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
    fresh = dict(zip(new_ids, _new_configs(space, config, state, seed, new_ids)))
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
    exhausted = (not out and not state.n_live and state.n_configs >= config.n_trials
                 and state.promotion(trials, eta, set()) is None)
    return SearchResult(tuple(out), exhausted=exhausted)


def _new_configs(space: Space, config: AshaConfig, state: _State, seed: int, ids: List[int]) -> List[Dict[str, Any]]:
    if not ids:
        return []
    observed, pending = state.observations()
    out = []
    for j in ids:
        params = samplers.propose(space, config.sampler, observed, 1, sub_rng(seed, j), pending)[0]
        pending.append(params)
        out.append(params)
    return out
