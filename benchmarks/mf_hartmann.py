#!/usr/bin/env python
"""Multi-fidelity search on a problem no one here wrote: mf-prior-bench's MFHartmann6.

``mfpbench.get("mfh6_good")``: the 6-dimensional Hartmann function on [0, 1]^6 with a
fidelity z in 1..100 whose low values add a bias that flattens the function and a noise
that shrinks with z (the "good" preset: bias 2.5, noise 2.0; z = 100 is the exact
function, minimum -3.32237). Resource r in 1..R = 81 (eta = 3, as on digits) is queried at
z = round(100 r / R), so r = R is z = 100. The score is the simple regret
value + 3.32237 of a value told at r = R; a lower fidelity's value never counts as a
result (it is biased). Same methods, same cost rule as ``mf_digits.py`` (``benchmarks/_mf.py``).

    python benchmarks/mf_hartmann.py            # 20 seeds (fewer for slow peers, said in the table)
    python benchmarks/mf_hartmann.py --quick    # R = 9, 2 seeds, budgets 2 and 5 x R; README untouched
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, Optional, Sequence  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mf  # noqa: E402

PRESET = "mfh6_good"
PROBLEM_SEED = 1  # the benchmark's noise seed: the same function for every method and seed
OPTIMUM = -3.32237
TARGET = 0.1  # regret
MULTIPLES = [5, 10, 25, 100]
QUICK_MULTIPLES = [2, 5]
NAMES = [f"X_{i}" for i in range(6)]


class HartmannProblem:
    name = "mfh6"

    def __init__(self, R: int, eta: int):
        import mfpbench

        self.bench = mfpbench.get(PRESET, seed=PROBLEM_SEED)
        self.R, self.eta = R, eta
        self.counts_from = R  # only the exact function's values are results

    def matrix(self) -> Dict[str, Any]:
        return {n: {"uniform": [0.0, 1.0]} for n in NAMES}

    def canonical(self, params: Dict[str, Any]) -> Dict[str, Any]:
        return {n: float(params[n]) for n in NAMES}

    def value(self, params: Dict[str, Any], r: int) -> float:
        z = max(1, min(100, round(100 * r / self.R)))
        return float(self.bench.query(self.canonical(params), at=z).as_dict()["value"])

    def score(self, value: float) -> float:
        return value - OPTIMUM

    def configspace(self, seed: int) -> Any:
        from ConfigSpace import ConfigurationSpace, UniformFloatHyperparameter

        cs = ConfigurationSpace(seed=seed)
        cs.add([UniformFloatHyperparameter(n, 0.0, 1.0) for n in NAMES])
        return cs

    def optuna_params(self, trial: Any) -> Dict[str, Any]:
        return {n: trial.suggest_float(n, 0.0, 1.0) for n in NAMES}

    def ray_space(self) -> Dict[str, Any]:
        from ray import tune

        return {n: tune.uniform(0.0, 1.0) for n in NAMES}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    _mf.common_arguments(ap, quick_help="R = 9, 2 seeds, budgets 2 and 5 x R; README untouched")
    args = ap.parse_args(argv)
    try:
        problem = HartmannProblem(9 if args.quick else 81, 3)
    except ImportError:
        print("mf-prior-bench is not installed (pip install 'hpc-tune[bench]'): nothing to run")
        return 0 if args.quick else 1
    about = (f"mf-prior-bench `{PRESET}` (seed {PROBLEM_SEED}), resource r queried at z = round(100 r / R); "
             f"scores = simple regret at r = R (value + 3.32237).")
    return _mf.main(problem, argv, script="mf_hartmann.py", section=SECTION, intro=SECTION_INTRO, quick=args.quick,
                    seeds=2 if args.quick else args.seeds, peer_seeds=args.seeds_of, jobs=args.jobs,
                    methods_arg=args.methods, multiples=QUICK_MULTIPLES if args.quick else MULTIPLES,
                    target=TARGET, fmt="{:.4f}", bohb_vs_hb=[], problem_label="MFHartmann6", about=about,
                    write_readme=not args.no_readme, results_dir=Path(args.results_dir), reuse=args.reuse,
                    reuse_only=args.reuse_only)


SECTION = "mf_hartmann.py: the same methods on mf-prior-bench's MFHartmann6"
SECTION_INTRO = """
A multi-fidelity problem from a package (`mf-prior-bench`, preset `mfh6_good`): Hartmann6 with
a fidelity-dependent bias and noise; resource 1..81 mapped onto its fidelity 1..100; scores are
simple regrets of values told at the full resource. Same methods and cost rule as mf_digits.py.

    python benchmarks/mf_hartmann.py           # full run
    python benchmarks/mf_hartmann.py --quick   # smoke run, nothing appended here
"""


if __name__ == "__main__":
    sys.exit(main())
