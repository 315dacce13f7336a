"""The report's HTML: one self-contained file (styles, figures as inline SVG, the table's
data and script all inside; nothing is fetched)."""
from __future__ import annotations

import datetime as dt
import html
import io
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Dict, List, Optional, Sequence, Tuple, Union

import matplotlib

from .. import __version__
from ..results import Study
from .figures import Missing, Plot

MAX_TABLE_ROWS = 500  # rows drawn at once; sorting and filtering reach all of them

SVG_RC = {"svg.fonttype": "none", "svg.hashsalt": "hpc-tune-report"}  # text as text, stable ids


def _asset(name: str) -> str:
    return resources.files(__package__).joinpath("assets", name).read_text(encoding="utf-8")


def _when(t: Optional[float]) -> str:
    if t is None:
        return ""
    return dt.datetime.fromtimestamp(t, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: Optional[float]) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


def resource_use(study: Study) -> Dict[str, float]:
    """Hours of the trials' jobs: running, running in trials that failed, were stopped or
    cancelled, running in jobs that were resubmitted, and waiting in the queue. A job that
    still runs (or waits) counts up to the moment the study was read."""
    now = study.ended or study.read_at
    out = {"run_h": 0.0, "run_failed_h": 0.0, "run_stopped_h": 0.0, "run_cancelled_h": 0.0,
           "run_resubmitted_h": 0.0, "queue_h": 0.0}
    for t in study.trials:
        for a in t.attempts:
            end = a.ended if a.ended is not None else now
            if a.started is not None:
                h = max(0.0, end - a.started) / 3600.0
                out["run_h"] += h
                if a.outcome in ("retried", "preempted"):
                    out["run_resubmitted_h"] += h
                elif t.state in ("failed", "stopped", "cancelled"):
                    out[f"run_{t.state}_h"] += h
            if a.queued is not None:
                out["queue_h"] += max(0.0, (a.started if a.started is not None else end) - a.queued) / 3600.0
    return out


def summary_rows(study: Study) -> List[Tuple[str, str]]:
    """(label, plain text) of the summary; the page escapes both."""
    counts = study.counts()
    best = study.best
    use = resource_use(study)
    g = study.gpus_per_trial
    end = study.ended or study.read_at

    def hours(h: float) -> str:
        return f"{h * g:.2f} GPU-hours" if g else f"{h:.2f} job-hours"

    rows = [("state", study.state + (f": {study.reason}" if study.reason else "")),
            ("algorithm", study.algorithm + (f", metric {study.metric} ({study.optimization})" if study.metric
                                              else ", no metric")),
            ("trials", f"{len(study.trials)}: " + (", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
                                                    or "none yet"))]
    if best is not None:
        params = ", ".join(f"{k} = {v:.6g}" if isinstance(v, float) else f"{k} = {v}" for k, v in best.params.items())
        rows.append(("best trial", f"trial {best.id}: {study.metric} = {best.value:.6g}"
                     + (f" @ {best.resource:g}" if best.resource is not None else "") + f" ({params})"))
    elif study.metric:
        rows.append(("best trial", f"none yet (no trial has a value of {study.metric})"))
    rows += [
        ("wall time", f"{_duration(end - study.created) if study.created else ''} (from {_when(study.created)} to "
                      + (_when(study.ended) if study.ended else f"now, {_when(study.read_at)}") + ")"),
        ("GPUs per trial", f"{g}" if g else "none asked for: the hours below are hours of trial jobs"),
        ("used by trials", hours(use["run_h"]) + (f" ({use['run_h']:.2f} job-hours)" if g else "")),
        ("of which spent on trials that ended badly",
         f"failed {hours(use['run_failed_h'])}; stopped early {hours(use['run_stopped_h'])}; cancelled "
         f"{hours(use['run_cancelled_h'])}; jobs resubmitted after a time limit, node failure or preemption "
         f"{hours(use['run_resubmitted_h'])}"),
        ("queue wait", hours(use["queue_h"]) + " asked for while the jobs waited in the queue"),
    ]
    return rows


@dataclass
class Drawn:
    """A figure as it goes into the page: its SVG text."""

    id: str
    title: str
    svg: str
    caption: str = ""


def svg_of(plot: Plot) -> Drawn:
    buf = io.StringIO()
    plot.settle()
    with matplotlib.rc_context(SVG_RC):
        plot.figure.savefig(buf, format="svg", metadata={"Date": None})
    text = buf.getvalue()
    text = text[text.index("<svg"):]
    # The figures share one page: make matplotlib's ids (figure_1, clip paths...) unique.
    prefix = f"{plot.id}-"
    text = re.sub(r'\bid="', f'id="{prefix}', text)
    text = text.replace("url(#", f"url(#{prefix}").replace('href="#', f'href="#{prefix}')
    text = text.replace("<svg ", f'<svg class="plot" data-plot="{plot.id}" ', 1)
    return Drawn(plot.id, plot.title, text, plot.caption)


def _table_json(study: Study) -> str:
    rows = study.rows()
    columns = list(rows[0]) if rows else ["trial", "state", "value"]
    for r in rows:
        for k in ("created", "started", "ended"):
            r[k] = _when(r[k])
        if r.get("run_time_s") is not None:
            r["run_time_s"] = round(r["run_time_s"], 1)
    payload = {"columns": columns, "rows": [[r.get(c) for c in columns] for r in rows], "max_rows": MAX_TABLE_ROWS}
    text = json.dumps(payload, separators=(",", ":"), allow_nan=False, default=str)
    # no markup character in the script element: it never ends early, nothing in it reads as HTML
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(study: Study, sections: Sequence[Union[Drawn, Missing]]) -> str:
    title = f"hpc-tune report: {study.id}"
    nav = " ".join(f'<a href="#{s.id}">{html.escape(s.title)}</a>' for s in sections) + ' <a href="#trials">Trials</a>'
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        '<link rel="icon" href="data:,">',  # no request for a favicon
        f"<title>{html.escape(title)}</title>", f"<style>{_asset('report.css')}</style></head><body>",
        f"<h1>{html.escape(study.id)}</h1>",
        f'<p class="sub">hpc-tune {__version__} report, read {_when(study.read_at)} from {html.escape(study.path)}'
        + (" (the study was still running: a snapshot of that moment)" if study.ended is None else "") + "</p>",
        f"<nav>{nav}</nav>", '<h2 id="summary">Summary</h2><table class="facts">',
    ]
    parts += [f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in summary_rows(study)]
    parts.append("</table>")
    for w in study.warnings[-10:]:
        parts.append(f'<p class="warn">warning: {html.escape(w)}</p>')
    for s in sections:
        parts.append(f'<h2 id="{s.id}">{html.escape(s.title)}</h2>')
        if isinstance(s, Missing):
            parts.append(f'<p class="why">Nothing to draw: {html.escape(s.why)}.</p>')
        else:
            parts.append(f"<figure>{s.svg}<figcaption>{html.escape(s.caption)}</figcaption></figure>")
    parts += [
        '<h2 id="trials">Trials</h2>',
        '<input id="trials-filter" type="search" '
        'placeholder="filter: state=stopped value&lt;0.1 param.lr&gt;1e-3 or any text">',
        ' <span id="trials-count"></span>',
        '<div class="table-wrap"><table id="trials-table"></table></div>',
        f'<script type="application/json" id="trials-data">{_table_json(study)}</script>',
        f"<script>{_asset('table.js')}</script>",
        "</body></html>",
    ]
    return "\n".join(parts)
