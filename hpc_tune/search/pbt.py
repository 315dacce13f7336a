"""Population Based Training (Jaderberg et al. 2017), asynchronous, as DIALECT.md
pins it down.

Public entry points (stable: the benchmarks call them):

* ``suggest(space, config, history, seed, n) -> SearchResult``: the searcher;
* ``intervals(config)``: the total resource each interval trains to;
* ``explore(space, params, config, rng)``: PBT's explore step on one parameter set;
* ``checkpoints_needed(config, history)``: the trials whose checkpoints some trial
  may still start from (the controller deletes the others unless
  ``keep_checkpoints: all``).

``population_size`` members train at once. Each interval of each member is one trial,
told the total resource to reach (``min((i + 1)·perturbation_interval,
max_resource)``) and tagged ``meta = {"member": m, "interval": i, "resume_from": trial
id or None, "donor": member or None}``; ``resume_from`` (also ``Suggestion.resume_from``)
is the trial whose checkpoint it starts from (the controller copies that checkpoint into the new trial's own folder
before submitting it). The initial population (interval 0, no checkpoint) is drawn
from the matrix as random search draws.

When a member's interval ends, every member is ranked by the value of its latest
completed interval (ties: the lower member number ranks higher). With k =
max(1, ⌊quantile_fraction · population_size⌋), a member among the worst k (and not
among the best k) starts its next interval from a copy of the checkpoint of a uniformly
drawn member among the best k, with that member's parameters explored (exploit +
explore): the donor's checkpoint of the member's own interval, or its latest if the donor
is behind, so that the next interval always has training to do; any other member
continues from its own checkpoint with its own parameters.
Explore, per parameter: with ``resample_probability`` a new draw from the matrix;
otherwise a continuous value is multiplied by a factor drawn uniformly from
``perturbation_factors``, clipped to the kind's bounds and re-quantised; a value of a
numeric list (values, range, linspace, logspace, geomspace) moves to a neighbour in
sorted order (the only neighbour at either end); a category is resampled.

A member whose interval fails or is cancelled leaves the population: it is neither
ranked nor continued (the paper is silent; retrying a failing configuration forever
would never end). The study ends when every member has reached ``max_resource`` or
left.

Every random choice of member m's decision after interval i comes from
``sub_rng(seed, 1, m, i + 1)``, so the searcher is a pure function of (space, config,
history, seed): the same journal prefix gives the same next trials.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional, Set, Tuple, Union

import numpy as np

from ..space import Discrete, Normal, Space, Uniform, _quantize, clean_number
from ..spec.model import PbtConfig
from .base import History, SearchResult, Suggestion, TrialRecord, minimizing, sub_rng
from .hyperband import _exact, _has_value, _resource
from .random_search import plan as random_plan

Resource = Union[int, float]


def intervals(config: PbtConfig) -> List[Resource]:
    """The total resource each interval of a member trains to, first to last."""
    T = _exact(config.perturbation_interval, "perturbation_interval")
    R = _exact(config.max_resource, "max_resource")
    count = math.ceil(R / T)
    return [_resource(min(T * (i + 1), R), config.resource.type, R) for i in range(count)]


def n_trials(config: PbtConfig) -> int:
    """Trials of the study when no member leaves it."""
    return config.population_size * len(intervals(config))


def quantile_size(config: PbtConfig) -> int:
    return max(1, math.floor(config.quantile_fraction * config.population_size))


# ------------------------------------------------------------------------- explore


def _neighbour(param: Discrete, value: Any, rng: np.random.Generator) -> Any:
    ordered = sorted(param.support)
    try:
        i = next(k for k, v in enumerate(ordered) if v == value)
    except StopIteration:  # not on the list (an edited journal): a fresh draw
        return param.sample(rng)
    if len(ordered) == 1:
        return ordered[0]
    step = int(rng.choice((-1, 1)))
    j = i + step
    if not 0 <= j < len(ordered):
        j = i - step  # an end has one neighbour
    return ordered[j]


def _perturb(param: Union[Uniform, Normal], value: Any, factor: float) -> Any:
    x = float(value) * factor
    if isinstance(param, Uniform):
        lo, hi = (math.exp(param.low), math.exp(param.high)) if param.log else (param.low, param.high)
        x = min(hi, max(lo, x))
    elif param.log:
        x = max(x, np.nextafter(0.0, 1.0))  # a lognormal value stays positive
    x = _quantize(x, param.q)
    if isinstance(param, Uniform) and param.q is not None:
        qlo, qhi = param.bounds()  # rounding may step past a bound by half a q
        x = min(qhi, max(qlo, x))
    return clean_number(x)


def explore(space: Space, params: Dict[str, Any], config: PbtConfig, rng: np.random.Generator) -> Dict[str, Any]:
    """PBT's explore step (see the module doc), parameters in the matrix's order."""
    out: Dict[str, Any] = {}
    factors = list(config.perturbation_factors)
    for name, param in space.items():
        value = params.get(name)
        if rng.random() < config.resample_probability or value is None:
            out[name] = param.sample(rng)
        elif isinstance(param, Discrete):
            out[name] = _neighbour(param, value, rng) if param.numeric else param.sample(rng)
        elif isinstance(param, (Uniform, Normal)):
            out[name] = _perturb(param, value, factors[int(rng.integers(len(factors)))])
        else:  # a kind this module does not know: a fresh draw is always valid
            out[name] = param.sample(rng)
    return out


# ------------------------------------------------------------ state from the history


def _tag(t: TrialRecord, key: str) -> Optional[int]:
    v = (t.meta or {}).get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


class _Population:
    def __init__(self, config: PbtConfig, history: History):
        self.size = config.population_size
        self.n_intervals = len(intervals(config))
        # member -> interval -> its first trial so tagged
        self.trials: Dict[int, Dict[int, TrialRecord]] = {m: {} for m in range(self.size)}
        for t in history.trials:
            m, i = _tag(t, "member"), _tag(t, "interval")
            if m is None or i is None or not (0 <= m < self.size and 0 <= i < self.n_intervals):
                continue
            self.trials[m].setdefault(i, t)

    def latest(self, m: int) -> Optional[TrialRecord]:
        mine = self.trials[m]
        return mine[max(mine)] if mine else None

    def left(self, m: int) -> bool:
        """The member's latest interval failed or was cancelled: it left the population."""
        t = self.latest(m)
        return t is not None and t.state.finished and not _has_value(t)

    def latest_completed(self, m: int, up_to: Optional[int] = None) -> Optional[TrialRecord]:
        done = [t for i, t in sorted(self.trials[m].items()) if _has_value(t) and (up_to is None or i <= up_to)]
        return done[-1] if done else None

    def ranking(self, optimization: str) -> List[int]:
        """Members in the population with a completed interval, best first."""
        scored = []
        for m in range(self.size):
            t = self.latest_completed(m)
            if t is not None and not self.left(m):
                scored.append((minimizing(float(t.value), optimization), m))  # type: ignore[arg-type]
        return [m for _, m in sorted(scored)]


def _initial(space: Space, config: PbtConfig, seed: int) -> List[Dict[str, Any]]:
    """The initial population, as random search draws it (distinct while the space allows)."""
    planned, _ = random_plan(space, config.population_size, seed)
    out = [dict(p) for p in planned]
    rng = sub_rng(seed, 2)
    while len(out) < config.population_size:  # a space smaller than the population
        out.append(space.sample(rng))
    return out


def _decide(space: Space, config: PbtConfig, pop: _Population, m: int, last: TrialRecord, ranking: List[int],
            seed: int) -> Tuple[Dict[str, Any], TrialRecord, Optional[int]]:
    """(parameters, trial to start from, donor member or None) for member m's next interval."""
    i = _tag(last, "interval") or 0
    k = quantile_size(config)
    top = ranking[:k]
    bottom = [x for x in ranking[max(k, len(ranking) - k):]]
    if m in bottom and top:
        rng = sub_rng(seed, 1, m, i + 1)
        donor = top[int(rng.integers(len(top)))]
        # The donor's checkpoint of this member's interval (or its latest, if behind): one
        # further ahead would leave the next interval nothing to train.
        source = pop.latest_completed(donor, up_to=i)
        assert source is not None  # ranked members have a completed interval
        return explore(space, dict(source.params), config, rng), source, donor
    return dict(last.params), last, None


# -------------------------------------------------------------------------- public


def suggest(space: Space, config: PbtConfig, history: History, seed: int, n: int) -> SearchResult:
    """Up to ``n`` trials: the initial members first, then the next interval of every
    member whose interval ended, members in order."""
    pop = _Population(config, history)
    ladder = intervals(config)
    ranking = pop.ranking(config.metric.optimization)
    out: List[Suggestion] = []
    exhausted = True
    initial: Optional[List[Dict[str, Any]]] = None
    for m in range(config.population_size):
        last = pop.latest(m)
        if last is None:
            exhausted = False
            if len(out) < n:
                initial = initial if initial is not None else _initial(space, config, seed)
                out.append(Suggestion(params=dict(initial[m]), resource=ladder[0],
                                      meta={"member": m, "interval": 0, "resume_from": None, "donor": None}))
            continue
        i = _tag(last, "interval") or 0
        if pop.left(m) or i == len(ladder) - 1:
            continue  # left the population, or its last interval exists
        exhausted = False
        if last.state.live or len(out) >= n:
            continue
        params, source, donor = _decide(space, config, pop, m, last, ranking, seed)
        out.append(Suggestion(params=params, resource=ladder[i + 1],
                              meta={"member": m, "interval": i + 1, "resume_from": source.trial_id,
                                    "donor": donor}, resume_from=source.trial_id))
    return SearchResult(tuple(out), exhausted=exhausted and not out)


def checkpoints_needed(config: PbtConfig, history: History) -> Set[int]:
    """Trials whose checkpoint a trial may still start from (or is being written):
    every live trial, the source of every live trial (its copy may not be made yet),
    and the latest completed interval of every member still in the population (its
    own next interval or a bottom member may copy it; the last one is the result)."""
    pop = _Population(config, history)
    out: Set[int] = set()
    for m in range(config.population_size):
        for t in pop.trials[m].values():
            if t.state.live:
                out.add(t.trial_id)
                if t.resume_from is not None:
                    out.add(t.resume_from)
        if not pop.left(m):
            t = pop.latest_completed(m)
            if t is not None:
                out.add(t.trial_id)
    # A member behind the others may copy a donor's checkpoint of its own interval (see
    # _decide): keep each member's completed intervals from the earliest one still running.
    behind = [_tag(pop.latest(m), "interval") or 0 for m in range(config.population_size)
              if pop.latest(m) is not None and not pop.left(m)]
    if behind:
        earliest = min(behind)
        for m in range(config.population_size):
            if not pop.left(m):
                out.update(t.trial_id for i, t in pop.trials[m].items() if i >= earliest and _has_value(t))
    return out
