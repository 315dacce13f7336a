"""Bayesian optimisation: a Gaussian process on the unit cube, one acquisition.

``suggest(space, config, history, seed, n)`` is pure, like every searcher: the
model is refitted from the history on every call and every random draw comes from
``sub_rng(seed, <position in the study>)``, so a replayed history gives the same
suggestions.

The study has ``n_initial_trials + n_iterations`` trials in all. The first
``n_initial_trials`` are drawn at random (``space.sample``), the rest maximise an
acquisition function of a scikit-learn Gaussian process fitted to the finished
trials:

* inputs are ``space.encode``d (log axes for log kinds, one-hot columns for
  non-numeric choices, the CDF for normals), so every axis is [0, 1];
* outputs are turned into a quantity to minimise, then warped and standardised
  (see ``_transform_y``);
* the kernel is ``ConstantKernel * Matern(nu)`` (or ``RBF``) with one length scale
  per axis, plus a ``WhiteKernel`` for noise; the hyperparameters are the
  maximum a posteriori under weak priors (see ``_Prior``), from the configured
  start plus ``n_restarts_optimizer`` other starts;
* ``ucb`` is a lower confidence bound ``mu - kappa * sigma`` of the minimised
  objective, ``ei`` the (log) expected improvement and ``poi`` the (log)
  probability of improvement, both with margin ``eps``; the acquisition is
  maximised over the continuous relaxation of the cube (random and local
  candidates, then L-BFGS-B from the best few), then decoded (snapped to the
  nearest discrete value, argmax of one-hot groups); small discrete spaces are
  enumerated instead;
* live trials (pending or running) and the suggestions already made in the same
  call count as observed at the model's mean there (the "kriging believer"), so a
  batch holds different points;
* an exact duplicate of an existing trial is suggested only when nothing else is
  left.

Trials without a finite value (failed, cancelled, NaN) are left out of the fit.

Choices measured with ``benchmarks/bo_quality.py`` (figures in benchmarks/README.md),
none tied to a problem: the Yeo-Johnson output warp (better than none on all five
problems; a log warp lost on two); the priors (a single MAP start matched
``n_restarts_optimizer=2`` at a third of the cost); the kriging believer (batches
of 4: better than a constant liar at the best or the mean value on 2 of 3
problems); a scrambled Sobol initial design measured no better than ``space.sample``.
With ``nu`` outside {0.5, 1.5, 2.5, inf} the Matern kernel needs Bessel functions
(``_Matern`` gives it an analytic gradient): about 2.5 times the CPU time of
``nu=2.5`` (1.2 s against 0.5 s for one suggestion with 200 trials on 6 axes).
"""
from __future__ import annotations

import contextlib
import itertools
import math
import warnings
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Set, Tuple

import numpy as np
from scipy import optimize, special, stats
from scipy.linalg import solve_triangular
from scipy.spatial.distance import pdist, squareform
from sklearn.exceptions import ConvergenceWarning
from sklearn.gaussian_process import GaussianProcessRegressor
from sklearn.gaussian_process.kernels import RBF, ConstantKernel, Matern, WhiteKernel
from threadpoolctl import ThreadpoolController

from ..space import Space, params_key
from ..spec.model import BayesConfig, GaussianProcessConfig
from .base import History, SearchResult, Suggestion, TrialRecord, minimizing, sub_rng

__all__ = ["suggest"]

Key = Tuple[Tuple[str, str], ...]

# --------------------------------------------------------------------------- tuning
# Chosen by measurement with benchmarks/bo_quality.py (see benchmarks/README.md);
# none of them depends on the problem.

#: bounds of the per-axis length scales on the unit cube
_LENGTH_SCALE_BOUNDS = (5e-3, 1e2)
#: bounds of the signal variance (outputs are standardised)
_AMPLITUDE_BOUNDS = (5e-2, 2e1)
#: bounds and start of the noise variance (in standardised units)
_NOISE_BOUNDS = (1e-6, 1.0)
_NOISE_START = 1e-3
#: priors (log-normal): length scale median 0.5 * sqrt(d), signal variance median
#: 1, noise variance median 1e-3; sigmas in natural-log units. Centring the noise
#: at 1e-2 or the length scales at 1.0 * sqrt(d) measured no better.
_LS_PRIOR_MEDIAN = 0.5
_LS_PRIOR_SIGMA = 1.5
_AMPLITUDE_PRIOR_SIGMA = 1.5
_NOISE_PRIOR_MEDIAN = 1e-3
_NOISE_PRIOR_SIGMA = 2.0
#: above this many finished trials the hyperparameter fit stops at a looser
#: tolerance (for speed; the quality benchmark, at <= 60 trials, never gets here)
_LOOSE_FIT_ABOVE = 100
#: jitter added to the kernel diagonal
_JITTER = 1e-8
#: random candidates in the cube, local candidates around the best trials
_N_RANDOM_CANDIDATES = 2000
_N_LOCAL_CANDIDATES = 1000
_N_LOCAL_CENTRES = 5
_LOCAL_SCALES = (0.02, 0.1)
#: L-BFGS-B starts for the acquisition (the best distinct candidates)
_N_ACQ_STARTS = 4
_ACQ_MAXITER = 50
#: candidates whose decoded point is checked for duplicates, best first
_N_SNAP = 64
#: discrete spaces up to this size are enumerated rather than relaxed
_ENUMERATE_MAX = 4096
#: draws tried before a random trial is allowed to repeat an existing one
_MAX_DRAWS = 64

# RNG streams: sub_rng(seed, stream, position)
_STREAM_INITIAL = 0
_STREAM_MODEL = 1


# --------------------------------------------------------------------------- public


def suggest(space: Space, config: BayesConfig, history: History, seed: int, n: int) -> SearchResult:
    """Up to ``n`` new trials for a Bayesian optimisation study."""
    total = int(config.n_initial_trials) + int(config.n_iterations)
    done = len(history)
    if done >= total:
        return SearchResult((), exhausted=True)
    want = max(0, min(int(n), total - done))

    seen: Set[Key] = {params_key(t.params) for t in history}
    size = space.size()
    # distinct points of a finite space already tried (journals may hold others)
    tried = len({params_key(t.params) for t in history if _contains(space, t.params)}) if size else 0
    notes: List[str] = []
    out: List[Suggestion] = []
    model: Optional[_Model] = None
    model_tried = False

    with contextlib.ExitStack() as model_phase:  # BLAS limited once, from the model's first use
        for k in range(want):
            pos = done + k
            if size is not None and tried >= size:
                notes.append(f"every one of the {size} points of the space has been tried")
                return SearchResult(tuple(out), exhausted=True, notes=tuple(notes))
            params: Optional[Dict[str, Any]] = None
            phase = "random"
            if pos >= config.n_initial_trials:
                if not model_tried:
                    model_tried = True
                    model_phase.enter_context(_one_blas_thread())
                    model = _Model.build(space, config, history, seed, done)
                if model is not None:
                    params = model.propose(seen, sub_rng(seed, _STREAM_MODEL, pos, 1))
                    if params is not None:
                        phase = "model"
            if params is None:
                params = _random_params(space, seed, pos, seen)
            key = params_key(params)
            if key not in seen:
                tried += 1
            seen.add(key)
            if model is not None and k + 1 < want:
                model.believe(space.encode(params))
            out.append(Suggestion(params=params, meta={"bo": phase}))

    exhausted = done + len(out) >= total
    return SearchResult(tuple(out), exhausted=exhausted, notes=tuple(notes))


def _contains(space: Space, params: Dict[str, Any]) -> bool:
    try:
        return space.contains(params)
    except (KeyError, ValueError, TypeError):
        return False


def _one_blas_thread():
    """The matrices here are small (a few hundred rows): BLAS threads only cost
    synchronisation, and on a busy node (every core taken by trials) they make a
    suggestion several times slower. The previous limit is restored on exit."""
    global _THREADPOOLS
    if _THREADPOOLS is None:  # finding the loaded libraries costs ~4 ms: once per process
        _THREADPOOLS = ThreadpoolController()
    return _THREADPOOLS.limit(limits=1, user_api="blas")


_THREADPOOLS: Optional[ThreadpoolController] = None


# --------------------------------------------------------------------------- random


def _random_params(space: Space, seed: int, pos: int, seen: Set[Key]) -> Dict[str, Any]:
    """The random trial at ``pos``: ``space.sample(sub_rng(seed, 0, pos))``,
    redrawn (from further sub-streams) while it repeats an existing trial."""
    params = space.sample(sub_rng(seed, _STREAM_INITIAL, pos))
    attempt = 0
    while params_key(params) in seen and attempt < _MAX_DRAWS:
        attempt += 1
        params = space.sample(sub_rng(seed, _STREAM_INITIAL, pos, attempt))
    if params_key(params) in seen and space.is_discrete:
        left = _unseen_points(space, seen, limit=_ENUMERATE_MAX * 16)
        if left:
            rng = sub_rng(seed, _STREAM_INITIAL, pos, _MAX_DRAWS + 1)
            params = left[int(rng.integers(len(left)))]
    return params


def _unseen_points(space: Space, seen: Set[Key], limit: int) -> List[Dict[str, Any]]:
    """Every point of a discrete space not in ``seen`` (empty when larger than limit)."""
    size = space.size()
    if size is None or size > limit:
        return []
    names = list(space)
    axes = [list(space[nm].support) for nm in names]  # type: ignore[attr-defined]
    left = []
    for combo in itertools.product(*axes):
        p = dict(zip(names, combo))
        if params_key(p) not in seen:
            left.append(p)
    return left


# --------------------------------------------------------------------------- kernel


class _Matern(Matern):
    """``Matern`` with an analytic gradient for every ``nu``.

    scikit-learn evaluates the general-``nu`` kernel (modified Bessel function)
    once per hyperparameter to get a numerical gradient; with one length scale per
    axis that is ``d + 1`` Bessel evaluations per likelihood step. With
    ``d/dz [z^nu K_nu(z)] = -z^nu K_{nu-1}(z)`` it is two.
    """

    def __call__(self, X, Y=None, eval_gradient=False):
        if self.nu in (0.5, 1.5, 2.5, np.inf) or not eval_gradient or Y is not None:
            return super().__call__(X, Y, eval_gradient=eval_gradient)
        X = np.atleast_2d(X)
        ls = np.broadcast_to(np.asarray(self.length_scale, dtype=float), (X.shape[1],))
        # The Bessel functions are the cost: evaluate them once per pair (condensed).
        z = math.sqrt(2.0 * self.nu) * pdist(X / ls)
        c = 2.0 ** (1.0 - self.nu) / special.gamma(self.nu)
        pos = z > 0
        zp = z[pos]
        k = np.ones_like(z)
        k[pos] = c * zp**self.nu * special.kv(self.nu, zp)
        K = squareform(k)
        np.fill_diagonal(K, 1.0)
        if self.hyperparameter_length_scale.fixed:
            return K, np.empty((X.shape[0], X.shape[0], 0))
        g = np.zeros_like(z)  # 2 nu c z^(nu-1) K_(nu-1)(z): dK/dlog(l_j) = g * diff2_j
        g[pos] = 2.0 * self.nu * c * zp ** (self.nu - 1.0) * special.kv(self.nu - 1.0, zp)
        diff2 = (X[:, None, :] - X[None, :, :]) ** 2 / ls**2  # (n, n, d)
        grad = squareform(g)[:, :, None] * diff2
        if not self.anisotropic:
            grad = grad.sum(axis=2, keepdims=True)
        return K, grad


def _make_kernel(gpc: GaussianProcessConfig, d: int):
    lo, hi = _LENGTH_SCALE_BOUNDS
    ls0 = np.full(d, float(np.clip(gpc.length_scale, lo, hi)))
    if str(gpc.kernel).lower() == "rbf":
        base = RBF(length_scale=ls0, length_scale_bounds=_LENGTH_SCALE_BOUNDS)
    else:
        nu = float(gpc.nu)
        base = _Matern(length_scale=ls0, length_scale_bounds=_LENGTH_SCALE_BOUNDS, nu=nu)
    return (
        ConstantKernel(1.0, constant_value_bounds=_AMPLITUDE_BOUNDS) * base
        + WhiteKernel(noise_level=_NOISE_START, noise_level_bounds=_NOISE_BOUNDS)
    )


@dataclass(frozen=True)
class _Prior:
    """Log-normal priors on the kernel's log-hyperparameters (theta order:
    amplitude, one length scale per axis, noise). They keep a fit on a few
    points from collapsing onto tiny length scales or onto pure noise."""

    ls_mu: float
    ls_sigma: float
    amp_sigma: float
    noise_mu: float
    noise_sigma: float

    @classmethod
    def for_dims(cls, d: int) -> _Prior:
        # Longer length scales in more dimensions, where distances between points
        # grow like sqrt(d) (Hvarfner et al., 2024).
        return cls(ls_mu=math.log(_LS_PRIOR_MEDIAN) + 0.5 * math.log(max(d, 1)), ls_sigma=_LS_PRIOR_SIGMA,
                   amp_sigma=_AMPLITUDE_PRIOR_SIGMA, noise_mu=math.log(_NOISE_PRIOR_MEDIAN),
                   noise_sigma=_NOISE_PRIOR_SIGMA)

    def neg_log(self, theta: np.ndarray) -> Tuple[float, np.ndarray]:
        """Negative log density (up to a constant) and its gradient."""
        k = len(theta) - 2
        mu = np.concatenate([[0.0], np.full(k, self.ls_mu), [self.noise_mu]])
        sd = np.concatenate([[self.amp_sigma], np.full(k, self.ls_sigma), [self.noise_sigma]])
        z = (theta - mu) / sd
        return 0.5 * float(z @ z), z / sd


def _map_optimizer(prior: _Prior, n_obs: int):
    options: Dict[str, Any] = {"maxiter": 200}
    if n_obs > _LOOSE_FIT_ABOVE:
        # Each step costs O(n^3) and the likelihood is sharp by now: stop once a step
        # gains less than 1e-4 of it (~0.02 nats at 200 trials), about half the steps.
        options["ftol"] = 1e-4

    def run(obj_func, initial_theta, bounds):
        def f(theta):
            v, g = obj_func(theta, eval_gradient=True)
            pv, pg = prior.neg_log(theta)
            if not np.isfinite(v):
                return 1e25, np.zeros_like(theta)
            return v + pv, g + pg

        res = optimize.minimize(f, initial_theta, method="L-BFGS-B", jac=True, bounds=bounds, options=options)
        return res.x, res.fun

    return run


# --------------------------------------------------------------------------- outputs


def _standardise(y: np.ndarray) -> np.ndarray:
    sd = float(y.std())
    if not np.isfinite(sd) or sd <= 0:
        return np.zeros_like(y)
    return (y - y.mean()) / sd


def _transform_y(y: np.ndarray) -> np.ndarray:
    """Standardise the minimised objective, warp it with a Yeo-Johnson power
    transform fitted by maximum likelihood (as HEBO does), standardise again.

    Objectives are often heavy-tailed (a loss that explodes for a bad learning
    rate, Rosenbrock's 1e6 walls); a GP on the raw values spends its variance on
    the worst trials. The warp is monotone, so the best trial stays the best.
    Measured on the benchmark problems: better than no warp on all five; a log
    warp did better on Rosenbrock but far worse on Hartmann6 and Ackley.
    All-equal values become zeros.
    """
    z = _standardise(np.asarray(y, dtype=float))
    if len(z) < 3 or not np.any(z):
        return z
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            lam = float(np.clip(stats.yeojohnson_normmax(z), -2.0, 2.0))
            w = np.asarray(stats.yeojohnson(z, lam), dtype=float)
        except (ValueError, FloatingPointError, RuntimeError):
            return z
    return _standardise(w) if np.all(np.isfinite(w)) else z


# --------------------------------------------------------------------------- model


def _log_h(z: np.ndarray) -> np.ndarray:
    """log(phi(z) + z * Phi(z)), stable for very negative z (Ament et al., 2023)."""
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    big = z > -1.0
    zb = z[big]
    out[big] = np.log(special.ndtr(zb) * zb + np.exp(-0.5 * zb**2) / math.sqrt(2 * math.pi))
    zs = z[~big]
    # phi(z) * (1 + z * Phi(z)/phi(z)), with Phi/phi = sqrt(pi/2) * erfcx(-z/sqrt 2)
    mills = math.sqrt(math.pi / 2) * special.erfcx(-zs / math.sqrt(2))
    out[~big] = -0.5 * zs**2 - 0.5 * math.log(2 * math.pi) + np.log(np.maximum(1 + zs * mills, 1e-300))
    return out


class _Model:
    """The fitted GP plus what the acquisition needs; pending points are added by
    ``believe`` (hyperparameters kept, posterior recomputed)."""

    def __init__(self, space: Space, config: BayesConfig, X: np.ndarray, y: np.ndarray,
                 gp: GaussianProcessRegressor, pending: List[np.ndarray]):
        self.space = space
        self.config = config
        self.X_obs = X
        self.y_obs = y
        self.best = float(y.min())  # the incumbent of EI and POI: real trials only
        self.kernel = gp.kernel_
        self.signal = gp.kernel_.k1  # ConstantKernel * base, without the noise
        self.amp = float(self.signal.diag(X[:1])[0])  # stationary: the prior variance
        self.X_fit = X  # observed, then believed points
        self.y_fit = y
        self.L = gp.L_
        self.alpha = gp.alpha_
        for x in pending:
            self.believe(x)

    # ------------------------------------------------------------------ building
    @classmethod
    def build(cls, space: Space, config: BayesConfig, history: History, seed: int,
              done: int) -> Optional[_Model]:
        xs: List[np.ndarray] = []
        ys: List[float] = []
        for t in history.with_values():
            x = _encode(space, t)
            if x is None:
                continue
            xs.append(x)
            ys.append(minimizing(float(t.value), config.metric.optimization))  # type: ignore[arg-type]
        if not xs:
            return None
        X = np.vstack(xs)
        y = _transform_y(np.asarray(ys))
        gp = _fit_gp(X, y, config.gaussian_process, sub_rng(seed, _STREAM_MODEL, done, 0))
        pending = [x for x in (_encode(space, t) for t in history.live) if x is not None]
        return cls(space, config, X, y, gp, pending)

    # ----------------------------------------------------------------- posterior
    def posterior(self, Xc: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
        Ks = self.signal(Xc, self.X_fit)
        mu = Ks @ self.alpha
        v = solve_triangular(self.L, Ks.T, lower=True, check_finite=False)
        var = np.maximum(self.amp - np.einsum("ij,ij->j", v, v), 1e-12)
        return mu, np.sqrt(var)

    def believe(self, x: np.ndarray) -> None:
        """Add ``x`` as observed at the current posterior mean (kriging believer)."""
        value = float(self.posterior(x[None, :])[0][0])
        self.X_fit = np.vstack([self.X_fit, x[None, :]])
        self.y_fit = np.append(self.y_fit, value)
        K = self.kernel(self.X_fit)
        K[np.diag_indices_from(K)] += _JITTER
        try:
            self.L = np.linalg.cholesky(K)
        except np.linalg.LinAlgError:
            K[np.diag_indices_from(K)] += 1e-6
            self.L = np.linalg.cholesky(K)
        self.alpha = solve_triangular(
            self.L.T, solve_triangular(self.L, self.y_fit, lower=True, check_finite=False),
            lower=False, check_finite=False)

    # --------------------------------------------------------------- acquisition
    def acquisition(self, Xc: np.ndarray) -> np.ndarray:
        """Larger is better."""
        mu, sd = self.posterior(Xc)
        kind = str(self.config.acquisition).lower()
        if kind == "ucb":
            return -(mu - float(self.config.kappa) * sd)
        z = (self.best - float(self.config.eps) - mu) / sd
        if kind == "poi":
            return special.log_ndtr(z)
        return np.log(sd) + _log_h(z)  # "ei"

    def _acq_and_grad(self, x: np.ndarray, h: float = 1e-6) -> Tuple[float, np.ndarray]:
        pts = np.vstack([x[None, :], x[None, :] + h * np.eye(len(x))])
        a = self.acquisition(pts)
        return -float(a[0]), -(a[1:] - a[0]) / h

    # ------------------------------------------------------------------ proposal
    def propose(self, seen: Set[Key], rng: np.random.Generator) -> Optional[Dict[str, Any]]:
        space = self.space
        size = space.size()
        if size is not None and size <= _ENUMERATE_MAX:
            left = _unseen_points(space, seen, limit=_ENUMERATE_MAX)
            if not left:
                return None
            enc = np.vstack([space.encode(p) for p in left])
            return left[int(np.argmax(self.acquisition(enc)))]

        d = space.n_dims
        cands = [rng.random((_N_RANDOM_CANDIDATES, d))]
        order = np.argsort(self.y_obs)[:_N_LOCAL_CENTRES]
        per = _N_LOCAL_CANDIDATES // (len(order) * len(_LOCAL_SCALES))
        for i in order if per > 0 else ():
            for s in _LOCAL_SCALES:
                cands.append(np.clip(self.X_obs[i] + s * rng.standard_normal((per, d)), 0.0, 1.0))
        C = np.vstack(cands)
        a = self.acquisition(C)
        top = np.argsort(-a)
        starts = C[top[:_N_ACQ_STARTS]]
        polished = []
        for x0 in starts:
            with np.errstate(all="ignore"):
                res = optimize.minimize(self._acq_and_grad, x0, jac=True, method="L-BFGS-B",
                                        bounds=[(0.0, 1.0)] * d, options={"maxiter": _ACQ_MAXITER})
            polished.append(np.clip(res.x, 0.0, 1.0))
        pool = np.vstack(polished + [C[top[:_N_SNAP]]])
        params = [space.decode(x) for x in pool]
        snapped = np.vstack([space.encode(p) for p in params])
        a_snap = self.acquisition(snapped)
        for i in np.argsort(-a_snap, kind="stable"):
            if params_key(params[i]) not in seen:
                return params[i]
        return None


def _encode(space: Space, t: TrialRecord) -> Optional[np.ndarray]:
    try:
        x = space.encode(t.params)
    except (KeyError, ValueError, TypeError):
        return None  # a trial from another version of the space
    return x if np.all(np.isfinite(x)) else None


def _fit_gp(X: np.ndarray, y: np.ndarray, gpc: GaussianProcessConfig,
            rng: np.random.Generator, start: Any = None) -> GaussianProcessRegressor:
    """The MAP fit; ``start``: a kernel whose hyperparameters start the search (the
    model sampler's previous fit), else ``gpc``'s."""
    d = X.shape[1]
    kernel = _make_kernel(gpc, d) if start is None else start
    optimizer: Any = _map_optimizer(_Prior.for_dims(d), len(y))
    if len(y) < 2 or float(np.ptp(y)) == 0.0:
        optimizer = None  # nothing to learn from: keep the starting hyperparameters
    gp = GaussianProcessRegressor(
        kernel=kernel,
        alpha=_JITTER,
        optimizer=optimizer,
        n_restarts_optimizer=max(0, int(gpc.n_restarts_optimizer)),
        normalize_y=False,
        random_state=np.random.RandomState(int(rng.integers(2**31 - 1))),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        try:
            gp.fit(X, y)
        except (np.linalg.LinAlgError, ValueError):
            gp.set_params(optimizer=None, alpha=1e-4)
            gp.fit(X, y)
    return gp
