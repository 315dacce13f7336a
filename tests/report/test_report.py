"""`hpc-tune report` opened in real headless Chromium (Debian's) from file://: no console
error, nothing fetched, every figure drawn (its pixels on screen, not only its elements), the
trial table sorts and filters. One report of each kind of study."""
from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import chromium_or_skip, cli
from headless_chromium import HeadlessChromium
from synthetic import write_study

import hpc_tune

# The figures each kind of study must draw (the other sections say why they have none).
EXPECTED = {
    "grid": {"curves", "timeline"},
    "random": {"history", "parallel", "importance", "curves", "timeline"},
    "hyperband": {"history", "parallel", "importance", "curves", "fidelity", "timeline"},
    "bo": {"history", "parallel", "importance", "curves", "timeline"},
    "asha": {"history", "parallel", "importance", "curves", "fidelity", "timeline"},
    "pbt": {"history", "parallel", "importance", "curves", "fidelity", "population-params", "timeline"},
    # journals written event by event (tests/report/synthetic.py): larger, with resubmissions
    "asha-journal": {"history", "parallel", "importance", "curves", "fidelity", "timeline"},
    "pbt-journal": {"history", "parallel", "importance", "curves", "fidelity", "population-params", "timeline"},
    "resubmitted-journal": {"history", "parallel", "importance", "curves", "timeline"},
}

FIGURES_JS = """
Array.from(document.querySelectorAll('svg.plot')).map(svg => {
  const r = svg.getBoundingClientRect();
  return {id: svg.dataset.plot, x: r.left + window.scrollX, y: r.top + window.scrollY, width: r.width,
          height: r.height, marks: svg.querySelectorAll('path, image, use, text').length};
})
"""


def study_of(kind: str, studies, tmp_path_factory) -> str:
    if kind in studies:
        return studies[kind]
    root = tmp_path_factory.mktemp(f"synthetic-{kind}")
    shape = kind.split("-")[0]
    return write_study(str(root / kind), n_trials=96, n_steps=12,
                       kind="random" if shape == "resubmitted" else shape, seed=3)


def ink(png: bytes) -> float:
    """The share of pixels that are not the page's white background."""
    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("L")
    hist = image.histogram()
    return 1.0 - sum(hist[245:]) / float(sum(hist))


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_report_draws_in_chromium(kind, studies, tmp_path, tmp_path_factory):
    chromium_or_skip()
    study_dir = study_of(kind, studies, tmp_path_factory)
    out = tmp_path / "report.html"
    res = cli("report", study_dir, "-o", str(out), "--png", str(tmp_path / "png"))
    assert str(out) in res.stdout
    study = hpc_tune.load_study(study_dir)
    with HeadlessChromium() as browser:
        page = browser.open(out.as_uri())
        assert page.console_errors == []
        fetched = [u for u in page.requests if not u.startswith(("file:", "data:"))]
        assert fetched == [] and page.requests[0] == out.as_uri()
        figures = page.evaluate(FIGURES_JS)
        assert {f["id"] for f in figures} == EXPECTED[kind]
        for f in figures:
            assert f["width"] > 200 and f["height"] > 100 and f["marks"] > 10, f
            share = ink(page.screenshot(clip={k: f[k] for k in ("x", "y", "width", "height")}))
            assert share > 0.03, f"{f['id']}: only {share:.1%} of its pixels drawn"
        # the trial table: every trial, sortable, filterable
        assert page.evaluate("document.querySelectorAll('#trials-table tbody tr').length") == len(study.trials)
        header = page.evaluate("Array.from(document.querySelectorAll('#trials-table th')).map(th => th.textContent)")
        assert header[:3] == ["trial", "state", "value"]
        assert {f"last.{m}" for m in study.metrics} <= set(header)
        if study.metric:
            page.evaluate("document.querySelector('#trials-table th[data-col=\"2\"]').click()")
            shown = page.evaluate("Array.from(document.querySelectorAll('#trials-table tbody tr td:nth-child(3)'))"
                                  ".map(td => td.textContent).filter(s => s !== '').map(Number)")
            assert shown == sorted(shown) and len(shown) == sum(t.value is not None for t in study.trials)
        state = study.trials[-1].state
        page.evaluate("(() => { const i = document.getElementById('trials-filter'); "
                      f"i.value = 'state={state}'; i.dispatchEvent(new Event('input')); }})()")
        assert page.evaluate("document.querySelectorAll('#trials-table tbody tr').length") == \
            sum(t.state == state for t in study.trials)
        assert page.console_errors == []
    pngs = {p.stem for p in (tmp_path / "png").glob("*.png")}
    assert pngs == EXPECTED[kind]


def test_report_page_is_self_contained_and_names_its_methods(studies, tmp_path):
    out = tmp_path / "r.html"
    cli("report", studies["random"], "-o", str(out))
    text = out.read_text()
    assert "<script src" not in text and "<link rel=\"stylesheet\"" not in text and "@import" not in text
    assert "permutation importance" in text and "RandomForestRegressor" in text
    assert "GPU-hours" in text or "job-hours" in text
    study = hpc_tune.load_study(studies["random"])
    assert f"trial {study.best.id}: loss = {study.best.value:.6g}" in text


def test_report_of_a_copied_study_folder(studies, tmp_path):
    copy = tmp_path / "elsewhere" / "copied-study"
    shutil.copytree(studies["hyperband"], copy)
    out = tmp_path / "copy.html"
    res = cli("report", str(copy), "-o", str(out), env={"HPC_TUNE_STATE_DIR": str(tmp_path / "none")})
    assert "finished" in res.stdout
    text = out.read_text()
    assert str(copy) in text and 'data-plot="fidelity"' in text


def test_default_output_is_the_study_id_here(studies, tmp_path):
    res = subprocess.run([sys.executable, "-m", "hpc_tune", "report", studies["bo"]], cwd=tmp_path,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    assert (tmp_path / f"{Path(studies['bo']).name}.html").is_file()


def test_without_matplotlib_one_clear_message(studies, tmp_path):
    code = ("import sys; sys.modules['matplotlib'] = None; from hpc_tune.cli import main; "
            f"sys.exit(main(['report', {studies['bo']!r}, '-o', {str(tmp_path / 'x.html')!r}]))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 2
    assert res.stderr.strip() == ("hpc-tune: error: hpc-tune report needs matplotlib, which is not installed: "
                                  "pip install 'hpc-tune[report]' (or pip install matplotlib)")
    assert not (tmp_path / "x.html").exists()


def test_unknown_study_one_clear_message(tmp_path):
    res = cli("report", "no-such-study", "--state-dir", str(tmp_path), check=False)
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith("hpc-tune: error: no study 'no-such-study' under")
    assert os.listdir(tmp_path) == []


def test_drawn_in_two_processes_the_page_is_the_same(tmp_path):
    from hpc_tune.htmlreport import write_report

    study = hpc_tune.load_study(write_study(str(tmp_path / "syn"), n_trials=120, n_steps=10, kind="asha"))
    one = write_report(study, str(tmp_path / "serial.html"), png_dir=str(tmp_path / "a"), parallel=False)
    two = write_report(study, str(tmp_path / "forked.html"), png_dir=str(tmp_path / "b"), parallel=True)
    assert (tmp_path / "serial.html").read_text() == (tmp_path / "forked.html").read_text()
    assert [Path(p).name for p in one[1:]] == [Path(p).name for p in two[1:]] and len(one) == 7
    assert all(Path(p).stat().st_size > 1000 for p in two[1:])


def test_summary_hours_from_the_journal(tmp_path):
    """GPU-hours used, lost and queued, recomputed from the journal's own events."""
    from hpc_tune.htmlreport.page import resource_use, summary_rows

    study_dir = write_study(str(tmp_path / "syn"), n_trials=60, n_steps=5, seed=2, gpus=2)
    run = {"all": 0.0, "failed": 0.0, "stopped": 0.0, "cancelled": 0.0, "resubmitted": 0.0}
    queue, started, queued, state = 0.0, {}, {}, {}
    with open(os.path.join(study_dir, "journal.jsonl")) as fh:
        events = [json.loads(line) for line in fh]
    for e in events:
        if e["e"] == "end":
            state[e["id"]] = e["state"]
    for e in events:
        tid = e.get("id")
        if e["e"] == "submitted":
            queued[tid] = e["t"]
        elif e["e"] == "state" and e["state"] == "running":
            started[tid] = e["t"]
            queue += e["t"] - queued[tid]
        elif e["e"] in ("retry", "end"):
            # an end carries the wrapper's own start and end times, which count over the polls'
            h = ((e.get("ended") or e["t"]) - e.get("started", started[tid])) / 3600
            run["all"] += h
            if e["e"] == "retry":
                run["resubmitted"] += h
            elif state[tid] in ("failed", "stopped", "cancelled"):
                run[state[tid]] += h
    use = resource_use(hpc_tune.load_study(study_dir))
    assert use["run_h"] == pytest.approx(run["all"]) and use["queue_h"] == pytest.approx(queue / 3600)
    for k in ("failed", "stopped", "resubmitted"):
        assert use[f"run_{k}_h"] == pytest.approx(run[k]) and run[k] > 0, k
    rows = dict(summary_rows(hpc_tune.load_study(study_dir)))
    assert rows["GPUs per trial"] == "2"
    assert rows["used by trials"].startswith(f"{2 * run['all']:.2f} GPU-hours")
    assert f"failed {2 * run['failed']:.2f} GPU-hours" in rows["of which spent on trials that ended badly"]


def test_text_from_the_study_is_escaped(tmp_path):
    """Reasons, parameter values and metric names reach the page as text, never as markup."""
    study_dir = Path(write_study(str(tmp_path / "syn"), n_trials=12, n_steps=3, seed=4))
    evil = "<script>alert(1)</script>"
    journal = (study_dir / "journal.jsonl").read_text().replace('"act":"tanh"', '"act":"<img src=x onerror=alert(2)>"')
    journal = journal.replace('"reason":"all 12 trials ended"', json.dumps({"reason": evil})[1:-1])
    journal = journal.replace('"acc":', '"</script><b>acc":')
    (study_dir / "journal.jsonl").write_text(journal)
    study = hpc_tune.load_study(str(study_dir))
    assert study.reason == evil and "</script><b>acc" in study.metrics
    out = tmp_path / "r.html"
    cli("report", str(study_dir), "-o", str(out))
    text = out.read_text()
    assert evil not in text and "<img src=x" not in text and "</script><b>" not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    if shutil.which("chromium"):
        with HeadlessChromium() as browser:
            page = browser.open(out.as_uri())
            assert page.console_errors == []
            assert page.evaluate("document.querySelectorAll('#trials-table img, #trials-table b').length") == 0
            assert "last.</script><b>acc" in page.evaluate(
                "Array.from(document.querySelectorAll('#trials-table th')).map(th => th.textContent)")
