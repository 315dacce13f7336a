"""What a study would run, without running it (``hpc-tune plan``)."""
from __future__ import annotations

from typing import Any, Dict, List

from tabulate import tabulate

from .spec import Spec
from .spec.model import BayesConfig, HyperbandConfig, HyperoptConfig, IterativeConfig
from .spec.render import READINGS
from .tuner import Tuner

ALGORITHM_NAMES = {"grid": "grid", "random": "random", "mapping": "mapping", "hyperband": "hyperband",
                   "bayes": "bayes", "hyperopt": "hyperopt", "iterative": "iterative"}


def make_plan(spec: Spec, seed: int) -> Dict[str, Any]:
    """The plan as one JSON-ready object (``hpc-tune plan --json``)."""
    algo = spec.algorithm
    out: Dict[str, Any] = {
        "file": spec.path,
        "generation": spec.generation,
        "algorithm": algo.kind,
        "parameters": {name: p.kind for name, p in spec.space.items()},
        "metric": None if spec.metric is None else {"name": spec.metric.name,
                                                    "optimization": spec.metric.optimization},
        "concurrency": spec.concurrency,
        "seed": seed,
        "gpus_per_trial": spec.slurm.gpus,
        "command": None if spec.run.cmd is None else str(spec.run.cmd),
        "command_reading": getattr(spec.run.cmd, "reading", None),
    }
    notes: List[str] = []
    if isinstance(algo, HyperbandConfig):
        from .search.hyperband import brackets

        out["resource"] = {"name": algo.resource.name, "type": algo.resource.type, "max_iter": algo.max_iter,
                           "eta": algo.eta}
        out["brackets"] = [b.to_dict() for b in brackets(algo)]
        out["n_trials"] = sum(r["n"] for b in out["brackets"] for r in b["rungs"])
    elif isinstance(algo, BayesConfig):
        out["n_initial_trials"] = algo.n_initial_trials
        out["n_iterations"] = algo.n_iterations
        out["n_trials"] = algo.n_initial_trials + algo.n_iterations
    elif isinstance(algo, (HyperoptConfig, IterativeConfig)):
        out["n_trials"] = algo.n_trials
        if isinstance(algo, HyperoptConfig):
            out["hyperopt_algorithm"] = algo.algorithm
    else:
        tuner = Tuner(spec, seed)
        trials = tuner.ask_many(10**9)
        notes.extend(tuner.notes)
        out["trials"] = [{"params": t.params} for t in trials]
        out["n_trials"] = len(trials)
    es = spec.early_stopping
    out["early_stopping"] = {
        "thresholds": [{"metric": t.metric, "value": t.value, "optimization": t.optimization} for t in es.thresholds],
        "failure_percent": es.failure.percent if es.failure else None,
        "policies": [{"kind": p.kind, "metric": p.metric.name, "percent": p.percent} for p in es.policies],
    }
    out["warnings"] = list(spec.warnings) + notes
    return out


def format_plan(plan: Dict[str, Any], max_rows: int = 50) -> str:
    """The plan for a person: a header and one table."""
    lines = [
        f"study file:   {plan['file']} (dialect generation {plan['generation']})",
        f"algorithm:    {plan['algorithm']}" + (f" ({plan['hyperopt_algorithm']})" if "hyperopt_algorithm" in plan
                                                 else ""),
        "parameters:   " + ", ".join(f"{k} ({v})" for k, v in plan["parameters"].items()),
        "metric:       " + (f"{plan['metric']['name']} ({plan['metric']['optimization']})" if plan["metric"]
                            else "(none: add `metric: {name: ..., optimization: ...}` to rank trials)"),
        f"concurrency:  {plan['concurrency'] if plan['concurrency'] is not None else 'unbounded'}",
        f"seed:         {plan['seed']}",
        f"trials:       {plan['n_trials']}",
    ]
    if "brackets" in plan:
        r = plan["resource"]
        lines.append(f"resource:     {r['name']} ({r['type']}), max_iter={r['max_iter']:g}, eta={r['eta']:g}")
        rows = []
        for b in plan["brackets"]:
            rows.append([b["bracket"], "  ->  ".join(f"{x['n']} @ {x['resource']:g}" for x in b["rungs"]),
                         sum(x["n"] for x in b["rungs"])])
        lines += ["", tabulate(rows, headers=["bracket", "rungs (configurations @ resource)", "trials"])]
    elif "n_initial_trials" in plan:
        lines.append(f"phases:       {plan['n_initial_trials']} random initial trials, then "
                     f"{plan['n_iterations']} model-based")
    elif "trials" in plan:
        names = list(plan["parameters"])
        rows = [[i] + [t["params"].get(n) for n in names] for i, t in enumerate(plan["trials"][:max_rows])]
        lines += ["", tabulate(rows, headers=["#"] + names)]
        if len(plan["trials"]) > max_rows:
            lines.append(f"... and {len(plan['trials']) - max_rows} more (--json lists them all)")
    es = plan["early_stopping"]
    for t in es["thresholds"]:
        sign = ">=" if t["optimization"] == "maximize" else "<="
        lines.append(f"early stop:   when any trial's {t['metric']} {sign} {t['value']:g}")
    if es["failure_percent"] is not None:
        lines.append(f"early stop:   when {es['failure_percent']:g} % of finished trials failed")
    for p in es["policies"]:
        lines.append(f"trial policy: {p['kind']} on {p['metric']}")
    if plan["command"] is None:
        lines.append("command:      (none: this file has no `run.cmd`; it can be planned but not submitted)")
    else:
        reading = READINGS.get(plan["command_reading"] or "shell", plan["command_reading"])
        lines.append(f"command:      {plan['command']}")
        lines.append(f"              (read as {reading})")
    return "\n".join(lines)
