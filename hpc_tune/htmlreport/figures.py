"""The report's figures, drawn with matplotlib from a ``hpc_tune.results.Study``.

Each function returns ``Plot``s (or none, with the reason, when the study has nothing to draw
there). The same figure becomes inline SVG in the HTML page and a PNG with ``--png``. Layers
with thousands of lines or points are rasterized inside the SVG, so that a study of 10,000
trials makes a page of a few megabytes that a browser draws at once.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
from matplotlib.collections import LineCollection
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from ..results import Study, TrialResult

STATE_COLORS = {
    "completed": "#1f77b4", "stopped": "#ff7f0e", "failed": "#d62728", "cancelled": "#8c8c8c",
    "running": "#2ca02c", "pending": "#bcbd22", "queued": "#d9d9d9",
    "retried": "#9467bd", "preempted": "#e377c2",
}
RASTER_ABOVE = 300  # artists in one layer above which it is drawn as an image inside the SVG
MAX_CURVE_PANELS = 6
CMAP = "viridis"


@dataclass
class Plot:
    id: str  # file name of its PNG, element id in the page
    title: str
    figure: Figure
    caption: str = ""

    def settle(self) -> None:
        """Fix the layout once, without the rasterized layers: the constrained layout draws the
        whole figure to measure it, which at 10,000 curves doubled the time of every save.
        Idempotent; call it before saving."""
        fig = self.figure
        if fig.get_layout_engine() is None:
            return
        heavy = [a for ax in fig.axes for a in (*ax.collections, *ax.lines, *ax.images) if a.get_rasterized()]
        for a in heavy:
            a.set_visible(False)
        fig.draw_without_rendering()
        fig.set_layout_engine(None)  # None, not "none": savefig draws once more for any engine
        for a in heavy:
            a.set_visible(True)


@dataclass
class Missing:
    """A section with nothing to draw, and why (shown on the page instead of the figure)."""

    id: str
    title: str
    why: str


def _figure(width: float, height: float, cols: int = 1, rows: int = 1, **kw: Any) -> Tuple[Figure, Any]:
    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(rows, cols, squeeze=False, **kw)
    return fig, axes


def _time_axis(seconds: np.ndarray) -> Tuple[np.ndarray, str]:
    span = float(np.nanmax(seconds)) if len(seconds) else 0.0
    if span < 600:
        return seconds, "seconds since the study started"
    if span < 5 * 3600:
        return seconds / 60.0, "minutes since the study started"
    return seconds / 3600.0, "hours since the study started"


def _sign(study: Study) -> float:
    return -1.0 if study.optimization == "maximize" else 1.0


def _best_so_far(values: np.ndarray, sign: float) -> np.ndarray:
    return sign * np.minimum.accumulate(sign * values)


# ------------------------------------------------------------------------------ history


def history(study: Study) -> List[Any]:
    if not study.metric:
        return [Missing("history", "Optimisation history", "the study has no metric: there is no value to "
                        "optimise (the learning curves below show what the trials reported)")]
    done = study.valued()
    if not done:
        return [Missing("history", "Optimisation history", f"no trial has a value of {study.metric} yet")]
    sign = _sign(study)
    start = study.created or min(t.created or 0 for t in study.trials)
    by_end = sorted(done, key=lambda t: (t.ended or t.created or 0, t.id))
    t_end = np.array([(t.ended or t.created or start) - start for t in by_end])
    x_time, time_label = _time_axis(t_end)
    v_time = np.array([t.value for t in by_end])
    by_id = sorted(done, key=lambda t: t.id)
    x_id = np.array([t.id for t in by_id])
    v_id = np.array([t.value for t in by_id])

    fig, axes = _figure(11, 3.6, cols=2, sharey=True)
    for ax, x, v, label in ((axes[0][0], x_time, v_time, time_label), (axes[0][1], x_id, v_id, "trial")):
        trials = by_end if label != "trial" else by_id
        raster = len(x) > RASTER_ABOVE
        for state in ("completed", "stopped"):
            mask = np.array([t.state == state for t in trials])
            if mask.any():
                ax.scatter(x[mask], v[mask], s=10 if raster else 18, alpha=0.6, color=STATE_COLORS[state],
                           marker="o" if state == "completed" else "x", label=f"{state} ({int(mask.sum())})",
                           rasterized=raster, linewidths=1)
        order = np.argsort(x, kind="stable")
        ax.step(x[order], _best_so_far(v[order], sign), where="post", color="#111111", lw=1.6,
                label="best so far")
        ax.set_xlabel(label)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel(f"{study.metric} ({study.optimization})")
    axes[0][0].legend(loc="upper right", fontsize=8)
    _maybe_log_y(axes[0][0], v_id)
    best = study.best
    caption = (f"{len(done)} trials with a value; best: trial {best.id}, {study.metric} = {best.value:.6g}. "
               "Left: against the time each trial ended; right: against the trial number.")
    return [Plot("history", "Optimisation history", fig, caption)]


def _maybe_log_y(ax: Any, values: np.ndarray) -> None:
    v = values[np.isfinite(values)]
    if len(v) > 2 and v.min() > 0 and v.max() / v.min() > 1e3:
        ax.set_yscale("log")


# --------------------------------------------------------------------- parallel coordinates


def _axis_values(name: str, values: Sequence[Any], log: bool) -> Tuple[np.ndarray, List[Tuple[float, str]]]:
    """Values of one axis scaled to [0, 1], and its tick marks (position, label)."""
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) and v is not None for v in values)
    if numeric:
        arr = np.array(values, dtype=float)
        use_log = log and arr.size and arr.min() > 0
        scaled = np.log10(arr) if use_log else arr
        lo, hi = float(np.nanmin(scaled)), float(np.nanmax(scaled))
        span = hi - lo or 1.0
        ticks = [(0.0, f"{(10 ** lo if use_log else lo):.3g}"), (1.0, f"{(10 ** hi if use_log else hi):.3g}")]
        if hi == lo:
            return np.full(len(arr), 0.5), [(0.5, f"{arr[0]:.3g}")]
        return (scaled - lo) / span, ticks
    cats = sorted({str(v) for v in values}, key=lambda s: (len(s), s))
    pos = {c: (i + 0.5) / len(cats) for i, c in enumerate(cats)}
    return np.array([pos[str(v)] for v in values]), [(p, c[:14]) for c, p in pos.items()]


def parallel_coordinates(study: Study) -> List[Any]:
    title = "Parallel coordinates"
    if not study.metric:
        return [Missing("parallel", title, "the study has no metric to colour the parameters by")]
    done = study.valued()
    names = sorted({k for t in done for k in t.params})
    if not done or not names:
        return [Missing("parallel", title, "no trial with a value yet" if not done else "no parameters")]
    use_resource = any(t.resource is not None for t in done) and len({t.resource for t in done}) > 1
    columns = names + (["resource"] if use_resource else []) + [study.metric]
    values = np.array([t.value for t in done])
    scaled, ticks = [], []
    for c in columns:
        if c == study.metric:
            col = list(values)
        elif c == "resource" and use_resource:
            col = [t.resource for t in done]
        else:
            col = [t.params.get(c) for t in done]
        s, tk = _axis_values(c, col, c in study.log_params or c == "resource")
        scaled.append(s)
        ticks.append(tk)
    ys = np.stack(scaled, axis=1)
    xs = np.arange(len(columns), dtype=float)
    fig, axes = _figure(max(6.0, 1.6 * len(columns) + 2), 4.2)
    ax = axes[0][0]
    # best trials drawn last, so that they are on top
    sign = _sign(study)
    order = np.argsort(-sign * values)
    segments = np.stack([np.broadcast_to(xs, ys.shape), ys], axis=2)[order]
    lc = LineCollection(segments, cmap=CMAP if study.optimization == "maximize" else CMAP + "_r",
                        linewidths=1.0, alpha=0.75, rasterized=len(done) > RASTER_ABOVE)
    lc.set_array(values[order])
    ax.add_collection(lc)
    for x, tk in zip(xs, ticks):
        ax.axvline(x, color="#444444", lw=0.8)
        for pos, label in tk:
            ax.annotate(label, (x, pos), xytext=(4, 0), textcoords="offset points", fontsize=7, va="center",
                        color="#222222")
    ax.set_xlim(-0.2, len(columns) - 0.6)
    ax.set_ylim(-0.05, 1.05)
    ax.set_xticks(xs, [c + (" (log)" if c in study.log_params else "") for c in columns], fontsize=8)
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    fig.colorbar(lc, ax=ax, label=study.metric, pad=0.01)
    caption = (f"One line per trial with a value ({len(done)}), coloured by {study.metric}; the best trials "
               "are drawn on top. Categorical values are spread evenly along their axis.")
    return [Plot("parallel", title, fig, caption)]


# ---------------------------------------------------------------------------- importance


def importance(study: Study) -> List[Any]:
    from .importance import permutation_importance_of

    title = "Parameter importance"
    result = permutation_importance_of(study)
    if result is None or "why_not" in result:
        return [Missing("importance", title, (result or {}).get("why_not", "no metric"))]
    names, mean, std = result["params"], np.array(result["mean"]), np.array(result["std"])
    order = np.argsort(mean)
    fig, axes = _figure(7.5, 0.45 * len(names) + 1.4)
    ax = axes[0][0]
    ax.barh([names[i] for i in order], mean[order], xerr=std[order], color="#1f77b4", alpha=0.85,
            error_kw={"ecolor": "#333333", "capsize": 3})
    ax.set_xlabel(f"increase of the forest's error when the parameter is shuffled ({result['scoring']})")
    ax.grid(axis="x", alpha=0.3)
    return [Plot("importance", title, fig, result["method"])]


# ------------------------------------------------------------------------ learning curves


def learning_curves(study: Study) -> List[Any]:
    title = "Learning curves"
    metrics = [m for m in study.metrics if any(m in t.curves for t in study.trials)]
    if not metrics:
        return [Missing("curves", title, "no trial has reported anything yet")]
    shown = metrics[:MAX_CURVE_PANELS]
    cols = min(2, len(shown))
    rows = math.ceil(len(shown) / cols)
    fig, axes = _figure(5.6 * cols, 3.4 * rows, cols=cols, rows=rows)
    for k, m in enumerate(shown):
        ax = axes[k // cols][k % cols]
        _curves_panel(ax, study, m)
    for k in range(len(shown), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    caption = ("Every trial's reported curve (x: its step, or the report's position when it gave none). "
               "Stopped trials end with ×, failed ones with a red dot; running trials are green.")
    if len(metrics) > len(shown):
        caption += f" Not drawn here (see the table): {', '.join(metrics[len(shown):])}."
    return [Plot("curves", title, fig, caption)]


def _curves_panel(ax: Any, study: Study, metric: str) -> None:
    by_state: Dict[str, List[np.ndarray]] = {}
    ends: Dict[str, List[Tuple[float, float]]] = {}
    all_values = []
    for t in study.trials:
        c = t.curves.get(metric)
        if c is None or not len(c):
            continue
        xy = np.column_stack([np.frombuffer(c.steps), np.frombuffer(c.values)])
        by_state.setdefault(t.state, []).append(xy)
        ends.setdefault(t.state, []).append((xy[-1, 0], xy[-1, 1]))
        all_values.append(xy[:, 1])
    n = sum(len(v) for v in by_state.values())
    for state in ("completed", "cancelled", "pending", "running", "failed", "stopped"):
        segs = by_state.get(state)
        if not segs:
            continue
        lc = LineCollection(segs, colors=STATE_COLORS[state], linewidths=0.8,
                            alpha=0.35 if n > 50 else 0.75, rasterized=n > RASTER_ABOVE,
                            label=f"{state} ({len(segs)})")
        ax.add_collection(lc)
        if state in ("stopped", "failed"):
            e = np.array(ends[state])
            ax.scatter(e[:, 0], e[:, 1], marker="x" if state == "stopped" else "o", s=16,
                       color=STATE_COLORS[state], rasterized=len(e) > RASTER_ABOVE, zorder=3)
    ax.autoscale()
    values = np.concatenate(all_values)
    _maybe_log_y(ax, values)
    direction = study.directions.get(metric)
    ax.set_ylabel(metric + (f" ({direction})" if direction else ""))
    ax.set_xlabel("step")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")  # not "best": it searches every point, seconds at 10,000 curves


# ------------------------------------------------------------------------ multi-fidelity


def multi_fidelity(study: Study) -> List[Any]:
    """Rungs (Hyperband, ASHA: ``rung``, ``bracket``, ``parent``/``resume_from``) and
    populations (PBT: ``member``, ``interval``, ``resume_from``), from the trials' records."""
    title = "Multi-fidelity"
    if any("member" in t.meta for t in study.trials):
        return _population(study)
    if any("rung" in t.meta for t in study.trials):
        return _rungs(study)
    return [Missing("fidelity", title, f"a {study.algorithm} study has no rungs, brackets or population")]


def _parent(t: TrialResult) -> Optional[int]:
    """The trial this one was promoted from (Hyperband, ASHA) or took its checkpoint from."""
    v = t.meta.get("parent")
    if isinstance(v, int) and not isinstance(v, bool):
        return v
    return t.resume_from


def _rungs(study: Study) -> List[Any]:
    by_id = {t.id: t for t in study.trials}
    groups: Dict[Any, List[TrialResult]] = {}
    for t in study.trials:
        if "rung" in t.meta:
            groups.setdefault(t.meta.get("bracket"), []).append(t)
    keys = sorted(groups, key=lambda b: (b is None, -(b or 0)))
    cols = min(3, len(keys))
    rows = math.ceil(len(keys) / cols)
    fig, axes = _figure(4.4 * cols, 3.3 * rows, cols=cols, rows=rows, sharey=True)
    resource_name = study.algorithm_settings.get("resource") or "resource"
    metric = study.metric or "value"
    for k, b in enumerate(keys):
        ax = axes[k // cols][k % cols]
        trials = groups[b]
        segs, seg_ok = [], []
        for t in trials:
            p = by_id.get(_parent(t)) if _parent(t) is not None else None
            if p is not None and p.resource is not None and t.resource is not None and p.value is not None:
                y1 = t.value if t.value is not None else p.value
                segs.append([(p.resource, p.value), (t.resource, y1)])
                seg_ok.append(t.value is not None)
        if segs:
            ax.add_collection(LineCollection(segs, colors=["#555555" if ok else "#bbbbbb" for ok in seg_ok],
                                             linewidths=0.7, alpha=0.6, rasterized=len(segs) > RASTER_ABOVE))
        for state in ("completed", "stopped", "running", "pending", "failed", "cancelled"):
            pts = [(t.resource, t.value) for t in trials if t.state == state and t.resource is not None
                   and t.value is not None]
            if pts:
                a = np.array(pts, dtype=float)
                ax.scatter(a[:, 0], a[:, 1], s=14, color=STATE_COLORS[state], label=state, zorder=3,
                           rasterized=len(a) > RASTER_ABOVE)
        rung_counts: Dict[Any, int] = {}
        for t in trials:
            rung_counts[(t.meta.get("rung"), t.resource)] = rung_counts.get((t.meta.get("rung"), t.resource), 0) + 1
        plan = "  ".join(f"{n}@{r:g}" if isinstance(r, (int, float)) else f"{n}" for (_, r), n in
                         sorted(rung_counts.items(), key=lambda kv: (kv[0][0] is None, kv[0][0] or 0)))
        ax.set_title((f"bracket {b}: " if b is not None else "rungs: ") + plan, fontsize=9)
        resources = sorted({t.resource for t in trials if t.resource})
        if resources and max(resources) / min(resources) >= 3:
            ax.set_xscale("log")
        if 0 < len(resources) <= 12:  # the rungs' own resources as ticks, not powers of ten
            ax.set_xticks(resources, [f"{r:g}" for r in resources])
            ax.minorticks_off()
        ax.set_xlabel(resource_name)
        ax.grid(alpha=0.3)
        ax.autoscale()
        if k % cols == 0:
            ax.set_ylabel(metric)
    for k in range(len(keys), rows * cols):
        axes[k // cols][k % cols].set_visible(False)
    axes[0][0].legend(fontsize=7, loc="upper right")
    n_promoted = sum(1 for t in study.trials if "rung" in t.meta and _parent(t) is not None)
    caption = (f"Each point is a trial at its rung's {resource_name}; a line joins a configuration to its "
               f"promotion ({n_promoted} promotions). Counts per rung: trials @ {resource_name}.")
    return [Plot("fidelity", "Multi-fidelity: brackets and rungs", fig, caption)]


def _population(study: Study) -> List[Any]:
    by_id = {t.id: t for t in study.trials}
    members = sorted({t.meta["member"] for t in study.trials if "member" in t.meta}, key=str)
    row = {m: i for i, m in enumerate(members)}

    def x_of(t: TrialResult) -> float:
        v = t.meta.get("interval")
        return float(v) if isinstance(v, (int, float)) else float(t.resource or 0)

    x_label = "interval" if any("interval" in t.meta for t in study.trials) else "resource"
    fig, axes = _figure(11, max(3.0, 0.3 * len(members) + 1.5))
    ax = axes[0][0]
    segs, colors = [], []
    for t in study.trials:
        if "member" not in t.meta:
            continue
        p = by_id.get(_parent(t)) if _parent(t) is not None else None
        if p is not None and "member" in p.meta:
            exploit = p.meta["member"] != t.meta["member"]
            segs.append([(x_of(p), row[p.meta["member"]]), (x_of(t), row[t.meta["member"]])])
            colors.append("#d62728" if exploit else "#999999")
    if segs:
        ax.add_collection(LineCollection(segs, colors=colors, linewidths=0.9, alpha=0.8))
    pts = [(x_of(t), row[t.meta["member"]], t.value) for t in study.trials if "member" in t.meta]
    a = np.array([(x, y, np.nan if v is None else v) for x, y, v in pts], dtype=float)
    sc = ax.scatter(a[:, 0], a[:, 1], c=a[:, 2], cmap=CMAP if study.optimization == "maximize" else CMAP + "_r",
                    s=28, zorder=3, edgecolors="#333333", linewidths=0.3, plotnonfinite=True)
    ax.set_yticks(range(len(members)), [f"member {m}" for m in members], fontsize=7)
    if x_label == "interval":
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(x_label)
    ax.grid(alpha=0.3)
    ax.autoscale()
    if study.metric:
        fig.colorbar(sc, ax=ax, label=study.metric, pad=0.01)
    tree = Plot("fidelity", "Population: family tree", fig,
                "One row per member, one point per interval (coloured by the value). A red line: the member "
                "took over another member's checkpoint (exploit); grey: it continued its own.")
    # each member's parameters over the resource (the interval where trials carry none)
    on_resource = all(t.resource is not None for t in study.trials if "member" in t.meta)
    resource_name = study.algorithm_settings.get("resource") or "resource"

    def at(t: TrialResult) -> float:
        return float(t.resource) if on_resource else x_of(t)

    names = [n for n in sorted({k for t in study.trials for k in t.params})
             if all(isinstance(t.params.get(n), (int, float)) for t in study.trials if n in t.params)]
    if not names:
        return [tree]
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    fig2, axes2 = _figure(4.2 * cols, 3.0 * rows, cols=cols, rows=rows)
    for k, n in enumerate(names):
        ax2 = axes2[k // cols][k % cols]
        for m in members:
            mt = sorted((t for t in study.trials if t.meta.get("member") == m and n in t.params), key=at)
            # a trial's parameters hold up to the resource it trains to
            ax2.plot([at(t) for t in mt], [t.params[n] for t in mt], drawstyle="steps-pre", lw=1, alpha=0.8)
        if n in study.log_params:
            ax2.set_yscale("log")
        ax2.set_title(n, fontsize=9)
        ax2.set_xlabel(resource_name if on_resource else x_label)
        ax2.grid(alpha=0.3)
    for k in range(len(names), rows * cols):
        axes2[k // cols][k % cols].set_visible(False)
    return [tree, Plot("population-params", "Population: parameters over the resource", fig2,
                       "Each member's parameters over the resource it trained to (one line per member; a "
                       "jump is an exploit or an explore step).")]


# ------------------------------------------------------------------------- Slurm timeline


def timeline(study: Study) -> List[Any]:
    title = "Slurm timeline"
    rows = [(t, a) for t in study.trials for a in t.attempts]
    if not rows:
        return [Missing("timeline", title, "no trial has been submitted yet")]
    start = study.created or min(a.queued or t.created or 0 for t, a in rows)
    now = study.ended or study.read_at or time.time()
    n = len(rows)
    y = np.arange(n)[::-1]
    queued_segs, run_segs, run_colors = [], [], []
    ends_x: Dict[str, List[Tuple[float, float]]] = {}
    for (t, a), yy in zip(rows, y):
        q = (a.queued if a.queued is not None else (t.created or start)) - start
        s = None if a.started is None else a.started - start
        e = (a.ended if a.ended is not None else now) - start
        queued_segs.append([(q, yy), (s if s is not None else e, yy)])
        if s is not None:
            run_segs.append([(s, yy), (e, yy)])
            run_colors.append(STATE_COLORS.get(a.outcome, "#1f77b4"))
        if a.requeues:
            ends_x.setdefault("requeued by Slurm", []).append((s if s is not None else q, yy))
    all_x = np.array([p[0] for seg in queued_segs + run_segs for p in seg])
    x_scaled, label = _time_axis(all_x)
    factor = (all_x.max() / x_scaled.max()) if x_scaled.max() > 0 else 1.0

    def scale(segs: List[List[Tuple[float, float]]]) -> List[List[Tuple[float, float]]]:
        return [[(x / factor, yy) for x, yy in seg] for seg in segs]

    # labelled rows need their height; beyond that, rows are a texture and 7 inches show it
    height = max(2.5, 0.16 * n + 1.4) if n <= 60 else 7.0
    lw = max(0.5, min(6.0, 72 * (height - 1.2) / max(n, 1) * 0.7))
    fig, axes = _figure(11, height)
    ax = axes[0][0]
    raster = n > RASTER_ABOVE
    ax.add_collection(LineCollection(scale(queued_segs), colors=STATE_COLORS["queued"], linewidths=lw,
                                     rasterized=raster))
    if run_segs:
        ax.add_collection(LineCollection(scale(run_segs), colors=run_colors, linewidths=lw, rasterized=raster))
    for label_, pts in ends_x.items():
        p = np.array(pts)
        ax.scatter(p[:, 0] / factor, p[:, 1], marker="v", color="#000000", s=14, zorder=3, label=label_)
    outcomes = sorted({a.outcome for _, a in rows})
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=STATE_COLORS["queued"], lw=4, label="queued")] + [
        Line2D([], [], color=STATE_COLORS.get(o, "#1f77b4"), lw=4, label=o) for o in outcomes if o != "queued"]
    if ends_x:
        handles.append(Line2D([], [], color="#000000", marker="v", lw=0, label="requeued by Slurm"))
    ax.legend(handles=handles, fontsize=7, loc="upper right", ncol=min(4, len(handles)))
    if n <= 60:
        ax.set_yticks(y, [f"trial {t.id}" + (f" #{a.attempt}" if a.attempt else "") + (f" · {a.job_id}" if a.job_id
                          else "") + (f" · {a.node}" if a.node else "") for t, a in rows], fontsize=7)
    else:
        ax.set_yticks([])
        ax.set_ylabel(f"{n} attempts, first at the top")
    ax.set_xlabel(label)
    ax.set_ylim(-1, n)
    ax.autoscale(axis="x")
    ax.grid(axis="x", alpha=0.3)
    n_retried = sum(1 for _, a in rows if a.outcome in ("retried", "preempted"))
    caption = (f"One row per job of a trial ({n} jobs for {len(study.trials)} trials, {n_retried} resubmitted): "
               "grey while queued, coloured while running by how the job ended; job id and node on each row "
               "(nodes of earlier jobs only in journals with run events).")
    return [Plot("timeline", title, fig, caption)]


# Every section of the page, in page order: its name, and what draws it.
SECTIONS = {"history": history, "parallel": parallel_coordinates, "importance": importance,
            "curves": learning_curves, "fidelity": multi_fidelity, "timeline": timeline}
