"""Per-trial stopping rules, as pure functions of the reported learning curves.

Polyaxon accepted ``median``, ``truncation`` and ``diff`` policies but never ran
them; hpc-tune defines them so (step = the ``step`` a trial reports, or the report's
position when it gives none):

* ``median`` (Golovin et al., Google Vizier, 2017): a live trial at step s is
  stopped when its best value so far is worse than the median, over the other
  trials that reached step s, of their running averages up to s.
* ``truncation``: at each evaluation step, the worst ``percent`` % of the trials
  that reached that step are stopped (the trial itself included in the ranking).
* ``diff``: a trial is stopped when its value at step s is worse than the best
  value any trial had at step s by more than ``percent`` % of that best value.

A rule applies to a trial only from step ``min_interval`` on, at steps that are a
multiple of ``evaluation_interval``, and only when at least ``min_samples`` other
trials reached that step.
"""
from __future__ import annotations

import statistics
from typing import Dict, List, Mapping, Sequence, Set, Tuple

from ..spec.model import TrialPolicy

Curve = Sequence[Tuple[float, float]]  # (step, value), in report order


def _value_at(curve: Curve, step: float) -> "float | None":
    """The last value reported at or before ``step``."""
    out = None
    for s, v in curve:
        if s <= step:
            out = v
    return out


def _prefix(curve: Curve, step: float) -> List[float]:
    return [v for s, v in curve if s <= step]


def trials_to_stop(policies: Sequence[TrialPolicy], curves: Mapping[int, Mapping[str, Curve]],
                   live: Set[int]) -> List[Tuple[int, str]]:
    """(trial id, reason) for every live trial that a policy stops now."""
    out: Dict[int, str] = {}
    for policy in policies:
        sign = -1.0 if policy.metric.maximize else 1.0  # compare as "lower is better"
        name = policy.metric.name
        for tid in sorted(live):
            if tid in out:
                continue
            curve = curves.get(tid, {}).get(name, ())
            if not curve:
                continue
            step = curve[-1][0]
            if step < policy.min_interval or int(step) % policy.evaluation_interval:
                continue
            others = {o: c.get(name, ()) for o, c in curves.items() if o != tid}
            reached = {o: c for o, c in others.items() if c and c[-1][0] >= step}
            if len(reached) < policy.min_samples:
                continue
            mine = sign * curve[-1][1]
            if policy.kind == "median":
                best_so_far = min(sign * v for v in _prefix(curve, step))
                averages = [sign * statistics.fmean(_prefix(c, step)) for c in reached.values() if _prefix(c, step)]
                median = statistics.median(averages)
                if best_so_far > median:
                    out[tid] = (f"median rule: best {name} so far {sign * best_so_far:g} is worse than the median "
                                f"{sign * median:g} of other trials at step {step:g}")
            elif policy.kind == "truncation":
                values = sorted([sign * _value_at(c, step) for c in reached.values()] + [mine])  # type: ignore
                k = int(len(values) * policy.percent / 100.0)
                if k > 0 and mine >= values[len(values) - k]:
                    out[tid] = (f"truncation rule: {name} {sign * mine:g} is in the worst {policy.percent:g} % "
                                f"at step {step:g}")
            elif policy.kind == "diff":
                best = min(sign * _value_at(c, step) for c in reached.values())  # type: ignore[operator]
                if mine - best > abs(best) * policy.percent / 100.0:
                    out[tid] = (f"diff rule: {name} {sign * mine:g} is more than {policy.percent:g} % worse than "
                                f"the best {sign * best:g} at step {step:g}")
    return sorted(out.items())
