"""Hyperopt's TPE, random and annealing suggesters, driven as a pure function.

Each call rebuilds a ``hyperopt.Trials`` from the history and asks the chosen
algorithm for the next points with a seed derived from the study seed and the
number of trials so far, so a restarted controller gets the same suggestion.
Hyperopt is an optional extra: ``pip install 'hpc-tune[hyperopt]'``.
"""
from __future__ import annotations

import logging
import math
from typing import Any, Dict, List

from ..errors import UserError
from ..space import Discrete, Normal, Param, Space, clean_number
from ..spec.model import HyperoptConfig
from .base import History, SearchResult, Suggestion, TrialState, minimizing


def _hyperopt() -> Any:
    try:
        import hyperopt  # noqa: F401
        from hyperopt import anneal, rand, tpe
    except ImportError:
        raise UserError("this study uses hyperopt, which is not installed: "
                        "pip install 'hpc-tune[hyperopt]'  (or: pip install hyperopt)") from None
    logging.getLogger("hyperopt").setLevel(logging.WARNING)
    return {"tpe": tpe, "rand": rand, "anneal": anneal}


def _expression(name: str, p: Param) -> Any:
    from hyperopt import hp

    if isinstance(p, Discrete):
        if p.probabilities is not None:
            return hp.pchoice(name, list(zip(p.probabilities, range(len(p.values)))))
        return hp.choice(name, list(range(len(p.values))))
    low_high = (p.low, p.high) if not isinstance(p, Normal) else (p.loc, p.scale)  # type: ignore[attr-defined]
    prefix = ("q" if p.q is not None else "") + ("log" if p.log else "")  # type: ignore[attr-defined]
    base = "normal" if isinstance(p, Normal) else "uniform"
    fn = getattr(hp, prefix + base)
    args = list(low_high) + ([p.q] if p.q is not None else [])  # type: ignore[attr-defined]
    return fn(name, *args)


def _to_internal(p: Param, value: Any) -> Any:
    """Hyperopt stores the index of a choice, the value of anything else."""
    if isinstance(p, Discrete):
        return p.values.index(value) if value in p.values else 0
    return float(value)


def suggest(space: Space, config: HyperoptConfig, history: History, seed: int, n: int) -> SearchResult:
    algorithms = _hyperopt()
    from hyperopt import JOB_STATE_DONE, STATUS_FAIL, STATUS_OK, Domain, Trials

    created = len(history)
    n = min(n, config.n_trials - created)
    if n <= 0:
        return SearchResult(exhausted=True)
    expr = {name: _expression(name, p) for name, p in space.items()}
    domain = Domain(lambda _: 0.0, expr)
    trials = Trials()
    docs = []
    for tid, t in enumerate(history.trials):
        vals = {name: [_to_internal(p, t.params[name])] for name, p in space.items()}
        ok = t.state in (TrialState.COMPLETED, TrialState.STOPPED) and t.value is not None \
            and math.isfinite(t.value)
        if t.state.live:
            continue  # hyperopt's suggesters ignore unfinished trials anyway
        result = {"status": STATUS_OK, "loss": minimizing(t.value, config.metric.optimization)} if ok \
            else {"status": STATUS_FAIL}
        misc = {"tid": tid, "cmd": None, "workdir": None, "idxs": {k: [tid] for k in vals}, "vals": vals}
        doc = trials.new_trial_docs([tid], [None], [result], [misc])[0]
        doc["state"] = JOB_STATE_DONE
        docs.append(doc)
    if docs:
        trials.insert_trial_docs(docs)
        trials.refresh()
    algo = algorithms[config.algorithm]
    new_docs = []
    for new_id in range(created, created + n):
        # One id per call: hyperopt's anneal accepts only one (it raises on more) and
        # TPE returns a single doc whatever it is given. The seed depends on the trial
        # number, so asking for 3 at once equals asking 3 times with the first pending.
        rng_seed = (int(seed) * 1_000_003 + new_id) % (2**31 - 1)
        new_docs.extend(algo.suggest([new_id], domain, trials, rng_seed))
    out: List[Suggestion] = []
    for doc in new_docs:
        vals: Dict[str, Any] = {k: v[0] for k, v in doc["misc"]["vals"].items() if v}
        params = {}
        for name, p in space.items():
            v = vals[name]
            params[name] = p.values[int(v)] if isinstance(p, Discrete) else clean_number(v)
        out.append(Suggestion(params))
    return SearchResult(tuple(out), exhausted=created + len(out) >= config.n_trials)
