#!/usr/bin/env python
"""How good is hpc-tune's Bayesian optimisation? Simple regret against its peers.

Five problems (Branin 2-D, Hartmann6 6-D, Rosenbrock 4-D, Ackley 5-D and a mixed
space with a log-scaled, an integer and a categorical parameter), the same budget of
evaluations and the same seeds for every method, all in one run:

* ``hpc-tune BO``: ``hpc_tune.search.bayes.suggest`` driven one trial at a time
  through a History built here (a tiny ask/tell loop);
* ``hpc-tune random``: the space's own sampling, ``space.sample(sub_rng(seed, 0, i))``
  (what hpc-tune's random search and BO's initial design draw);
* Optuna TPE (``TPESampler``), Optuna GP (``GPSampler``, needs torch),
  scikit-optimize ``gp_minimize`` and hyperopt ``tpe.suggest``, each with its
  defaults.

Simple regret after k evaluations = best value among the first k minus the known
optimum. The tables show the median over seeds at a third, two thirds and all of the
budget, which method is best at the end, and the median time of one ``suggest``
(one ``ask`` for the peers) with 60 and 200 finished trials.

    python benchmarks/bo_quality.py                # 10 seeds x 60 evaluations
    python benchmarks/bo_quality.py --quick        # smoke run, README untouched

Results go to stdout, to ``benchmarks/results/bo_quality-<time>.json`` (raw) and,
unless ``--quick`` or ``--no-readme``, to a dated section of ``benchmarks/README.md``.
"""
from __future__ import annotations

import os

# Two worker processes on a two-core machine: one thread each.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import traceback  # noqa: E402
import warnings  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_readme, command_line, machine, machine_line, now, save_json  # noqa: E402

from hpc_tune.search import bayes  # noqa: E402
from hpc_tune.search.base import History, TrialRecord, TrialState, sub_rng  # noqa: E402
from hpc_tune.space import Discrete, Space, Uniform, numpy_range  # noqa: E402
from hpc_tune.spec.model import BayesConfig, GaussianProcessConfig, Metric  # noqa: E402

# --------------------------------------------------------------------------- problems


@dataclass(frozen=True)
class Param:
    """A benchmark parameter, translated into each library's own terms.

    kind ``uniform`` (low, high), ``loguniform`` (low, high are natural logs, as in
    Polyaxon and hyperopt), ``int`` (low..high inclusive) or ``choice`` (values).
    """

    name: str
    kind: str
    low: float = 0.0
    high: float = 0.0
    values: Tuple[Any, ...] = ()


@dataclass(frozen=True)
class Problem:
    name: str
    params: Tuple[Param, ...]
    f: Callable[[Dict[str, Any]], float]
    optimum: float


def _branin(p: Dict[str, Any]) -> float:
    x, y = p["x1"], p["x2"]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return (y - b * x * x + c * x - 6) ** 2 + 10 * (1 - t) * math.cos(x) + 10


_H6_A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14],
                  [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
_H6_P = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_H6_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def _hartmann6(p: Dict[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(1, 7)])
    return float(-_H6_ALPHA @ np.exp(-np.sum(_H6_A * (x - _H6_P) ** 2, axis=1)))


def _rosenbrock(p: Dict[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(1, 5)])
    return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))


def _ackley(p: Dict[str, Any]) -> float:
    x = np.array([p[f"x{i}"] for i in range(1, 6)])
    return float(-20 * math.exp(-0.2 * math.sqrt(np.mean(x**2))) - math.exp(np.mean(np.cos(2 * math.pi * x)))
                 + 20 + math.e)


# The mixed problem: a made-up training loss with an optimiser-dependent best
# learning rate (log scale), an integer depth and a continuous knob. Known optimum 0
# at optimizer=adam, lr=1e-3, layers=3, x=0.7.
_MIXED_BEST_LR = {"sgd": 1e-1, "adam": 1e-3, "rmsprop": 1e-4, "adagrad": 1e-2}
_MIXED_OFFSET = {"sgd": 0.3, "adam": 0.0, "rmsprop": 0.15, "adagrad": 0.5}


def _mixed(p: Dict[str, Any]) -> float:
    opt = p["optimizer"]
    dlr = math.log10(p["lr"]) - math.log10(_MIXED_BEST_LR[opt])
    return float(_MIXED_OFFSET[opt] + 0.5 * dlr**2 + (p["x"] - 0.7) ** 2 * (1 + 0.25 * abs(dlr))
                 + 0.05 * (int(p["layers"]) - 3) ** 2)


PROBLEMS: Dict[str, Problem] = {
    "branin": Problem("branin", (Param("x1", "uniform", -5, 10), Param("x2", "uniform", 0, 15)),
                      _branin, 0.397887357729738),
    "hartmann6": Problem("hartmann6", tuple(Param(f"x{i}", "uniform", 0, 1) for i in range(1, 7)),
                         _hartmann6, -3.32236801141551),
    "rosenbrock4": Problem("rosenbrock4", tuple(Param(f"x{i}", "uniform", -5, 10) for i in range(1, 5)),
                           _rosenbrock, 0.0),
    "ackley5": Problem("ackley5", tuple(Param(f"x{i}", "uniform", -32.768, 32.768) for i in range(1, 6)),
                       _ackley, 0.0),
    "mixed": Problem("mixed", (Param("x", "uniform", -2, 3),
                               Param("lr", "loguniform", math.log(1e-5), math.log(1.0)),
                               Param("layers", "int", 1, 8),
                               Param("optimizer", "choice", values=("sgd", "adam", "rmsprop", "adagrad"))),
                     _mixed, 0.0),
}


def hpc_space(problem: Problem) -> Space:
    params = {}
    for p in problem.params:
        if p.kind == "uniform":
            params[p.name] = Uniform(p.low, p.high)
        elif p.kind == "loguniform":
            params[p.name] = Uniform(p.low, p.high, log=True, kind="loguniform")
        elif p.kind == "int":
            params[p.name] = numpy_range(int(p.low), int(p.high) + 1, 1)
        else:
            params[p.name] = Discrete(tuple(p.values))
    return Space(params)


# --------------------------------------------------------------------------- methods

#: The configuration hpc-tune's BO runs with here: only the budget is set; the rest
#: is what a study file gets when it names just the acquisition.
def bo_config(evals: int, n_initial: int, acquisition: str, restarts: int) -> BayesConfig:
    return BayesConfig(
        n_initial_trials=n_initial,
        n_iterations=max(0, evals - n_initial),
        metric=Metric("loss", "minimize"),
        acquisition=acquisition,
        gaussian_process=GaussianProcessConfig(n_restarts_optimizer=restarts),
    )


def run_hpctune_bo(problem: Problem, seed: int, evals: int, opts: Dict[str, Any]) -> Dict[str, Any]:
    space = hpc_space(problem)
    cfg = bo_config(evals, opts["n_initial"], opts["acquisition"], opts["restarts"])
    trials: List[TrialRecord] = []
    values: List[float] = []
    times: List[float] = []
    for i in range(evals):
        t0 = time.perf_counter()
        res = bayes.suggest(space, cfg, History.of(trials), seed, 1)
        dt = time.perf_counter() - t0
        if i >= cfg.n_initial_trials:
            times.append(dt)
        params = res.suggestions[0].params
        v = problem.f(params)
        values.append(v)
        trials.append(TrialRecord(i, params, TrialState.COMPLETED, v))
    return {"values": values, "suggest_s": times}


def run_hpctune_random(problem: Problem, seed: int, evals: int, opts: Dict[str, Any]) -> Dict[str, Any]:
    space = hpc_space(problem)
    return {"values": [problem.f(space.sample(sub_rng(seed, 0, i))) for i in range(evals)]}


def _optuna_params(trial: Any, problem: Problem) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for p in problem.params:
        if p.kind == "uniform":
            out[p.name] = trial.suggest_float(p.name, p.low, p.high)
        elif p.kind == "loguniform":
            out[p.name] = trial.suggest_float(p.name, math.exp(p.low), math.exp(p.high), log=True)
        elif p.kind == "int":
            out[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high))
        else:
            out[p.name] = trial.suggest_categorical(p.name, list(p.values))
    return out


def _optuna_sampler(name: str, seed: int) -> Any:
    import optuna

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.GPSampler(seed=seed)


def _run_optuna(name: str, problem: Problem, seed: int, evals: int) -> Dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study = optuna.create_study(sampler=_optuna_sampler(name, seed), direction="minimize")
    values: List[float] = []

    def objective(trial: Any) -> float:
        v = problem.f(_optuna_params(trial, problem))
        values.append(v)
        return v

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        study.optimize(objective, n_trials=evals)
    return {"values": values}


def run_optuna_tpe(problem: Problem, seed: int, evals: int, opts: Dict[str, Any]) -> Dict[str, Any]:
    return _run_optuna("tpe", problem, seed, evals)


def run_optuna_gp(problem: Problem, seed: int, evals: int, opts: Dict[str, Any]) -> Dict[str, Any]:
    return _run_optuna("gp", problem, seed, evals)


def _skopt_dims(problem: Problem) -> List[Any]:
    from skopt.space import Categorical, Integer, Real

    dims: List[Any] = []
    for p in problem.params:
        if p.kind == "uniform":
            dims.append(Real(p.low, p.high, name=p.name))
        elif p.kind == "loguniform":
            dims.append(Real(math.exp(p.low), math.exp(p.high), prior="log-uniform", name=p.name))
        elif p.kind == "int":
            dims.append(Integer(int(p.low), int(p.high), name=p.name))
        else:
            dims.append(Categorical(list(p.values), name=p.name))
    return dims


def run_skopt_gp(problem: Problem, seed: int, evals: int, opts: Dict[str, Any]) -> Dict[str, Any]:
    from skopt import gp_minimize

    names = [p.name for p in problem.params]
    values: List[float] = []

    def objective(x: Sequence[Any]) -> float:
        v = problem.f(dict(zip(names, x)))
        values.append(v)
        return v

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gp_minimize(objective, _skopt_dims(problem), n_calls=evals, random_state=seed)
    return {"values": values}


def run_hyperopt_tpe(problem: Problem, seed: int, evals: int, opts: Dict[str, Any]) -> Dict[str, Any]:
    from hyperopt import Trials, fmin, hp, tpe

    space: Dict[str, Any] = {}
    for p in problem.params:
        if p.kind == "uniform":
            space[p.name] = hp.uniform(p.name, p.low, p.high)
        elif p.kind == "loguniform":
            space[p.name] = hp.loguniform(p.name, p.low, p.high)
        elif p.kind == "int":
            space[p.name] = hp.uniformint(p.name, int(p.low), int(p.high))
        else:
            space[p.name] = hp.choice(p.name, list(p.values))
    values: List[float] = []

    def objective(params: Dict[str, Any]) -> float:
        v = problem.f(params)
        values.append(v)
        return v

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fmin(objective, space, algo=tpe.suggest, max_evals=evals, trials=Trials(),
             rstate=np.random.default_rng(seed), show_progressbar=False)
    return {"values": values}


METHODS: Dict[str, Tuple[str, Callable[..., Dict[str, Any]]]] = {
    "hpctune_bo": ("hpc-tune BO", run_hpctune_bo),
    "hpctune_random": ("hpc-tune random", run_hpctune_random),
    "optuna_tpe": ("Optuna TPE", run_optuna_tpe),
    "optuna_gp": ("Optuna GP", run_optuna_gp),
    "skopt_gp": ("skopt gp_minimize", run_skopt_gp),
    "hyperopt_tpe": ("hyperopt TPE", run_hyperopt_tpe),
}
# Slowest first, so two workers finish together.
# hpc-tune first: its figures are the point, and a run cut short still has them.
_COST = {"hpctune_bo": 0, "skopt_gp": 1, "optuna_gp": 2, "optuna_tpe": 3, "hyperopt_tpe": 4, "hpctune_random": 5}


def availability(method: str) -> Optional[str]:
    """None when the method can run here, else why not."""
    try:
        if method in ("optuna_tpe", "optuna_gp"):
            import optuna  # noqa: F401
        if method == "optuna_gp":
            import torch  # noqa: F401
        if method == "skopt_gp":
            import skopt  # noqa: F401
        if method == "hyperopt_tpe":
            import hyperopt  # noqa: F401
    except ImportError as exc:
        return f"unavailable: {exc}"
    return None


def _task(args: Tuple[str, str, int, int, Dict[str, Any]]) -> Dict[str, Any]:
    method, problem_name, seed, evals, opts = args
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    problem = PROBLEMS[problem_name]
    t0 = time.perf_counter()
    try:
        out = METHODS[method][1](problem, seed, evals, opts)
    except Exception:  # noqa: BLE001 - a peer's failure is a result, not a crash
        return {"method": method, "problem": problem_name, "seed": seed, "error": traceback.format_exc()}
    values = [float(v) for v in out["values"]][:evals]
    best = np.minimum.accumulate(values)
    regret = [max(0.0, float(b) - problem.optimum) for b in best]
    return {"method": method, "problem": problem_name, "seed": seed, "values": values, "regret": regret,
            "seconds": time.perf_counter() - t0, "suggest_s": out.get("suggest_s", [])}


# --------------------------------------------------------------------------- timing


def _random_history(problem: Problem, n_obs: int, seed: int) -> Tuple[Space, List[TrialRecord]]:
    space = hpc_space(problem)
    trials = []
    for i in range(n_obs):
        p = space.sample(sub_rng(seed, 99, i))
        trials.append(TrialRecord(i, p, TrialState.COMPLETED, problem.f(p)))
    return space, trials


def time_hpctune(problem: Problem, n_obs: int, reps: int, opts: Dict[str, Any]) -> float:
    """Median wall time of one suggest after ``n_obs`` finished trials (CPU time in
    ``CPU_TIMES``: on a shared machine the two differ by the load)."""
    space, trials = _random_history(problem, n_obs, 0)
    cfg = bo_config(n_obs + 10, opts["n_initial"], opts["acquisition"], opts["restarts"])
    history = History.of(trials)
    ts, cpu = [], []
    for r in range(reps):
        t0, c0 = time.perf_counter(), time.process_time()
        bayes.suggest(space, cfg, history, r, 1)
        ts.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    CPU_TIMES[f"hpctune_bo/{problem.name}/{n_obs}"] = statistics.median(cpu)
    return statistics.median(ts)


CPU_TIMES: Dict[str, float] = {}


def time_optuna(name: str, problem: Problem, n_obs: int, reps: int) -> float:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space, trials = _random_history(problem, n_obs, 0)
    dists = {}
    probe = optuna.create_study()
    t = probe.ask()
    _optuna_params(t, problem)
    dists = t.distributions
    ts = []
    for r in range(reps):
        study = optuna.create_study(sampler=_optuna_sampler(name, r), direction="minimize")
        study.add_trials([optuna.trial.create_trial(params=tr.params, distributions=dists, value=tr.value)
                          for tr in trials])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            trial = study.ask()
            _optuna_params(trial, problem)
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def time_skopt(problem: Problem, n_obs: int, reps: int) -> float:
    from skopt import Optimizer

    space, trials = _random_history(problem, n_obs, 0)
    names = [p.name for p in problem.params]
    X = [[tr.params[nm] for nm in names] for tr in trials]
    y = [tr.value for tr in trials]
    ts = []
    for r in range(reps):
        opt = Optimizer(_skopt_dims(problem), base_estimator="GP", acq_func="gp_hedge", random_state=r,
                        n_initial_points=10, acq_optimizer="lbfgs")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            t0 = time.perf_counter()
            opt.tell(X, y)  # gp_minimize refits on every tell: that is the cost of one step
            opt.ask()
            ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


# --------------------------------------------------------------------------- report


def summarise(results: List[Dict[str, Any]], methods: List[str], problems: List[str], evals: int,
              skipped: Dict[str, str]) -> Tuple[str, str, Dict[str, Any]]:
    from tabulate import tabulate

    marks = sorted({max(1, round(evals / 3)), max(1, round(2 * evals / 3)), evals})
    med: Dict[Tuple[str, str], List[Optional[float]]] = {}
    for pr in problems:
        for m in methods:
            runs = [r for r in results if r["problem"] == pr and r["method"] == m and "regret" in r]
            if not runs:
                med[(pr, m)] = [None] * len(marks)
                continue
            med[(pr, m)] = [statistics.median(r["regret"][k - 1] for r in runs) for k in marks]

    def fmt(v: Optional[float]) -> str:
        return "-" if v is None else f"{v:.4g}"

    rows = []
    best: Dict[str, List[str]] = {}
    for pr in problems:
        finals = {m: med[(pr, m)][-1] for m in methods if med[(pr, m)][-1] is not None}
        low = min(finals.values()) if finals else None
        best[pr] = [m for m, v in finals.items() if low is not None and v <= low * (1 + 1e-9) + 1e-12]
        for m in methods:
            label = METHODS[m][0] + (" *" if m in best[pr] else "")
            if m in skipped:
                rows.append([pr, label] + [skipped[m]] + [""] * (len(marks) - 1))
            else:
                rows.append([pr, label] + [fmt(v) for v in med[(pr, m)]])
    detail = tabulate(rows, headers=["problem", "method"] + [f"@{k}" for k in marks], tablefmt="github")

    srows = []
    for pr in problems:
        srows.append([pr] + [fmt(med[(pr, m)][-1]) if m not in skipped else "n/a" for m in methods]
                     + [", ".join(METHODS[m][0] for m in best[pr])])
    summary = tabulate(srows, headers=["problem"] + [METHODS[m][0] for m in methods] + [f"best @{evals}"],
                       tablefmt="github")
    wins = sum(1 for pr in problems if "hpctune_bo" in best[pr])
    return detail, summary, {"marks": marks, "best": best, "hpctune_bo_wins": wins,
                             "median": {f"{pr}/{m}": v for (pr, m), v in med.items()}}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--evals", type=int, default=60)
    ap.add_argument("--quick", action="store_true", help="smoke run: 2 seeds x 15 evaluations, README untouched")
    ap.add_argument("--methods", default=",".join(METHODS), help="comma-separated subset of " + ",".join(METHODS))
    ap.add_argument("--problems", default=",".join(PROBLEMS), help="comma-separated subset of " + ",".join(PROBLEMS))
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--n-initial", type=int, default=10, help="hpc-tune BO n_initial_trials (default 10)")
    ap.add_argument("--acquisition", default="ei", choices=("ei", "ucb", "poi"))
    ap.add_argument("--restarts", type=int, default=0, help="hpc-tune BO n_restarts_optimizer (default 0)")
    ap.add_argument("--timing-reps", type=int, default=5)
    ap.add_argument("--no-timing", action="store_true")
    ap.add_argument("--timing-only", action="store_true", help="only the suggest/ask timings, no regret runs")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--results-dir", default=None, help="where the raw JSON goes (default benchmarks/results)")
    ap.add_argument("--reuse", action="append", default=[], metavar="JSON",
                    help="take the runs of this earlier raw JSON (same method, problem, seed and --evals) "
                         "instead of running them again; the methods are deterministic given the seed")
    args = ap.parse_args(argv)
    started_on = machine()
    date = now()
    if args.quick:
        args.seeds, args.evals, args.timing_reps, args.no_readme = 2, 15, 1, True

    methods = [m for m in args.methods.split(",") if m]
    problems = [p for p in args.problems.split(",") if p]
    for m in methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}")
    for p in problems:
        if p not in PROBLEMS:
            ap.error(f"unknown problem {p!r}")
    opts = {"n_initial": args.n_initial, "acquisition": args.acquisition, "restarts": args.restarts}
    skipped = {m: why for m in methods if (why := availability(m))}
    runnable = [m for m in methods if m not in skipped]

    tasks = [(m, p, s, args.evals, opts) for m in runnable for p in problems for s in range(args.seeds)
             if not args.timing_only]
    tasks.sort(key=lambda t: _COST.get(t[0], 9))
    results: List[Dict[str, Any]] = []
    reused = 0
    for path in args.reuse:
        old = {(r["method"], r["problem"], r["seed"]): r for r in json.loads(Path(path).read_text())["results"]
               if "regret" in r and len(r["regret"]) == args.evals}
        keep = []
        for t in tasks:
            if (t[0], t[1], t[2]) in old:
                results.append(dict(old[(t[0], t[1], t[2])], reused_from=str(path)))
                reused += 1
            else:
                keep.append(t)
        tasks = keep
    progress = Path(args.results_dir or Path(__file__).resolve().parent / "results") / "bo_quality-progress.json"
    progress.parent.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            for i, r in enumerate(pool.imap_unordered(_task, tasks), 1):
                results.append(r)
                _progress(i, len(tasks), r, progress, results)
    else:
        for i, t in enumerate(tasks, 1):
            results.append(_task(t))
            _progress(i, len(tasks), results[-1], progress, results)
    wall = time.perf_counter() - t_start
    for r in results:
        if "error" in r:
            print(f"ERROR {r['method']} {r['problem']} seed {r['seed']}:\n{r['error']}", file=sys.stderr)
            skipped.setdefault(r["method"], "error: " + r["error"].strip().splitlines()[-1][:80])

    detail, summary, info = summarise(results, methods, problems, args.evals, skipped)

    timing_rows: List[List[Any]] = []
    timing: Dict[str, Any] = {}
    if not args.no_timing:
        from tabulate import tabulate

        for p in problems:
            for n_obs in (60, 200):
                timing[f"hpctune_bo/{p}/{n_obs}"] = time_hpctune(PROBLEMS[p], n_obs, args.timing_reps, opts)
        peers = {"optuna_gp": lambda pr, n: time_optuna("gp", pr, n, args.timing_reps),
                 "optuna_tpe": lambda pr, n: time_optuna("tpe", pr, n, args.timing_reps),
                 "skopt_gp": lambda pr, n: time_skopt(pr, n, args.timing_reps)}
        tp = "hartmann6" if "hartmann6" in problems else problems[0]
        for m, fn in peers.items():
            if m in runnable:
                for n_obs in (60, 200):
                    try:
                        timing[f"{m}/{tp}/{n_obs}"] = fn(PROBLEMS[tp], n_obs)
                    except Exception as exc:  # noqa: BLE001
                        timing[f"{m}/{tp}/{n_obs}"] = f"error: {exc}"
        for key in sorted({k.rsplit("/", 1)[0] for k in timing}, key=lambda k: (k.split("/")[0] != "hpctune_bo", k)):
            m, p = key.split("/")
            cells = [timing[f"{key}/{n}"] for n in (60, 200)]
            cpu = [CPU_TIMES.get(f"{key}/{n}") for n in (60, 200)]
            timing_rows.append([METHODS[m][0], p]
                               + [(f"{c:.3f}" if isinstance(c, float) else c) + (f" ({u:.3f})" if u else "")
                                  for c, u in zip(cells, cpu)])
        timing_table = tabulate(timing_rows, headers=["method", "problem", "60 obs: wall (CPU) s",
                                                      "200 obs: wall (CPU) s"], tablefmt="github")
    else:
        timing_table = "(timing skipped)"

    command = command_line("bo_quality.py", argv)
    head = (f"{date} - `{command}` - {machine_line(started_on)}\n\n"
            f"{args.seeds} seeds x {args.evals} evaluations, wall {wall / 60:.1f} min, {args.jobs} workers"
            + (f" ({reused} runs reused from {', '.join(args.reuse)})" if reused else "") + ". "
            f"hpc-tune BO: n_initial_trials={args.n_initial}, acquisition={args.acquisition}, "
            f"n_restarts_optimizer={args.restarts}, everything else at its default.")
    wins = info["hpctune_bo_wins"]
    t200 = [v for k, v in timing.items() if k.startswith("hpctune_bo/") and k.endswith("/200")]
    c200 = [v for k, v in CPU_TIMES.items() if k.startswith("hpctune_bo/") and k.endswith("/200")]
    goals = [] if args.timing_only else [
        f"lowest median regret at {args.evals} on >= 4 of {len(problems)} problems: {wins}/{len(problems)}"]
    if t200:
        goals.append(f"one suggest with 200 observations < 1 s: max {max(t200):.3f} s wall, "
                     f"{max(c200):.3f} s CPU over the problems")
    goal = "Goals: " + "; ".join(goals)
    if args.timing_only:
        head = head.split("\n\n")[0] + "\n\nTimings only (no regret runs)."
        text = f"{head}\n\nMedian time of one suggest (ask), single thread:\n\n{timing_table}\n\n{goal}\n"
    else:
        text = (f"{head}\n\nMedian simple regret over seeds (* = lowest at {args.evals}):\n\n{detail}\n\n"
                f"At {args.evals} evaluations:\n\n{summary}\n\n"
                f"Median time of one suggest (ask), single thread:\n\n{timing_table}\n\n{goal}\n")
    print()
    print(text)

    out = save_json("bo_quality", {"command": command, "date": date, "machine": started_on, "args": vars(args),
                                   "skipped": skipped, "summary": info, "timing": timing,
                                   "cpu_times": CPU_TIMES, "results": results},
                    args.results_dir)
    print(f"raw results: {out}")
    if not args.no_readme:
        append_readme(_TITLE, _INTRO, text)  # under a "### Run of <date>" heading
        print("appended to benchmarks/README.md")
    return 0


def _progress(i: int, n: int, r: Dict[str, Any], path: Path, results: List[Dict[str, Any]]) -> None:
    tail = "error" if "error" in r else f"regret {r['regret'][-1]:.4g} in {r['seconds']:.1f}s"
    print(f"[{i}/{n}] {r['method']} {r['problem']} seed {r['seed']}: {tail}", flush=True)
    path.write_text(json.dumps({"results": results}))  # usable with --reuse if the run is cut short


_TITLE = "bo_quality.py: Bayesian optimisation against its peers"
_INTRO = """
Simple regret (best value found minus the known optimum) of hpc-tune's Bayesian
optimisation (`hpc_tune.search.bayes.suggest`, driven one trial at a time) against
hpc-tune's random sampling, Optuna TPE, Optuna GP, scikit-optimize `gp_minimize` and
hyperopt TPE, on Branin (2-D), Hartmann6 (6-D), Rosenbrock (4-D, [-5, 10]^4), Ackley
(5-D, [-32.768, 32.768]^5) and a mixed space (continuous, loguniform, integer and
categorical parameters; optimum 0). Peers run with their defaults; every method gets
the same seeds. Medians over seeds; `*` marks the lowest median regret at the end.

    pip install optuna scikit-optimize hyperopt torch   # the peers (torch: Optuna GP)
    python benchmarks/bo_quality.py                      # 10 seeds x 60 evaluations, ~45 min on 2 busy cores
    python benchmarks/bo_quality.py --quick              # smoke run, nothing appended here

`--seeds`, `--evals`, `--methods`, `--problems`, `--jobs` narrow or widen it;
`--timing-only` measures only the suggest/ask times. Raw results go to
`benchmarks/results/` (not committed).
"""


if __name__ == "__main__":
    sys.exit(main())
