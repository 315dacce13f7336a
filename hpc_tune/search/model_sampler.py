"""hpc-tune's own multi-fidelity sampler (``sampler: model``): a Gaussian process on the
results of the largest well-observed budget, expected improvement there.

Public entry point (stable; ``samplers.propose`` dispatches ``sampler: model`` here, the
benchmarks call it directly)::

    propose(space, config, observations, n, rng, pending=()) -> List[params]

with the arguments of the sampler seam (``hpc_tune.search.samplers``): ``config`` a
``spec.model.SamplerConfig`` whose ``model`` field is a ``ModelSamplerConfig`` (or None
for the defaults), ``observations`` the study's ended trials as
``Observation(params, resource, value)`` (value to minimise, None when failed),
``pending`` the parameters of live trials, ``rng`` derived by the caller from the seed
and the position in the study. The first k proposals of a call for n are those of a call
for k, and the same arguments always give the same proposals.

The model (BOHB's choice of budget with the BO searcher's GP in place of the densities;
SMAC3's multi-fidelity facade fits its random forest the same way):

* the acquisition budget b* is the largest resource with at least
  ``min_points_in_model`` finite results (BOHB's and SMAC3's choice); until one exists
  every proposal is a random draw;
* the GP is fitted on the finite results at b* alone: inputs are ``space.encode``d
  configurations (log axes, one-hot categories, the CDF of normals), outputs warped and
  standardised as the BO searcher does (``warp``: its Yeo-Johnson warp, fitted faster).
  One GP over configurations and log-resource across every budget (as MOBSTER fits it)
  was the first version: a biased low fidelity misled it, and on MFHartmann6 it trailed
  this one at every budget (docs/samplers.md has the figures). Failed trials are left
  out of the fit, as in the BO searcher. Above ``MAX_FIT_POINTS`` results the fit keeps
  the best ones;
* the GP is the BO searcher's (``bayes._fit_gp``: ``ConstantKernel * Matern(5/2)`` with
  one length scale per axis plus noise; maximum a posteriori hyperparameters under the
  same priors). The hyperparameters are fitted on the first
  ``hyperparameter_fit_size(n)`` of the n results (a geometric grid: 10, 12, 14, 16, 19,
  22, 26, ...; thinned at a regular stride above ``MAX_HYPERPARAMETER_POINTS``), the GP is
  then conditioned on the results it keeps. A MAP fit costs tens of likelihood
  evaluations, conditioning one Cholesky factorisation, and the hyperparameters move
  little between 100 and 110 results; so a study refits them about log(n)/log(1.2) times
  per budget instead of once per new configuration. Each fit starts from the previous
  grid size's hyperparameters (a warm start: fewer likelihood evaluations), so it depends
  only on the first results, through that chain (no random restarts), and is memoised by
  their content; a cold process walks the chain again. The GP conditioned on the results
  with the pending configurations believed is memoised too: Hyperband asks for one
  configuration at a time with the same observations and a growing ``pending``, and a
  call believes only the new ones (a rank-one update of the Cholesky factor). The memos
  change no result (``tests/search/test_model_sampler.py``);
* the acquisition is the (log) expected improvement over the best value at b*; it is
  maximised over random points of the cube and points around the five best
  configurations at b*, then refined by a local search around the best three, then
  snapped to the space (``space.decode``) and checked for repeats: a configuration
  already observed (at any budget), pending or proposed in this call is taken only when
  nothing else is found;
* pending trials and the proposals already made in the call count as observed at b* at
  the model's mean there (the kriging believer, as in the BO searcher), so concurrent
  proposals differ;
* with probability ``random_fraction`` a proposal is a random draw instead (BOHB's
  default, 1/3; SMAC3 interleaves 0.2, which measured worse here), which keeps a misled
  model from ever closing the search.

Keys (``sampler: model`` in ``hyperband``/``asha``; ``spec.model.ModelSamplerConfig``;
docs/samplers.md):

* ``random_fraction``: probability that a proposal is a random draw (default 1/3);
* ``min_points_in_model``: finite results a budget needs before the model proposes at
  it (default: number of parameters + 1).
"""
from __future__ import annotations

import copy
import math
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Dict, List, NamedTuple, Optional, Sequence, Set, Tuple

import numpy as np
from scipy import optimize
from scipy.linalg import cho_solve, cholesky, solve_triangular

from ..space import Space, params_key
from ..spec.model import BayesConfig, GaussianProcessConfig, Metric, ModelSamplerConfig, SamplerConfig
from .bayes import _JITTER, _fit_gp, _Model, _one_blas_thread, _standardise
from .kde_sampler import child_rngs
from .samplers import KeyedParams, Observation, draw_unseen

__all__ = ["ModelSamplerConfig", "Observation", "propose", "MAX_FIT_POINTS"]

Key = Tuple[Tuple[str, str], ...]

#: results the GP is conditioned on at most, and the hyperparameters fitted on (the
#: costs are cubic in them)
MAX_FIT_POINTS = 128
MAX_HYPERPARAMETER_POINTS = 64
#: random candidates in the cube, local candidates around the best configurations at b*
_N_RANDOM = 256
_N_LOCAL = 128
_N_CENTRES = 5
_LOCAL_SCALES = (0.02, 0.1)
#: local search: candidates around each of the best few, at these scales
_N_REFINE_STARTS = 3
_N_REFINE = 32
_REFINE_SCALES = (0.005, 0.03)
#: snapped candidates checked for repeats, best first
_N_SNAP = 16
#: fitted kernels (and spaces' encodings) kept for later calls with the same observations
_MEMO_SIZE = 8
#: encoded configurations kept per space
_MAX_ENCODINGS = 50_000
#: the kernel's hyperparameters are refitted when the results grow by about this factor
_REFIT_GROWTH = 1.2

_EI = BayesConfig(n_initial_trials=0, n_iterations=0, metric=Metric("loss", "minimize"), acquisition="ei")
_GP = GaussianProcessConfig()


def settings(config: SamplerConfig) -> ModelSamplerConfig:
    model = getattr(config, "model", None)
    return model if isinstance(model, ModelSamplerConfig) else ModelSamplerConfig()


def min_points(space: Space, opts: ModelSamplerConfig) -> int:
    if opts.min_points_in_model is None:
        return len(space) + 1
    return max(1, int(opts.min_points_in_model))


# --------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class _Data:
    X: np.ndarray  # encoded configurations
    loss: np.ndarray  # as observed (to minimise)
    resource: np.ndarray


_ENCODINGS: "OrderedDict[Space, Dict[Tuple[Any, ...], Tuple[Key, Optional[np.ndarray]]]]" = OrderedDict()


def _encodings(space: Space) -> Dict[Tuple[Any, ...], Tuple[Key, Optional[np.ndarray]]]:
    """The memo of ``_encoded`` for ``space`` (looked up once per call: hashing a space
    costs as much as encoding a configuration)."""
    memo = _ENCODINGS.get(space)
    if memo is None:
        memo = _ENCODINGS[space] = {}
        while len(_ENCODINGS) > _MEMO_SIZE:
            _ENCODINGS.popitem(last=False)
    return memo


def _encoded(memo: Dict[Tuple[Any, ...], Tuple[Key, Optional[np.ndarray]]], space: Space,
             params: Dict[str, Any]) -> Tuple[Key, Optional[np.ndarray]]:
    """``params_key(params)`` and ``space.encode(params)`` (None when ``params`` is not a
    point of this space), memoised in ``memo`` (``_encodings(space)``): every call sees
    every observation again, and the two cost ~100 us a configuration in Python, a tenth
    of the whole proposal at 1,000 trials."""
    try:
        # the types too: 1, 1.0 and True are equal in Python but not the same value here
        ident: Optional[Tuple[Any, ...]] = tuple((k, type(v), v) for k, v in params.items())
        hit = memo.get(ident)  # type: ignore[arg-type]
    except TypeError:  # an unhashable value (a list from a journal)
        ident, hit = None, None
    if hit is not None:
        return hit
    key = params_key(params)
    try:
        x: Optional[np.ndarray] = space.encode(params)
        if not np.all(np.isfinite(x)):  # type: ignore[arg-type]
            x = None
    except (KeyError, ValueError, TypeError):
        x = None  # a trial from another version of the space
    if ident is not None:
        if len(memo) >= _MAX_ENCODINGS:
            memo.clear()
        memo[ident] = (key, x)
    return key, x


@dataclass(frozen=True)
class _Rows:
    """The observations of the last call for a space, read: their keys, and the finite
    results as arrays (``valid[i]``: how many of the first i observations are results)."""

    observations: List[Observation]  # copies (or KeyedParams ones): a caller's later change cannot reach them
    keys: List[Key]
    key_set: Set[Key]  # the same keys: a set copies with their hashes, a key (nested tuples) hashes anew
    valid: List[int]
    X: np.ndarray
    loss: np.ndarray
    resource: np.ndarray


_ROWS: "OrderedDict[Space, _Rows]" = OrderedDict()


def _common_prefix(old: List[Observation], new: Sequence[Observation]) -> int:
    n = min(len(old), len(new))
    if old[:n] == list(new[:n]):  # one comparison in C: the usual case, results appended in creation order
        return n
    i = 0
    while i < n and old[i] == new[i]:
        i += 1
    return i


def _rows(space: Space, observations: Sequence[Observation]) -> _Rows:
    """``_Rows`` of ``observations``, from the last call's for the rows they share at the
    start (ASHA and Hyperband call once per new configuration with one result more:
    reading every observation again was most of a proposal's time at 3,000 trials).
    Observations equal to the last call's read the same, so this changes no result."""
    prev = _ROWS.get(space)
    start = _common_prefix(prev.observations, observations) if prev is not None else 0
    memo = _encodings(space)
    obs = prev.observations[:start] if prev is not None else []
    keys = prev.keys[:start] if prev is not None else []
    key_set = (prev.key_set.copy() if start == len(prev.keys) else set(keys)) if prev is not None else set()
    valid = prev.valid[: start + 1] if prev is not None else [0]
    xs: List[np.ndarray] = []
    losses: List[float] = []
    rs: List[float] = []
    for ob in observations[start:]:
        # A KeyedParams is never changed (ASHA hands the same ones every call): kept as it
        # is, the next call's comparison is an identity test per observation.
        obs.append(ob if type(ob.params) is KeyedParams else Observation(dict(ob.params), ob.resource, ob.value))
        key, x = _encoded(memo, space, ob.params)
        keys.append(key)
        key_set.add(key)
        ok = ob.value is not None and ob.resource is not None and x is not None
        if ok:
            try:
                value, r = float(ob.value), float(ob.resource)  # type: ignore[arg-type]
                ok = math.isfinite(value) and math.isfinite(r) and r > 0
            except (ValueError, TypeError):
                ok = False
        if ok:
            xs.append(x)  # type: ignore[arg-type]
            losses.append(value)
            rs.append(r)
        valid.append(valid[-1] + ok)
    n_prev = valid[start]
    d = space.n_dims
    kept = (prev.X[:n_prev], prev.loss[:n_prev], prev.resource[:n_prev]) if prev is not None \
        else (np.empty((0, d)), np.empty(0), np.empty(0))
    X = np.vstack([kept[0]] + [x[None, :] for x in xs])
    loss = np.concatenate([kept[1], np.asarray(losses, dtype=float)])
    resource = np.concatenate([kept[2], np.asarray(rs, dtype=float)])
    rows = _Rows(obs, keys, key_set, valid, X, loss, resource)
    _ROWS[space] = rows
    _ROWS.move_to_end(space)
    while len(_ROWS) > _MEMO_SIZE:
        _ROWS.popitem(last=False)
    return rows


def _data(space: Space, observations: Sequence[Observation], seen: Set[Key]) -> Optional[_Data]:
    """The finite results of ``observations``; adds every observation's key to ``seen``."""
    rows = _rows(space, observations)
    seen.update(rows.key_set)
    if not len(rows.loss):
        return None
    return _Data(rows.X, rows.loss, rows.resource)


def _at(data: _Data, budget: float) -> _Data:
    """The results at ``budget``, in creation order."""
    at = data.resource == budget
    return _Data(data.X[at], data.loss[at], data.resource[at])


def _acquisition_budget(data: _Data, needed: int) -> Optional[float]:
    budgets, counts = np.unique(data.resource, return_counts=True)
    ok = budgets[counts >= needed]
    return float(ok.max()) if len(ok) else None


def _kept(data: _Data) -> np.ndarray:
    """Indices of the results the GP is conditioned on: all of them, or the best
    MAX_FIT_POINTS (in creation order)."""
    if len(data.loss) <= MAX_FIT_POINTS:
        return np.arange(len(data.loss))
    return np.sort(np.argsort(data.loss, kind="stable")[:MAX_FIT_POINTS])


def hyperparameter_fit_size(n: int) -> int:
    """How many results (the first ones) the kernel's hyperparameters are fitted on when
    ``n`` are used: the largest point of a geometric grid (2, 3, 4, 5, 6, 7, 8, 9, 10, 12,
    14, 16, 19, ..., each about 1.2 times the last) not above ``n``."""
    size, nxt = 2, 3
    while nxt <= n:
        size, nxt = nxt, max(nxt + 1, int(nxt * _REFIT_GROWTH))
    return min(size, n)


def warp(loss: np.ndarray) -> np.ndarray:
    """The BO searcher's output warp (``bayes._transform_y``: standardise, Yeo-Johnson
    with the maximum-likelihood lambda clipped to [-2, 2], standardise), with the
    likelihood maximised by a bounded scalar search over a vectorised log-likelihood:
    scipy's ``yeojohnson_normmax`` costs ~25 ms at 200 points through its wrappers, and
    this runs once per proposal."""
    z = _standardise(np.asarray(loss, dtype=float))
    if len(z) < 3 or not np.any(z):
        return z
    pos = z >= 0
    lp, ln = np.log1p(z[pos]), np.log1p(-z[~pos])
    jac = float(np.sum(np.sign(z) * np.log1p(np.abs(z))))

    def transformed(lam: float) -> np.ndarray:
        out = np.empty_like(z)
        out[pos] = lp if abs(lam) < 1e-12 else np.expm1(lam * lp) / lam
        out[~pos] = -ln if abs(lam - 2) < 1e-12 else -np.expm1((2 - lam) * ln) / (2 - lam)
        return out

    def neg_llf(lam: float) -> float:
        var = float(np.var(transformed(lam)))
        if not (var > 0 and math.isfinite(var)):
            return math.inf
        return 0.5 * len(z) * math.log(var) - (lam - 1) * jac

    with np.errstate(all="ignore"):
        res = optimize.minimize_scalar(neg_llf, bounds=(-2.0, 2.0), method="bounded", options={"xatol": 1e-4})
        w = transformed(float(res.x))
    return _standardise(w) if np.all(np.isfinite(w)) else z


_KERNELS: "OrderedDict[Tuple[bytes, bytes], Any]" = OrderedDict()


def _kernel(data: _Data, n: int):
    """The kernel fitted on ``hyperparameter_rows(n)`` of ``data`` (its warped losses),
    its search started from the fit of the grid's previous size (Hyperband and ASHA add
    a few results between two sizes, and the optimum moves little: a warm start takes a
    third of the likelihood evaluations). So the fit at a size depends on the first
    ``hyperparameter_fit_size(n)`` results only, through the chain of earlier sizes; it
    has no randomness (no random restarts) and is memoised by the content of those
    results. A cold process (after a restart) walks the chain again: the same fits."""
    chain = [hyperparameter_fit_size(n)]
    while chain[-1] > 2:
        chain.append(hyperparameter_fit_size(chain[-1] - 1))
    todo = []
    start = None
    for m in chain:  # largest first: walk down to the last size already fitted
        key = (data.X[:m].tobytes(), data.loss[:m].tobytes())
        start = _KERNELS.get(key)
        if start is not None:
            _KERNELS.move_to_end(key)
            break
        todo.append((m, key))
    for m, key in reversed(todo):
        rows = hyperparameter_rows(m)
        start = _fit_gp(data.X[rows], warp(data.loss[rows]), _GP, np.random.default_rng(0), start=start).kernel_
        _KERNELS[key] = start
        while len(_KERNELS) > _MEMO_SIZE:
            _KERNELS.popitem(last=False)
    return start


def hyperparameter_rows(n: int) -> np.ndarray:
    """Which of ``n`` results (in creation order) the kernel's hyperparameters are fitted
    on: the first ``hyperparameter_fit_size(n)``, thinned to ``MAX_HYPERPARAMETER_POINTS`` at a
    regular stride. The set changes only when the grid moves on, so a study refits about
    log(n) / log(1.2) times, whatever the number of configurations it asks for."""
    m = hyperparameter_fit_size(n)
    if m <= MAX_HYPERPARAMETER_POINTS:
        return np.arange(m)
    return np.unique(np.round(np.linspace(0, m - 1, MAX_HYPERPARAMETER_POINTS)).astype(int))


class _Conditioned(NamedTuple):
    """What ``_Model`` reads of a fitted ``GaussianProcessRegressor``."""

    kernel_: Any
    L_: np.ndarray
    alpha_: np.ndarray


def _fit(data: _Data, keep: np.ndarray) -> Tuple[_Conditioned, np.ndarray]:
    """The GP conditioned on the rows ``keep``, with hyperparameters fitted on
    ``hyperparameter_rows``: a MAP fit costs tens of likelihood evaluations,
    conditioning one Cholesky factorisation, and the hyperparameters move little
    between 100 and 110 results. Returns the GP and the warped outputs of ``keep``.
    (Conditioned here, as scikit-learn's ``fit`` with ``optimizer=None`` does, without
    its validation and kernel copies, which cost more than the factorisation.)"""
    kernel = _kernel(data, len(data.loss))
    X, y = data.X[keep], warp(data.loss[keep])
    K = kernel(X)
    for jitter in (_JITTER, 1e-4):
        Kj = K.copy()
        Kj[np.diag_indices_from(Kj)] += jitter
        try:
            L = cholesky(Kj, lower=True, check_finite=False)
            break
        except np.linalg.LinAlgError:
            if jitter == 1e-4:
                raise
    alpha = cho_solve((L, True), y, check_finite=False)
    return _Conditioned(kernel, L, alpha), y


# ------------------------------------------------------------------------- proposing


class _Believer(_Model):
    """The BO searcher's model with the kriging believer's update done as a rank-one
    extension of the Cholesky factor (O(n^2) per believed point instead of a new
    factorisation, O(n^3)): Hyperband asks for up to 81 configurations against the same
    results, each believing all the earlier ones."""

    def believe(self, x: np.ndarray) -> None:
        k = self.signal(x[None, :], self.X_fit)[0]  # the noise term adds nothing off the diagonal
        value = float(k @ self.alpha)  # the posterior mean at x
        l_row = solve_triangular(self.L, k, lower=True, check_finite=False)
        d2 = float(self.kernel.diag(x[None, :])[0]) + _JITTER - float(l_row @ l_row)
        if not d2 > 1e-12:  # numerically a repeat: the full factorisation, with its jitter fallback
            super().believe(x)
            return
        n = len(self.y_fit)
        L = np.zeros((n + 1, n + 1))
        L[:n, :n] = self.L
        L[n, :n] = l_row
        L[n, n] = math.sqrt(d2)
        self.L = L
        self.X_fit = np.vstack([self.X_fit, x[None, :]])
        self.y_fit = np.append(self.y_fit, value)
        self.alpha = solve_triangular(
            L.T, solve_triangular(L, self.y_fit, lower=True, check_finite=False), lower=False, check_finite=False)


class _Acquirer:
    """EI at the acquisition budget (``data`` holds its results only), maximised over the
    cube of configurations."""

    def __init__(self, space: Space, data: _Data):
        self.space = space
        keep = _kept(data)
        X = data.X[keep]
        gp, y = _fit(data, keep)
        self.model = _Believer(space, _EI, X, y, gp, [])  # the incumbent: the best at b*
        self.centres = X[np.argsort(y, kind="stable")[:_N_CENTRES]]
        self.believed: Tuple[Key, ...] = ()  # the keys of the pending configurations believed, in order

    def copy(self) -> "_Acquirer":
        """An independent copy (``believe`` replaces the model's arrays, never writes into them)."""
        other = copy.copy(self)
        other.model = copy.copy(self.model)
        return other

    def value(self, C: np.ndarray) -> np.ndarray:
        return self.model.acquisition(C)

    def believe(self, params: Dict[str, Any], key: Key) -> None:
        self.believed += (key,)
        try:
            x = self.space.encode(params)
        except (KeyError, ValueError, TypeError):
            return
        if np.all(np.isfinite(x)):
            self.model.believe(x)

    def best(self, seen: Set[Key], rng: np.random.Generator) -> Optional[Dict[str, Any]]:
        d = self.space.n_dims
        cands = [rng.random((_N_RANDOM, d))]
        per = _N_LOCAL // (len(self.centres) * len(_LOCAL_SCALES))
        for c in self.centres:
            for s in _LOCAL_SCALES:
                cands.append(np.clip(c + s * rng.standard_normal((per, d)), 0.0, 1.0))
        C = np.vstack(cands)
        a = self.value(C)
        top = C[np.argsort(-a, kind="stable")[:_N_REFINE_STARTS]]
        local = [np.clip(x + s * rng.standard_normal((_N_REFINE, d)), 0.0, 1.0)
                 for x in top for s in _REFINE_SCALES]
        C = np.vstack([C] + local)
        a = np.concatenate([a, self.value(np.vstack(local))])
        pool = C[np.argsort(-a, kind="stable")[:_N_SNAP]]
        params = [self.space.decode(x) for x in pool]
        snapped = self.value(np.vstack([self.space.encode(p) for p in params]))
        for i in np.argsort(-snapped, kind="stable"):
            if params_key(params[i]) not in seen:
                return params[i]
        return None


def _random(space: Space, seen: Set[Key], rng: np.random.Generator) -> Dict[str, Any]:
    """A draw from the matrix that repeats nothing in ``seen`` if it can (as the random
    sampler, ``samplers.propose_random``, draws)."""
    return draw_unseen(space, seen, rng, space.size())


_ACQUIRERS: "OrderedDict[Tuple[bytes, bytes, bytes], _Acquirer]" = OrderedDict()


def _acquirer(space: Space, data: _Data, pending: Sequence[Tuple[Key, Dict[str, Any]]]) -> _Acquirer:
    """The acquirer of ``data`` (the results at b*) with ``pending`` believed in order.
    Memoised by the results' content with the pending configurations it has believed:
    Hyperband asks for one configuration at a time against the same results and one
    more pending, and ASHA mostly against the same results at b* and one more result
    below it, so a call starts from the last one's state and believes only what is new.
    Believing the same configurations in the same order from the same fit is the same
    computation, so the memo changes no result."""
    key = (data.X.tobytes(), data.loss.tobytes(), data.resource.tobytes())
    keys = tuple(k for k, _ in pending)
    acq = _ACQUIRERS.get(key)
    if acq is not None and keys[: len(acq.believed)] == acq.believed:
        _ACQUIRERS.move_to_end(key)
        acq = acq.copy()
    else:
        acq = _Acquirer(space, data)
    for k, p in pending[len(acq.believed):]:
        acq.believe(p, k)
    _ACQUIRERS[key] = acq.copy()
    while len(_ACQUIRERS) > _MEMO_SIZE:
        _ACQUIRERS.popitem(last=False)
    return acq


def propose(space: Space, config: SamplerConfig, observations: Sequence[Observation], n: int,
            rng: np.random.Generator, pending: Sequence[Dict[str, Any]] = ()) -> List[Dict[str, Any]]:
    """``n`` new configurations (see the module docstring)."""
    n = max(0, int(n))
    if n == 0:
        return []
    opts = settings(config)
    seen: Set[Key] = set()
    data = _data(space, observations, seen) if len(space) else None
    if not len(space):
        seen.update(params_key(ob.params) for ob in observations)
    budget = _acquisition_budget(data, min_points(space, opts)) if data is not None else None
    memo = _encodings(space)
    live = [(_encoded(memo, space, p)[0], dict(p)) for p in pending]
    seen.update(k for k, _ in live)
    out: List[Dict[str, Any]] = []
    with _one_blas_thread():
        acq = _acquirer(space, _at(data, budget), live) if data is not None and budget is not None else None
        for child in child_rngs(rng, n):
            coin = child.random()  # tossed even without a model: a random draw uses the same stream either way
            params = None
            if acq is not None and coin >= float(opts.random_fraction):
                params = acq.best(seen, child)
            if params is None:
                params = _random(space, seen, child)
            key = params_key(params)
            seen.add(key)
            out.append(params)
            if acq is not None and len(out) < n:
                acq.believe(params, key)
    return out
