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
recorded curves, so a restarted controller judges a trial that is still at its rung as
the dead one would have with the same journal (the rung may have grown meanwhile, as it
would have for a slower controller).

New bottom-rung configurations come from ``samplers.propose`` with the study's
``sampler`` (random, kde, model), configuration j drawn with ``sub_rng(seed, j)`` from
the history as it is when j is created: the searcher is a pure function of (space,
config, history, seed), and the journal keeps every configuration it handed out.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import AbstractSet, Any, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ..space import Space
from ..spec.model import AshaConfig, Metric
from . import samplers
from .base import History, SearchResult, Suggestion, TrialRecord, TrialState, minimizing, sub_rng
from .hyperband import _exact, _resource, ranked

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
    return rungs(config.min_resource, config.max_resource, config.eta, config.min_early_stopping_rate,
                 config.resource.type)


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
    v = (t.meta or {}).get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class _Rungs:
    """Promotion mode's state, rebuilt from the trials' tags."""

    def __init__(self, history: History, top: int):
        self.trials: Dict[Tuple[int, int], TrialRecord] = {}  # (rung, config) -> first trial so tagged
        for t in history.trials:
            k, j = _tag(t, "rung"), _tag(t, "config")
            if k is None or j is None or not 0 <= k <= top:
                continue
            self.trials.setdefault((k, j), t)
        self.started: Set[int] = {j for (k, j) in self.trials if k == 0}
        self.n_configs = max(self.started, default=-1) + 1
        self.live = any(t.state.live for t in self.trials.values())

    def members(self, k: int) -> List[TrialRecord]:
        return [t for (rk, _), t in self.trials.items() if rk == k]

    def promoted(self, k: int) -> Set[int]:
        """Configurations promoted from rung k (created at k + 1, whatever became of them)."""
        return {j for (rk, j) in self.trials if rk == k + 1}


def _promotion(state: _Rungs, eta: Fraction, top: int, optimization: str,
               taken: Set[Tuple[int, int]]) -> Optional[Tuple[int, TrialRecord]]:
    """The next promotion (rung it leaves, trial) by the free-slot rule, or None."""
    for k in range(top - 1, -1, -1):
        best = ranked(state.members(k), optimization)  # finite values only; ties: earlier trial
        done = state.promoted(k)
        for t in best[: math.floor(len(best) / eta)]:
            j = _tag(t, "config")
            if j not in done and (k, j) not in taken:
                return k, t
    return None


def _observations(history: History, config: AshaConfig, ladder_: List[Resource]) \
        -> Tuple[List[samplers.Observation], List[Dict[str, Any]]]:
    """What the sampler learns from. Stopping mode's trials count once per rung they
    reached (their value at that rung's resource), as promotion mode's trials do."""
    if config.mode != "stopping":
        return samplers.observations_of(history, config.metric)
    observed: List[samplers.Observation] = []
    pending: List[Dict[str, Any]] = []
    for t in history.trials:
        curve = t.curve(config.metric.name)
        for res in ladder_:
            at = next((v for step, v in curve if step >= res), None)
            if at is None:
                break
            observed.append(samplers.Observation(dict(t.params), res,
                                                 minimizing(float(at), config.metric.optimization)))
        if t.state.live:
            pending.append(dict(t.params))
        elif t.state in (TrialState.FAILED, TrialState.CANCELLED) and not curve:
            observed.append(samplers.Observation(dict(t.params), ladder_[0], None))
    return observed, pending


# -------------------------------------------------------------------------- public


def suggest(space: Space, config: AshaConfig, history: History, seed: int, n: int) -> SearchResult:
    """Up to ``n`` trials for the free slots, by the rule of the module doc."""
    ladder_ = ladder(config)
    top = len(ladder_) - 1
    if config.mode == "stopping":
        started = {j for t in history.trials if (j := _tag(t, "config")) is not None}
        first = max(started, default=-1) + 1
        new = list(range(first, min(config.n_trials, first + max(0, n))))
        configs = _new_configs(space, config, history, seed, new, ladder_)
        out = [Suggestion(params=p, resource=ladder_[-1], meta={"config": j, "rung": None})
               for j, p in zip(new, configs)]
        return SearchResult(tuple(out), exhausted=first + len(new) >= config.n_trials)

    state = _Rungs(history, top)
    eta = _exact(config.eta, "eta")
    taken: Set[Tuple[int, int]] = set()
    plan: List[Tuple[str, int, Optional[TrialRecord]]] = []  # ("promote", rung it leaves, trial) | ("new", j, None)
    next_config = state.n_configs
    for _ in range(max(0, n)):
        promotion = _promotion(state, eta, top, config.metric.optimization, taken)
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
    exhausted = (not out and not state.live and state.n_configs >= config.n_trials
                 and _promotion(state, eta, top, config.metric.optimization, set()) is None)
    return SearchResult(tuple(out), exhausted=exhausted)


def _new_configs(space: Space, config: AshaConfig, history: History, seed: int, ids: List[int],
                 ladder_: List[Resource]) -> List[Dict[str, Any]]:
    if not ids:
        return []
    observed, pending = _observations(history, config, ladder_)
    out = []
    for j in ids:
        params = samplers.propose(space, config.sampler, observed, 1, sub_rng(seed, j), pending)[0]
        pending.append(params)
        out.append(params)
    return out
