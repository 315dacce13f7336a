"""The search space: parameter kinds as small value objects.

Every kind of DIALECT.md is a frozen dataclass with the same few operations:

* ``sample(rng)``: one value drawn from a ``numpy.random.Generator``;
* ``grid_values()``: the finite list of values (discrete kinds only);
* ``encode(value)`` / ``decode(vector)``: a map to and from the unit cube, used by
  model-based searchers. Log kinds get a log axis, non-numeric choices one-hot
  columns, unbounded kinds (normal, lognormal) their CDF, so every axis is [0, 1].

``Space`` is an ordered mapping of names to parameters with the same operations for
whole parameter sets. Nothing here knows about files, YAML or Slurm.
"""
from __future__ import annotations

import math
import sys
from dataclasses import dataclass, field
from functools import cached_property
from statistics import NormalDist
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple

import numpy as np

Value = Any  # a parameter value: a number, a string, a bool, None...


def clean_number(x: Any) -> Any:
    """Turn numpy scalars into plain Python numbers, trimming float noise.

    ``numpy.linspace(0.001, 0.1, 5)`` gives ``0.025750000000000002``; users expect
    ``0.02575`` on their command line. Twelve significant digits keep every value
    that a person could have meant and drop the binary noise.
    """
    if isinstance(x, (bool, np.bool_)):
        return bool(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        f = float(x)
        if math.isfinite(f):
            f = float(f"{f:.12g}")
            if f == 0.0:
                f = 0.0  # no "-0.0" on a command line
        return f
    return x


def _is_number(v: Any) -> bool:
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) > sys.float_info.max:
        return False  # no float can hold it: an opaque value (its own key, a one-hot column), not a point on an axis
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_))


_STANDARD_NORMAL = NormalDist()  # the stdlib's: scipy.stats would cost every CLI call a second
_MAX_EXP = math.log(np.finfo(float).max)  # ~709.78: math.exp above this overflows


def _quantize(x: float, q: Optional[float]) -> float:
    if q is None:
        return x
    k = x / q
    if not math.isfinite(k):  # q is below float precision at x: x is as quantised as a float can be
        return clean_number(x)
    return clean_number(round(k) * q)


class Param:
    """Common interface of every parameter kind."""

    kind: str = ""
    discrete: bool = False
    log_axis: bool = False

    def sample(self, rng: np.random.Generator) -> Value:  # pragma: no cover - interface
        raise NotImplementedError

    def grid_values(self) -> List[Value]:
        raise TypeError(f"'{self.kind}' is a distribution: it has no grid values")

    @property
    def n_dims(self) -> int:
        return 1

    def encode(self, value: Value) -> List[float]:  # pragma: no cover - interface
        raise NotImplementedError

    def decode(self, vector: Sequence[float]) -> Value:  # pragma: no cover - interface
        raise NotImplementedError

    def contains(self, value: Value) -> bool:  # pragma: no cover - interface
        raise NotImplementedError


# --------------------------------------------------------------------------- discrete


@dataclass(frozen=True)
class Discrete(Param):
    """A finite list of values, possibly weighted.

    ``values``/``choice``, ``pvalues``/``pchoice`` and the numpy-generated kinds
    (``range``, ``linspace``, ``logspace``, ``geomspace``) are all this, with the
    original kind kept for messages and a log axis for the geometric ones.
    """

    values: Tuple[Value, ...]
    probabilities: Optional[Tuple[float, ...]] = None
    kind: str = "values"
    log_axis: bool = False
    discrete: bool = field(default=True, init=False)

    def __post_init__(self) -> None:
        if not self.values:
            raise ValueError("a discrete parameter needs at least one value")
        if self.probabilities is not None and len(self.probabilities) != len(self.values):
            raise ValueError("one probability per value is needed")

    # Derived once (the instance is frozen): decode runs thousands of times per proposal.
    @cached_property
    def numeric(self) -> bool:
        return all(_is_number(v) for v in self.values)

    @property
    def weighted(self) -> bool:
        return self.probabilities is not None

    @cached_property
    def support(self) -> Tuple[Value, ...]:
        """The values that can actually be drawn (probability > 0)."""
        if self.probabilities is None:
            return self.values
        return tuple(v for v, p in zip(self.values, self.probabilities) if p > 0)

    def sample(self, rng: np.random.Generator) -> Value:
        i = rng.choice(len(self.values), p=None if self.probabilities is None else np.asarray(self.probabilities))
        return self.values[int(i)]

    def grid_values(self) -> List[Value]:
        if self.probabilities is not None:
            raise TypeError(f"'{self.kind}' is a weighted choice: grid search cannot use it")
        return list(self.values)

    # Numbers get one ordered axis (log when the values are geometric); anything
    # else gets one column per value.
    @property
    def n_dims(self) -> int:
        return 1 if self.numeric else len(self.values)

    @cached_property
    def _axis(self) -> Tuple[float, float]:
        xs = np.asarray([self._fwd(v) for v in self.values], dtype=float)
        return float(xs.min()), float(xs.max())

    @cached_property
    def _support_indices(self) -> Set[int]:
        return {self._index(v) for v in self.support}

    @cached_property
    def _support_on_axis(self) -> Tuple[float, ...]:
        return tuple(self._fwd(v) for v in self.support)

    def _fwd(self, v: Value) -> float:
        return math.log(v) if self.log_axis else float(v)

    def encode(self, value: Value) -> List[float]:
        if self.numeric:
            lo, hi = self._axis
            return [0.5 if hi == lo else (self._fwd(value) - lo) / (hi - lo)]
        out = [0.0] * len(self.values)
        out[self._index(value)] = 1.0
        return out

    def decode(self, vector: Sequence[float]) -> Value:
        candidates = self.support
        if self.numeric:
            lo, hi = self._axis
            target = lo + float(vector[0]) * (hi - lo)
            axis = self._support_on_axis
            return candidates[min(range(len(axis)), key=lambda i: abs(axis[i] - target))]
        best = max(self._support_indices, key=lambda i: vector[i])
        return self.values[best]

    def _index(self, value: Value) -> int:
        for i, v in enumerate(self.values):
            if v == value and type(v) is type(value) or v == value and _is_number(v) and _is_number(value):
                return i
        raise ValueError(f"{value!r} is not one of {list(self.values)!r}")

    def contains(self, value: Value) -> bool:
        try:
            self._index(value)
        except ValueError:
            return False
        return True


def numpy_range(start: float, stop: float, step: float) -> Discrete:
    """``numpy.arange(start, stop, step)``: stop excluded."""
    if step == 0:
        raise ValueError("step must not be 0")
    values = tuple(clean_number(v) for v in np.arange(start, stop, step))
    if not values:
        raise ValueError(f"arange({start}, {stop}, {step}) is empty")
    return Discrete(values, kind="range")


def numpy_linspace(start: float, stop: float, num: int) -> Discrete:
    if num < 1:
        raise ValueError("num must be at least 1")
    return Discrete(tuple(clean_number(v) for v in np.linspace(start, stop, int(num))), kind="linspace")


def numpy_logspace(start: float, stop: float, num: int, base: float = 10.0) -> Discrete:
    """``numpy.logspace``: start and stop are *exponents* of ``base``."""
    if num < 1:
        raise ValueError("num must be at least 1")
    if not base > 0 or base == 1:
        raise ValueError(f"base must be positive and not 1, got {base}")
    values = tuple(clean_number(v) for v in np.logspace(start, stop, int(num), base=base))
    return Discrete(values, kind="logspace", log_axis=True)


def numpy_geomspace(start: float, stop: float, num: int) -> Discrete:
    """``numpy.geomspace``: real end points, same sign, not zero."""
    if num < 1:
        raise ValueError("num must be at least 1")
    if start == 0 or stop == 0 or (start < 0) != (stop < 0):
        raise ValueError("geomspace end points must be non-zero and of the same sign")
    values = tuple(clean_number(v) for v in np.geomspace(start, stop, int(num)))
    return Discrete(values, kind="geomspace", log_axis=start > 0)


# ------------------------------------------------------------------------ continuous


@dataclass(frozen=True)
class Uniform(Param):
    """``uniform``/``quniform`` on [low, high]; ``log=True`` is ``loguniform``:
    ``exp(uniform(low, high))`` with low and high natural logs (Polyaxon's meaning)."""

    low: float
    high: float
    q: Optional[float] = None
    log: bool = False
    kind: str = "uniform"

    def __post_init__(self) -> None:
        if not self.low < self.high:
            raise ValueError(f"low ({self.low}) must be less than high ({self.high})")
        if not math.isfinite(float(self.high) - float(self.low)):  # numpy cannot sample it
            raise ValueError(f"high - low ({self.high} - {self.low}) overflows")
        if self.q is not None and self.q <= 0:
            raise ValueError("q must be positive")
        if self.log and self.high > _MAX_EXP:
            raise ValueError(f"high ({self.high}) is a natural log: exp({self.high}) overflows")

    @property
    def log_axis(self) -> bool:  # type: ignore[override]
        return self.log

    def _from_axis(self, u: float) -> float:
        x = math.exp(u) if self.log else u
        return _quantize(x, self.q)

    def sample(self, rng: np.random.Generator) -> float:
        return clean_number(self._from_axis(float(rng.uniform(self.low, self.high))))

    def _to_axis(self, value: float) -> float:
        if self.log:
            return math.log(max(value, 1e-300))
        return float(value)

    def encode(self, value: Value) -> List[float]:
        u = (self._to_axis(value) - self.low) / (self.high - self.low)
        return [min(1.0, max(0.0, u))]

    def decode(self, vector: Sequence[float]) -> float:
        u = min(1.0, max(0.0, float(vector[0])))
        return clean_number(self._from_axis(self.low + u * (self.high - self.low)))

    def bounds(self) -> Tuple[float, float]:
        """The smallest and largest value a sample can take (after rounding)."""
        lo, hi = (math.exp(self.low), math.exp(self.high)) if self.log else (self.low, self.high)
        if self.q is not None:
            lo, hi = _quantize(lo, self.q), _quantize(hi, self.q)
        return lo, hi

    def contains(self, value: Value) -> bool:
        if not _is_number(value):
            return False
        lo, hi = self.bounds()
        tol = 1e-9 * max(1.0, abs(lo), abs(hi))
        if self.q is not None:
            tol = max(tol, self.q / 2 + 1e-12)
            k = value / self.q
            if abs(k - round(k)) > 1e-6:
                return False
            lo_raw, hi_raw = (math.exp(self.low), math.exp(self.high)) if self.log else (self.low, self.high)
            return lo_raw - tol <= value <= hi_raw + tol
        return lo - tol <= value <= hi + tol

    @property
    def discrete(self) -> bool:  # type: ignore[override]
        return False


@dataclass(frozen=True)
class Normal(Param):
    """``normal``/``qnormal``: N(loc, scale); ``log=True`` is ``lognormal``:
    exp of N(loc, scale). Encoded through the normal CDF so the axis is [0, 1]."""

    loc: float
    scale: float
    q: Optional[float] = None
    log: bool = False
    kind: str = "normal"

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")
        if self.q is not None and self.q <= 0:
            raise ValueError("q must be positive")
        if self.log and self.loc + 8 * self.scale > _MAX_EXP:
            raise ValueError(f"loc and scale are those of the underlying normal: exp({self.loc} + 8 * "
                             f"{self.scale}) overflows")

    @property
    def log_axis(self) -> bool:  # type: ignore[override]
        return self.log

    @property
    def discrete(self) -> bool:  # type: ignore[override]
        return False

    def _from_axis(self, z: float) -> float:
        x = math.exp(min(z, _MAX_EXP)) if self.log else z  # a >8-sigma draw must not crash a study
        return _quantize(x, self.q)

    def sample(self, rng: np.random.Generator) -> float:
        return clean_number(self._from_axis(float(rng.normal(self.loc, self.scale))))

    # The CDF is clipped away from 0 and 1 so that decode never returns +-inf.
    _EPS = 1e-6

    def encode(self, value: Value) -> List[float]:
        z = math.log(max(value, 1e-300)) if self.log else float(value)
        u = _STANDARD_NORMAL.cdf((z - self.loc) / self.scale)
        return [min(1 - self._EPS, max(self._EPS, u))]

    def decode(self, vector: Sequence[float]) -> float:
        u = min(1 - self._EPS, max(self._EPS, float(vector[0])))
        z = self.loc + self.scale * _STANDARD_NORMAL.inv_cdf(u)
        return clean_number(self._from_axis(z))

    def contains(self, value: Value) -> bool:
        if not _is_number(value) or not math.isfinite(value):
            return False
        if self.log and value < 0:
            return False
        if self.q is not None:
            k = value / self.q
            return abs(k - round(k)) <= 1e-6
        return not self.log or value > 0


# ----------------------------------------------------------------------------- space


class Space(Mapping[str, Param]):
    """An ordered, immutable mapping of parameter names to parameters."""

    def __init__(self, params: Mapping[str, Param]):
        self._params: Dict[str, Param] = dict(params)
        self._slices: Dict[str, slice] = {}
        start = 0
        for name, p in self._params.items():
            self._slices[name] = slice(start, start + p.n_dims)
            start += p.n_dims
        self._n_dims = start

    def __getitem__(self, name: str) -> Param:
        return self._params[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._params)

    def __len__(self) -> int:
        return len(self._params)

    def __repr__(self) -> str:
        return f"Space({self._params!r})"

    # Equality includes the type of every listed value: `1 == 1.0 == True` in Python,
    # but a space over [true, false] is not one over [1, 0] (the searchers' plans are
    # cached by space, and would otherwise hand back the other space's values).
    def _identity(self) -> Tuple[Any, ...]:
        return tuple((name, p, tuple(type(v) for v in p.values) if isinstance(p, Discrete) else None)
                     for name, p in self._params.items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Space) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    @property
    def is_discrete(self) -> bool:
        return all(p.discrete for p in self._params.values())

    def size(self) -> Optional[int]:
        """Number of distinct drawable parameter sets, or None when infinite."""
        if not self.is_discrete:
            return None
        n = 1
        for p in self._params.values():
            n *= len(p.support)  # type: ignore[attr-defined]
        return n

    def sample(self, rng: np.random.Generator) -> Dict[str, Value]:
        return {name: p.sample(rng) for name, p in self._params.items()}

    def grid(self) -> Iterator[Dict[str, Value]]:
        """The cartesian product in key order, last key fastest."""
        names = list(self._params)
        axes = [self._params[n].grid_values() for n in names]
        if not names:
            return
        idx = [0] * len(names)
        while True:
            yield {n: axes[i][idx[i]] for i, n in enumerate(names)}
            k = len(names) - 1
            while k >= 0:
                idx[k] += 1
                if idx[k] < len(axes[k]):
                    break
                idx[k] = 0
                k -= 1
            if k < 0:
                return

    def grid_size(self) -> int:
        n = 1
        for p in self._params.values():
            n *= len(p.grid_values())
        return n

    @property
    def n_dims(self) -> int:
        return self._n_dims

    def encode(self, params: Mapping[str, Value]) -> np.ndarray:
        out = np.empty(self._n_dims)
        for name, p in self._params.items():
            out[self._slices[name]] = p.encode(params[name])
        return out

    def decode(self, vector: Sequence[float]) -> Dict[str, Value]:
        v = np.asarray(vector, dtype=float)
        return {name: p.decode(v[self._slices[name]]) for name, p in self._params.items()}

    def contains(self, params: Mapping[str, Value]) -> bool:
        return set(params) == set(self._params) and all(
            p.contains(params[n]) for n, p in self._params.items()
        )


def params_key(params: Mapping[str, Value]) -> Tuple[Tuple[str, str], ...]:
    """A hashable identity for a parameter set, stable across JSON round trips
    (so ``1`` and ``1.0`` from a journal compare as the same value)."""
    def norm(v: Value) -> str:
        if _is_number(v):
            return repr(float(v))
        return repr(v)

    return tuple(sorted((k, norm(v)) for k, v in params.items()))
