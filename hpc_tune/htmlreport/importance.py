"""Parameter importance: scikit-learn's permutation importance of a random forest fitted to
the study's history.

Why this method: it is model-agnostic and measured on trials the forest did not see (a
held-out quarter), so a parameter the forest merely memorised does not look important, and
the forest's own held-out R² is shown beside it, so a reader knows when the forest explains
little and the importances mean little. scikit-learn is already a dependency of hpc-tune.
"""
from __future__ import annotations

from typing import Any, Dict, List, Optional

import numpy as np

from ..results import Study

MIN_TRIALS = 8
MAX_TRIALS = 2000  # a larger history is subsampled (seeded): the forest and the shuffles stay a few seconds
N_REPEATS = 10
SEED = 0


def permutation_importance_of(study: Study) -> Optional[Dict[str, Any]]:
    """``{"params", "mean", "std", "r2", "method", "scoring"}``, or ``{"why_not": ...}``."""
    if not study.metric:
        return {"why_not": "the study has no metric"}
    done = study.valued()
    names = sorted({k for t in done for k in t.params})
    if len(done) < MIN_TRIALS:
        return {"why_not": f"needs at least {MIN_TRIALS} trials with a value of {study.metric} "
                f"({len(done)} so far)"}
    if not names:
        return {"why_not": "the study has no parameters"}
    from sklearn.ensemble import RandomForestRegressor
    from sklearn.inspection import permutation_importance
    from sklearn.model_selection import train_test_split

    rng = np.random.default_rng(SEED)
    sampled = len(done) > MAX_TRIALS
    if sampled:
        done = [done[i] for i in sorted(rng.choice(len(done), MAX_TRIALS, replace=False))]
    x = np.column_stack([_encode([t.params.get(n) for t in done]) for n in names])
    y = np.array([t.value for t in done], dtype=float)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, random_state=SEED)
    forest = RandomForestRegressor(n_estimators=100, min_samples_leaf=2, random_state=SEED, n_jobs=1)
    forest.fit(x_train, y_train)
    r2 = float(forest.score(x_test, y_test))
    result = permutation_importance(forest, x_test, y_test, n_repeats=N_REPEATS, random_state=SEED,
                                    scoring="r2", n_jobs=1)
    method = (f"scikit-learn's permutation importance (sklearn.inspection.permutation_importance, "
              f"{N_REPEATS} shuffles) of a random forest (RandomForestRegressor, 100 trees) fitted to "
              f"{len(x_train)} of {len(done)} trials with a value"
              + (f" (a seeded sample of {MAX_TRIALS})" if sampled else "")
              + f" and scored on the other {len(x_test)}: the drop of R² when the parameter is shuffled. "
              f"The forest's R² on those held-out trials is {r2:.2f}"
              + (" — low, so these importances say little." if r2 < 0.3 else "."))
    return {"params": names, "mean": [float(v) for v in result.importances_mean],
            "std": [float(v) for v in result.importances_std], "r2": r2, "method": method,
            "scoring": "drop of R²"}


def _encode(values: List[Any]) -> np.ndarray:
    """Numbers as they are; anything else (strings, booleans, missing) as category codes.
    A forest splits on order only, so a log scale would change nothing."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.array(values, dtype=float)
    cats = {c: i for i, c in enumerate(sorted({repr(v) for v in values}))}
    return np.array([cats[repr(v)] for v in values], dtype=float)
