#!/usr/bin/env python
"""Which cells of the digits table each method of ``mf_digits.py`` trains.

The digits problem is a table: every configuration a method draws from the continuous space
is looked up in one cell of a binned lr x alpha x hidden x batch-size grid. Two draws in the
same cell give the same curve, yet each is charged its own epochs. This counts, per run of
100 x R: the distinct cells trained, the cells trained to R, and how many of the table's ten
best cells (by error at R) were trained to R. It is how mf_digits.py's BOHB result was
explained: a method whose proposals crowd around the best results so far spends its epochs
on fewer cells.

    python benchmarks/mf_digits_cells.py                       # hpc-tune's Hyperband samplers and HpBandSter
    python benchmarks/mf_digits_cells.py --methods hpctune_hb,hpctune_bohb --seeds 5
    python benchmarks/mf_digits_cells.py --quick               # R = 9, 12 cells, 2 seeds; README untouched
"""
from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # two worker processes on two cores: one thread each

import argparse  # noqa: E402
import multiprocessing  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any, Dict, List, Optional, Sequence, Set, Tuple  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _mf  # noqa: E402
import hyperband_digits as hd  # noqa: E402
from mf_digits import DigitsProblem  # noqa: E402

DEFAULT_METHODS = "hpctune_hb,hpctune_bohb,hpctune_hb_model,hpctune_asha,hpctune_asha_model,hpbandster_bohb"
TOP = 10  # the table's best cells by error at R


class TracedDigitsProblem(DigitsProblem):
    """The digits problem, keeping the (cell, epochs) of every evaluation charged to the run."""

    def __init__(self, cfg: Dict[str, Any], table: Dict[Any, List[float]]):
        super().__init__(cfg, table)
        self.trace: List[Tuple[Any, int]] = []

    def value(self, params: Dict[str, Any], r: int) -> float:
        self.trace.append((hd.cell_of(self.canonical(params), self.cfg), r))
        return super().value(params, r)


_PROBLEM: Optional[TracedDigitsProblem] = None


def cells_of_run(task: Tuple[str, int, int]) -> Dict[str, Any]:
    method, seed, budget = task
    assert _PROBLEM is not None
    _PROBLEM.trace = []
    _mf.METHODS[method][1](_PROBLEM, method, seed, budget)
    tried = {cell for cell, _ in _PROBLEM.trace}
    at_r = {cell for cell, r in _PROBLEM.trace if r >= _PROBLEM.R}
    return {"method": method, "seed": seed, "tried": len(tried), "at_r": len(at_r),
            "top_at_r": len(at_r & best_cells(_PROBLEM.table, _PROBLEM.R))}


def best_cells(table: Dict[Any, List[float]], R: int) -> Set[Any]:
    return {cell for cell, _ in sorted(table.items(), key=lambda kv: kv[1][R - 1])[:TOP]}


def main(argv: Optional[Sequence[str]] = None) -> int:
    global _PROBLEM
    from _common import append_readme, command_line, machine, machine_line, now, save_json
    from tabulate import tabulate

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--methods", default=DEFAULT_METHODS)
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--budget", type=int, default=100, help="full budgets per run (default 100)")
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--quick", action="store_true", help="R = 9, 12 cells, 2 seeds, 5 x R; README untouched")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--results-dir", default=None)
    args = ap.parse_args(argv)
    from _common import RESULTS

    cfg = dict(hd.QUICK if args.quick else hd.FULL)
    seeds, multiple = (2, 5) if args.quick else (args.seeds, args.budget)
    results_dir = Path(args.results_dir) if args.results_dir else RESULTS
    table, info = hd.build_table(cfg, args.jobs, reuse=True, results_dir=results_dir)
    _PROBLEM = TracedDigitsProblem(cfg, table)
    methods, skipped = _mf.chosen_methods(_PROBLEM, args.methods)
    tasks = [(m, seed, multiple * _PROBLEM.R) for m in methods for seed in range(seeds)]
    if args.jobs > 1:
        with multiprocessing.get_context("fork").Pool(args.jobs) as pool:
            runs = pool.map(cells_of_run, tasks, chunksize=1)
    else:  # no fork: a process with threads (pytest's, Ray's) may hold a lock a forked child waits on
        runs = [cells_of_run(t) for t in tasks]
    rows = []
    for m in methods:
        rs = [r for r in runs if r["method"] == m]
        rows.append([_mf.METHODS[m][0], len(rs)] + [statistics.median(r[k] for r in rs)
                                                    for k in ("tried", "at_r", "top_at_r")])
    text = (f"{now()} - `{command_line('mf_digits_cells.py', argv)}` - {machine_line(machine())}\n\n"
            f"The digits table of hyperband_digits.py ({info['cells']} cells, R = {_PROBLEM.R}); runs of "
            f"{multiple} x R, {seeds} seeds, medians over seeds."
            + (f" Skipped: {'; '.join(f'{m} ({why})' for m, why in skipped.items())}." if skipped else "")
            + "\n\n" + tabulate(rows, headers=["method", "seeds", "distinct cells trained", "cells trained to R",
                                               f"of the table's {TOP} best cells, trained to R"],
                                tablefmt="github") + "\n")
    print(text)
    out = save_json("mf_digits_cells", {"command": command_line("mf_digits_cells.py", argv), "date": now(),
                                        "cells": info["cells"], "R": _PROBLEM.R, "budget": multiple,
                                        "skipped": skipped, "runs": runs}, results_dir)
    print(f"raw results: {out}")
    if not (args.quick or args.no_readme):
        append_readme(SECTION, SECTION_INTRO, text)
        print("appended to benchmarks/README.md")
    return 0


SECTION = "mf_digits_cells.py: which cells of the digits table each method trains"
SECTION_INTRO = """
`python benchmarks/mf_digits_cells.py`: per run of mf_digits.py's digits problem, the distinct
table cells a method trains, those it trains to R, and how many of the table's ten best cells
(by error at R) it trains to R. A diagnostic for mf_digits.py's results (see its docstring).
"""


if __name__ == "__main__":
    sys.exit(main())
