"""The multi-fidelity harness shared by ``mf_digits.py`` and ``mf_hartmann.py``.

A *problem* gives a search space (as an hpc-tune matrix, a ConfigSpace, Optuna ``suggest_*``
calls and a Ray Tune space), ``value(params, r)`` at resource ``r`` in 1..R, and a *score*
of a value (the figure the tables report, lower is better). Every method, hpc-tune's and the
peers', runs one trial at a time against the same accounting (``Run``):

* every configuration keeps its checkpoint: running a configuration to ``r`` costs ``r`` minus
  what it has already trained (hpc-tune's ``resume: true``; Optuna and Ray Tune trials train
  epoch by epoch, so this is their own cost; SMAC3, DEHB and HpBandSter re-run a configuration
  at a larger budget, and are charged as if their user resumed it from its checkpoint too);
* a method's best score after B resource units is the lowest score of a value it was told
  (at a resource of at least ``problem.counts_from``) among the evaluations that fitted in B;
* a budget of k full-budget equivalents is k x R resource units;
* a method's cost is the CPU time of the process that runs it, outside the objective
  (Ray Tune's trial processes are not counted, so its figure is a lower bound).

Peers that are not installed are skipped and named; hpc-tune methods whose algorithm or
sampler this checkout does not have yet are skipped the same way (with the reason).
"""
from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import statistics
import tempfile
import threading
import time
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from hpc_tune.space import params_key
from hpc_tune.tuner import Tuner


class BudgetSpent(Exception):
    """Raised inside a peer's objective once the run's budget is spent."""


class Run:
    """One method on one seed: the resource spent, the best score so far, the optimiser's time."""

    def __init__(self, problem: Any, budget: int):
        self.problem = problem
        self.budget = budget
        self.spent = 0
        self.trained: Dict[Any, int] = {}
        self.best = math.inf
        self.points: List[Tuple[int, float]] = []  # (resource spent, best score so far)
        self.evaluations = 0
        self.objective_s = 0.0  # wall time inside problem.value: not the optimiser's
        self.objective_cpu_s = 0.0  # and its CPU time

    @property
    def full(self) -> bool:
        return self.spent >= self.budget

    def evaluate(self, params: Dict[str, Any], r: int) -> Optional[float]:
        """Train ``params`` to ``r`` from its own checkpoint; its value, or None when that does not
        fit in the budget any more (the run is then over)."""
        key = params_key(self.problem.canonical(params))
        done = self.trained.get(key, 0)
        cost = max(0, r - done)
        if self.spent + cost > self.budget:
            self.spent = self.budget
            return None
        self.spent += cost
        self.trained[key] = max(done, r)
        t0, c0 = time.perf_counter(), time.process_time()
        value = self.problem.value(params, r)
        self.objective_s += time.perf_counter() - t0
        self.objective_cpu_s += time.process_time() - c0
        self.evaluations += 1
        if r >= self.problem.counts_from:
            score = self.problem.score(value)
            if score < self.best:
                self.best = score
                self.points.append((self.spent, score))
        return value


# ----------------------------------------------------------------------------- hpc-tune


def hpctune_spec(problem: Any, method: str) -> Dict[str, Any]:
    common = {"resource": {"name": "epochs", "type": "int"},
              "metric": {"name": "loss", "optimization": "minimize"}}
    # One study of Hyperband iterations, as HpBandSter's and SMAC3's runs are one: ten cover
    # 100 x R (one iteration of R = 81, eta = 3 costs about 20 x R with resume); the run
    # stops when its budget is spent.
    hb = dict(common, max_iter=problem.R, eta=problem.eta, resume=True, iterations=10)
    asha = dict(common, min_resource=1, max_resource=problem.R, eta=problem.eta, resume=True,
                n_experiments=100 * problem.R)
    kinds = {
        "hpctune_hb": ("hyperband", hb),
        "hpctune_bohb": ("bohb", hb),
        "hpctune_hb_model": ("hyperband", dict(hb, sampler="model")),
        "hpctune_asha": ("asha", dict(asha, sampler="random")),  # `model` is the default of asha
        "hpctune_asha_kde": ("asha", dict(asha, sampler="kde")),
        "hpctune_asha_model": ("asha", dict(asha, sampler="model")),
    }
    kind, body = kinds[method]
    return {"hptuning": {kind: body, "matrix": problem.matrix()}}


def resume_from(trial: Any) -> Optional[int]:
    value = getattr(trial, "resume_from", None)
    if value is None:
        value = trial.meta.get("resume_from")
    return None if value is None else int(value)


def run_hpctune(problem: Any, method: str, seed: int, budget: int) -> Run:
    """hpc-tune through the ask/tell Tuner; a new run (next seed) when one ends."""
    run = Run(problem, budget)
    spec = hpctune_spec(problem, method)
    restarts = 0
    while not run.full:
        tuner = Tuner.from_dict(spec, seed=seed * 1000 + restarts)
        restarts += 1
        asked = 0
        while not run.full:
            trial = tuner.ask()
            if trial is None:
                break  # the study is over (one trial at a time, so nothing is pending): start the next
            asked += 1
            value = run.evaluate(trial.params, int(trial.resource))
            if value is None:
                break
            tuner.tell(trial, value)
        if asked == 0:
            raise RuntimeError(f"{method}: the tuner suggested nothing")
    return run


# ------------------------------------------------------------------------------- peers


def run_optuna(problem: Any, method: str, seed: int, budget: int) -> Run:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    R, eta = problem.R, problem.eta
    pruner = (optuna.pruners.HyperbandPruner(min_resource=1, max_resource=R, reduction_factor=eta)
              if method == "optuna_hb_tpe" else
              optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=eta, min_early_stopping_rate=0))
    # a fixed study name: HyperbandPruner assigns trials to brackets by a hash of it
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed), pruner=pruner,
                                study_name=f"{problem.name}-{method}-{seed}")
    run = Run(problem, budget)
    while not run.full:
        trial = study.ask()
        params = problem.optuna_params(trial)
        last, pruned = R, False
        for epoch in range(1, R + 1):  # reports cost nothing here: the epochs are charged when the trial ends
            trial.report(problem.value(params, epoch), epoch)
            if trial.should_prune():
                last, pruned = epoch, True
                break
        value = run.evaluate(params, last)
        if value is None:
            break
        if pruned:
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)
        else:
            study.tell(trial, value)
    return run


def run_smac(problem: Any, method: str, seed: int, budget: int) -> Run:
    from smac import MultiFidelityFacade, Scenario
    from smac.runhistory.dataclasses import TrialValue

    warnings.filterwarnings("ignore")  # sklearn's "Loky-backed parallel loops" warning, once per model fit
    run = Run(problem, budget)
    with tempfile.TemporaryDirectory(prefix="smac-") as out:
        scenario = Scenario(problem.configspace(seed), deterministic=True, n_trials=10 ** 6, min_budget=1,
                            max_budget=problem.R, seed=seed, output_directory=out, name=f"{problem.name}-{seed}")
        intensifier = MultiFidelityFacade.get_intensifier(scenario, eta=problem.eta)

        def unused(config: Any, seed: int = 0, budget: float = 0.0) -> float:  # ask/tell only
            raise AssertionError("SMAC runs ask/tell here")

        smac = MultiFidelityFacade(scenario, unused, intensifier=intensifier, overwrite=True, logging_level=40)
        while not run.full:
            info = smac.ask()
            value = run.evaluate(dict(info.config), int(round(info.budget)))
            if value is None:
                break
            smac.tell(info, TrialValue(cost=value, time=0.0), save=False)
    return run


def run_dehb(problem: Any, method: str, seed: int, budget: int) -> Run:
    from dehb import DEHB

    logging.getLogger("dehb").setLevel(logging.ERROR)
    try:
        from loguru import logger as loguru_logger

        loguru_logger.remove()
    except ImportError:  # pragma: no cover - dehb depends on loguru
        pass
    run = Run(problem, budget)
    cs = problem.configspace(seed)
    with tempfile.TemporaryDirectory(prefix="dehb-") as out:
        dehb = DEHB(cs=cs, dimensions=len(list(cs.values())), min_fidelity=1, max_fidelity=problem.R,
                    eta=problem.eta, n_workers=1, seed=seed, output_path=out, save_freq=None)
        while not run.full:
            job = dehb.ask()
            value = run.evaluate(dict(job["config"]), int(round(job["fidelity"])))
            if value is None:
                break
            dehb.tell(job, {"fitness": value, "cost": float(job["fidelity"])})
    return run


def run_hpbandster(problem: Any, method: str, seed: int, budget: int) -> Run:
    """HpBandSter's BOHB with its own master, one worker and a name server on the loopback."""
    import hpbandster.core.nameserver as hpns
    import numpy as np
    import Pyro4
    from hpbandster.core.worker import Worker
    from hpbandster.optimizers import BOHB

    warnings.filterwarnings("ignore")  # ConfigSpace's deprecation warnings, once per configuration
    for name in ("hpbandster", "Pyro4", "BOHB", "hpbandster.run_0.worker"):
        logging.getLogger(name).setLevel(logging.ERROR)
    np.random.seed(seed)
    # ConfigSpace 1.x hands out numpy scalars, which Pyro's default serializer refuses; all ends of
    # this Pyro traffic are in this process, so pickle is safe here
    Pyro4.config.SERIALIZER = "pickle"
    Pyro4.config.SERIALIZERS_ACCEPTED.add("pickle")
    run = Run(problem, budget)
    run_id = f"{problem.name}-{seed}-{os.getpid()}"

    class TableWorker(Worker):
        def compute(self, config: Dict[str, Any], budget: float, **kwargs: Any) -> Dict[str, Any]:
            value = run.evaluate(dict(config), int(round(budget)))
            if value is None:  # budget spent: the master is stopped after this iteration
                value = problem.value(dict(config), int(round(budget)))
            return {"loss": float(value), "info": {}}

    ns = hpns.NameServer(run_id=run_id, host="127.0.0.1", port=0)
    host, port = ns.start()
    worker = TableWorker(run_id=run_id, nameserver=host, nameserver_port=port, logger=logging.getLogger("hpbandster"))
    worker.run(background=True)
    bohb = BOHB(configspace=problem.configspace(seed), run_id=run_id, nameserver=host, nameserver_port=port,
                min_budget=1, max_budget=problem.R, eta=problem.eta, ping_interval=1,
                logger=logging.getLogger("hpbandster"))
    try:
        while not run.full:
            bohb.run(n_iterations=1)
    finally:
        bohb.shutdown(shutdown_workers=True)
        ns.shutdown()
    return run


def run_ray(problem: Any, method: str, seed: int, budget: int) -> Run:
    """Ray Tune's ASHAScheduler, or HyperBandForBOHB with TuneBOHB, one trial at a time, the trial
    reporting every epoch and checkpointing so a paused trial resumes."""
    import ray
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler, HyperBandForBOHB

    run = Run(problem, budget)
    if not ray.is_initialized():
        ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False, logging_level=logging.ERROR,
                 configure_logging=False)

    class Charge(tune.Callback):
        def on_trial_result(self, iteration: int, trials: Any, trial: Any, result: Dict[str, Any], **info: Any) -> None:
            run.evaluate(dict(trial.config), int(result["epoch"]))

    class Spent(tune.Stopper):
        def __call__(self, trial_id: str, result: Dict[str, Any]) -> bool:
            return False

        def stop_all(self) -> bool:
            return run.full

    R = problem.R

    def trainable(config: Dict[str, Any]) -> None:
        import json as _json
        import tempfile as _tempfile

        start = 0
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                start = _json.loads(open(os.path.join(d, "state.json")).read())["epoch"]
        for epoch in range(start + 1, R + 1):
            with _tempfile.TemporaryDirectory() as d:
                with open(os.path.join(d, "state.json"), "w") as f:
                    f.write(_json.dumps({"epoch": epoch}))
                tune.report({"loss": problem.value(config, epoch), "epoch": epoch},
                            checkpoint=tune.Checkpoint.from_directory(d) if method == "ray_bohb" else None)

    if method == "ray_asha":
        scheduler = ASHAScheduler(time_attr="epoch", max_t=R, grace_period=1, reduction_factor=problem.eta)
        search_alg, space = None, problem.ray_space()
    else:
        from ray.tune.search.bohb import TuneBOHB

        scheduler = HyperBandForBOHB(time_attr="epoch", max_t=R, reduction_factor=problem.eta)
        search_alg, space = TuneBOHB(space=problem.configspace(seed), metric="loss", mode="min", seed=seed), None
    with tempfile.TemporaryDirectory(prefix="ray-") as out:
        tuner = tune.Tuner(
            trainable, param_space=space or {},
            tune_config=tune.TuneConfig(metric="loss", mode="min", scheduler=scheduler, search_alg=search_alg,
                                        num_samples=-1, max_concurrent_trials=1, reuse_actors=True),
            run_config=tune.RunConfig(storage_path=out, name=f"{method}-{seed}", stop=Spent(), callbacks=[Charge()],
                                      verbose=0, checkpoint_config=tune.CheckpointConfig(num_to_keep=1)))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            tuner.fit()
    return run


# --------------------------------------------------------------------------- the methods

METHODS: Dict[str, Tuple[str, Callable[..., Run], Optional[str]]] = {
    # name: (label, runner, the module it needs)
    "hpctune_hb": ("hpc-tune Hyperband (random)", run_hpctune, None),
    "hpctune_asha": ("hpc-tune ASHA (random)", run_hpctune, None),
    "hpctune_bohb": ("hpc-tune BOHB (hyperband + kde)", run_hpctune, None),
    "hpctune_asha_kde": ("hpc-tune ASHA + kde", run_hpctune, None),
    "hpctune_hb_model": ("hpc-tune Hyperband + model", run_hpctune, None),
    "hpctune_asha_model": ("hpc-tune ASHA + model", run_hpctune, None),
    "optuna_hb_tpe": ("Optuna TPE + HyperbandPruner", run_optuna, "optuna"),
    "optuna_sha_tpe": ("Optuna TPE + SuccessiveHalvingPruner", run_optuna, "optuna"),
    "smac_mf": ("SMAC3 MultiFidelityFacade", run_smac, "smac"),
    "dehb": ("DEHB", run_dehb, "dehb"),
    "hpbandster_bohb": ("HpBandSter BOHB", run_hpbandster, "hpbandster"),
    "ray_asha": ("Ray Tune ASHA", run_ray, "ray.tune"),
    "ray_bohb": ("Ray Tune BOHB (HyperBandForBOHB + TuneBOHB)", run_ray, "ray.tune.search.bohb"),
}
IN_MAIN_PROCESS = {"ray_asha", "ray_bohb"}  # Ray starts its own processes: not inside a forked pool worker


def unavailable(problem: Any, method: str) -> Optional[str]:
    """Why ``method`` cannot run here, or None."""
    _, _, module = METHODS[method]
    if module is None:
        try:
            Tuner.from_dict(hpctune_spec(problem, method), seed=0).ask()
        except Exception as exc:  # the algorithm or sampler is not in this checkout
            return f"not in this checkout of hpc-tune ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})"
        return None
    import importlib

    try:
        importlib.import_module(module)
    except Exception as exc:
        return f"`{module}` does not import ({type(exc).__name__}: {str(exc)[:80]})"
    if method == "ray_bohb":
        try:
            importlib.import_module("hpbandster")
        except ImportError:
            return "TuneBOHB needs hpbandster"
    return None


_PROBLEM: Any = None


def run_task(task: Tuple[str, int, int]) -> Dict[str, Any]:
    method, seed, budget = task
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    run = METHODS[method][1](_PROBLEM, method, seed, budget)
    wall = time.perf_counter() - t0
    return {"method": method, "seed": seed, "points": run.points, "evaluations": run.evaluations,
            "spent": run.spent, "wall_s": round(wall, 3), "cpu_s": round(time.process_time() - cpu0, 3),
            "optimiser_s": round(wall - run.objective_s, 3), "objective_cpu_s": round(run.objective_cpu_s, 3)}


def optimiser_cpu(run: Dict[str, Any]) -> float:
    """CPU seconds of a run's process outside the objective (the machine is shared: CPU, not
    wall). Runs recorded before the objective's CPU time was kept subtract its wall time,
    which load inflates."""
    objective = run.get("objective_cpu_s", run["wall_s"] - run["optimiser_s"])
    return max(0.0, run["cpu_s"] - objective)


def chosen_methods(problem: Any, methods_arg: str) -> Tuple[List[str], Dict[str, str]]:
    """The methods of a comma-separated ``--methods`` that can run on ``problem``, and why
    each of the others cannot; an unknown name ends the program with the names to choose from."""
    wanted = [m for m in methods_arg.split(",") if m]
    for m in wanted:
        if m not in METHODS:
            raise SystemExit(f"unknown method {m!r}; choose from {', '.join(METHODS)}")
    skipped = {m: why for m in wanted if (why := unavailable(problem, m))}
    return [m for m in wanted if m not in skipped], skipped


def run_all(problem: Any, methods: Sequence[str], seeds: Dict[str, int], budget: int, jobs: int,
            progress: bool = True, partial: Optional[Any] = None) -> List[Dict[str, Any]]:
    """Every (method, seed) run; each finished run is also appended to ``partial`` (JSON lines), so
    a run stopped before its end leaves what it finished (``--reuse`` reads it back)."""
    global _PROBLEM
    _PROBLEM = problem
    # seed-major order: seed 0 of every method, then seed 1, ... so that a run stopped at a deadline
    # leaves every method with about the same number of seeds (the slow ones first within a seed)
    slow = ("smac_mf", "hpctune_asha_model", "hpctune_hb_model", "hpbandster_bohb")
    pooled = [(m, s, budget) for s in range(max(seeds.values(), default=0)) for m in methods
              if m not in IN_MAIN_PROCESS and s < seeds[m]]
    pooled.sort(key=lambda t: (t[1], t[0] not in slow))
    main = [(m, s, budget) for s in range(max(seeds.values(), default=0)) for m in methods
            if m in IN_MAIN_PROCESS and s < seeds[m]]
    runs: List[Dict[str, Any]] = []
    t0 = time.perf_counter()
    lock = threading.Lock()

    def note(r: Dict[str, Any]) -> None:
        with lock:  # the pool's callbacks run in its result thread, Ray's runs in this one
            runs.append(r)
            if partial is not None:
                import json

                with open(partial, "a") as f:
                    f.write(json.dumps(r) + "\n")
            if progress:
                print(f"  {len(runs)}/{len(pooled) + len(main)} {r['method']} seed {r['seed']}: best "
                      f"{r['points'][-1][1] if r['points'] else float('nan'):.4f}, {r['wall_s']:.1f} s "
                      f"({time.perf_counter() - t0:.0f} s)", flush=True)

    pool = multiprocessing.get_context("fork").Pool(jobs) if jobs > 1 and pooled else None
    if pool is not None:
        for t in pooled:
            pool.apply_async(run_task, (t,), callback=note,
                             error_callback=lambda e, t=t: print(f"  {t[0]} seed {t[1]} FAILED: {e!r}", flush=True))
        pool.close()
    else:
        for t in pooled:
            note(run_task(t))
    for t in main:  # Ray Tune's runs, here while the pool works
        note(run_task(t))
    if main:
        import ray

        ray.shutdown()
    if pool is not None:
        pool.join()
    return runs


# ------------------------------------------------------------------------------ summary


def best_at(points: Sequence[Sequence[float]], spent: float) -> float:
    best = math.inf
    for e, v in points:
        if e > spent:
            break
        best = v
    return best


def reach(runs: Sequence[Dict[str, Any]], target: float) -> Optional[int]:
    """The least resource after which the median (over seeds) best score is <= target."""
    for e in sorted({int(e) for r in runs for e, _ in r["points"]}):
        if statistics.median(best_at(r["points"], e) for r in runs) <= target:
            return e
    return None


def summarise(problem: Any, methods: Sequence[str], runs: Sequence[Dict[str, Any]], multiples: Sequence[int],
              target: float, fmt: str) -> Dict[str, Any]:
    """Per method: median best score at each budget, resource to reach ``target``, seconds per run."""
    from tabulate import tabulate

    R = problem.R
    out: Dict[str, Any] = {"medians": {}, "means": {}, "reach": {}, "optimiser_s": {}, "seeds": {}, "scores": {}}
    rows = []
    for m in methods:
        rs = [r for r in runs if r["method"] == m]
        if not rs:
            continue
        scores = [[best_at(r["points"], k * R) for r in rs] for k in multiples]  # per budget, per seed
        med = [statistics.median(v) for v in scores]
        mean = [statistics.fmean(v) for v in scores]
        out["scores"][m] = scores
        e = reach(rs, target)
        opt = statistics.median(optimiser_cpu(r) for r in rs)
        out["medians"][m], out["means"][m], out["reach"][m], out["optimiser_s"][m] = med, mean, e, opt
        out["seeds"][m] = len(rs)
        rows.append([METHODS[m][0], len(rs), int(statistics.median(r["evaluations"] for r in rs))]
                    + [fmt.format(v) for v in med]
                    + [f"{e / R:.1f}" if e is not None else f"> {multiples[-1]}", f"{opt:.2f}"])
    headers = (["method", "seeds", "evaluations (median)"] + [f"{k} x R" for k in multiples]
               + [f"full budgets to {fmt.format(target)}", "optimiser CPU s / run (median)"])
    out["table"] = tabulate(rows, headers=headers, tablefmt="github")
    ratio_rows = []
    base = out["reach"].get("hpctune_hb")
    for m in methods:
        if m not in out["reach"]:
            continue
        e = out["reach"][m]
        ratio_rows.append([METHODS[m][0], f"{e / R:.1f}" if e is not None else f"> {multiples[-1]}",
                           f"{e / base:.2f}" if (e is not None and base) else "-"])
    out["reach_table"] = tabulate(ratio_rows, headers=["method", f"full budgets to {fmt.format(target)}",
                                                       "/ hpc-tune Hyperband's"], tablefmt="github")
    return out


def seed_noise(a: Sequence[float], b: Sequence[float]) -> str:
    """How far two methods' scores over seeds are told apart: the two-sided Mann-Whitney U
    test's p (a median a few seeds apart is often chance on these problems)."""
    from scipy.stats import mannwhitneyu

    finite_a, finite_b = [v for v in a if math.isfinite(v)], [v for v in b if math.isfinite(v)]
    if len(finite_a) < 3 or len(finite_b) < 3 or len(set(finite_a) | set(finite_b)) < 2:
        return ""
    return f"; Mann-Whitney p = {mannwhitneyu(finite_a, finite_b, alternative='two-sided').pvalue:.2f}"


def goals(s: Dict[str, Any], multiples: Sequence[int], problem_label: str, bohb_vs_hb: Sequence[int]) -> List[str]:
    """The issue's goals that this problem measures, met or missed by how much."""
    med, opt = s["medians"], s["optimiser_s"]
    idx = {k: i for i, k in enumerate(multiples)}
    lines: List[str] = []

    def cmp(a: str, b: str, ks: Sequence[int], strict: bool) -> List[str]:
        out = []
        for k in ks:
            x, y = med[a][idx[k]], med[b][idx[k]]
            ok = x < y if strict else x <= y
            out.append(f"{k} x R: {x:.4g} vs {y:.4g} ({'met' if ok else f'MISSED by {x - y:.4g}'}"
                       f"{seed_noise(s['scores'][a][idx[k]], s['scores'][b][idx[k]])})")
        return out

    if "hpctune_bohb" in med:
        if "hpctune_hb" in med and bohb_vs_hb:
            lines.append(f"{problem_label}: BOHB median below hpc-tune Hyperband's at "
                         + ", ".join(f"{k}" for k in bohb_vs_hb) + " x R: "
                         + "; ".join(cmp("hpctune_bohb", "hpctune_hb", bohb_vs_hb, True)))
        if "hpbandster_bohb" in med:
            lines.append(f"{problem_label}: BOHB at least as good as HpBandSter's BOHB at every budget: "
                         + "; ".join(cmp("hpctune_bohb", "hpbandster_bohb", multiples, False)))
    for m in ("hpctune_hb_model", "hpctune_asha_model"):
        if m in med and "smac_mf" in med:
            ks10 = [k for k in multiples if k in (10, 25)]
            lines.append(f"{problem_label}: {METHODS[m][0]} vs SMAC3 MF: at least as good at {multiples[-1]} x R: "
                         + "; ".join(cmp(m, "smac_mf", [multiples[-1]], False))
                         + "; better at " + ", ".join(str(k) for k in ks10) + " x R: "
                         + "; ".join(cmp(m, "smac_mf", ks10, True))
                         + f"; optimiser time per run {opt[m]:.1f} s vs {opt['smac_mf']:.1f} s = "
                         + f"{opt[m] / max(opt['smac_mf'], 1e-9):.3f} of SMAC3's (goal <= 0.10: "
                         + ("met" if opt[m] <= 0.1 * opt["smac_mf"] else "MISSED") + ")")
    return lines


def parse_seeds(text: str, methods: Sequence[str], default: int) -> Dict[str, int]:
    """``smac_mf=5,ray_asha=3`` -> seeds per method (the others get ``default``)."""
    seeds = {m: default for m in methods}
    for part in filter(None, text.split(",")):
        name, _, n = part.partition("=")
        if name not in METHODS:
            raise SystemExit(f"--seeds-of: unknown method {name!r}; choose from {', '.join(METHODS)}")
        if name in seeds:
            seeds[name] = min(default, int(n))
    return seeds


DEFAULT_PEER_SEEDS = "smac_mf=5,hpbandster_bohb=10,ray_asha=3,ray_bohb=3,hpctune_hb_model=10,hpctune_asha_model=10"


def common_arguments(ap: argparse.ArgumentParser, quick_help: str) -> argparse.ArgumentParser:
    """The command line every multi-fidelity benchmark takes; ``quick_help`` says what its --quick does."""
    from _common import RESULTS

    ap.add_argument("--quick", action="store_true", help=quick_help)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--seeds-of", default=DEFAULT_PEER_SEEDS,
                    help=f"fewer seeds for slow methods, as name=n,... (default {DEFAULT_PEER_SEEDS})")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--reuse", default=None,
                    help="FILE[,FILE]: reuse the runs of the methods found in these raw results JSON of earlier "
                         "full runs (the others run now)")
    ap.add_argument("--reuse-only", action="store_true", help="report the --reuse runs, run nothing")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--results-dir", default=str(RESULTS))
    return ap


def main(problem: Any, argv: Optional[Sequence[str]], *, script: str, section: str, intro: str, quick: bool,
         seeds: int, peer_seeds: str, jobs: int, methods_arg: str, multiples: Sequence[int], target: float,
         fmt: str, bohb_vs_hb: Sequence[int], problem_label: str, about: str, write_readme: bool,
         results_dir: Any, reuse: Optional[str] = None,
         reuse_only: bool = False) -> int:
    """Run the methods on ``problem``, print the tables, save the raw JSON, append to the README."""
    from _common import append_readme, command_line, machine, machine_line, now, save_json

    m_info = machine()
    t_start = time.perf_counter()
    methods, skipped = chosen_methods(problem, methods_arg)
    for m, why in skipped.items():
        print(f"skipped {m}: {why}", flush=True)
    seed_of = parse_seeds(peer_seeds, methods, seeds)
    budget = multiples[-1] * problem.R
    reused: List[Dict[str, Any]] = []
    reused_note = ""
    for path in filter(None, (reuse or "").split(",")):
        # runs of an earlier invocation (same problem, budget and seeds): scores are deterministic given
        # the seed and the code; only the optimiser seconds were measured under that run's load
        import json

        if path.endswith(".jsonl"):  # the runs a stopped invocation finished (its first line: its header)
            lines = [json.loads(x) for x in open(path) if x.strip()]
            earlier = dict(lines[0], runs=lines[1:])
        else:
            earlier = json.loads(open(path).read())
        if earlier["R"] != problem.R or earlier["multiples"][-1] != multiples[-1]:
            raise SystemExit(f"--reuse {path}: another R or budget")
        have = {r["method"] for r in reused}
        got = [r for r in earlier["runs"] if r["method"] in methods and r["method"] not in have]
        reused += got
        if got:
            reused_note += (f" Runs of {', '.join(sorted({r['method'] for r in got}))} reused from the run of "
                            f"{earlier['date']} (`{earlier['command']}`).")
    for m in {r["method"] for r in reused}:
        seed_of[m] = len([r for r in reused if r["method"] == m])
    import json
    from pathlib import Path as _Path

    stamp = now().replace(" ", "-").replace(":", "")
    partial = _Path(results_dir) / f"{script.rsplit('.', 1)[0]}-partial-{stamp}.jsonl"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_text(json.dumps({"date": now(), "command": command_line(script, argv), "R": problem.R,
                                   "multiples": list(multiples)}) + "\n")
    print(f"finished runs are appended to {partial}", flush=True)
    todo = [] if reuse_only else [m for m in methods if m not in {r["method"] for r in reused}]
    runs = reused + run_all(problem, todo, seed_of, budget, jobs, partial=partial)
    methods = [m for m in methods if any(r["method"] == m for r in runs)]
    s = summarise(problem, methods, runs, multiples, target, fmt)
    lines = goals(s, multiples, problem_label, bohb_vs_hb)
    wall = time.perf_counter() - t_start
    command = command_line(script, argv)
    fewer = [f"{METHODS[m][0]}: {n}" for m, n in seed_of.items() if n < seeds]
    text = (f"{now()} - `{command}` - {machine_line(m_info)}\n\n{about} R = {problem.R}, eta = {problem.eta}; "
            f"budgets in full-budget equivalents (k x R resource units, one configuration trained to R costs R); "
            f"{seeds} seeds" + (f" (fewer for: {'; '.join(fewer)}, to fit the shared 2-core machine)" if fewer else "")
            + f"; {jobs} processes; wall time {wall / 60:.1f} min." + reused_note
            + (f" Skipped: {'; '.join(f'{m} ({why})' for m, why in skipped.items())}." if skipped else "")
            + f"\n\nMedian over seeds of the best score after k x R:\n\n{s['table']}\n\n"
            f"Full budgets until the median best score reaches {fmt.format(target)}, against hpc-tune's Hyperband "
            f"in the same run:\n\n{s['reach_table']}\n\n" + ("\n".join(lines) + "\n" if lines else ""))
    print()
    print(text)
    name = script.rsplit(".", 1)[0]
    out = save_json(name, {"command": command, "date": now(), "machine": m_info, "R": problem.R, "eta": problem.eta,
                           "multiples": list(multiples), "target": target, "seeds": seed_of, "skipped": skipped,
                           "summary": {k: v for k, v in s.items() if not k.endswith("table") and k != "scores"},
                           "goals": lines,
                           "wall_s": wall, "runs": runs}, results_dir)
    print(f"raw results: {out}")
    if write_readme and not quick:
        append_readme(section, intro, text)
        print("appended to benchmarks/README.md")
    return 0
