"""Mapping: an explicit list of parameter sets, run in the order given."""
from __future__ import annotations

from ..space import Space
from ..spec.model import MappingConfig
from .base import History, SearchResult
from .grid import take_next


def suggest(space: Space, config: MappingConfig, history: History, seed: int, n: int) -> SearchResult:
    return take_next(config.values, history, n)
