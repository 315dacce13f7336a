"""Every stopping rule behind one interface, as Optuna's pruners are.

A ``StoppingRule`` looks at the study (``check(view)``) and returns a ``Verdict``: live trials
to stop (their last value counts), and/or the reason to end the whole study early. The
decision core asks the rules in order; the first that ends the study wins. Pure: rules read
the fold, nothing else. The rules of a study file:

* ``ThresholdRule``: the study ends once any trial's last value of a metric reaches a
  threshold (the trial that got there, if still live, is stopped and keeps its value);
* ``FailureShareRule``: the study ends when failed trials reach a share of finished ones;
* ``TrialPolicyRule``: per-trial policies on the learning curves (below).

A searcher's own stopping plugs in as one more rule: ``RungRule``, ASHA's stopping mode
(the decisions are ``search.asha.rung_stops``, pure, shared with the ask/tell ``Tuner``).

Per-trial policies. Polyaxon accepted ``median``, ``truncation`` and ``diff`` policies but never ran
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

import abc
import statistics
from dataclasses import dataclass
from typing import TYPE_CHECKING, Dict, List, Mapping, Optional, Sequence, Set, Tuple

from ..search.asha import RungPolicy, rung_stops, stopping_policy
from ..spec.model import AshaConfig
from ..trials import TrialState

if TYPE_CHECKING:
    from ..journal import StudyView
    from ..spec.model import EarlyStopping, FailureStop, Threshold, TrialPolicy

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


def trials_to_stop(policies: Sequence["TrialPolicy"], curves: Mapping[int, Mapping[str, Curve]],
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
            # trials that got to this step and reported at or before it (a curve that starts
            # later has nothing to compare at this step)
            reached = {o: c for o, c in others.items() if c and c[-1][0] >= step and c[0][0] <= step}
            if len(reached) < policy.min_samples:
                continue
            mine = sign * curve[-1][1]
            if policy.kind == "median":
                best_so_far = min(sign * v for v in _prefix(curve, step))
                averages = [sign * statistics.fmean(_prefix(c, step)) for c in reached.values() if _prefix(c, step)]
                if not averages:  # the others' curves start after this step: nothing to compare with
                    continue
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


# ------------------------------------------------------------------------------ the interface


@dataclass(frozen=True)
class Verdict:
    """What a rule decides now: live trials to stop (trial id, why), and/or the reason to end
    the study early (then every other live trial is cancelled)."""

    stop: Tuple[Tuple[int, str], ...] = ()
    end_study: Optional[str] = None

    def __bool__(self) -> bool:
        return bool(self.stop or self.end_study)


class StoppingRule(abc.ABC):
    @abc.abstractmethod
    def check(self, view: "StudyView") -> Verdict:
        """The verdict on the study as folded so far. Pure."""


class ThresholdRule(StoppingRule):
    def __init__(self, thresholds: Sequence["Threshold"]):
        self.thresholds = tuple(thresholds)

    def check(self, view: "StudyView") -> Verdict:
        for th in self.thresholds:
            for t in view.trials.values():
                v = t.last(th.metric)
                if v is not None and th.reached(v):
                    sign = ">=" if th.optimization == "maximize" else "<="
                    reason = f"trial {t.trial_id} reached {th.metric} = {v:g} ({sign} {th.value:g})"
                    stop = ((t.trial_id, "reached the early-stopping threshold"),) if t.state.live else ()
                    return Verdict(stop, reason)
        return Verdict()


class FailureShareRule(StoppingRule):
    def __init__(self, failure: "FailureStop"):
        self.percent = failure.percent

    def check(self, view: "StudyView") -> Verdict:
        finished = failed = 0
        for t in view.trials.values():
            if t.state.finished:
                finished += 1
                failed += t.state is TrialState.FAILED
        if finished and 100.0 * failed / finished >= self.percent:
            return Verdict(end_study=f"{failed} of {finished} finished trials failed (>= {self.percent:g} %)")
        return Verdict()


class TrialPolicyRule(StoppingRule):
    def __init__(self, policies: Sequence["TrialPolicy"]):
        self.policies = tuple(policies)
        self.metrics = tuple(sorted({p.metric.name for p in self.policies}))

    def check(self, view: "StudyView") -> Verdict:
        live = {t.trial_id for t in view.live()}
        if not live:
            return Verdict()
        curves = {t.trial_id: {n: t.curve(n) for n in self.metrics} for t in view.trials.values()
                  if t.state is not TrialState.CANCELLED}
        return Verdict(tuple((tid, why) for tid, why in trials_to_stop(self.policies, curves, live) if tid in live))


class RungRule(StoppingRule):
    """ASHA's stopping mode: a trial that has just reached a rung's resource is stopped
    unless it is in the top 1/eta of what that rung has recorded so far
    (``search.asha.rung_stops``)."""

    def __init__(self, policy: RungPolicy):
        self.policy = policy

    def check(self, view: "StudyView") -> Verdict:
        live = {t.trial_id for t in view.live()}
        if not live:
            return Verdict()
        name = self.policy.metric.name
        curves = {t.trial_id: t.curve(name) for t in view.trials.values() if t.state is not TrialState.CANCELLED}
        failed = {t.trial_id for t in view.trials.values() if t.state is TrialState.FAILED}
        return Verdict(tuple(sorted(rung_stops(self.policy, curves, live, failed).items())))


def rules_of(early_stopping: "EarlyStopping", algorithm: object = None) -> Tuple[StoppingRule, ...]:
    """A study file's ``early_stopping`` as rules, in the order they are asked, then the
    algorithm's own (ASHA's stopping mode)."""
    rules: List[StoppingRule] = []
    if early_stopping.thresholds:
        rules.append(ThresholdRule(early_stopping.thresholds))
    if early_stopping.failure is not None:
        rules.append(FailureShareRule(early_stopping.failure))
    if early_stopping.policies:
        rules.append(TrialPolicyRule(early_stopping.policies))
    if isinstance(algorithm, AshaConfig) and algorithm.mode == "stopping":
        rules.append(RungRule(stopping_policy(algorithm)))
    return tuple(rules)
