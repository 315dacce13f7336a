"""What a study would run, without running it (``hpc-tune plan``)."""
from __future__ import annotations

import sys
from typing import Any, Dict, List

from tabulate import tabulate

from .spec import Spec
from .spec.model import (
    AshaConfig,
    BayesConfig,
    HyperbandConfig,
    HyperoptConfig,
    IterativeConfig,
    ModelSamplerConfig,
    PbtConfig,
    SamplerConfig,
)
from .spec.render import READINGS
from .tuner import Tuner

ALGORITHM_NAMES = {"grid": "grid", "random": "random", "mapping": "mapping", "hyperband": "hyperband",
                   "bayes": "bayes", "hyperopt": "hyperopt", "iterative": "iterative", "asha": "asha",
                   "bohb": "bohb", "pbt": "pbt"}


def _sampler(config: SamplerConfig) -> Dict[str, Any]:
    out: Dict[str, Any] = {"kind": config.kind}
    if config.kind == "kde":
        out.update(top_n_percent=config.top_n_percent, random_fraction=config.random_fraction,
                   num_samples=config.num_samples, bandwidth_factor=config.bandwidth_factor,
                   min_bandwidth=config.min_bandwidth, min_points_in_model=config.min_points_in_model)
    elif config.kind == "model":
        model = config.model or ModelSamplerConfig()
        out.update(random_fraction=model.random_fraction, min_points_in_model=model.min_points_in_model)
    return out


def _setting(key: str, value: Any) -> str:
    """One sampler setting as ``plan`` prints it (an unset ``min_points_in_model`` is the
    samplers' default, parameters + 1)."""
    if isinstance(value, float):
        return f"{key}={value:g}"
    if key == "min_points_in_model" and value is None:
        return f"{key}=parameters + 1"
    return f"{key}={value}"


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
        from .search import hyperband

        out["resource"] = {"name": algo.resource.name, "type": algo.resource.type, "max_iter": algo.max_iter,
                           "eta": algo.eta}
        out["brackets"] = [b.to_dict() for b in hyperband.brackets(algo)]  # one iteration's
        out["iterations"] = algo.iterations
        out["n_trials"] = hyperband.n_trials(algo)
        out["sampler"] = _sampler(algo.sampler)
    elif isinstance(algo, AshaConfig):
        from .search.asha import ladder

        resources = ladder(algo)
        out["resource"] = {"name": algo.resource.name, "type": algo.resource.type,
                           "min_resource": algo.min_resource, "max_resource": algo.max_resource, "eta": algo.eta,
                           "min_early_stopping_rate": algo.min_early_stopping_rate}
        out["mode"] = algo.mode
        out["resume"] = algo.resume if algo.mode == "promotion" else False
        out["rungs"] = [{"rung": k, "resource": r} for k, r in enumerate(resources)]
        out["n_configurations"] = algo.n_trials
        # Promotion mode: at most n/eta^k reach rung k when every rung is complete; the
        # asynchronous rule can promote a few more (a later, better trial displaces one
        # already promoted), so this is the synchronous count, not a bound.
        out["n_trials"] = algo.n_trials if algo.mode == "stopping" else None
        out["sampler"] = _sampler(algo.sampler)
    elif isinstance(algo, PbtConfig):
        from .search.pbt import intervals, n_trials, quantile_size

        out["resource"] = {"name": algo.resource.name, "type": algo.resource.type,
                           "max_resource": algo.max_resource}
        out["population_size"] = algo.population_size
        out["perturbation_interval"] = algo.perturbation_interval
        out["intervals"] = intervals(algo)
        out["n_trials"] = n_trials(algo)
        out["exploit"] = {"quantile": quantile_size(algo), "quantile_fraction": algo.quantile_fraction,
                          "resample_probability": algo.resample_probability,
                          "perturbation_factors": list(algo.perturbation_factors)}
        out["keep_checkpoints"] = algo.keep_checkpoints
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


def _beyond_float(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and abs(value) > sys.float_info.max


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
        f"trials:       {plan['n_trials'] if plan['n_trials'] is not None else 'asynchronous (see the rungs)'}",
    ]
    if plan.get("sampler") is not None:
        sampler = plan["sampler"]
        settings = ", ".join(_setting(k, v) for k, v in sampler.items() if k != "kind")
        lines.append(f"sampler:      {sampler['kind']}" + (f" ({settings})" if settings else ""))
    if "brackets" in plan:
        r = plan["resource"]
        lines.append(f"resource:     {r['name']} ({r['type']}), max_iter={r['max_iter']:g}, eta={r['eta']:g}")
        rows = []
        for b in plan["brackets"]:
            rows.append([b["bracket"], "  ->  ".join(f"{x['n']} @ {x['resource']:g}" for x in b["rungs"]),
                         sum(x["n"] for x in b["rungs"])])
        lines += ["", tabulate(rows, headers=["bracket", "rungs (configurations @ resource)", "trials"])]
        if plan["iterations"] > 1:
            lines.append(f"(the brackets above run {plan['iterations']} times, one iteration after the other; "
                         f"the sampler learns from every earlier iteration)")
    elif "rungs" in plan:
        r = plan["resource"]
        lines.append(f"resource:     {r['name']} ({r['type']}), min_resource={r['min_resource']:g}, "
                     f"max_resource={r['max_resource']:g}, eta={r['eta']:g}, "
                     f"min_early_stopping_rate={r['min_early_stopping_rate']}")
        lines.append(f"mode:         {plan['mode']}" + (", promotions resume from the rung below"
                                                      if plan["resume"] else ""))
        lines.append(f"configurations: {plan['n_configurations']} start at rung 0")
        eta, n = r["eta"], plan["n_configurations"]
        rows, count = [], n
        for x in plan["rungs"]:
            rows.append([x["rung"], f"{x['resource']:g}", count])
            count = int(count // eta)
        head = "reach it (synchronous count)" if plan["mode"] == "promotion" else "kept there (synchronous count)"
        lines += ["", tabulate(rows, headers=["rung", "resource", head])]
    elif "population_size" in plan:
        r = plan["resource"]
        ex = plan["exploit"]
        lines.append(f"resource:     {r['name']} ({r['type']}), max_resource={r['max_resource']:g}")
        lines.append(f"population:   {plan['population_size']} members, an interval every "
                     f"{plan['perturbation_interval']:g} {r['name']} ({len(plan['intervals'])} intervals each)")
        lines.append(f"exploit:      the worst {ex['quantile']} copy one of the best {ex['quantile']} "
                     f"(quantile_fraction={ex['quantile_fraction']:g}); explore: resample "
                     f"p={ex['resample_probability']:g}, else factors "
                     f"{', '.join(f'{f:g}' for f in ex['perturbation_factors'])}")
        lines.append(f"checkpoints:  keep {plan['keep_checkpoints']}")
        rows = [[i, f"{x:g}"] for i, x in enumerate(plan["intervals"][:max_rows])]
        lines += ["", tabulate(rows, headers=["interval", f"{r['name']} reached"])]
    elif "n_initial_trials" in plan:
        lines.append(f"phases:       {plan['n_initial_trials']} random initial trials, then "
                     f"{plan['n_iterations']} model-based")
    elif "trials" in plan:
        names = list(plan["parameters"])
        rows = [[i] + [t["params"].get(n) for n in names] for i, t in enumerate(plan["trials"][:max_rows])]
        # tabulate formats a numeric column through float(): an integer beyond float range
        # (a mapping may hold one) would raise, or show as inf. Such a table is shown as text.
        huge = any(_beyond_float(v) for row in rows for v in row)
        lines += ["", tabulate(rows, headers=["#"] + names, disable_numparse=huge)]
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
