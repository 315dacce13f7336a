"""The function of configs/iterative.yml: hpc-tune calls it with the trials so far and it
returns the next parameter sets. This one starts on a coarse line and then halves the step
around the best value found (a user's own search, in a dozen lines)."""
from typing import Any, Dict, List


def suggest(history: List[Dict[str, Any]], n: int, seed: int, space: Dict[str, str]) -> List[Dict[str, Any]]:
    done = [t for t in history if t["state"] == "completed" and t["value"] is not None]
    if len(history) < 3:  # the first three: a coarse line over [0, 1]
        return [{"x": 0.25 * (i + 1)} for i in range(len(history), min(3, len(history) + n))]
    if len(done) < len(history):
        return []  # wait for the running ones
    best = min(done, key=lambda t: t["value"])["params"]["x"]
    step = 0.25 / 2 ** (len(history) - 2)
    return [{"x": round(best + step * (-1) ** i, 6)} for i in range(n)]
