"""``hpc-tune report``: one self-contained HTML file about a study, and the same figures as PNG.

Plotting library: matplotlib, on purpose. Its SVG goes inline into the page, so the page
draws with no script and no network at all (a copied file opens in any browser, years from
now), and the very same figures are written as PNG for papers and slides with no browser
and no extra renderer. Dense layers (thousands of curves or lines) are rasterized inside the
SVG, which keeps a 10,000-trial report to a few megabytes. What matplotlib lacks, hovering
and zooming, matters less here than the table, which sorts and filters every trial with a
few lines of inline script. plotly was the alternative: it writes offline HTML too, but
every page carries its 4.6 MB of JavaScript, draws nothing without it, and its PNG export
needs a separate browser-based renderer (kaleido).

(Not named ``hpc_tune.report``: that is the function a trial calls.)

matplotlib is an optional extra (``pip install 'hpc-tune[report]'``): a trial job or a
controller never needs it.
"""
from __future__ import annotations

import multiprocessing
import os
from typing import Any, List, Optional

from ..errors import UserError
from ..results import Study


def _require_matplotlib() -> None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
    except ImportError:
        raise UserError("hpc-tune report needs matplotlib, which is not installed: "
                        "pip install 'hpc-tune[report]' (or pip install matplotlib)") from None


# Above this many trials the sections are drawn by two forked processes (figures and the
# importance are independent; at 10,000 trials they are a third of the time). Below it, forking
# costs more than it saves.
PARALLEL_ABOVE = 2000

_study: Optional[Study] = None  # what forked workers draw (inherited, never pickled)
_png_dir: Optional[str] = None


def _draw(name: str) -> List[Any]:
    """One section of the page: its drawn figures (SVG text, and PNG files when asked), or why
    it has none."""
    from .figures import SECTIONS, Plot
    from .page import svg_of

    out: List[Any] = []
    for s in SECTIONS[name](_study):
        if isinstance(s, Plot):
            out.append(svg_of(s))
            if _png_dir:
                s.figure.savefig(os.path.join(_png_dir, f"{s.id}.png"), dpi=150)
        else:
            out.append(s)
    return out


def write_report(study: Study, out_path: str, png_dir: Optional[str] = None,
                 parallel: Optional[bool] = None) -> List[str]:
    """Write the HTML report of ``study`` to ``out_path`` (and each figure as ``png_dir/<id>.png``).
    Returns the files written. ``parallel``: draw in two forked processes (default: for studies
    of more than PARALLEL_ABOVE trials, where fork exists and there are two cores)."""
    global _study, _png_dir
    _require_matplotlib()
    from .figures import SECTIONS
    from .page import render_page

    if png_dir:
        os.makedirs(png_dir, exist_ok=True)
    if parallel is None:
        parallel = len(study.trials) > PARALLEL_ABOVE and (os.cpu_count() or 1) > 1
    parallel = parallel and "fork" in multiprocessing.get_all_start_methods()
    names = sorted(SECTIONS, key=lambda n: n != "curves")  # the slowest first
    _study, _png_dir = study, png_dir
    try:
        if parallel:
            with multiprocessing.get_context("fork").Pool(2) as pool:
                drawn = dict(zip(names, pool.map(_draw, names, chunksize=1)))
        else:
            drawn = {n: _draw(n) for n in names}
    finally:
        _study = _png_dir = None
    sections = [s for n in SECTIONS for s in drawn[n]]
    text = render_page(study, sections)
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    tmp = f"{out_path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, out_path)
    pngs = [os.path.join(png_dir, f"{s.id}.png") for s in sections if png_dir and hasattr(s, "svg")]
    return [out_path] + pngs
