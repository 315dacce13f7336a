#!/usr/bin/env python
"""PBT on a real task whose best hyperparameters change during training: an MLP on digits
trained by SGD, PBT adjusting its learning rate and momentum between intervals.

``MLPClassifier`` (one hidden layer of 64, SGD, batch 64, ``partial_fit`` one epoch at a
time) on a stratified 60/20/20 train/validation/test split of scikit-learn's digits. A
checkpoint is the model object itself (deep-copied), so a trial resumes exactly where its
source stopped; the next interval's learning rate and momentum are set on the model's SGD
optimiser before training continues. Space: lr loguniform 1e-3..1, momentum uniform
0..0.99. Population 8, interval 3 epochs, 30 epochs per member (240 epochs per run).

* hpc-tune PBT (ask/tell, ``benchmarks/_pbt.py``: the checkpoint of ``resume_from`` copied,
  unneeded ones dropped), quantile 0.25, resample 0.25, factors 0.8 / 1.2 (the defaults);
* random search with the same total epochs: 8 configurations (hpc-tune's random search),
  each trained 30 epochs with fixed hyperparameters;
* Ray Tune's ``PopulationBasedTraining`` with the same population, interval, quantile,
  resample probability and space, if ``ray[tune]`` is installed (fewer seeds: it starts
  a Ray runtime per run).

Figure: the validation error of the best member after 30 epochs (the one each method would
pick), median over seeds, and that member's test error.

    python benchmarks/pbt_digits.py            # 20 seeds (Ray Tune: 3)
    python benchmarks/pbt_digits.py --quick    # population 4, 6 epochs, 2 seeds, no Ray; README untouched
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import logging  # noqa: E402
import math  # noqa: E402
import multiprocessing  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List, Optional, Sequence, Tuple  # noqa: E402

import numpy as np  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _pbt  # noqa: E402
from _common import RESULTS, append_readme, command_line, machine, machine_line, now, save_json  # noqa: E402

from hpc_tune.tuner import Tuner  # noqa: E402

FULL = {"population": 8, "interval": 3, "epochs": 30, "seeds": 20, "ray_seeds": 3}
QUICK = {"population": 4, "interval": 2, "epochs": 6, "seeds": 2, "ray_seeds": 0}
LR = (1e-3, 1.0)
MOMENTUM = (0.0, 0.99)

_DATA: Optional[Tuple[Any, ...]] = None


def data() -> Tuple[Any, ...]:
    global _DATA
    if _DATA is None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        x_tr, x_rest, y_tr, y_rest = train_test_split(x, y, test_size=0.4, random_state=0, stratify=y)
        x_va, x_te, y_va, y_te = train_test_split(x_rest, y_rest, test_size=0.5, random_state=0, stratify=y_rest)
        sc = StandardScaler().fit(x_tr)
        _DATA = (sc.transform(x_tr), y_tr, sc.transform(x_va), y_va, sc.transform(x_te), y_te, np.unique(y))
    return _DATA


def fresh(params: Dict[str, Any], seed: int = 0) -> Dict[str, Any]:
    from sklearn.neural_network import MLPClassifier

    model = MLPClassifier(hidden_layer_sizes=(64,), solver="sgd", batch_size=64, alpha=1e-4,
                          learning_rate_init=float(params["lr"]), momentum=float(params["momentum"]),
                          nesterovs_momentum=False, random_state=seed)
    return {"model": model, "epoch": 0}


def train(state: Dict[str, Any], params: Dict[str, Any], to_epoch: int) -> Tuple[Dict[str, Any], float, List]:
    """Continue the model to ``to_epoch`` epochs with ``params``; validation error after each epoch."""
    from sklearn.exceptions import ConvergenceWarning

    x_tr, y_tr, x_va, y_va, _, _, classes = data()
    model = state["model"]
    lr, mom = float(params["lr"]), float(params["momentum"])
    model.learning_rate_init, model.momentum = lr, mom
    opt = getattr(model, "_optimizer", None)
    if opt is not None:  # partial_fit keeps its SGD optimiser between calls: change it in place
        opt.learning_rate, opt.learning_rate_init, opt.momentum = lr, lr, mom
    log = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        warnings.simplefilter("ignore", RuntimeWarning)  # a diverging lr overflows: its error says so
        for epoch in range(state["epoch"] + 1, to_epoch + 1):
            model.partial_fit(x_tr, y_tr, classes=classes)
            log.append((epoch, error(model, x_va, y_va)))
    return {"model": model, "epoch": to_epoch}, log[-1][1] if log else math.inf, log


def error(model: Any, x: Any, y: Any) -> float:
    try:
        return round(1.0 - float(model.score(x, y)), 6)
    except ValueError:  # NaN weights after divergence
        return 1.0


def matrix() -> Dict[str, Any]:
    return {"lr": {"loguniform": [math.log(LR[0]), math.log(LR[1])]},
            "momentum": {"uniform": list(MOMENTUM)}}


def run_pbt(cfg: Dict[str, Any], seed: int) -> Dict[str, Any]:
    spec = {"hptuning": {"pbt": {"population_size": cfg["population"], "resource": {"name": "epochs", "type": "int"},
                                 "perturbation_interval": cfg["interval"], "max_resource": cfg["epochs"],
                                 "metric": {"name": "val_error", "optimization": "minimize"}},
                         "matrix": matrix()}}
    out = _pbt.drive(spec, seed, lambda p: fresh(p, seed), train)
    last = [t for t in out["trials"] if t["resource"] == cfg["epochs"]]
    best = min(last, key=lambda t: t["value"])
    _, _, _, _, x_te, y_te, _ = data()
    test = error(out["checkpoints"][best["trial"]]["model"], x_te, y_te)  # the member's final model, kept
    return {"val": best["value"], "test": test, "exploits": out["exploits"],
            "epochs": sum(len(t["log"]) for t in out["trials"]), "final_params": best["params"]}


def run_random(cfg: Dict[str, Any], seed: int) -> Dict[str, Any]:
    tuner = Tuner.from_dict({"hptuning": {"random_search": {"n_experiments": cfg["population"]},
                                          "matrix": matrix()}}, seed=seed)
    _, _, _, _, x_te, y_te, _ = data()
    results = []
    while (t := tuner.ask()) is not None:
        state, value, log = train(fresh(t.params, seed), t.params, cfg["epochs"])
        tuner.tell(t, value)
        results.append((value, error(state["model"], x_te, y_te), dict(t.params)))
    val, test, params = min(results, key=lambda r: r[0])
    return {"val": val, "test": test, "epochs": cfg["population"] * cfg["epochs"], "final_params": params}


def run_ray(cfg: Dict[str, Any], seed: int) -> Dict[str, Any]:
    import pickle
    import random

    import ray
    from ray import tune
    from ray.tune.schedulers import PopulationBasedTraining

    os.environ.setdefault("TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S", "0")
    if not ray.is_initialized():
        ray.init(num_cpus=cfg["population"], include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, configure_logging=False)
    E, T = cfg["epochs"], cfg["interval"]

    def trainable(config: Dict[str, Any]) -> None:
        ckpt = tune.get_checkpoint()
        if ckpt is not None:
            with ckpt.as_directory() as d:
                with open(os.path.join(d, "state.pkl"), "rb") as f:
                    state = pickle.load(f)
        else:
            state = fresh(config, seed)
        while state["epoch"] < E:
            to = min(E, state["epoch"] + 1)
            state, value, _ = train(state, config, to)
            x_te, y_te = data()[4], data()[5]
            metrics = {"val_error": value, "test_error": error(state["model"], x_te, y_te), "epoch": to}
            if to % T == 0 or to == E:
                with tempfile.TemporaryDirectory() as d:
                    with open(os.path.join(d, "state.pkl"), "wb") as f:
                        pickle.dump(state, f)
                    tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))
            else:
                tune.report(metrics)

    scheduler = PopulationBasedTraining(
        time_attr="epoch", perturbation_interval=T, quantile_fraction=0.25, resample_probability=0.25,
        perturbation_factors=(1.2, 0.8),
        hyperparam_mutations={"lr": tune.loguniform(*LR), "momentum": tune.uniform(*MOMENTUM)})
    random.seed(seed)  # Ray's PBT draws from the random module in this (the driver) process
    rng = np.random.default_rng(seed)
    with tempfile.TemporaryDirectory(prefix="ray-pbt-") as out:
        tuner = tune.Tuner(
            tune.with_resources(trainable, {"cpu": 1}),
            param_space={"lr": tune.loguniform(*LR), "momentum": tune.uniform(*MOMENTUM)},
            tune_config=tune.TuneConfig(metric="val_error", mode="min", scheduler=scheduler,
                                        num_samples=cfg["population"],
                                        search_alg=tune.search.BasicVariantGenerator(random_state=int(rng.integers(2**31)))),
            run_config=tune.RunConfig(storage_path=out, name=f"pbt-{seed}", stop={"epoch": E}, verbose=0))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grid = tuner.fit()
    finals = [r.metrics for r in grid if r.metrics and r.metrics.get("epoch") == E]
    best = min(finals, key=lambda m: m["val_error"])
    return {"val": best["val_error"], "test": best["test_error"], "epochs": None,
            "final_params": {k: best["config"][k] for k in ("lr", "momentum")} if "config" in best else {}}


METHODS = {"hpctune_pbt": ("hpc-tune PBT", run_pbt), "random": ("random search, same epochs (hpc-tune random)",
                                                                  run_random),
           "ray_pbt": ("Ray Tune PopulationBasedTraining", run_ray)}


def run_task(task: Tuple[str, Dict[str, Any], int]) -> Dict[str, Any]:
    method, cfg, seed = task
    t0 = time.perf_counter()
    out = METHODS[method][1](cfg, seed)
    out.update(method=method, seed=seed, seconds=round(time.perf_counter() - t0, 2))
    return out


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="population 4, 6 epochs, 2 seeds, no Ray; README untouched")
    ap.add_argument("--seeds", type=int, default=None)
    ap.add_argument("--ray-seeds", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--results-dir", default=str(RESULTS))
    args = ap.parse_args(argv)
    cfg = dict(QUICK if args.quick else FULL)
    if args.seeds:
        cfg["seeds"] = args.seeds
    if args.ray_seeds is not None:
        cfg["ray_seeds"] = args.ray_seeds
    skipped = {}
    if cfg["ray_seeds"]:
        try:
            import ray.tune  # noqa: F401
        except ImportError as exc:
            skipped["ray_pbt"] = f"ray[tune] does not import ({exc})"
            cfg["ray_seeds"] = 0
    m_info = machine()
    t0 = time.perf_counter()
    tasks = [(m, cfg, s) for m in ("hpctune_pbt", "random") for s in range(cfg["seeds"])]
    runs: List[Dict[str, Any]] = []
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            runs = list(pool.imap_unordered(run_task, tasks))
    else:
        runs = [run_task(t) for t in tasks]
    for s in range(cfg["ray_seeds"]):  # Ray runs its own processes: in this one, after the pool
        runs.append(run_task(("ray_pbt", cfg, s)))
    if cfg["ray_seeds"]:
        import ray

        ray.shutdown()

    from tabulate import tabulate

    rows, med = [], {}
    for m, (label, _) in METHODS.items():
        rs = [r for r in runs if r["method"] == m]
        if not rs:
            continue
        med[m] = statistics.median(r["val"] for r in rs)
        rows.append([label, len(rs), f"{med[m]:.4f}", f"{statistics.median(r['test'] for r in rs):.4f}",
                     f"{statistics.mean(r['val'] for r in rs):.4f}",
                     f"{statistics.median(r['seconds'] for r in rs):.1f}"])
    table = tabulate(rows, headers=["method", "seeds", "best member's validation error (median)",
                                    "its test error (median)", "validation error (mean)", "s / run (median)"],
                     tablefmt="github")
    goals = []
    if "hpctune_pbt" in med and "random" in med:
        d = med["hpctune_pbt"] - med["random"]
        goals.append(f"PBT vs random search with the same epochs: median {med['hpctune_pbt']:.4f} vs "
                     f"{med['random']:.4f} - goal lower: " + ("met" if d < 0 else f"MISSED by {d:.4f}"))
    if "hpctune_pbt" in med and "ray_pbt" in med:
        d = med["hpctune_pbt"] - med["ray_pbt"]
        goals.append(f"PBT vs Ray Tune's PBT: median {med['hpctune_pbt']:.4f} vs {med['ray_pbt']:.4f} (Ray: "
                     f"{cfg['ray_seeds']} seeds) - goal no worse: " + ("met" if d <= 0 else f"MISSED by {d:.4f}"))
    wall = time.perf_counter() - t0
    command = command_line("pbt_digits.py", argv)
    text = (f"{now()} - `{command}` - {machine_line(m_info)}\n\npopulation {cfg['population']}, interval "
            f"{cfg['interval']} epochs, {cfg['epochs']} epochs per member; {cfg['seeds']} seeds (Ray Tune: "
            f"{cfg['ray_seeds']}, to fit the shared machine)"
            + (f"; skipped: {skipped}" if skipped else "") + f"; wall time {wall / 60:.1f} min. Validation set: 360 "
            f"digits (0.0028 = one digit).\n\n{table}\n\n" + "\n".join(goals) + "\n")
    print(text)
    out = save_json("pbt_digits", {"command": command, "date": now(), "machine": m_info, "config": cfg,
                                   "medians": med, "goals": goals, "skipped": skipped, "runs": runs, "wall_s": wall},
                    Path(args.results_dir))
    print(f"raw results: {out}")
    if not (args.quick or args.no_readme):
        append_readme(SECTION, SECTION_INTRO, text)
        print("appended to benchmarks/README.md")
    return 0


SECTION = "pbt_digits.py: PBT on an SGD-trained MLP for digits against random search and Ray Tune's PBT"
SECTION_INTRO = """
`MLPClassifier` (64 hidden, SGD) on digits; PBT adjusts learning rate and momentum every 3 epochs
of 30, population 8; the checkpoint is the model itself, so a trial continues exactly where its
source stopped. Against random search with the same 240 epochs (8 configurations x 30 epochs) and
Ray Tune's PopulationBasedTraining with the same population, interval and space.

    python benchmarks/pbt_digits.py           # full run
    python benchmarks/pbt_digits.py --quick   # smoke run, nothing appended here
"""


if __name__ == "__main__":
    sys.exit(main())
