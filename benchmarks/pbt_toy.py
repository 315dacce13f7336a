#!/usr/bin/env python
"""PBT on the toy problem of Jaderberg et al. 2017 (section 4.4 / figure 2): does exploitation
help a population ascend Q faster than the same population without it?

Two parameters theta = (theta0, theta1), start (0.9, 0.9); the objective is
Q(theta) = 1.2 - (theta0^2 + theta1^2), maximum 1.2 at 0. A member does not see Q's
gradient but that of a surrogate weighted by its hyperparameters h = (h0, h1):
Q^(theta | h) = 1.2 - (h0 theta0^2 + h1 theta1^2), one gradient-ascent step of size ETA per
step. A member is evaluated on Q itself at the end of each interval. h is drawn from
uniform [0, 1]^2 (the matrix); hpc-tune's PBT (quantile 0.25, resample 0.25, factors
0.8 / 1.2) exploits (copies the theta of a top member) and explores h.

Baseline: the SAME initial population (the PBT run's interval-0 draws) trained with its h
fixed for the same number of steps, no exploitation. Figure: steps until some member's Q
is within 0.01 of 1.2 (Q >= 1.19; a member's step count is its trained resource), median
over seeds; "not reached" when it takes more than max_resource steps.

    python benchmarks/pbt_toy.py            # populations 2 and 10, 20 seeds
    python benchmarks/pbt_toy.py --quick    # population 2, 3 seeds; README untouched
"""
from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _pbt  # noqa: E402
from _common import RESULTS, append_readme, command_line, machine, machine_line, now, save_json  # noqa: E402

ETA = 0.01  # step size of the surrogate's gradient ascent (our choice; the paper's figure does not depend on it)
THETA0 = (0.9, 0.9)
TARGET = 1.19  # within 0.01 of the maximum 1.2
INTERVAL = 4  # steps between two PBT decisions
MAX_STEPS = 400


def q(theta: np.ndarray) -> float:
    return float(1.2 - np.sum(theta ** 2))


def fresh(params: Dict[str, Any]) -> Dict[str, Any]:
    return {"theta": np.array(THETA0, dtype=float), "step": 0}


def train(state: Dict[str, Any], params: Dict[str, Any], to_step: int) -> Tuple[Dict[str, Any], float, List]:
    h = np.array([float(params["h0"]), float(params["h1"])])
    theta, log = state["theta"].copy(), []
    for step in range(state["step"] + 1, to_step + 1):
        theta = theta + ETA * (-2.0 * h * theta)  # ascend Q^(theta | h)
        log.append((step, q(theta)))
    return {"theta": theta, "step": to_step}, q(theta), log


def spec(population: int, max_steps: int) -> Dict[str, Any]:
    return {"hptuning": {"pbt": {"population_size": population, "resource": {"name": "steps", "type": "int"},
                                 "perturbation_interval": INTERVAL, "max_resource": max_steps,
                                 "metric": {"name": "Q", "optimization": "maximize"}},
                         "matrix": {"h0": {"uniform": [0.0, 1.0]}, "h1": {"uniform": [0.0, 1.0]}}}}


def first_step(logs: Sequence[Sequence[Tuple[int, float]]]) -> Optional[int]:
    return min((s for log in logs for s, v in log if v >= TARGET), default=None)


def run_seed(population: int, seed: int, max_steps: int) -> Dict[str, Any]:
    out = _pbt.drive(spec(population, max_steps), seed, fresh, train)
    pbt_reach = first_step([t["log"] for t in out["trials"]])
    alone = []
    for params in out["initial"]:  # the same population, h fixed, no exploitation
        _, _, log = train(fresh(params), params, max_steps)
        alone.append(log)
    return {"population": population, "seed": seed, "pbt": pbt_reach, "no_exploit": first_step(alone),
            "pbt_final_best": max(t["value"] for t in out["trials"]),
            "no_exploit_final_best": max(log[-1][1] for log in alone), "exploits": out["exploits"],
            "trials": len(out["trials"]), "checkpoints_peak": out["checkpoints_peak"]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="population 2, 3 seeds, 100 steps; README untouched")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--populations", default="2,10")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--results-dir", default=str(RESULTS))
    args = ap.parse_args(argv)
    pops = [2] if args.quick else [int(x) for x in args.populations.split(",") if x]
    seeds = 3 if args.quick else args.seeds
    max_steps = 100 if args.quick else MAX_STEPS
    m_info = machine()
    t0 = time.perf_counter()
    cases = [run_seed(p, s, max_steps) for p in pops for s in range(seeds)]

    from tabulate import tabulate

    def med(xs: List[Optional[int]]) -> float:
        return statistics.median(x if x is not None else math.inf for x in xs)

    rows, goals, summary = [], [], []
    for p in pops:
        cs = [c for c in cases if c["population"] == p]
        mp, mn = med([c["pbt"] for c in cs]), med([c["no_exploit"] for c in cs])
        fewer = sum(1 for c in cs if (c["pbt"] or math.inf) < (c["no_exploit"] or math.inf))
        rows.append([p, len(cs), f"{mp:.0f}", f"{mn:.0f}", f"{fewer}/{len(cs)}",
                     sum(1 for c in cs if c["pbt"] is None), sum(1 for c in cs if c["no_exploit"] is None),
                     f"{statistics.median(c['pbt_final_best'] for c in cs):.4f}",
                     f"{statistics.median(c['no_exploit_final_best'] for c in cs):.4f}",
                     int(statistics.median(c["exploits"] for c in cs))])
        summary.append({"population": p, "pbt_median": mp, "no_exploit_median": mn, "pbt_fewer": fewer})
        goals.append(f"population {p}: PBT reaches Q >= {TARGET} after {mp:.0f} steps (median), the same population "
                     f"without exploitation after {mn:.0f} - goal fewer steps: "
                     + ("met" if mp < mn else f"MISSED by {mp - mn:.0f} steps")
                     + f" ({mn / mp:.2f}x fewer)" * (mp < mn < math.inf))
    table = tabulate(rows, headers=["population", "seeds", "steps to Q >= 1.19, PBT (median)", "no exploitation",
                                    "seeds where PBT is sooner", "PBT not reached", "no-exploit not reached",
                                    "final best Q, PBT", "no exploitation", "exploit steps (median)"],
                     tablefmt="github")
    wall = time.perf_counter() - t0
    command = command_line("pbt_toy.py", argv)
    text = (f"{now()} - `{command}` - {machine_line(m_info)}\n\nstep size {ETA}, theta starts at {THETA0}, "
            f"interval {INTERVAL} steps, max_resource {max_steps} steps (inf = not reached within it); h from "
            f"uniform [0, 1]^2; wall time {wall:.1f} s.\n\n{table}\n\n" + "\n".join(goals) + "\n")
    print(text)
    out = save_json("pbt_toy", {"command": command, "date": now(), "machine": m_info, "summary": summary,
                                "goals": goals, "cases": cases, "wall_s": wall}, Path(args.results_dir))
    print(f"raw results: {out}")
    if not (args.quick or args.no_readme):
        append_readme(SECTION, SECTION_INTRO, text)
        print("appended to benchmarks/README.md")
    return 0


SECTION = "pbt_toy.py: PBT on the toy problem of Jaderberg et al. (2017)"
SECTION_INTRO = """
Q(theta) = 1.2 - (theta0^2 + theta1^2); each member ascends the surrogate
1.2 - (h0 theta0^2 + h1 theta1^2) with its hyperparameters h. hpc-tune's PBT (ask/tell, the
checkpoint of `resume_from` copied, unneeded checkpoints dropped) against the same initial
population trained without exploitation: steps until a member's Q is within 0.01 of 1.2.

    python benchmarks/pbt_toy.py           # full run
    python benchmarks/pbt_toy.py --quick   # smoke run, nothing appended here
"""


if __name__ == "__main__":
    sys.exit(main())
