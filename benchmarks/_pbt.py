"""Drive hpc-tune's PBT searcher through the ask/tell Tuner, the way its controller does:
each interval is a trial that starts from a copy of the checkpoint of ``trial.resume_from``
(or from scratch), trains to ``trial.resource`` and is told its value; checkpoints that
``pbt.checkpoints_needed`` no longer lists are dropped, as the controller deletes them.

The population trains in lock step (every member's interval has the same cost here), so
``ask_many(population)`` after the round's results are told gives every member's next
interval, each decided on the ranking of the round just ended.
"""
from __future__ import annotations

import copy
from typing import Any, Callable, Dict, List, Optional, Tuple

from hpc_tune.search import pbt
from hpc_tune.tuner import Tuner

# train(state, params, total resource to reach) -> (new state, value told, per-step log)
Train = Callable[[Any, Dict[str, Any], int], Tuple[Any, float, List[Tuple[int, float]]]]


def drive(spec: Dict[str, Any], seed: int, fresh: Callable[[Dict[str, Any]], Any], train: Train) -> Dict[str, Any]:
    tuner = Tuner.from_dict(spec, seed=seed)
    population = tuner.spec.algorithm.population_size
    checkpoints: Dict[int, Any] = {}
    trials: List[Dict[str, Any]] = []
    initial: Optional[List[Dict[str, Any]]] = None
    peak = 0
    while True:
        asked = tuner.ask_many(population)
        if not asked:
            if not tuner.done:
                raise RuntimeError("PBT asked for nothing while the study is not done")
            break
        if initial is None:
            initial = [dict(t.params) for t in sorted(asked, key=lambda t: t.meta["member"])]
        for t in asked:
            src = t.resume_from
            state = copy.deepcopy(checkpoints[src]) if src is not None else fresh(t.params)
            state, value, log = train(state, dict(t.params), int(t.resource))
            checkpoints[t.trial_id] = state
            tuner.tell(t, value)
            trials.append({"trial": t.trial_id, "member": t.meta["member"], "interval": t.meta["interval"],
                           "resume_from": src, "donor": t.meta.get("donor"), "params": dict(t.params),
                           "resource": int(t.resource), "value": value, "log": log})
        keep = pbt.checkpoints_needed(tuner.spec.algorithm, tuner.history)
        peak = max(peak, len(checkpoints))
        for tid in [k for k in checkpoints if k not in keep]:
            del checkpoints[tid]
    # what is left is what a trial may still start from: every member's last interval
    return {"trials": trials, "initial": initial or [], "checkpoints_peak": peak, "checkpoints": checkpoints,
            "exploits": sum(1 for t in trials if t["donor"] is not None)}
