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

ASHA's stopping mode (``search.asha.RungPolicy``, its rule in ``search.asha.rung_stops``)
goes through the same ``trials_to_stop``.
"""
from __future__ import annotations

import statistics
from typing import AbstractSet, Dict, List, Mapping, Sequence, Set, Tuple, Union

from ..spec.model import TrialPolicy
from .asha import TIME_CURVE, RungPolicy, rung_stops  # noqa: F401 (TIME_CURVE: for the controller)

Curve = Sequence[Tuple[float, float]]  # (step, value), in report order
Policy = Union[TrialPolicy, RungPolicy]


def _value_at(curve: Curve, step: float) -> "float | None":
    """The last value reported at or before ``step``."""
    out = None
    for s, v in curve:
        if s <= step:
            out = v
    return out


def _prefix(curve: Curve, step: float) -> List[float]:
    return [v for s, v in curve if s <= step]


def trials_to_stop(policies: Sequence[Policy], curves: Mapping[int, Mapping[str, Curve]],
                   live: Set[int], excluded: AbstractSet[int] = frozenset()) -> List[Tuple[int, str]]:
    """(trial id, reason) for every live trial that a policy stops now. ``excluded``:
    failed trials, which a RungPolicy does not count (cancelled ones have no curves)."""
    out: Dict[int, str] = {}
    for policy in policies:
        if isinstance(policy, RungPolicy):
            for tid, why in rung_stops(policy, curves, live, excluded).items():
                out.setdefault(tid, why)
            continue
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


def policies_of(early_stopping_policies: Sequence[TrialPolicy], algorithm: object) -> Tuple[Policy, ...]:
    """Every per-trial rule of a study: the file's policies, then the algorithm's own
    (ASHA's stopping mode)."""
    from ..spec.model import AshaConfig
    from .asha import stopping_policy

    out: List[Policy] = list(early_stopping_policies)
    if isinstance(algorithm, AshaConfig) and algorithm.mode == "stopping":
        out.append(stopping_policy(algorithm))
    return tuple(out)
