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
must stop now (it is then recorded as stopped with that value).
"""
from __future__ import annotations

import math
import secrets
from dataclasses import dataclass, field, replace
from typing import Any, Dict, List, Mapping, Optional, Union

from .search import suggest
from .search.base import History, TrialRecord, TrialState
from .search.stopping import TIME_CURVE, policies_of, trials_to_stop
from .spec import Spec, load_spec, spec_from_dict


@dataclass(frozen=True)
class Trial:
    """A trial to run: its id, parameters and, for multi-fidelity and PBT, the total
    resource to reach and the trial whose checkpoint it starts from."""

    trial_id: int
    params: Dict[str, Any]
    resource: Optional[float] = None
    meta: Dict[str, Any] = field(default_factory=dict)

    @property
    def resume_from(self) -> Optional[int]:
        v = self.meta.get("resume_from")
        return v if isinstance(v, int) and not isinstance(v, bool) else None


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
        self._reports = 0  # a logical clock for the order of reports (ASHA's stopping mode)
        self._report_times: Dict[int, List[Any]] = {}

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
                                 meta=dict(s.meta))
            self._trials.append(record)
            out.append(Trial(record.trial_id, dict(s.params), s.resource, dict(s.meta)))
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
        self._trials[tid] = replace(self._trials[tid], state=state,
                                    value=None if value is None else float(value))

    def report(self, trial: Union[Trial, int], step: float, value: float) -> bool:
        """Record one point of a running trial's curve; True when a per-trial stopping
        rule (the file's, or ASHA's stopping mode) stops it now, in which case it is
        recorded as stopped with ``value``."""
        tid = trial.trial_id if isinstance(trial, Trial) else int(trial)
        record = self._trials[tid]
        if not record.state.live:
            raise ValueError(f"trial {tid} has ended ({record.state.value})")
        self._trials[tid] = replace(record, state=TrialState.RUNNING,
                                    intermediate=record.intermediate + ((float(step), float(value)),))
        self._reports += 1
        self._report_times.setdefault(tid, []).append((float(step), float(self._reports)))
        policies = policies_of(self.spec.early_stopping.policies, self.spec.algorithm)
        if not policies:
            return False
        curves = {t.trial_id: {p.metric.name: t.intermediate for p in policies} for t in self._trials
                  if t.state is not TrialState.CANCELLED}
        for t_id, times in self._report_times.items():
            if t_id in curves:
                curves[t_id][TIME_CURVE] = tuple(times)
        live = {t.trial_id for t in self._trials if t.state.live}
        failed = {t.trial_id for t in self._trials if t.state is TrialState.FAILED}
        if tid in dict(trials_to_stop(policies, curves, live, failed)):
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
        maximize = bool(metric and metric.maximize)
        done = self.history.with_values()
        if not done:
            return None
        return (max if maximize else min)(done, key=lambda t: t.value)  # type: ignore[arg-type,return-value]
