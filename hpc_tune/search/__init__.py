"""Searchers: pure functions ``(space, config, history, seed, n) -> SearchResult``.

``suggest`` dispatches on the algorithm config's ``kind``; each algorithm lives in
its own module. Nothing here does I/O, reads a clock or knows about jobs.
"""
from __future__ import annotations

import importlib
from typing import Callable, Dict

from ..space import Space
from ..spec.model import AlgorithmConfig
from .base import History, SearchResult, Suggestion, TrialRecord, TrialState

_MODULES: Dict[str, str] = {
    "grid": "grid",
    "random": "random_search",
    "mapping": "mapping",
    "hyperband": "hyperband",
    "bohb": "hyperband",  # Hyperband with the KDE sampler
    "asha": "asha",
    "pbt": "pbt",
    "bayes": "bayes",
    "hyperopt": "hyperopt_search",
    "iterative": "iterative",
}


def searcher(kind: str) -> Callable[..., SearchResult]:
    module = importlib.import_module(f"{__name__}.{_MODULES[kind]}")
    return module.suggest  # type: ignore[no-any-return]


def suggest(space: Space, config: AlgorithmConfig, history: History, seed: int, n: int) -> SearchResult:
    """Up to ``n`` new trials for the study whose trials so far are ``history``."""
    return searcher(config.kind)(space, config, history, seed, n)


__all__ = ["History", "SearchResult", "Suggestion", "TrialRecord", "TrialState", "suggest", "searcher"]
