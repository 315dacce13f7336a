"""A searcher driven the way a controller drives it, for the searchers' unit tests: trials created
from its suggestions, finished by the test, and every call kept so a test can replay any prefix."""
from __future__ import annotations

from dataclasses import replace
from types import ModuleType
from typing import Any, Callable, List, Optional, Tuple

from hpc_tune.search.base import History, TrialRecord, TrialState
from hpc_tune.space import Space


class SearcherStudy:
    """The history a controller would keep for ``search.suggest(space, cfg, history, seed, n)``."""

    def __init__(self, search: ModuleType, space: Space, cfg: Any, seed: int = 0):
        self.search, self.space, self.cfg, self.seed = search, space, cfg, seed
        self.trials: List[TrialRecord] = []
        self.calls: List[Tuple[History, int, Any]] = []  # (history, n, result) of every ask, in order

    @property
    def history(self) -> History:
        return History.of(self.trials)

    @property
    def live(self) -> List[TrialRecord]:
        return [t for t in self.trials if t.state.live]

    def ask(self, n: int) -> Any:
        history = self.history
        result = self.search.suggest(self.space, self.cfg, history, self.seed, n)
        self.calls.append((history, n, result))
        for s in result.suggestions:
            self.trials.append(TrialRecord(len(self.trials), dict(s.params), TrialState.PENDING,
                                           resource=s.resource, meta=dict(s.meta)))
        return result

    def finish(self, tid: int, value: Optional[float], state: TrialState = TrialState.COMPLETED) -> None:
        self.trials[tid] = replace(self.trials[tid], state=state, value=value)

    def play(self, slots: int, value: Callable[[TrialRecord, int], Optional[float]], steps: int,
             pick: Callable[[List[TrialRecord], int], TrialRecord] = lambda live, step: live[0]) -> None:
        """Up to ``steps`` rounds of: fill the free slots, then finish one live trial (``pick``)
        with ``value(trial, step)``, None meaning it failed; stops once nothing is live."""
        for step in range(steps):
            self.ask(slots - len(self.live))
            live = self.live
            if not live:
                return
            t = pick(live, step)
            v = value(t, step)
            self.finish(t.trial_id, v, TrialState.COMPLETED if v is not None else TrialState.FAILED)
