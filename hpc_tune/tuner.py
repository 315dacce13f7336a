"""The ask/tell API: any searcher of the library without Slurm.

    from hpc_tune import Tuner
    tuner = Tuner.from_file("configs/bo_digits.yml")
    while (trial := tuner.ask()) is not None:
        tuner.tell(trial, train(**trial.params))
    print(tuner.best())

``ask()`` returns ``None`` when there is nothing to run until pending trials are
told (a Hyperband rung waiting for its stragglers) or when the study is complete
(``tuner.done``). The tuner holds only the trial history; every suggestion is
recomputed from it, exactly as the Slurm controller does after a restart.

Multi-fidelity and PBT trials carry ``resource`` (the total to train to) and
``resume_from`` (the id of the trial whose checkpoint this one starts from, or
``None``: Hyperband with ``resume``, ASHA's promotions, every PBT interval after the
first). An ask/tell user copies that checkpoint; the Slurm and local controllers do it
themselves. ASHA's stopping mode needs the learning curve:
``tuner.report(trial, step, value)`` records one point and returns True when the trial
must stop now (it is then recorded as stopped with that value). The study file's
per-trial policies (``median``, ...) are the controller's; ``report`` applies only the
algorithm's own rule.
"""
from __future__ import annotations

import math
import secrets
from typing import Any, List, Mapping, Optional, Union

from .search import suggest
from .search.asha import rung_stops, stopping_policy
from .spec import Spec, load_spec, spec_from_dict
from .spec.model import AshaConfig
from .trials import History, TrialRecord, TrialState

# What ``ask`` hands out is the one trial model: id, parameters, budget (``resource``),
# the searcher's tags (``meta``) and, after ``tell``, state and value.
Trial = TrialRecord


def draw_seed() -> int:
    """A fresh seed for a study that did not set one (recorded, so it replays)."""
    return secrets.randbelow(2**31 - 1)


class Tuner:
    def __init__(self, spec: Spec, seed: Optional[int] = None, trials: Optional[List[TrialRecord]] = None):
        self.spec = spec
        self.seed = seed if seed is not None else (spec.seed if spec.seed is not None else draw_seed())
        self._trials: List[TrialRecord] = list(trials or [])
        self._exhausted = False
        self.notes: List[str] = []

    @classmethod
    def from_file(cls, path: str, seed: Optional[int] = None) -> "Tuner":
        return cls(load_spec(path), seed)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], seed: Optional[int] = None) -> "Tuner":
        return cls(spec_from_dict(dict(data)), seed)

    # -- asking -------------------------------------------------------------------
    @property
    def history(self) -> History:
        return History.of(self._trials)

    def ask_many(self, n: int) -> List[Trial]:
        """Up to ``n`` new trials; fewer (or none) when the searcher must wait."""
        if n <= 0 or self._exhausted:
            return []
        result = suggest(self.spec.space, self.spec.algorithm, self.history, self.seed, n)
        self.notes.extend(x for x in result.notes if x not in self.notes)
        out = []
        for s in result.suggestions:
            record = TrialRecord(len(self._trials), dict(s.params), TrialState.PENDING, resource=s.resource,
                                 meta=dict(s.meta), resume_from=s.resume_from)
            self._trials.append(record)
            out.append(record)
        self._exhausted = result.exhausted
        return out

    def ask(self) -> Optional[Trial]:
        trials = self.ask_many(1)
        return trials[0] if trials else None

    # -- telling ------------------------------------------------------------------
    def tell(self, trial: Union[Trial, int], value: Optional[float] = None,
             state: Union[TrialState, str] = TrialState.COMPLETED) -> None:
        """Record a finished trial: its objective ``value``, or a failure."""
        tid = trial.trial_id if isinstance(trial, Trial) else int(trial)
        if not 0 <= tid < len(self._trials):
            raise KeyError(f"no trial {tid}")
        state = TrialState(state)
        if state is TrialState.COMPLETED and (value is None or not math.isfinite(float(value))):
            state = TrialState.FAILED
        record = self._trials[tid]
        record.state = state
        record.value = None if value is None else float(value)

    def report(self, trial: Union[Trial, int], step: float, value: float) -> bool:
        """Record one point of a running trial's curve; True when the algorithm's own
        stopping rule (ASHA's stopping mode) stops it now, in which case it is recorded
        as stopped with ``value``."""
        tid = trial.trial_id if isinstance(trial, TrialRecord) else int(trial)
        record = self._trials[tid]
        if not record.state.live:
            raise ValueError(f"trial {tid} has ended ({record.state.value})")
        metric = self.spec.metric.name if self.spec.metric else "value"
        record.add_report({"step": float(step), metric: float(value)})
        record.state = TrialState.RUNNING
        algo = self.spec.algorithm
        if not (isinstance(algo, AshaConfig) and algo.mode == "stopping"):
            return False
        curves = {t.trial_id: t.curve(metric) for t in self._trials if t.state is not TrialState.CANCELLED}
        live = {t.trial_id for t in self._trials if t.state.live}
        failed = {t.trial_id for t in self._trials if t.state is TrialState.FAILED}
        if tid in rung_stops(stopping_policy(algo), curves, live, failed):
            self.tell(tid, value, TrialState.STOPPED)
            return True
        return False

    # -- reading ------------------------------------------------------------------
    @property
    def done(self) -> bool:
        """True when the searcher will suggest nothing more and no trial is pending."""
        return self._exhausted and not self.history.live

    def best(self) -> Optional[TrialRecord]:
        metric = self.spec.metric
        return self.history.best(bool(metric and metric.maximize))
