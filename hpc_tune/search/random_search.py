"""Random search: ``n_trials`` distinct parameter sets drawn from the seed.

The whole plan is a function of (space, n, seed), so the i-th trial of a study is
the same whichever controller creates it. It never loops forever: a discrete space
is sampled without replacement (weights respected, zero-probability values never
drawn); a space with distributions is sampled with a bounded number of redraws for
duplicates (a coarse ``quniform`` can have few distinct values), and when those run
out the plan is shorter and says why.
"""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, List, Tuple

import numpy as np

from ..space import Discrete, Space, params_key
from ..spec.model import RandomConfig
from .base import History, SearchResult, sub_rng
from .grid import take_next

# Enumerate discrete spaces up to this many combinations; sample larger ones.
_ENUMERATE_LIMIT = 2_000_000


@lru_cache(maxsize=8)
def plan(space: Space, n_trials: int, seed: int) -> Tuple[Tuple[Dict[str, Any], ...], Tuple[str, ...]]:
    """The planned parameter sets and notes for the user."""
    rng = sub_rng(seed, 0)
    size = space.size()
    if size is not None and size <= _ENUMERATE_LIMIT:
        return tuple(_without_replacement(space, min(n_trials, size), rng)), ()
    out: List[Dict[str, Any]] = []
    seen = set()
    budget = 20 * n_trials + 1000
    while len(out) < n_trials and budget > 0:
        budget -= 1
        params = space.sample(rng)
        key = params_key(params)
        if key in seen:
            continue
        seen.add(key)
        out.append(params)
    notes: Tuple[str, ...] = ()
    if len(out) < n_trials:
        notes = (f"random search planned {len(out)} of {n_trials} trials: further draws only repeated "
                 f"parameter sets already planned (the space has few distinct values)",)
    return tuple(out), notes


def _without_replacement(space: Space, n: int, rng: np.random.Generator) -> List[Dict[str, Any]]:
    names = list(space)
    params: List[Discrete] = [space[name] for name in names]  # type: ignore[misc]
    supports = [p.support for p in params]
    radix = [len(s) for s in supports]
    total = int(np.prod(radix))
    weights = np.ones(total)
    stride = total
    for p, r in zip(params, radix):
        stride //= r
        if p.probabilities is not None:
            probs = np.asarray([q for q in p.probabilities if q > 0])
            weights *= np.repeat(np.tile(probs, total // (stride * r)), stride)
    chosen = rng.choice(total, size=n, replace=False, p=weights / weights.sum())
    out = []
    for index in chosen:
        params_set = {}
        rest = int(index)
        for name, support, r in zip(reversed(names), reversed(supports), reversed(radix)):
            params_set[name] = support[rest % r]
            rest //= r
        out.append({name: params_set[name] for name in names})
    return out


def suggest(space: Space, config: RandomConfig, history: History, seed: int, n: int) -> SearchResult:
    planned, notes = plan(space, config.n_trials, seed)
    result = take_next(planned, history, n)
    return SearchResult(result.suggestions, result.exhausted, notes if result.exhausted else ())
