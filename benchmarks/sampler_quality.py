"""Samplers of new configurations inside Hyperband and ASHA: random, kde (BOHB), model.

A quick quality check on cheap synthetic multi-fidelity functions whose optimum is
known (the full comparison with SMAC3, DEHB, HpBandSter, Optuna and Ray Tune is another
benchmark's job). Each run drives hpc-tune's real searchers (``hyperband.suggest``,
``asha.suggest``) with an event-driven simulation of ``--slots`` workers: a trial takes
as long as its resource, a free slot is filled at once. Figures: the simple regret
(best value at the full resource minus the optimum) after 10, 25, 50 and 100 % of the
budget, in full-resource equivalents, median and quartiles over seeds; and the CPU time
spent in ``suggest`` per run.

Problems (Kandasamy et al. 2017, "Multi-fidelity Bayesian optimisation with continuous
approximations", their fidelity-biased Branin and Hartmann; fidelity z = log r / log R):

* ``branin``: 2 parameters; the low fidelities shift the valleys;
* ``hartmann6``: 6 parameters; the low fidelities shift the alphas by 0.1 (1 - z);
* ``mixed``: Hartmann3 plus a categorical "optimizer" (one choice adds nothing, the two
  others 0.3 and 0.6) and a log-uniform "lr" with its best value at 1e-3 at the full
  budget: log axes and categories exercised.

Command (one command, a dated table appended to benchmarks/README.md):

    python benchmarks/sampler_quality.py [--seeds 10] [--quick] [--no-readme]
"""
from __future__ import annotations

import argparse
import heapq
import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable, Dict, List, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import append_readme, command_line, machine, machine_line, save_json  # noqa: E402

from hpc_tune.search import asha, hyperband, samplers  # noqa: E402
from hpc_tune.search.base import History, TrialRecord, TrialState  # noqa: E402
from hpc_tune.space import Discrete, Space, Uniform  # noqa: E402
from hpc_tune.spec.model import AshaConfig, HyperbandConfig, Metric, ResourceConfig, SamplerConfig  # noqa: E402

R = 81
ETA = 3
FRACTIONS = (0.1, 0.25, 0.5, 1.0)

# ----------------------------------------------------------------------- problems


def _fidelity(r: float) -> float:
    return math.log(r) / math.log(R)


def branin(p: Dict[str, Any], r: float) -> float:
    z = _fidelity(r)
    x1, x2 = p["x1"], p["x2"]
    b = 5.1 / (4 * math.pi**2) - 0.01 * (1 - z)
    c = 5 / math.pi - 0.1 * (1 - z)
    t = 1 / (8 * math.pi) + 0.05 * (1 - z)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


_H_A3 = np.array([[3.0, 10, 30], [0.1, 10, 35], [3.0, 10, 30], [0.1, 10, 35]])
_H_P3 = 1e-4 * np.array([[3689, 1170, 2673], [4699, 4387, 7470], [1091, 8732, 5547], [381, 5743, 8828]])
_H_A6 = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8],
                  [17, 8, 0.05, 10, 0.1, 14]])
_H_P6 = 1e-4 * np.array([[1312, 1696, 5569, 124, 8283, 5886], [2329, 4135, 8307, 3736, 1004, 9991],
                         [2348, 1451, 3522, 2883, 3047, 6650], [4047, 8828, 8732, 5743, 1091, 381]])
_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def _hartmann(x: np.ndarray, z: float, A: np.ndarray, P: np.ndarray) -> float:
    alpha = _ALPHA - 0.1 * (1 - z)
    return float(-np.sum(alpha * np.exp(-np.sum(A * (x - P) ** 2, axis=1))))


def hartmann6(p: Dict[str, Any], r: float) -> float:
    return _hartmann(np.array([p[f"x{i}"] for i in range(6)]), _fidelity(r), _H_A6, _H_P6)


_OPT_PENALTY = {"adam": 0.0, "sgd": 0.3, "rmsprop": 0.6}


def mixed(p: Dict[str, Any], r: float) -> float:
    z = _fidelity(r)
    h = _hartmann(np.array([p["x0"], p["x1"], p["x2"]]), z, _H_A3, _H_P3)
    best_lr = math.log(1e-3) + 1.5 * (1 - z)  # the low fidelities like larger rates
    return h + _OPT_PENALTY[p["optimizer"]] + 0.1 * (math.log(p["lr"]) - best_lr) ** 2


PROBLEMS: Dict[str, Tuple[Space, Callable[[Dict[str, Any], float], float], float]] = {
    "branin": (Space({"x1": Uniform(-5.0, 10.0), "x2": Uniform(0.0, 15.0)}), branin, 0.397887),
    "hartmann6": (Space({f"x{i}": Uniform(0.0, 1.0) for i in range(6)}), hartmann6, -3.32237),
    "mixed": (Space({"x0": Uniform(0.0, 1.0), "x1": Uniform(0.0, 1.0), "x2": Uniform(0.0, 1.0),
                     "optimizer": Discrete(("sgd", "adam", "rmsprop")),
                     "lr": Uniform(math.log(1e-5), math.log(1e-1), log=True, kind="loguniform")}),
              mixed, -3.86278),
}

# ------------------------------------------------------------------- one simulated run


def _config(algorithm: str, sampler: str, n_trials: int) -> Any:
    resource = ResourceConfig("epochs", "int")
    metric = Metric("loss", "minimize")
    if algorithm == "hyperband":
        return HyperbandConfig(max_iter=R, eta=ETA, resource=resource, metric=metric, resume=True,
                               sampler=SamplerConfig(kind=sampler))
    return AshaConfig(max_resource=R, resource=resource, metric=metric, n_trials=n_trials, min_resource=1,
                      eta=ETA, sampler=SamplerConfig(kind=sampler))


def simulate(problem: str, algorithm: str, sampler: str, seed: int, slots: int, budget_fe: float) -> Dict[str, Any]:
    """One run to ``budget_fe`` full-resource equivalents (repeated Hyperband iterations, or
    one ASHA with enough configurations). Returns the regret curve and the CPU time."""
    space, f, optimum = PROBLEMS[problem]
    search = hyperband if algorithm == "hyperband" else asha
    config = _config(algorithm, sampler, n_trials=10**6)
    samplers.sampler(sampler)  # imported before the clock starts
    trials: List[TrialRecord] = []
    running: List[Tuple[float, int]] = []  # (end time, trial id)
    clock = 0.0
    spent = 0.0  # resource trained, in epochs
    best_full = math.inf
    curve: List[Tuple[float, float]] = []  # (full-resource equivalents, best value at R)
    cpu = 0.0
    iteration = 0
    offset = 0  # trials of earlier Hyperband iterations (each iteration sees only its own)
    noise = np.random.default_rng(10_000 + seed)
    while spent < budget_fe * R:
        free = slots - len(running)
        if free > 0:
            history = History.of(trials[offset:]) if algorithm == "hyperband" else History.of(trials)
            if algorithm == "hyperband" and offset:
                # BOHB's model sees earlier iterations too: hand their results in as untagged trials
                history = History.of([replace(t, meta={}) for t in trials[:offset]] + list(trials[offset:]))
            t0 = time.process_time()
            result = search.suggest(space, config, history, seed * 1000 + iteration, free)
            cpu += time.process_time() - t0
            for s in result.suggestions:
                tid = len(trials)
                resumed = s.meta.get("resume_from")
                prior = trials[resumed].resource if resumed is not None else 0
                trials.append(TrialRecord(trial_id=tid, params=dict(s.params), state=TrialState.RUNNING,
                                          resource=s.resource, meta=dict(s.meta)))
                heapq.heappush(running, (clock + float(s.resource) - float(prior or 0), tid))
            if not result.suggestions and not running:
                if algorithm == "hyperband" and result.exhausted:
                    iteration += 1
                    offset = len(trials)
                    continue
                break
            if result.suggestions:
                continue
        end, tid = heapq.heappop(running)
        t = trials[tid]
        resumed = t.meta.get("resume_from")
        prior = float(trials[resumed].resource) if resumed is not None else 0.0
        clock = end
        spent += float(t.resource) - prior
        value = f(t.params, float(t.resource)) + 0.01 * float(noise.standard_normal())
        trials[tid] = replace(t, state=TrialState.COMPLETED, value=value)
        if float(t.resource) >= R:
            best_full = min(best_full, f(t.params, R))
        curve.append((spent / R, best_full - optimum))
    regrets = {}
    for frac in FRACTIONS:
        upto = [r for fe, r in curve if fe <= frac * budget_fe]
        regrets[frac] = upto[-1] if upto else math.inf
    return {"regret": regrets, "cpu_s": cpu, "trials": len(trials), "spent_fe": spent / R}


# ------------------------------------------------------------------------------ main


def main(argv: List[str] = None) -> int:  # type: ignore[assignment]
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=10)
    ap.add_argument("--slots", type=int, default=4)
    ap.add_argument("--budget", type=float, default=60.0, help="full-resource equivalents per run")
    ap.add_argument("--problems", default=",".join(PROBLEMS))
    ap.add_argument("--algorithms", default="hyperband,asha")
    ap.add_argument("--samplers", default="random,kde,model")
    ap.add_argument("--quick", action="store_true", help="1 seed, 10 full budgets, branin only, no README entry")
    ap.add_argument("--no-readme", action="store_true", help="print the table, append nothing to benchmarks/README.md")
    ap.add_argument("--results-dir", default=None)
    args = ap.parse_args(argv)
    if args.quick:
        args.seeds, args.budget, args.problems = 1, 10.0, "branin"
    m = machine()
    rows = []
    raw: Dict[str, Any] = {"args": vars(args), "machine": m, "runs": []}
    for problem in args.problems.split(","):
        for algorithm in args.algorithms.split(","):
            for sampler in args.samplers.split(","):
                runs = [simulate(problem, algorithm, sampler, seed, args.slots, args.budget)
                        for seed in range(args.seeds)]
                raw["runs"].append({"problem": problem, "algorithm": algorithm, "sampler": sampler, "runs": runs})
                row = [problem, algorithm, sampler]
                for frac in FRACTIONS:
                    vals = np.array([r["regret"][frac] for r in runs])
                    q1, med, q3 = np.percentile(vals, [25, 50, 75], method="nearest")  # inf: nothing at R yet
                    row.append(f"{med:.3g} [{q1:.3g}, {q3:.3g}]".replace("inf", "none"))
                row.append(f"{np.median([r['cpu_s'] for r in runs]):.2f}")
                rows.append(row)
                print(" | ".join(row), flush=True)
    header = ["problem", "algorithm", "sampler"] + [f"regret at {int(f * 100)} %" for f in FRACTIONS] \
        + ["suggest CPU s/run"]
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
                      + ["| " + " | ".join(r) + " |" for r in rows])
    path = save_json("sampler_quality", raw, Path(args.results_dir) if args.results_dir else None)
    print(table)
    print(f"raw results: {path}")
    if not args.quick and not args.no_readme:
        body = (f"Command: `{command_line('sampler_quality.py', argv)}`. {machine_line(m)}. "
                f"{args.seeds} seeds, {args.slots} slots, {args.budget:g} full-resource equivalents (R = {R}, "
                f"eta = {ETA}); simple regret at the full resource, median [quartiles].\n\n{table}\n")
        append_readme("Samplers inside Hyperband and ASHA (sampler_quality)",
                      "`python benchmarks/sampler_quality.py`: random, kde (BOHB) and model samplers inside "
                      "hpc-tune's Hyperband and ASHA on synthetic multi-fidelity functions (see its docstring).",
                      body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
