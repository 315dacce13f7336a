"""Grid search: the cartesian product in the file's key order, last key fastest."""
from __future__ import annotations

from functools import lru_cache
from typing import Any, Dict, Tuple

from ..space import Space
from ..spec.model import GridConfig
from .base import History, SearchResult, Suggestion


@lru_cache(maxsize=8)
def plan(space: Space, n_trials: "int | None") -> Tuple[Dict[str, Any], ...]:
    out = []
    for params in space.grid():
        if n_trials is not None and len(out) >= n_trials:
            break
        out.append(params)
    return tuple(out)


def suggest(space: Space, config: GridConfig, history: History, seed: int, n: int) -> SearchResult:
    return take_next(plan(space, config.n_trials), history, n)


def take_next(planned: Tuple[Dict[str, Any], ...], history: History, n: int) -> SearchResult:
    """The next ``n`` entries of a fixed plan, after the ones already created."""
    start = len(history)
    chosen = planned[start:start + max(0, n)]
    return SearchResult(
        suggestions=tuple(Suggestion(dict(p), meta={"index": start + i}) for i, p in enumerate(chosen)),
        exhausted=start + len(chosen) >= len(planned),
    )
