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

import os
from typing import List, Optional

from ..errors import UserError
from ..results import Study


def _require_matplotlib() -> None:
    try:
        import matplotlib

        matplotlib.use("Agg", force=False)
    except ImportError:
        raise UserError("hpc-tune report needs matplotlib, which is not installed: "
                        "pip install 'hpc-tune[report]' (or pip install matplotlib)") from None


def write_report(study: Study, out_path: str, png_dir: Optional[str] = None) -> List[str]:
    """Write the HTML report of ``study`` to ``out_path`` (and each figure as ``png_dir/<id>.png``).
    Returns the files written."""
    _require_matplotlib()
    from .figures import Plot, all_figures
    from .importance import permutation_importance_of
    from .page import render_page

    sections = all_figures(study, permutation_importance_of(study))
    text = render_page(study, sections)
    written = []
    folder = os.path.dirname(os.path.abspath(out_path))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{out_path}.tmp.{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.replace(tmp, out_path)
    written.append(out_path)
    if png_dir:
        os.makedirs(png_dir, exist_ok=True)
        for s in sections:
            if isinstance(s, Plot):
                path = os.path.join(png_dir, f"{s.id}.png")
                s.settle()
                s.figure.savefig(path, dpi=150)
                written.append(path)
    return written
