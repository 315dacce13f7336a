"""Iterative search: a user function proposes the next trials from the history.

The spec names it as ``function: module:function``. It is called as
``function(history=..., n=..., seed=..., space=...)`` where ``history`` is a list of
dicts ``{"trial_id", "params", "state", "value", "resource"}`` in creation order and
``space`` maps each parameter name to its kind; it returns a list of at most ``n``
parameter dicts (an empty list: wait for results). The study ends after
``n_trials`` trials. The module is imported from the Python path; the controller puts
the study file's folder first on it.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable, List

from ..errors import UserError
from ..space import Space
from ..spec.model import IterativeConfig
from .base import History, SearchResult, Suggestion


def load_function(ref: str) -> Callable[..., Any]:
    module_name, _, attr = ref.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise UserError(f"iterative search: cannot import `{module_name}` for `{ref}`: {exc}") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise UserError(f"iterative search: `{module_name}` has no function `{attr}`")
    return fn  # type: ignore[no-any-return]


def suggest(space: Space, config: IterativeConfig, history: History, seed: int, n: int) -> SearchResult:
    remaining = config.n_trials - len(history)
    if remaining <= 0:
        return SearchResult(exhausted=True)
    n = min(n, remaining)
    fn = load_function(config.function)
    records = [{"trial_id": t.trial_id, "params": dict(t.params), "state": t.state.value, "value": t.value,
                "resource": t.resource} for t in history]
    proposed = fn(history=records, n=n, seed=seed, space={k: p.kind for k, p in space.items()})
    if not isinstance(proposed, list):
        raise UserError(f"iterative search: {config.function} must return a list of parameter dicts, "
                        f"got {type(proposed).__name__}")
    out: List[Suggestion] = []
    for params in proposed[:n]:
        if not isinstance(params, dict) or set(params) != set(space):
            raise UserError(f"iterative search: {config.function} returned {params!r}; each suggestion must be a "
                            f"dict with exactly the parameters {sorted(space)}")
        out.append(Suggestion(dict(params)))
    return SearchResult(tuple(out), exhausted=len(history) + len(out) >= config.n_trials)
