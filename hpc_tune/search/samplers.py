"""The one seam through which multi-fidelity searchers draw new configurations.

Hyperband (``sampler:``), BOHB and ASHA never sample the matrix themselves when they
need a fresh bottom-rung configuration: they call

    propose(space, config, observations, n, rng, pending=()) -> list of params

* ``space``: the study's ``Space``;
* ``config``: the study's ``SamplerConfig`` (``config.kind`` picks the sampler:
  ``random``, ``kde``, ``model``; the other fields are that sampler's settings);
* ``observations``: every trial of the study that has ended or is running, as
  ``Observation(params, resource, value)`` in creation order, ``value`` the objective
  turned into a quantity to *minimise* (``base.minimizing``), or ``None`` for a
  failed or cancelled trial (BOHB counts those as bad). ``resource`` is the total the
  trial was told to reach;
* ``n``: how many configurations to return (exactly ``n``; a sampler repeats a
  configuration rather than return fewer, and says nothing: the caller notes repeats);
* ``rng``: a ``numpy.random.Generator`` the caller derives from the study seed and the
  position of the configuration in the study, so that the same history gives the
  same draws (restart-exactness);
* ``pending``: parameters of trials created and not finished yet (live), for samplers
  that handle concurrency (the ``model`` sampler believes a value for them, as the BO
  searcher does); ``random`` only avoids repeating them.

A sampler must be pure (no I/O, no clock, no state kept between calls): all it may
know is in its arguments. (A memo of a deterministic computation, such as the model
sampler's fitted kernels, is not state: it changes no result, and a test says so.)

Samplers are registered by kind in ``SAMPLERS`` as ``"module:function"``, imported on
first use, so a sampler's dependencies (scikit-learn for ``model``) are only imported by
studies that use it. A sampler module adds its own line to ``SAMPLERS`` below; the
dialect's kinds are ``spec.model.SAMPLERS`` (the loader accepts those).
"""
from __future__ import annotations

import importlib
import math
import operator
from typing import Any, Callable, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np

from ..space import Space, params_key
from ..spec.model import Metric, SamplerConfig
from .base import History, TrialRecord, TrialState, minimizing

# Draws spent looking for a configuration not seen yet before a repeat is accepted:
# bounded so that a tiny or heavily weighted space never hangs the study.
MAX_DRAWS_PER_CONFIG = 100


class KeyedParams(dict):  # type: ignore[type-arg]
    """A parameter set that carries its ``params_key``, for callers that keep observations
    between calls (ASHA's memo): the random sampler then does not recompute the key of
    every observation on every call, and a sampler may keep in ``derived`` what it computes
    from these params alone (the kde sampler: the encoded row, by space). It is a private
    copy that nobody mutates, so what is derived from it stays true."""

    __slots__ = ("key", "derived")

    def __init__(self, params: Dict[str, Any]):
        super().__init__(params)
        self.key = params_key(params)
        self.derived: Dict[Any, Any] = {}


def key_of(params: Dict[str, Any]) -> Any:
    """``params_key(params)``, read from a ``KeyedParams``."""
    return params.key if type(params) is KeyedParams else params_key(params)


class Observation(NamedTuple):
    """One trial as a sampler sees it."""

    params: Dict[str, Any]
    resource: Optional[float]
    value: Optional[float]  # to minimise; None: failed, cancelled, or still running (see ``pending``)


Sampler = Callable[..., List[Dict[str, Any]]]

SAMPLERS: Dict[str, str] = {
    "random": f"{__name__}:propose_random",
    "kde": "hpc_tune.search.kde_sampler:propose",
    "model": "hpc_tune.search.model_sampler:propose",
}


def available(kind: str) -> bool:
    """Whether ``sampler: kind`` can run in this installation."""
    return kind in SAMPLERS


def sampler(kind: str) -> Sampler:
    if kind not in SAMPLERS:
        raise ValueError(f"no sampler {kind!r}; known: {', '.join(sorted(SAMPLERS))}")
    module, _, function = SAMPLERS[kind].partition(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def propose(space: Space, config: SamplerConfig, observations: Sequence[Observation], n: int,
            rng: np.random.Generator, pending: Sequence[Dict[str, Any]] = ()) -> List[Dict[str, Any]]:
    """``n`` new configurations drawn by the sampler ``config.kind`` (see the module doc)."""
    if n <= 0:
        return []
    out = sampler(config.kind)(space, config, list(observations), n, rng, list(pending))
    if len(out) != n:
        raise RuntimeError(f"sampler {config.kind!r} returned {len(out)} configurations, {n} were asked")
    return [dict(p) for p in out]


def propose_random(space: Space, config: SamplerConfig, observations: Sequence[Observation], n: int,
                   rng: np.random.Generator, pending: Sequence[Dict[str, Any]] = ()) -> List[Dict[str, Any]]:
    """Draws from the matrix, as random search would, avoiding configurations already
    tried, pending or drawn in this call (up to ``MAX_DRAWS_PER_CONFIG`` draws each)."""
    size = space.size()  # None: continuous, repeats are (almost) impossible
    seen = observed_keys(observations)
    seen.update(key_of(p) for p in pending)
    out: List[Dict[str, Any]] = []
    for _ in range(n):
        params = draw_unseen(space, seen, rng, size)
        seen.add(params_key(params))
        out.append(params)
    return out


# The last call's params and their keys, when they are all KeyedParams (which nobody
# changes): ASHA hands the same KeyedParams, plus new ones, on every call. Rebuilding the
# set rehashed every key on every call: a quarter of an ASHA run's optimiser time.
_LAST_KEYS: Tuple[List[Any], Set[Any]] = ([], set())


def params_keys(params: Sequence[Dict[str, Any]]) -> Set[Any]:
    """A new set of the ``params_key`` of each of ``params``; the keys of KeyedParams
    are kept and recognised by identity at the next call."""
    global _LAST_KEYS
    params = list(params)
    old, old_keys = _LAST_KEYS
    if old and len(old) <= len(params) and all(map(operator.is_, old, params)):
        keys, start = old_keys.copy(), len(old)
    else:
        keys, start = set(), 0
    keys.update(key_of(p) for p in params[start:])
    if all(type(p) is KeyedParams for p in params[start:]):  # the first `start` are the old ones
        _LAST_KEYS = (params, keys.copy())
    return keys


def observed_keys(observations: Sequence[Observation]) -> Set[Any]:
    """A new set of the ``params_key`` of every observation's params."""
    return params_keys([o.params for o in observations])


def draw_unseen(space: Space, seen: Set[Any], rng: np.random.Generator, size: Optional[int]) -> Dict[str, Any]:
    """A draw from the matrix whose ``params_key`` is not in ``seen``, if one turns up within
    ``MAX_DRAWS_PER_CONFIG`` draws while the space (of ``size`` points, None: continuous)
    has any left; else the last draw."""
    params = space.sample(rng)
    draws = 1
    while (size is None or len(seen) < size) and params_key(params) in seen and draws < MAX_DRAWS_PER_CONFIG:
        params = space.sample(rng)
        draws += 1
    return params


def observations_of(history: History, metric: Metric) -> Tuple[List[Observation], List[Dict[str, Any]]]:
    """The ``observations`` and ``pending`` arguments of ``propose`` for a history.

    A trial that was stopped early counts at the step of its last report of ``metric``
    (the resource it really reached), not at the total it was told."""
    observed: List[Observation] = []
    pending: List[Dict[str, Any]] = []
    for t in history.trials:
        ob = observation_of(t, metric)
        if ob is None:
            pending.append(dict(t.params))
        else:
            observed.append(ob)
    return observed, pending


def observation_of(t: TrialRecord, metric: Metric, params: Optional[Dict[str, Any]] = None) -> Optional[Observation]:
    """One trial as ``observations_of`` sees it, None when it is live (pending);
    ``params``: the copy of ``t.params`` to put in it (a fresh dict when None)."""
    if t.state.live:
        return None
    value = None
    if t.state in (TrialState.COMPLETED, TrialState.STOPPED) and t.value is not None \
            and math.isfinite(t.value):
        value = minimizing(float(t.value), metric.optimization)
    resource = t.resource
    curve = t.curve(metric.name) if t.state is TrialState.STOPPED else ()
    if curve:
        resource = curve[-1][0]
    return Observation(dict(t.params) if params is None else params, resource, value)


__all__ = ["KeyedParams", "Observation", "SAMPLERS", "available", "key_of", "observation_of", "observations_of",
           "propose", "propose_random", "sampler"]
