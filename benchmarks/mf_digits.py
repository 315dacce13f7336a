#!/usr/bin/env python
"""Multi-fidelity search on the digits MLP: hpc-tune's ASHA, BOHB, samplers and Hyperband
against Optuna's pruners, SMAC3's multi-fidelity facade, DEHB, HpBandSter's BOHB and Ray Tune.

The task and its learning curves are those of ``hyperband_digits.py`` (an ``MLPClassifier``
trained once per cell of a binned lr x alpha x hidden x batch-size grid to R = 81 epochs,
the validation error after every epoch; the table is cached in benchmarks/results/), epochs
as the resource, eta = 3. Every method draws from the continuous space itself; see
``benchmarks/_mf.py`` for the common cost rule (each configuration resumes from its own
checkpoint) and what counts as a result (every value told). Scores are validation errors
(540 digits: 0.0019 = one digit). The target 2.92 % is the one of hyperband_digits.py.

    python benchmarks/mf_digits.py                     # 20 seeds (fewer for slow peers, said in the table)
    python benchmarks/mf_digits.py --quick             # R = 9, 12 cells, 2 seeds; README untouched
    python benchmarks/mf_digits.py --methods hpctune_hb,smac_mf --seeds 5
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # two worker processes on two cores: one thread each

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List, Optional, Sequence  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mf  # noqa: E402
import hyperband_digits as hd  # noqa: E402

TARGET = 0.0292
MULTIPLES = [5, 10, 25, 100]
QUICK_MULTIPLES = [2, 5]


class DigitsProblem:
    """Validation error of the digits MLP after r epochs, looked up in the trained table."""

    name = "digits"

    def __init__(self, cfg: Dict[str, Any], table: Dict[Any, List[float]]):
        self.cfg, self.table = cfg, table
        self.R, self.eta = cfg["R"], cfg["eta"]
        self.counts_from = 1  # every value told counts, as in hyperband_digits.py

    def matrix(self) -> Dict[str, Any]:
        return hd.matrix(self.cfg)

    def canonical(self, params: Dict[str, Any]) -> Dict[str, Any]:
        return {"lr": float(params["lr"]), "alpha": float(params["alpha"]), "hidden": int(params["hidden"]),
                "batch_size": int(params["batch_size"])}

    def value(self, params: Dict[str, Any], r: int) -> float:
        return self.table[hd.cell_of(self.canonical(params), self.cfg)][r - 1]

    def score(self, value: float) -> float:
        return value

    def configspace(self, seed: int) -> Any:
        from ConfigSpace import CategoricalHyperparameter, ConfigurationSpace, UniformFloatHyperparameter

        cs = ConfigurationSpace(seed=seed)
        cs.add([UniformFloatHyperparameter("lr", 10 ** hd.LR_LOG10[0], 10 ** hd.LR_LOG10[1], log=True),
                UniformFloatHyperparameter("alpha", 10 ** hd.ALPHA_LOG10[0], 10 ** hd.ALPHA_LOG10[1], log=True),
                CategoricalHyperparameter("hidden", list(self.cfg["hidden"])),
                CategoricalHyperparameter("batch_size", list(self.cfg["batch"]))])
        return cs

    def optuna_params(self, trial: Any) -> Dict[str, Any]:
        return {"lr": trial.suggest_float("lr", 10 ** hd.LR_LOG10[0], 10 ** hd.LR_LOG10[1], log=True),
                "alpha": trial.suggest_float("alpha", 10 ** hd.ALPHA_LOG10[0], 10 ** hd.ALPHA_LOG10[1], log=True),
                "hidden": trial.suggest_categorical("hidden", list(self.cfg["hidden"])),
                "batch_size": trial.suggest_categorical("batch_size", list(self.cfg["batch"]))}

    def ray_space(self) -> Dict[str, Any]:
        from ray import tune

        return {"lr": tune.loguniform(10 ** hd.LR_LOG10[0], 10 ** hd.LR_LOG10[1]),
                "alpha": tune.loguniform(10 ** hd.ALPHA_LOG10[0], 10 ** hd.ALPHA_LOG10[1]),
                "hidden": tune.choice(list(self.cfg["hidden"])), "batch_size": tune.choice(list(self.cfg["batch"]))}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _mf.common_arguments(ap, quick_help="R = 9, 12 cells, 2 seeds, budgets 2 and 5 x R; README untouched")
    args = ap.parse_args(argv)
    cfg = dict(hd.QUICK if args.quick else hd.FULL)
    seeds = 2 if args.quick else args.seeds
    results_dir = Path(args.results_dir)
    # the learning-curve table of hyperband_digits.py: trained once, then reused from benchmarks/results/
    table, info = hd.build_table(cfg, args.jobs, reuse=True, results_dir=results_dir)
    problem = DigitsProblem(cfg, table)
    about = (f"Digits MLP learning curves of hyperband_digits.py ({info['cells']} cells, best final error in the "
             f"table {info['oracle_final_error']:.4f}), scores = validation error.")
    return _mf.main(problem, argv, script="mf_digits.py", section=SECTION, intro=SECTION_INTRO, quick=args.quick,
                    seeds=seeds, peer_seeds=args.seeds_of, jobs=args.jobs, methods_arg=args.methods,
                    multiples=QUICK_MULTIPLES if args.quick else MULTIPLES, target=TARGET, fmt="{:.4f}",
                    bohb_vs_hb=[] if args.quick else [25, 100], problem_label="digits", about=about,
                    write_readme=not args.no_readme, results_dir=results_dir, reuse=args.reuse,
                    reuse_only=args.reuse_only)


SECTION = ("mf_digits.py: ASHA, BOHB and the samplers on the digits MLP against SMAC3, DEHB, HpBandSter, "
           "Optuna, Ray Tune")
SECTION_INTRO = """
The digits MLP of `hyperband_digits.py` (its learning-curve table of real training), epochs as
the resource, R = 81, eta = 3. Every method runs one trial at a time; each configuration resumes
from its own checkpoint (a peer that re-runs a configuration at a larger budget is charged only
the extra epochs); a method's best after B epochs is the lowest validation error it was told
within B epochs. Peers that are not installed are skipped and named. See `benchmarks/_mf.py`.

    python benchmarks/mf_digits.py           # full run
    python benchmarks/mf_digits.py --quick   # smoke run, nothing appended here
"""


if __name__ == "__main__":
    sys.exit(main())
