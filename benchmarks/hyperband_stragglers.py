#!/usr/bin/env python
"""Hyperband with stragglers: idle slot time of hpc-tune's schedule against strict synchronous rungs.

A cluster with S slots runs one full Hyperband run (R = 81, eta = 3, ``resume: true`` so a
promotion from r' to r trains r - r' epochs) in a discrete-event simulation. Trial durations
are heavy-tailed: ``epochs x m`` with a per-trial multiplier ``m`` drawn from lognormal(0, sigma)
or Pareto(alpha) (scaled to mean 1), deterministic per (bracket, rung, configuration) and seed,
so both schedulers see the same duration for the same trial.

* ``hpc-tune``: ``hpc_tune.search.hyperband.suggest`` (a pure function of the history) is
  called with ``n = free slots`` at time 0 and whenever slots free; a slot frees when its
  trial's simulated duration ends. Its rule: rungs of different brackets may run at the same
  time, so a bracket waiting for a straggler does not block the next one.
* ``synchronous``: one bracket at a time, every rung a barrier (as Polyaxon does): the rung's
  trials are queued on the S slots; the best n_{i+1} are promoted when the last one ends; the
  next bracket starts when the previous one's last rung has ended. Implemented here.

Both run the SAME trials: the fresh configurations are the ones hpc-tune's Hyperband drew
(keyed by bracket and configuration number), and a configuration's value at r epochs is a
deterministic synthetic learning curve ``a + b * r^-c`` (a, b, c from the configuration), so
promotions are the same; the benchmark checks that the two sets of trials are identical.

Idle fraction = 1 - busy slot time / (S x makespan). Busy time is the same for both, so
the idle time saved comes from the shorter makespan. Lower bound on the makespan:
max(busy / S, the longest bracket: the sum over its rungs of each rung's longest trial), for any
scheduler that keeps Hyperband's rule that a rung is ranked once all its trials have ended.

    python benchmarks/hyperband_stragglers.py          # S = 4, 16, 64; 3 distributions; 20 seeds
    python benchmarks/hyperband_stragglers.py --quick  # R = 27, S = 4, 16; 3 seeds; README untouched
"""
from __future__ import annotations

import argparse
import hashlib
import heapq
import math
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, append_readme, command_line, machine, machine_line, now, save_json  # noqa: E402

from hpc_tune.search.base import History, TrialRecord, TrialState  # noqa: E402
from hpc_tune.search.hyperband import brackets, suggest  # noqa: E402
from hpc_tune.space import params_key  # noqa: E402
from hpc_tune.spec import spec_from_dict  # noqa: E402

Key = Tuple[int, int, int]  # (bracket s, rung i, configuration j)

DISTRIBUTIONS = {
    "none": "no stragglers (m = 1)",
    "lognormal1": "lognormal sigma = 1",
    "pareto1.5": "Pareto alpha = 1.5",
}


MATRIX = {"lr": {"loguniform": [-9.2, -2.3]}, "alpha": {"loguniform": [-11.5, -2.3]},
          "hidden": {"values": [16, 32, 64, 128]}}


def make_spec(R: int, eta: int) -> Any:
    return spec_from_dict({"hptuning": {
        "hyperband": {"max_iter": R, "eta": eta, "resource": {"name": "epochs", "type": "int"},
                      "metric": {"name": "loss", "optimization": "minimize"}, "resume": True},
        "matrix": MATRIX}})


def make_asha_spec(R: int, eta: int, n_configs: int) -> Any:
    return spec_from_dict({"hptuning": {
        # the schedule is measured, against Hyperband's random draws: the same sampler
        "asha": {"min_resource": 1, "max_resource": R, "eta": eta, "n_experiments": n_configs, "sampler": "random",
                 "resource": {"name": "epochs", "type": "int"},
                 "metric": {"name": "loss", "optimization": "minimize"}, "resume": True},
        "matrix": MATRIX}})


def _unit_hash(*parts: Any) -> np.random.Generator:
    digest = hashlib.sha256(repr(parts).encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def value(params: Dict[str, Any], r: float) -> float:
    """A deterministic learning curve per configuration: a + b * r^-c."""
    rng = _unit_hash("curve", params_key(params))
    a, b, c = rng.uniform(0.02, 0.3), rng.uniform(0.1, 1.0), rng.uniform(0.3, 1.0)
    return float(a + b * r ** (-c))


def multiplier(dist: str, seed: int, key: Key) -> float:
    if dist == "none":
        return 1.0
    rng = _unit_hash("duration", seed, key)
    if dist == "lognormal1":
        return float(rng.lognormal(0.0, 1.0) / math.exp(0.5))  # mean 1
    if dist == "pareto1.5":
        alpha = 1.5
        return float((rng.pareto(alpha) + 1.0) * (alpha - 1) / alpha)  # classical Pareto, x_m scaled to mean 1
    raise ValueError(dist)


class Durations:
    def __init__(self, dist: str, seed: int, rung_resources: Dict[Tuple[int, int], int]):
        self.dist, self.seed, self.res = dist, seed, rung_resources

    def epochs(self, key: Key) -> int:
        s, i, _ = key
        return self.res[(s, i)] - (self.res[(s, i - 1)] if i > 0 else 0)  # resume: true

    def __call__(self, key: Key) -> float:
        return self.epochs(key) * multiplier(self.dist, self.seed, key)


def simulate_hpctune(spec: Any, slots: int, durations: Durations, hb_seed: int) -> Dict[str, Any]:
    """Discrete-event simulation driving hpc-tune's ``hyperband.suggest`` with n = free slots."""
    space, config = spec.space, spec.algorithm
    trials: List[TrialRecord] = []
    running: List[Tuple[float, int]] = []  # (end time, trial id)
    key_of: Dict[int, Key] = {}
    t, free, exhausted, busy, calls = 0.0, slots, False, 0.0, 0
    fresh: Dict[Tuple[int, int], Dict[str, Any]] = {}
    ends: List[Tuple[float, float]] = []  # (end time, value) of each trial, in end order
    while True:
        if free > 0 and not exhausted:
            result = suggest(space, config, History.of(trials), hb_seed, free)
            calls += 1
            exhausted = result.exhausted
            for sug in result.suggestions:
                tid = len(trials)
                key = (sug.meta["bracket"], sug.meta["rung"], sug.meta["config"])
                trials.append(TrialRecord(tid, dict(sug.params), TrialState.RUNNING, resource=sug.resource,
                                          meta=dict(sug.meta)))
                key_of[tid] = key
                if key[1] == 0:
                    fresh[(key[0], key[2])] = dict(sug.params)
                d = durations(key)
                busy += d
                heapq.heappush(running, (t + d, tid))
                free -= 1
        if not running:
            if not exhausted:
                raise RuntimeError("hyperband.suggest returned nothing with no trial running")
            break
        t, tid = heapq.heappop(running)
        done = [tid]
        while running and running[0][0] == t:
            done.append(heapq.heappop(running)[1])
        for tid in done:
            rec = trials[tid]
            trials[tid] = replace(rec, state=TrialState.COMPLETED, value=value(rec.params, float(rec.resource)))
            ends.append((t, trials[tid].value))
            free += 1
    return {"makespan": t, "busy": busy, "keys": sorted(key_of.values()), "fresh": fresh, "suggest_calls": calls,
            "trials": len(trials), "ends": ends}


def simulate_sync(spec: Any, slots: int, durations: Durations,
                  fresh: Dict[Tuple[int, int], Dict[str, Any]]) -> Dict[str, Any]:
    """One bracket at a time, every rung a barrier; the rung's trials queue on the slots."""
    t, busy = 0.0, 0.0
    keys: List[Key] = []
    done: List[Tuple[float, float]] = []  # (end time, value) of each trial
    for b in brackets(spec.algorithm):
        members = list(range(b.n_configs))
        for i, rung in enumerate(b.rungs):
            ends = [t] * slots  # a heap of the slots' free times, all free at the barrier
            for j in members:  # FIFO onto the first free slot
                start = heapq.heappop(ends)
                d = durations((b.s, i, j))
                busy += d
                heapq.heappush(ends, start + d)
                keys.append((b.s, i, j))
                done.append((start + d, value(fresh[(b.s, j)], float(rung.resource))))
            t = max(ends)  # the barrier: the rung's last trial
            if i + 1 < len(b.rungs):
                ranked = sorted(members, key=lambda j: (value(fresh[(b.s, j)], float(rung.resource)), j))
                members = sorted(ranked[: b.rungs[i + 1].n])
    return {"makespan": t, "busy": busy, "keys": sorted(keys), "ends": sorted(done)}


def first_reach(ends: Sequence[Tuple[float, float]], target: float) -> Optional[float]:
    """The first end time of a trial whose value is <= target."""
    return min((t for t, v in ends if v <= target), default=None)


def simulate_asha(spec: Any, slots: int, dist: str, seed: int, target: float, horizon: float) -> Dict[str, Any]:
    """hpc-tune's ``asha.suggest`` (promotion mode, resume) with n = free slots whenever slots free,
    until a trial's value is <= ``target`` (the synchronous run's final best), the study ends or
    ``horizon``. Durations: epochs trained since the rung below x the same multiplier law, keyed
    ("asha", rung, configuration). Idle = 1 - busy slot time / (slots x that time)."""
    from hpc_tune.search import asha

    ladder_ = [int(r) for r in asha.ladder(spec.algorithm)]
    trials: List[TrialRecord] = []
    running: List[Tuple[float, int, float]] = []  # (end, trial id, start)
    t, free, busy, reach, calls = 0.0, slots, 0.0, None, 0
    exhausted = False
    while True:
        if free > 0 and not exhausted:
            result = asha.suggest(spec.space, spec.algorithm, History.of(trials), seed, free)
            calls += 1
            exhausted = result.exhausted
            for sug in result.suggestions:
                k, j = sug.meta["rung"], sug.meta["config"]
                d = (ladder_[k] - (ladder_[k - 1] if k else 0)) * multiplier(dist, seed, ("asha", k, j))
                trials.append(TrialRecord(len(trials), dict(sug.params), TrialState.RUNNING, resource=sug.resource,
                                          meta=dict(sug.meta)))
                heapq.heappush(running, (t + d, len(trials) - 1, t))
                free -= 1
        if not running:
            break
        end, tid, start = heapq.heappop(running)
        if end > horizon:
            t = horizon
            heapq.heappush(running, (end, tid, start))
            break
        t = end
        busy += end - start
        rec = trials[tid]
        v = value(rec.params, float(rec.resource))
        trials[tid] = replace(rec, state=TrialState.COMPLETED, value=v)
        free += 1
        if v <= target:
            reach = t
            break
    busy += sum(min(t, end) - start for end, _, start in running if start < t)  # the running trials' share
    return {"reach": reach, "stop": t, "idle": max(0.0, 1.0 - busy / (slots * t)) if t > 0 else 0.0,
            "trials": len(trials), "suggest_calls": calls, "max_rung": max((r.meta["rung"] for r in trials), default=0)}


def lower_bound(keys: Sequence[Key], durations: Durations, busy: float, slots: int) -> float:
    """No schedule that keeps Hyperband's rule (a rung is ranked when all its trials have ended)
    ends these trials on ``slots`` slots before max(busy / slots, for each bracket the sum over its
    rungs of the rung's longest trial)."""
    longest: Dict[Tuple[int, int], float] = {}
    for key in keys:
        longest[key[:2]] = max(longest.get(key[:2], 0.0), durations(key))
    per_bracket: Dict[int, float] = {}
    for (s, _), d in longest.items():
        per_bracket[s] = per_bracket.get(s, 0.0) + d
    return max(busy / slots, max(per_bracket.values()))


def run_case(spec: Any, slots: int, dist: str, seed: int, res: Dict[Tuple[int, int], int],
             asha_spec: Any = None) -> Dict[str, Any]:
    durations = Durations(dist, seed, res)
    hp = simulate_hpctune(spec, slots, durations, hb_seed=seed)
    sy = simulate_sync(spec, slots, durations, hp["fresh"])
    if hp["keys"] != sy["keys"]:
        raise AssertionError("the two schedulers ran different trials: promotions differ")
    assert abs(hp["busy"] - sy["busy"]) < 1e-6 * max(1.0, hp["busy"])
    busy = hp["busy"]
    lb = lower_bound(hp["keys"], durations, busy, slots)

    def idle(makespan: float) -> float:
        return 1.0 - busy / (slots * makespan)

    case = {"slots": slots, "dist": dist, "seed": seed, "trials": hp["trials"], "busy": busy,
            "makespan_hpctune": hp["makespan"], "makespan_sync": sy["makespan"], "makespan_lower_bound": lb,
            "idle_hpctune": idle(hp["makespan"]), "idle_sync": idle(sy["makespan"]), "idle_lower_bound": idle(lb),
            "suggest_calls": hp["suggest_calls"]}
    if asha_spec is not None:
        # the synchronous run's final best: when each scheduler first reaches it
        best = min(v for _, v in sy["ends"])
        a = simulate_asha(asha_spec, slots, dist, seed, best, horizon=2 * sy["makespan"])
        case.update(sync_best=best, reach_sync=first_reach(sy["ends"], best),
                    reach_hpctune=first_reach(hp["ends"], best), reach_asha=a["reach"], asha_stop=a["stop"],
                    idle_asha=a["idle"], asha_trials=a["trials"], asha_max_rung=a["max_rung"])
    return case


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true", help="R = 27, S = 4 and 16, 3 seeds; README untouched")
    ap.add_argument("--R", type=int, default=81)
    ap.add_argument("--eta", type=int, default=3)
    ap.add_argument("--slots", default="4,16,64")
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--dists", default=",".join(DISTRIBUTIONS))
    ap.add_argument("--asha-dists", default="lognormal1,pareto1.5",
                    help="distributions on which ASHA runs too ('' for none)")
    ap.add_argument("--asha-configs", type=int, default=10,
                    help="ASHA's n_experiments, in multiples of one Hyperband run's configurations (default 10)")
    ap.add_argument("--no-readme", action="store_true")
    ap.add_argument("--results-dir", default=str(RESULTS))
    args = ap.parse_args(argv)
    if args.quick:
        args.R, args.slots, args.seeds = 27, "4,16", 3
    slot_list = [int(x) for x in args.slots.split(",") if x]
    dists = [d for d in args.dists.split(",") if d]
    for d in dists:
        if d not in DISTRIBUTIONS:
            ap.error(f"unknown distribution {d!r}; choose from {', '.join(DISTRIBUTIONS)}")
    m_info = machine()
    t0 = time.perf_counter()
    spec = make_spec(args.R, args.eta)
    res = {(b.s, i): int(r.resource) for b in brackets(spec.algorithm) for i, r in enumerate(b.rungs)}
    hb_configs = sum(b.n_configs for b in brackets(spec.algorithm))
    asha_dists = [d for d in args.asha_dists.split(",") if d in dists]
    asha_spec = make_asha_spec(args.R, args.eta, args.asha_configs * hb_configs)
    cases = [run_case(spec, S, d, seed, res, asha_spec if d in asha_dists else None)
             for d in dists for S in slot_list for seed in range(args.seeds)]

    from tabulate import tabulate

    rows, summary, goals = [], [], []
    for d in dists:
        for S in slot_list:
            cs = [c for c in cases if c["dist"] == d and c["slots"] == S]
            ih = statistics.median(c["idle_hpctune"] for c in cs)
            isy = statistics.median(c["idle_sync"] for c in cs)
            # the reduction per seed, then its median (pairs: same durations, same trials)
            red = statistics.median((c["idle_sync"] - c["idle_hpctune"]) / c["idle_sync"] if c["idle_sync"] > 0
                                    else 0.0 for c in cs)
            mh = statistics.median(c["makespan_hpctune"] for c in cs)
            ms = statistics.median(c["makespan_sync"] for c in cs)
            lb = statistics.median(c["makespan_lower_bound"] for c in cs)
            ilb = statistics.median(c["idle_lower_bound"] for c in cs)
            # the most any scheduler keeping Hyperband's rung rule could save, per seed
            best_red = statistics.median((c["idle_sync"] - c["idle_lower_bound"]) / c["idle_sync"]
                                         if c["idle_sync"] > 0 else 0.0 for c in cs)
            speed = statistics.median(c["makespan_sync"] / c["makespan_hpctune"] for c in cs)
            worst = min((c["idle_sync"] - c["idle_hpctune"]) / c["idle_sync"] if c["idle_sync"] > 0 else 0.0
                        for c in cs)
            rows.append([DISTRIBUTIONS[d], S, f"{isy:.1%}", f"{ih:.1%}", f"{ilb:.1%}", f"{red:.1%}",
                         f"{worst:.1%}", f"{best_red:.1%}", f"{ms:.0f}", f"{mh:.0f}", f"{lb:.0f}", f"{speed:.2f}x"])
            summary.append({"dist": d, "slots": S, "idle_sync": isy, "idle_hpctune": ih, "idle_reduction": red,
                            "idle_reduction_worst_seed": worst, "makespan_sync": ms, "makespan_hpctune": mh,
                            "makespan_ratio": speed, "makespan_lower_bound": lb, "idle_lower_bound": ilb,
                            "idle_reduction_possible": best_red})
            if d != "none":
                ok = red >= 0.30
                goals.append(f"{DISTRIBUTIONS[d]}, S = {S}: idle time {red:.1%} lower than synchronous rungs "
                             f"(median over seeds; worst seed {worst:.1%}) - goal >= 30 %: "
                             + ("met" if ok else f"MISSED by {0.30 - red:.1%} points; no schedule that ranks a rung "
                                               f"only when all its trials have ended could save more than "
                                               f"{best_red:.1%} here (lower bound)"))
    asha_rows, asha_goals, asha_summary = [], [], []
    for d in asha_dists:
        for S in slot_list:
            cs = [c for c in cases if c["dist"] == d and c["slots"] == S]

            def frac(key: str, cs: List[Dict[str, Any]] = cs) -> List[float]:
                # time to reach / the synchronous makespan; inf: not reached
                return [c[key] / c["makespan_sync"] if c[key] is not None else math.inf for c in cs]

            fa, fh, fs = frac("reach_asha"), frac("reach_hpctune"), frac("reach_sync")
            ia = statistics.median(c["idle_asha"] for c in cs)
            ma, mh, ms = statistics.median(fa), statistics.median(fh), statistics.median(fs)
            reached = sum(1 for x in fa if x < math.inf)
            asha_rows.append([DISTRIBUTIONS[d], S, f"{ms:.2f}", f"{mh:.2f}", f"{ma:.2f}" if ma < math.inf else "not",
                              f"{reached}/{len(cs)}", f"{statistics.median(c['idle_sync'] for c in cs):.1%}",
                              f"{statistics.median(c['idle_hpctune'] for c in cs):.1%}", f"{ia:.1%}",
                              int(statistics.median(c["asha_trials"] for c in cs))])
            asha_summary.append({"dist": d, "slots": S, "reach_sync": ms, "reach_hpctune": mh, "reach_asha": ma,
                                 "asha_reached": reached, "idle_asha": ia})
            if S >= 16:
                ok_t, ok_i = ma <= 0.5, ia < 0.10
                asha_goals.append(
                    f"ASHA, {DISTRIBUTIONS[d]}, S = {S}: the synchronous run's final best after {ma:.2f} of its wall "
                    f"time (median; {reached}/{len(cs)} seeds reach it) - goal <= 0.50: "
                    + ("met" if ok_t else (f"MISSED by {ma - 0.5:.2f}" if ma < math.inf else "MISSED (not reached)"))
                    + f"; idle {ia:.1%} - goal < 10 %: " + ("met" if ok_i else f"MISSED by {ia - 0.10:.1%} points"))
    wall = time.perf_counter() - t0
    table = tabulate(rows, headers=["trial-time multiplier", "S", "idle sync", "idle hpc-tune", "idle bound",
                                    "idle reduction", "worst seed", "reduction bound", "makespan sync",
                                    "makespan hpc-tune", "makespan bound", "sync / hpc-tune"], tablefmt="github")
    command = command_line("hyperband_stragglers.py", argv)
    n_trials = cases[0]["trials"]
    head = (f"{now()} - `{command}` - {machine_line(m_info)}\n\n"
            f"One Hyperband run, R = {args.R}, eta = {args.eta}, resume: true ({n_trials} trials, the same trials "
            f"and promotions in both schedulers, checked); trial duration = epochs trained x multiplier; "
            f"{args.seeds} seeds per row (durations and configurations); medians over seeds. Times in epochs "
            f"of a multiplier-1 trial. Simulation wall time {wall:.1f} s.")
    text = f"{head}\n\n{table}\n\n" + "\n".join(goals) + "\n"
    if asha_rows:
        asha_table = tabulate(asha_rows, headers=["trial-time multiplier", "S", "sync reaches its best",
                                                  "hpc-tune Hyperband", "ASHA", "ASHA seeds reaching it",
                                                  "idle sync", "idle hpc-tune", "idle ASHA", "ASHA trials"],
                              tablefmt="github")
        text += (f"\nASHA (hpc-tune's `asha.suggest`, promotion mode, resume, min_resource 1, max_resource "
                 f"{args.R}, eta {args.eta}, n_experiments {args.asha_configs * hb_configs} = "
                 f"{args.asha_configs} x one "
                 f"Hyperband run's {hb_configs} configurations; its own random configurations, the same learning "
                 f"curves and duration law). Time until a trial's value is at most the synchronous run's final best, "
                 f"as a fraction of the synchronous run's wall time (median over seeds; ASHA stops there, or at "
                 f"twice the synchronous wall time). ASHA's idle fraction is over [0, its stop]:\n\n"
                 f"{asha_table}\n\n" + "\n".join(asha_goals) + "\n")
    print(text)
    out = save_json("hyperband_stragglers", {"command": command, "date": now(), "machine": m_info,
                                             "args": vars(args), "summary": summary, "goals": goals,
                                             "asha_summary": asha_summary, "asha_goals": asha_goals,
                                             "cases": cases, "wall_s": wall}, Path(args.results_dir))
    print(f"raw results: {out}")
    if not (args.quick or args.no_readme):
        append_readme(SECTION, SECTION_INTRO, text)
        print("appended to benchmarks/README.md")
    return 0


SECTION = "hyperband_stragglers.py: Hyperband's idle slot time with heavy-tailed trial times"
SECTION_INTRO = """
A discrete-event simulation of S slots running one Hyperband run (R = 81, eta = 3) with
heavy-tailed trial times: hpc-tune's `hyperband.suggest` called with n = free slots whenever a
slot frees, against strict synchronous rungs (one bracket at a time, every rung a barrier, as
Polyaxon does), with the same trials, promotions and durations. Idle fraction = 1 - busy slot
time / (S x makespan). Deterministic (seeded), so counts and ratios repeat exactly.

    python benchmarks/hyperband_stragglers.py          # full run
    python benchmarks/hyperband_stragglers.py --quick  # smoke run, nothing appended here
"""


if __name__ == "__main__":
    sys.exit(main())
