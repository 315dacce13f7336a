"""BOHB's sampler (Falkner, Klein, Hutter, ICML 2018) with HpBandSter's defaults.

Public entry point (stable; ``samplers.propose`` dispatches ``sampler: kde`` here, the
benchmarks call it directly)::

    propose(space, config, observations, n, rng, pending=()) -> List[params]

``config`` is a ``spec.model.SamplerConfig`` (any object with its KDE fields will do:
``top_n_percent``, ``random_fraction``, ``num_samples``, ``bandwidth_factor``,
``min_bandwidth``, ``min_points_in_model``). ``observations`` are
``samplers.Observation(params, resource, value)`` tuples: ``value`` is the objective as
a quantity to minimise (``base.minimizing``), ``None`` (or NaN) for a failed trial.
``pending`` is ignored, as in HpBandSter: BOHB's draws are random enough that parallel
workers rarely collide. ``rng`` is the only source of randomness: the caller derives it
from the study seed and a position in the study (``base.sub_rng``), so the same history
and the same generator give the same proposals, and the first k proposals of a call for
n are those of a call for k (each proposal has its own child stream).

The rule (DIALECT.md, "BOHB"), per proposal:

* with probability ``random_fraction``, or while no budget has a model, a draw of
  ``space.sample``;
* a budget (a distinct ``resource``) has a model when its results split into a
  "good" set, the best ``max(min_points_in_model, floor(top_n_percent * n / 100))``
  results, all with a finite loss, and a "bad" set, the rest (failed trials rank
  last, so they are always bad), of at least ``min_points_in_model`` results. The
  model of the largest such budget is used;
* each set is a product-kernel density on the unit cube of ``space.encode`` (log axes
  for log kinds, the normal CDF for normal kinds, the values' own axis for numeric
  choices): a Gaussian kernel on each axis, an Aitchison-Aitken kernel on each
  non-numeric choice (categories as categories). Bandwidths are statsmodels'
  ``normal_reference`` rule, ``1.06 * std * n ** (-1 / (4 + d))``, clipped below at
  ``min_bandwidth``;
* ``num_samples`` candidates are drawn around uniformly chosen good points: on an axis
  a normal truncated to [0, 1] with the good bandwidth times ``bandwidth_factor``; a
  category is kept with probability 1 - bandwidth, else drawn uniformly. The candidate
  with the largest l(x) / g(x) (both floored at 1e-32, as HpBandSter does) wins, and is
  decoded (snapped to the nearest allowed value).

Why the densities are computed here and not with statsmodels' ``KDEMultivariate``
(which HpBandSter uses): its unordered kernel takes the number of categories from the
data it is given, not from the parameter. A good set in which every point has the same
category (common: the good set is small) gives NaN or infinite densities, which
HpBandSter handles by taking such a candidate at once; a good set that has seen two of
three categories gives them the wrong weights. Here the number of categories is the
parameter's, and a bandwidth is at most (c - 1) / c (the uniform kernel), so every
density is finite and proper. Otherwise the estimator is statsmodels' (same bandwidth
rule, same kernels), which ``tests/search/test_kde_sampler.py`` checks against
``KDEMultivariate`` on data where the two definitions coincide. It also spares the
package statsmodels' import (about 0.9 s) and its pandas dependency.

Two further details where HpBandSter differs: it caps the bad set at
``max(min_points_in_model, floor((100 - top_n_percent) * n / 100))`` points, which can
leave out the single worst result (here the bad set is "the rest", as DIALECT.md says);
and it refits its models as results arrive, where this function refits from the
observations on every call (pure; the same models).
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from scipy import special

from ..space import Discrete, Space
from ..spec.model import SamplerConfig
from .samplers import KeyedParams, Observation

__all__ = ["KdeModel", "Observation", "fit_models", "min_points", "propose"]

#: densities are floored here before the ratio (HpBandSter's constant)
_DENSITY_FLOOR = 1e-32


def min_points(space: Space, config: SamplerConfig) -> int:
    """``min_points_in_model``: the number of parameters + 1 when None (the default), and
    never fewer (HpBandSter raises a smaller value to it, with a warning: a density on
    fewer points than dimensions + 1 is degenerate)."""
    if config.min_points_in_model is None:
        return len(space) + 1
    return max(len(space) + 1, int(config.min_points_in_model))


# --------------------------------------------------------------------------- encoding


class _Columns:
    """One KDE column per parameter: a unit-cube axis or a category index."""

    def __init__(self, space: Space):
        self.space = space
        self.names = list(space)
        # levels[j] == 0: an axis; otherwise the number of categories
        self.levels = np.zeros(len(self.names), dtype=int)
        self.support: List[Tuple[Any, ...]] = []
        for j, name in enumerate(self.names):
            p = space[name]
            if isinstance(p, Discrete) and not p.numeric:
                self.support.append(tuple(p.support))
                self.levels[j] = len(p.support)
            else:
                self.support.append(())

    def encode(self, params: Dict[str, Any]) -> Optional[np.ndarray]:
        """The row of ``params``, or None when it is not a point of this space (a trial
        from an earlier version of the study, a value outside the support)."""
        row = np.empty(len(self.names))
        try:
            for j, name in enumerate(self.names):
                p = self.space[name]
                v = params[name]
                if self.levels[j]:
                    row[j] = _index(self.support[j], v)
                else:
                    row[j] = p.encode(v)[0]
        except (KeyError, ValueError, TypeError):
            return None
        return row if np.all(np.isfinite(row)) else None

    def decode(self, row: np.ndarray) -> Dict[str, Any]:
        out: Dict[str, Any] = {}
        for j, name in enumerate(self.names):
            if self.levels[j]:
                out[name] = self.support[j][int(row[j])]
            else:
                out[name] = self.space[name].decode([float(row[j])])
        return out


def _index(values: Tuple[Any, ...], value: Any) -> int:
    for i, v in enumerate(values):
        # True == 1 in Python, but not the same category; 1 and 1.0 (a JSON round trip) are
        if v == value and (type(v) is type(value) or _plain_number(v) and _plain_number(value)):
            return i
    raise ValueError(f"{value!r} is not one of {list(values)!r}")


def _plain_number(x: Any) -> bool:
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


# ------------------------------------------------------------------------ the density


class KdeModel:
    """A product-kernel density (statsmodels' ``normal_reference`` bandwidths, Gaussian
    kernels on axes, Aitchison-Aitken kernels on categories with the parameter's own
    number of categories)."""

    def __init__(self, data: np.ndarray, levels: np.ndarray, min_bandwidth: float):
        self.data = np.asarray(data, dtype=float)
        self.levels = np.asarray(levels, dtype=int)
        n, d = self.data.shape
        bw = 1.06 * self.data.std(axis=0) * n ** (-1.0 / (4 + d))
        bw = np.maximum(bw, min_bandwidth)
        cat = self.levels > 0
        # lambda above (c-1)/c would weigh a match below a mismatch: the uniform kernel is the limit
        cap = np.where(cat, (np.maximum(self.levels, 2) - 1) / np.maximum(self.levels, 2), np.inf)
        self.bw = np.minimum(bw, cap)

    def log_pdf(self, X: np.ndarray) -> np.ndarray:
        """log density at each row of ``X``."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        cat = self.levels > 0
        logk = np.zeros((X.shape[0], self.data.shape[0]))
        for j in range(self.data.shape[1]):
            h = self.bw[j]
            diff = X[:, j][:, None] - self.data[:, j][None, :]
            if cat[j]:
                c = self.levels[j]
                same = np.abs(diff) < 0.5
                off = math.log(h / (c - 1)) if c > 1 and h > 0 else -np.inf
                logk += np.where(same, math.log1p(-h), off)
            else:
                logk += -0.5 * (diff / h) ** 2 - math.log(h * math.sqrt(2 * math.pi))
        return special.logsumexp(logk, axis=1) - math.log(self.data.shape[0])


@dataclass(frozen=True)
class _Pair:
    budget: float
    good: KdeModel
    bad: KdeModel


def fit_models(space: Space, config: SamplerConfig,
               observations: Sequence[Observation]) -> Dict[float, Tuple[int, int]]:
    """For every budget that has a model, the sizes of its good and bad sets (for
    ``plan`` and the tests). Same rule as ``propose``."""
    cols = _Columns(space)
    out: Dict[float, Tuple[int, int]] = {}
    for budget, rows, losses in _by_budget(cols, observations):
        split = _split(len(rows), losses, config.top_n_percent, min_points(space, config))
        if split is not None:
            out[budget] = (split, len(rows) - split)
    return out


def _by_budget(cols: _Columns, observations: Sequence[Observation]) -> List[Tuple[float, np.ndarray, np.ndarray]]:
    """(budget, rows, losses) per distinct resource, largest budget first; rows in the
    order of ``observations``; a failed trial has loss +inf."""
    groups: Dict[float, Tuple[List[np.ndarray], List[float]]] = {}
    for ob in observations:
        try:
            budget = float(ob.resource)
        except (TypeError, ValueError):
            continue
        row = _encoded(cols, ob.params)
        if row is None or not math.isfinite(budget):
            continue
        loss = ob.value
        loss = float(loss) if loss is not None and math.isfinite(float(loss)) else math.inf
        rows, losses = groups.setdefault(budget, ([], []))
        rows.append(row)
        losses.append(loss)
    return [(b, np.vstack(groups[b][0]), np.asarray(groups[b][1])) for b in sorted(groups, reverse=True)]


def _encoded(cols: _Columns, params: Dict[str, Any]) -> Optional[np.ndarray]:
    """``cols.encode(params)``, kept on ``params`` when it is a ``KeyedParams`` (ASHA hands
    the same observations to every call: encoding them all again was nine tenths of the
    sampler's time at a few hundred trials)."""
    if type(params) is not KeyedParams:
        return cols.encode(params)
    hit = params.derived.get("kde-row")  # (space, row); a space is hashed slowly: compared instead
    if hit is None or not (hit[0] is cols.space or hit[0] == cols.space):
        hit = params.derived["kde-row"] = (cols.space, cols.encode(params))
    return hit[1]  # type: ignore[no-any-return]


def _split(n: int, losses: np.ndarray, top_n_percent: float, min_points: int) -> Optional[int]:
    """The size of the good set, or None when the budget has no model."""
    n_good = max(min_points, int(math.floor(top_n_percent * n / 100.0)))
    if n - n_good < min_points:
        return None
    order = np.argsort(losses, kind="stable")
    if not math.isfinite(float(losses[order[n_good - 1]])):
        return None  # failed trials are bad, never good
    return n_good


def _model(space: Space, cols: _Columns, config: SamplerConfig, observations: Sequence[Observation]) -> Optional[_Pair]:
    """The good and bad densities of the largest budget that has a model."""
    needed = min_points(space, config)
    for budget, rows, losses in _by_budget(cols, observations):
        n_good = _split(len(rows), losses, config.top_n_percent, needed)
        if n_good is None:
            continue
        order = np.argsort(losses, kind="stable")
        good = KdeModel(rows[order[:n_good]], cols.levels, config.min_bandwidth)
        bad = KdeModel(rows[order[n_good:]], cols.levels, config.min_bandwidth)
        return _Pair(budget, good, bad)
    return None


# --------------------------------------------------------------------------- sampling


def _candidates(pair: _Pair, config: SamplerConfig, rng: np.random.Generator) -> np.ndarray:
    good = pair.good
    m = int(config.num_samples)
    d = good.data.shape[1]
    centres = good.data[rng.integers(0, good.data.shape[0], size=m)]
    out = np.empty((m, d))
    u = rng.random((m, d))
    pick = rng.random((m, d))
    for j in range(d):
        mu = centres[:, j]
        c = good.levels[j]
        if c:
            keep = pick[:, j] < 1.0 - good.bw[j]
            drawn = np.floor(u[:, j] * c)
            out[:, j] = np.where(keep, mu, np.minimum(drawn, c - 1))
        else:
            s = max(good.bw[j], config.min_bandwidth) * float(config.bandwidth_factor)
            lo, hi = special.ndtr((0.0 - mu) / s), special.ndtr((1.0 - mu) / s)
            q = lo + u[:, j] * (hi - lo)
            z = special.ndtri(np.clip(q, 1e-300, 1 - 1e-16))
            out[:, j] = np.clip(mu + s * z, 0.0, 1.0)
    return out


def _best(pair: _Pair, cands: np.ndarray) -> np.ndarray:
    floor = math.log(_DENSITY_FLOOR)
    score = np.maximum(pair.good.log_pdf(cands), floor) - np.maximum(pair.bad.log_pdf(cands), floor)
    return cands[int(np.argmax(score))]


def propose(space: Space, config: SamplerConfig, observations: Sequence[Observation], n: int,
            rng: np.random.Generator, pending: Sequence[Dict[str, Any]] = ()) -> List[Dict[str, Any]]:
    """``n`` new configurations by BOHB's rule (see the module docstring)."""
    n = max(0, int(n))
    if n == 0:
        return []
    cols = _Columns(space)
    pair = _model(space, cols, config, observations) if len(space) else None
    out: List[Dict[str, Any]] = []
    for child in child_rngs(rng, n):
        coin = child.random()  # tossed even without a model: a random draw uses the same stream either way
        if pair is None or coin < float(config.random_fraction):
            out.append(space.sample(child))
        else:
            out.append(cols.decode(_best(pair, _candidates(pair, config, child))))
    return out


def child_rngs(rng: np.random.Generator, n: int) -> List[np.random.Generator]:
    """``n`` independent generators from ``rng``; the first k do not depend on n."""
    seeds = rng.integers(0, 2**63 - 1, size=n, dtype=np.int64)
    return [np.random.default_rng(int(s)) for s in seeds]
