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

ASHA's stopping mode (``RungPolicy``, built by ``search.asha.stopping_policy``) goes
through the same ``trials_to_stop``: at each rung's resource r_k a trial is stopped
unless it is in the top ⌊n/η⌋ of the n values that rung has recorded so far (itself
included; kept while n < η; ties: the earlier trial wins). A trial's value at rung k
is its first report at a step ≥ r_k. "So far" is the order in which trials reached the
rung: the ``time`` of those reports when the curves carry it (``TIME_CURVE``), else the
trial ids. Since the rule reads only recorded values and times, it gives the same
answer whenever it is evaluated, before or after a controller restart, and every rung
a trial has passed is checked (a quick trial may pass two between two looks).
Failed and cancelled trials are not members of a rung (``excluded``).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import AbstractSet, Dict, List, Mapping, Optional, Sequence, Set, Tuple, Union

from ..spec.model import Metric, TrialPolicy

Curve = Sequence[Tuple[float, float]]  # (step, value), in report order
TIME_CURVE = "time"  # the curve of the report times (step, unix time), for RungPolicy's order


@dataclass(frozen=True)
class RungPolicy:
    """ASHA's stopping mode as a per-trial rule: ``rungs`` are the resources of every
    rung below the top one (the top one, R, ends the trial anyway)."""

    metric: Metric
    rungs: Tuple[float, ...]
    eta: float
    kind: str = "asha"


Policy = Union[TrialPolicy, RungPolicy]


def _at_rung(curve: Curve, resource: float) -> Optional[Tuple[int, float]]:
    """(position, value) of the first report at a step >= ``resource``."""
    for i, (s, v) in enumerate(curve):
        if s >= resource:
            return i, v
    return None


def _rung_stops(policy: RungPolicy, curves: Mapping[int, Mapping[str, Curve]], live: Set[int],
                excluded: AbstractSet[int]) -> Dict[int, str]:
    sign = -1.0 if policy.metric.maximize else 1.0
    name = policy.metric.name
    eta = policy.eta
    out: Dict[int, str] = {}
    for k, resource in enumerate(policy.rungs):
        # (arrival, trial id, value to minimise) of every member of rung k
        members: List[Tuple[float, int, float]] = []
        for tid, c in curves.items():
            if tid in excluded:
                continue
            hit = _at_rung(c.get(name, ()), resource)
            if hit is None or not math.isfinite(hit[1]):
                continue
            reached = _at_rung(c.get(TIME_CURVE, ()), resource)  # the time of the first report there
            arrival = reached[1] if reached is not None else math.inf
            members.append((arrival, tid, sign * hit[1]))
        for arrival, tid, value in members:
            if tid not in live or tid in out:
                continue
            so_far = [m for m in members if (m[0], m[1]) <= (arrival, tid)]
            if len(so_far) < eta:
                continue
            keep = math.floor(len(so_far) / eta)
            rank = sorted((v, t) for _, t, v in so_far).index((value, tid))
            if rank >= keep:
                out[tid] = (f"ASHA: {name} {sign * value:g} at rung {k} ({resource:g}) is not in the top "
                            f"{keep} of the {len(so_far)} recorded there so far")
    return out


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
            for tid, why in _rung_stops(policy, curves, live, excluded).items():
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

    out: List[Policy] = list(early_stopping_policies)
    if isinstance(algorithm, AshaConfig) and algorithm.mode == "stopping":
        from .asha import stopping_policy

        out.append(stopping_policy(algorithm))
    return tuple(out)
