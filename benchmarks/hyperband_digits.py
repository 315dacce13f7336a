#!/usr/bin/env python
"""Hyperband on a real learning task: an MLP on scikit-learn's digits, epochs as the resource.

hpc-tune's Hyperband (``hpc_tune.Tuner``, ask/tell, R = 81, eta = 3, ``resume: true`` as in
``configs/hyperband_digits.yml``; also ``resume: false``) against random search at full budget
(R epochs per configuration, hpc-tune's own random search) and Optuna's ``HyperbandPruner``
and ``SuccessiveHalvingPruner`` (min_resource 1, max_resource 81, reduction factor 3), each
with ``RandomSampler`` (the same sampling as hpc-tune's Hyperband: only the scheduling
differs) and with ``TPESampler`` (Optuna's default). Same space, same seeds, same run.

The task is the one of ``configs/train_digits.py``: ``MLPClassifier`` (adam, one
``partial_fit`` per epoch, ``random_state=0``) on a stratified 70/30 split of digits,
validation error after every epoch. The space:

    lr     loguniform 1e-4 .. 1e-1     alpha  loguniform 1e-5 .. 1e-1
    hidden values [16, 32, 64, 128]    batch_size values [32, 128]

Learning curves are a table built by this benchmark from real training: lr and alpha are
cut into equal bins of log10 (12 and 6 bins, equal probability under loguniform), and each
cell (lr bin, alpha bin, hidden, batch size) is trained ONCE to 81 epochs at the bin
centres, recording the validation error after every epoch. Every method samples the
continuous space itself; a configuration's curve is its cell's curve (the objective is
piecewise constant in lr and alpha). Training is deterministic and resumable
(``partial_fit`` continues the same model), so the error after r epochs is the same whether
a promoted trial resumes from r' < r or retrains from scratch; only the cost differs:

    hpc-tune resume: true   a promotion from r' to r costs r - r' epochs
    hpc-tune resume: false  a trial at r costs r epochs
    Optuna                  a trial pruned after epoch e cost e epochs (trials run epoch by epoch)
    random search           81 epochs per configuration

A method's best error after B epochs is the lowest value it has been told/reported for a
trial (a trial's last reported epoch) among the trials finished within B epochs, trials run
one at a time. One full Hyperband run's budget is sum(n_i * r_i) over all rungs of all
brackets (1902 epochs for R = 81, eta = 3); hpc-tune starts a new Hyperband run (next seed)
when one ends.

    python benchmarks/hyperband_digits.py                  # 10 seeds, budgets 1/2/5/10 HB runs
    python benchmarks/hyperband_digits.py --reuse-curves   # reuse the learning-curve table
    python benchmarks/hyperband_digits.py --quick          # R = 9, 12 cells, 2 seeds, budgets 1 and 2 HB runs;
                                                           # README untouched
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # two worker processes on two cores: one thread each

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List, Optional, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, append_readme, command_line, machine, machine_line, now, save_json  # noqa: E402

from hpc_tune.search.hyperband import brackets  # noqa: E402
from hpc_tune.tuner import Tuner  # noqa: E402

Cell = Tuple[int, int, int, int]  # (lr bin, alpha bin, hidden, batch size)

FULL = {"R": 81, "eta": 3, "lr_bins": 12, "alpha_bins": 6, "hidden": [16, 32, 64, 128], "batch": [32, 128],
        "seeds": 10, "multiples": [1, 2, 5, 10]}
QUICK = {"R": 9, "eta": 3, "lr_bins": 3, "alpha_bins": 2, "hidden": [16, 64], "batch": [128],
         "seeds": 2, "multiples": [1, 2]}
LR_LOG10 = (-4.0, -1.0)
ALPHA_LOG10 = (-5.0, -1.0)

METHODS = {
    "hpctune_hb": "hpc-tune Hyperband (resume: true)",
    "hpctune_hb_noresume": "hpc-tune Hyperband (resume: false)",
    "random_full": "random search, R epochs each (hpc-tune random)",
    "optuna_hb_random": "Optuna HyperbandPruner + RandomSampler",
    "optuna_sha_random": "Optuna SuccessiveHalvingPruner + RandomSampler",
    "optuna_hb_tpe": "Optuna HyperbandPruner + TPESampler",
    "optuna_sha_tpe": "Optuna SuccessiveHalvingPruner + TPESampler",
}
OPTUNA_METHODS = [m for m in METHODS if m.startswith("optuna")]


# ----------------------------------------------------------------------- the space


def bin_centre(lo: float, hi: float, bins: int, k: int) -> float:
    return 10 ** (lo + (k + 0.5) * (hi - lo) / bins)


def to_bin(value: float, lo: float, hi: float, bins: int) -> int:
    k = int(math.floor((math.log10(value) - lo) / (hi - lo) * bins))
    return min(bins - 1, max(0, k))


def cell_of(params: Dict[str, Any], cfg: Dict[str, Any]) -> Cell:
    return (to_bin(float(params["lr"]), *LR_LOG10, cfg["lr_bins"]),
            to_bin(float(params["alpha"]), *ALPHA_LOG10, cfg["alpha_bins"]),
            int(params["hidden"]), int(params["batch_size"]))


def all_cells(cfg: Dict[str, Any]) -> List[Cell]:
    return [(i, j, h, b) for i in range(cfg["lr_bins"]) for j in range(cfg["alpha_bins"])
            for h in cfg["hidden"] for b in cfg["batch"]]


def matrix(cfg: Dict[str, Any]) -> Dict[str, Any]:
    ln10 = math.log(10)
    return {"lr": {"loguniform": [LR_LOG10[0] * ln10, LR_LOG10[1] * ln10]},
            "alpha": {"loguniform": [ALPHA_LOG10[0] * ln10, ALPHA_LOG10[1] * ln10]},
            "hidden": {"values": list(cfg["hidden"])},
            "batch_size": {"values": list(cfg["batch"])}}


def hb_spec(cfg: Dict[str, Any], resume: bool) -> Dict[str, Any]:
    return {"hptuning": {"hyperband": {"max_iter": cfg["R"], "eta": cfg["eta"],
                                       "resource": {"name": "epochs", "type": "int"},
                                       "metric": {"name": "val_error", "optimization": "minimize"},
                                       "resume": resume},
                         "matrix": matrix(cfg)}}


def hb_budget(cfg: Dict[str, Any]) -> int:
    """Epochs of one full Hyperband run: sum of n_i * r_i over every rung of every bracket."""
    t = Tuner.from_dict(hb_spec(cfg, resume=False), seed=0)
    return int(sum(r.n * r.resource for b in brackets(t.spec.algorithm) for r in b.rungs))


# ------------------------------------------------------------- the learning curves

_DATA: Optional[Tuple[Any, ...]] = None


def _data() -> Tuple[Any, ...]:
    global _DATA
    if _DATA is None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        x_train, x_val, y_train, y_val = train_test_split(x, y, test_size=0.3, random_state=0, stratify=y)
        scaler = StandardScaler().fit(x_train)
        _DATA = (scaler.transform(x_train), scaler.transform(x_val), y_train, y_val, np.unique(y))
    return _DATA


def train_curve(task: Tuple[Cell, Dict[str, Any]]) -> Tuple[Cell, List[float], float]:
    """Train one cell's configuration to R epochs; the validation error after each epoch."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.neural_network import MLPClassifier

    cell, cfg = task
    x_train, x_val, y_train, y_val, classes = _data()
    i, j, hidden, batch = cell
    model = MLPClassifier(hidden_layer_sizes=(hidden,), learning_rate_init=bin_centre(*LR_LOG10, cfg["lr_bins"], i),
                          alpha=bin_centre(*ALPHA_LOG10, cfg["alpha_bins"], j), batch_size=batch, random_state=0)
    t0 = time.perf_counter()
    errors = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for _ in range(cfg["R"]):
            model.partial_fit(x_train, y_train, classes=classes)
            errors.append(round(1.0 - float(model.score(x_val, y_val)), 6))
    return cell, errors, time.perf_counter() - t0


def grid_key(cfg: Dict[str, Any]) -> str:
    blob = json.dumps({k: cfg[k] for k in ("R", "lr_bins", "alpha_bins", "hidden", "batch")}, sort_keys=True)
    return hashlib.sha1((blob + repr(LR_LOG10) + repr(ALPHA_LOG10)).encode()).hexdigest()[:10]


def build_table(cfg: Dict[str, Any], jobs: int, reuse: bool,
                results_dir: Path) -> Tuple[Dict[Cell, List[float]], Dict[str, Any]]:
    path = results_dir / f"hyperband_digits-curves-{grid_key(cfg)}.json"
    table: Dict[Cell, List[float]] = {}
    seconds: Dict[Cell, float] = {}
    if reuse and path.exists():
        raw = json.loads(path.read_text())
        for row in raw["curves"]:
            table[tuple(row["cell"])] = row["errors"]  # type: ignore[index]
            seconds[tuple(row["cell"])] = row["seconds"]  # type: ignore[index]
    todo = [c for c in all_cells(cfg) if c not in table]
    reused = len(table)
    t0 = time.perf_counter()
    if todo:
        print(f"training {len(todo)} configurations to {cfg['R']} epochs on {jobs} processes "
              f"({reused} reused from {path.name})" if reused else
              f"training {len(todo)} configurations to {cfg['R']} epochs on {jobs} processes", flush=True)
        tasks = [(c, cfg) for c in todo]
        if jobs > 1:
            with multiprocessing.get_context("fork").Pool(jobs) as pool:
                for k, (cell, errors, sec) in enumerate(pool.imap_unordered(train_curve, tasks, chunksize=2), 1):
                    table[cell], seconds[cell] = errors, sec
                    if k % 50 == 0:
                        print(f"  {k}/{len(todo)} trained ({time.perf_counter() - t0:.0f} s)", flush=True)
        else:
            for cell, errors, sec in map(train_curve, tasks):
                table[cell], seconds[cell] = errors, sec
        results_dir.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"grid": {k: cfg[k] for k in ("R", "lr_bins", "alpha_bins", "hidden", "batch")},
                                    "curves": [{"cell": list(c), "errors": table[c], "seconds": seconds[c]}
                                               for c in sorted(table)]}))
    finals = [e[-1] for e in table.values()]
    info = {"cells": len(table), "trained_now": len(todo), "reused": reused, "cache": str(path),
            "train_wall_s": round(time.perf_counter() - t0, 1),
            "train_cpu_s_sum": round(sum(seconds.values()), 1),
            "train_s_per_config_median": round(statistics.median(seconds.values()), 3),
            "oracle_final_error": min(finals), "median_final_error": statistics.median(finals),
            "oracle_any_epoch_error": min(min(e) for e in table.values())}
    return table, info


# ------------------------------------------------------------------------ the methods

_TABLE: Dict[Cell, List[float]] = {}


class Trace:
    """Best-so-far against epochs spent, stopped at the budget."""

    def __init__(self, budget: int):
        self.budget = budget
        self.epochs = 0
        self.best = math.inf
        self.points: List[Tuple[int, float]] = []  # (epochs after the trial, best so far)
        self.trials = 0

    def add(self, cost: int, value: float) -> bool:
        """Record a finished trial; False once the budget is spent (the trial is not counted)."""
        if self.epochs + cost > self.budget:
            self.epochs = self.budget
            return False
        self.epochs += cost
        self.trials += 1
        if value < self.best:
            self.best = value
            self.points.append((self.epochs, value))
        return True

    @property
    def full(self) -> bool:
        return self.epochs >= self.budget


def run_hpctune_hb(cfg: Dict[str, Any], seed: int, budget: int, resume: bool) -> Dict[str, Any]:
    trace = Trace(budget)
    spec = hb_spec(cfg, resume)
    resource_of: Dict[Tuple[int, int], int] = {}
    hb_runs = 0
    while not trace.full:
        tuner = Tuner.from_dict(spec, seed=seed * 1000 + hb_runs)
        hb_runs += 1
        resource_of.clear()
        while not trace.full:
            trial = tuner.ask()
            if trial is None:
                break  # this Hyperband run is over: start the next one
            r = int(trial.resource)  # type: ignore[arg-type]
            resource_of[(hb_runs, trial.trial_id)] = r
            parent = trial.meta.get("resume_from")
            cost = r - resource_of[(hb_runs, int(parent))] if parent is not None else r
            value = _TABLE[cell_of(trial.params, cfg)][r - 1]
            if not trace.add(cost, value):
                break
            tuner.tell(trial, value)
    return {"points": trace.points, "trials": trace.trials, "hb_runs": hb_runs}


def run_random(cfg: Dict[str, Any], seed: int, budget: int) -> Dict[str, Any]:
    R = cfg["R"]
    trace = Trace(budget)
    n = budget // R
    tuner = Tuner.from_dict({"hptuning": {"random_search": {"n_experiments": n}, "matrix": matrix(cfg)}}, seed=seed)
    while not trace.full:
        trial = tuner.ask()
        if trial is None:
            break
        value = _TABLE[cell_of(trial.params, cfg)][R - 1]
        if not trace.add(R, value):
            break
        tuner.tell(trial, value)
    return {"points": trace.points, "trials": trace.trials}


def run_optuna(cfg: Dict[str, Any], seed: int, budget: int, pruner_name: str, sampler_name: str) -> Dict[str, Any]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    R, eta = cfg["R"], cfg["eta"]
    sampler = (optuna.samplers.TPESampler(seed=seed) if sampler_name == "tpe"
               else optuna.samplers.RandomSampler(seed=seed))
    pruner = (optuna.pruners.HyperbandPruner(min_resource=1, max_resource=R, reduction_factor=eta)
              if pruner_name == "hb" else
              optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=eta, min_early_stopping_rate=0))
    # A fixed study name: HyperbandPruner assigns trials to brackets by a hash of it (reproducible runs).
    study = optuna.create_study(direction="minimize", sampler=sampler, pruner=pruner,
                                study_name=f"digits-{pruner_name}-{sampler_name}-{seed}")
    trace = Trace(budget)
    pruned = 0
    while not trace.full:
        trial = study.ask()
        params = {"lr": trial.suggest_float("lr", 10 ** LR_LOG10[0], 10 ** LR_LOG10[1], log=True),
                  "alpha": trial.suggest_float("alpha", 10 ** ALPHA_LOG10[0], 10 ** ALPHA_LOG10[1], log=True),
                  "hidden": trial.suggest_categorical("hidden", list(cfg["hidden"])),
                  "batch_size": trial.suggest_categorical("batch_size", list(cfg["batch"]))}
        curve = _TABLE[cell_of(params, cfg)]
        value, state = curve[-1], optuna.trial.TrialState.COMPLETE
        epochs = R
        for epoch in range(1, R + 1):
            trial.report(curve[epoch - 1], epoch)
            if trial.should_prune():
                value, epochs, state = curve[epoch - 1], epoch, optuna.trial.TrialState.PRUNED
                break
        if not trace.add(epochs, value):
            break
        if state == optuna.trial.TrialState.PRUNED:
            pruned += 1
            study.tell(trial, state=state)
        else:
            study.tell(trial, value)
    return {"points": trace.points, "trials": trace.trials, "pruned": pruned}


def run_task(task: Tuple[str, int, Dict[str, Any], int]) -> Dict[str, Any]:
    method, seed, cfg, budget = task
    t0 = time.perf_counter()
    if method == "hpctune_hb":
        out = run_hpctune_hb(cfg, seed, budget, resume=True)
    elif method == "hpctune_hb_noresume":
        out = run_hpctune_hb(cfg, seed, budget, resume=False)
    elif method == "random_full":
        out = run_random(cfg, seed, budget)
    else:
        _, pruner, sampler = method.split("_")
        out = run_optuna(cfg, seed, budget, pruner, sampler)
    out.update(method=method, seed=seed, seconds=round(time.perf_counter() - t0, 2))
    return out


# ------------------------------------------------------------------------- summary


def best_at(points: Sequence[Sequence[float]], epochs: float) -> float:
    best = math.inf
    for e, v in points:
        if e > epochs:
            break
        best = v
    return best


def median(xs: Sequence[float]) -> float:
    return float(statistics.median(xs))


def epochs_to_reach(runs: List[Dict[str, Any]], target: float, budget: int) -> Optional[int]:
    """The fewest epochs after which the median (over seeds) best error is <= target."""
    marks = sorted({int(e) for r in runs for e, _ in r["points"]})
    for e in marks:
        if median([best_at(r["points"], e) for r in runs]) <= target:
            return e
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="R = 9, 12 cells, 2 seeds; README untouched")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--reuse-curves", action="store_true",
                    help="reuse the learning-curve table cached in benchmarks/results/ (train only what is missing)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--results-dir", default=str(RESULTS))
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.seeds:
        cfg["seeds"] = args.seeds
    methods = [m for m in args.methods.split(",") if m]
    for m in methods:
        if m not in METHODS:
            ap.error(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    results_dir = Path(args.results_dir)
    m_info = machine()
    t_start = time.perf_counter()

    table, table_info = build_table(cfg, args.jobs, args.reuse_curves, results_dir)
    global _TABLE
    _TABLE = table
    one_run = hb_budget(cfg)
    budgets = [k * one_run for k in cfg["multiples"]]
    total = budgets[-1]

    tasks = [(m, s, cfg, total) for s in range(cfg["seeds"]) for m in methods]
    tasks.sort(key=lambda t: t[0] != "optuna_sha_tpe")  # the slowest first
    t_methods = time.perf_counter()
    runs: List[Dict[str, Any]] = []
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            for r in pool.imap_unordered(run_task, tasks):
                runs.append(r)
    else:
        runs = [run_task(t) for t in tasks]
    methods_wall = time.perf_counter() - t_methods
    by_method = {m: sorted([r for r in runs if r["method"] == m], key=lambda r: r["seed"]) for m in methods}

    from tabulate import tabulate

    headers = ["method", "trials (median)"] + [f"{k}x HB = {b} ep" for k, b in zip(cfg["multiples"], budgets)]
    rows = []
    med: Dict[str, List[float]] = {}
    for m in methods:
        rs = by_method[m]
        med[m] = [median([best_at(r["points"], b) for r in rs]) for b in budgets]
        rows.append([METHODS[m], int(median([r["trials"] for r in rs]))] + [f"{v:.4f}" for v in med[m]])
    table_text = tabulate(rows, headers=headers, tablefmt="github")
    mean_rows = []
    means: Dict[str, List[float]] = {}
    for m in methods:
        rs = by_method[m]
        means[m] = [statistics.fmean([best_at(r["points"], b) for r in rs]) for b in budgets]
        mean_rows.append([METHODS[m]] + [f"{v:.4f}" for v in means[m]])
    mean_text = tabulate(mean_rows, headers=["method"] + headers[2:], tablefmt="github")

    goals: List[str] = []
    info: Dict[str, Any] = {}
    if "hpctune_hb" in methods and "random_full" in methods:
        target = med["random_full"][-1]
        reach = epochs_to_reach(by_method["hpctune_hb"], target, total)
        info["random_final_error"] = target
        info["hpctune_epochs_to_random_final"] = reach
        if reach is None:
            goals.append(f"Goal 1 (reach random search's final median error {target:.4f} within a third of its "
                         f"{total} epochs): MISSED, not reached within {total} epochs")
        else:
            frac = reach / total
            ok = frac <= 1 / 3
            goals.append(f"Goal 1 (reach random search's final median error {target:.4f} within a third of its "
                         f"{total} epochs = {total // 3}): {'met' if ok else 'MISSED'}, hpc-tune's median reaches "
                         f"it after {reach} epochs = {frac:.3f} of random search's "
                         f"({frac * 3:.2f}x the allowance)")
        if "hpctune_hb_noresume" in methods:
            reach_nr = epochs_to_reach(by_method["hpctune_hb_noresume"], target, total)
            info["hpctune_noresume_epochs_to_random_final"] = reach_nr
            goals.append(f"  (resume: false: {reach_nr if reach_nr is not None else 'not reached'} epochs"
                         + (f" = {reach_nr / total:.3f})" if reach_nr is not None else ")"))
    if "hpctune_hb" in methods:
        for m in OPTUNA_METHODS:
            if m not in methods:
                continue
            diffs = [(k, h, o) for k, h, o in zip(cfg["multiples"], med["hpctune_hb"], med[m])]
            worse = [(k, h - o) for k, h, o in diffs if h > o + 1e-12]
            info[f"vs_{m}"] = {str(k): {"hpctune": h, "optuna": o} for k, h, o in diffs}
            if worse:
                goals.append(f"Goal 2 vs {METHODS[m]}: MISSED at " + ", ".join(
                    f"{k}x (hpc-tune worse by {d:.4f} = {d * 540:.1f} of 540 validation digits)" for k, d in worse)
                    + ("; TPE learns from earlier trials where to sample, hpc-tune's Hyperband (as Li et al.'s) "
                       "draws configurations uniformly at random: compare the RandomSampler rows for the schedule "
                       "alone" if m.endswith("_tpe") else ""))
            else:
                goals.append(f"Goal 2 vs {METHODS[m]}: met at every budget "
                             f"({', '.join(f'{k}x' for k in cfg['multiples'])})")
    wall = time.perf_counter() - t_start
    command = command_line("hyperband_digits.py", argv)
    space = (f"lr loguniform 1e-4..1e-1 ({cfg['lr_bins']} log bins), alpha loguniform 1e-5..1e-1 "
             f"({cfg['alpha_bins']} log bins), hidden {cfg['hidden']}, batch_size {cfg['batch']}")
    head = (f"{now()} - `{command}` - {machine_line(m_info)}\n\n"
            f"R = {cfg['R']}, eta = {cfg['eta']}; one full Hyperband run = {one_run} epochs; {cfg['seeds']} seeds; "
            f"space: {space} = {table_info['cells']} cells, each trained once to {cfg['R']} epochs "
            f"({table_info['trained_now']} trained in this run, {table_info['reused']} reused; median "
            f"{table_info['train_s_per_config_median']} s per configuration). Best possible final error in the "
            f"table: {table_info['oracle_final_error']:.4f}; median cell: {table_info['median_final_error']:.4f}. "
            f"Wall time {wall / 60:.1f} min ({methods_wall / 60:.1f} min for the methods), {args.jobs} processes.")
    text = (f"{head}\n\nMedian over seeds of the best validation error after the given epochs "
            f"(validation set: 540 digits, so 0.0019 = one digit):\n\n{table_text}\n\n"
            f"Mean over seeds (the median of errors that are multiples of 1/540 moves in half-digit steps):\n\n"
            f"{mean_text}\n\n" + "\n".join(goals) + "\n")
    print()
    print(text)
    out = save_json("hyperband_digits", {
        "command": command, "date": now(), "machine": m_info, "config": cfg, "one_hb_run_epochs": one_run,
        "budgets": budgets, "table": table_info, "medians": med, "means": means, "goals": goals, "info": info,
        "wall_s": wall, "runs": runs}, results_dir)
    print(f"raw results: {out}")
    if not (args.quick or args.no_readme):
        append_readme(SECTION, SECTION_INTRO, text)
        print("appended to benchmarks/README.md")
    return 0


SECTION = "hyperband_digits.py: Hyperband on an MLP for digits against random search and Optuna's pruners"
SECTION_INTRO = """
`MLPClassifier` on scikit-learn's digits (the task of `configs/train_digits.py`), epochs as
the resource, R = 81, eta = 3. hpc-tune's Hyperband through the ask/tell API, random search at
full budget, and Optuna's `HyperbandPruner` and `SuccessiveHalvingPruner` with `RandomSampler`
(same sampling as hpc-tune's Hyperband) and `TPESampler`, same space and seeds. Learning curves
come from a table the benchmark trains itself (each cell of a binned lr x alpha x hidden x
batch-size grid trained once to 81 epochs; see the module docstring for the cost rules).

    python benchmarks/hyperband_digits.py                  # full run (trains the table)
    python benchmarks/hyperband_digits.py --reuse-curves   # reuse the cached table
    python benchmarks/hyperband_digits.py --quick          # smoke run, nothing appended here
"""


if __name__ == "__main__":
    sys.exit(main())
