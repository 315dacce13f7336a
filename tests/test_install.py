"""hpc-tune as a user installs it: the wheel and the sdist carry what runs (the controller's
sbatch template), the tests run against the installed package (in CI: the wheel that
scripts/test.sh built), and the installed `hpc-tune` submits a study whose controller is a
Slurm job."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import textwrap
import venv
import zipfile
from pathlib import Path

import pytest

import hpc_tune

REPO_ROOT = Path(__file__).resolve().parents[1]
TEMPLATE = "hpc_tune/slurm_templates/controller.sbatch"
IN_CI = os.environ.get("CI", "").lower() == "true"


def _copy_tracked_tree(dest: Path) -> None:
    """The repository as a release sees it: no build outputs, caches or venvs."""
    shutil.copytree(REPO_ROOT, dest, ignore=shutil.ignore_patterns(
        ".git", "*.egg-info", "build", "dist", "__pycache__", ".pytest_cache", ".hypothesis", "hpc-tune-studies",
        "venv", ".venv", "results"))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict:
    """The sdist and, built from it as a release is, the wheel (`python -m build`)."""
    tmp = tmp_path_factory.mktemp("build")
    src = tmp / "src"
    _copy_tracked_tree(src)
    out = tmp / "dist"
    res = subprocess.run([sys.executable, "-m", "build", "--outdir", str(out), str(src)],
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    return {"sdist": next(out.glob("hpc_tune-*.tar.gz")), "wheel": next(out.glob("hpc_tune-*.whl"))}


def test_tests_run_against_the_installed_package_in_ci() -> None:
    package_dir = Path(hpc_tune.__file__).resolve().parent
    if IN_CI or os.environ.get("HPC_TUNE_WHEEL"):
        assert REPO_ROOT not in package_dir.parents, (
            f"the tests imported hpc_tune from the source tree ({package_dir}), not the installed wheel")
    # Wherever it comes from, the template is where the package looks for it.
    assert (package_dir / "slurm_templates" / "controller.sbatch").is_file()


def test_sdist_and_wheel_carry_the_sbatch_template(built) -> None:
    with tarfile.open(built["sdist"]) as tar:
        names = tar.getnames()
    root = names[0].split("/")[0]
    for needed in (TEMPLATE, "pyproject.toml", "README.md", "scripts/test.sh", "configs/grid.yml",
                   "docs/dialect.md"):
        assert f"{root}/{needed}" in names, needed
    with zipfile.ZipFile(built["wheel"]) as whl:
        assert TEMPLATE in whl.namelist()
        assert whl.read(TEMPLATE).decode() == (REPO_ROOT / TEMPLATE).read_text()
    assert not (REPO_ROOT / "slurm_templates").exists(), "one copy of the template: the package's"


@pytest.mark.parametrize("which", ["wheel of this run", "wheel built from the sdist"])
def test_wheel_installed_into_an_empty_venv_finds_the_template(built, tmp_path, which) -> None:
    wheel = os.environ.get("HPC_TUNE_WHEEL") if which == "wheel of this run" else None
    wheel = wheel or str(built["wheel"])
    env_dir = tmp_path / "empty"
    venv.EnvBuilder(with_pip=False, system_site_packages=False).create(env_dir)
    python = env_dir / "bin" / "python"
    # The empty venv has no pip and no dependencies: this pip installs the wheel alone into it.
    res = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet", "--no-deps",
                          "--no-index", wheel], capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr
    # The launcher's own lookup (TEMPLATE_DIRS), without importing the package's dependencies.
    probe = textwrap.dedent("""
        import importlib.util, json, os, sys
        spec = importlib.util.find_spec("hpc_tune")
        pkg = spec.submodule_search_locations[0]
        print(json.dumps({"pkg": pkg, "template": os.path.join(pkg, "slurm_templates", "controller.sbatch")}))
    """)
    res = subprocess.run([str(python), "-I", "-c", probe], capture_output=True, text=True, cwd=tmp_path, timeout=60)
    assert res.returncode == 0, res.stderr
    found = json.loads(res.stdout)
    assert Path(found["pkg"]).resolve().is_relative_to(env_dir.resolve())
    assert Path(found["template"]).is_file()
    assert Path(found["template"]).read_text() == (REPO_ROOT / TEMPLATE).read_text()
    assert (env_dir / "bin" / "hpc-tune").is_file()  # the console script


def installed_console_script() -> str:
    """`hpc-tune` of the environment the tests run in (in CI: the wheel's)."""
    script = Path(sys.executable).parent / "hpc-tune"
    assert script.is_file(), f"no hpc-tune console script next to {sys.executable}"
    return str(script)


@pytest.mark.slurm
def test_installed_console_script_submits_a_study_with_its_controller_as_a_slurm_job(tmp_path) -> None:
    study = tmp_path / "study.yml"
    study.write_text(textwrap.dedent("""\
        hptuning:
          concurrency: 2
          metric: {name: loss, optimization: minimize}
          matrix:
            x: {values: [1, 2, 3]}
        slurm: {time: "5"}
        run:
          cmd: >-
            echo '{"loss": {{ x }}}' >> "$HPC_TUNE_RESULT_FILE"
        """))
    # Run from a folder outside the source tree, as a user would (the controller job cds there).
    work = tmp_path / "work"
    work.mkdir()
    state = tmp_path / "state"
    res = subprocess.run([installed_console_script(), "submit", str(study), "--backend", "slurm", "--state-dir",
                          str(state), "--poll-interval", "3", "--wait"], capture_output=True, text=True, cwd=work,
                         timeout=600)
    out = res.stdout + res.stderr
    assert res.returncode == 0, out
    assert "controller submitted as Slurm job" in out
    (study_dir,) = list(state.iterdir())
    events = [json.loads(line) for line in (study_dir / "journal.jsonl").read_text().splitlines() if line.strip()]
    controller_jobs = [e["job"] for e in events if e["e"] == "controller" and e.get("action") == "submitted"]
    assert len(controller_jobs) == 1
    ends = [e for e in events if e["e"] == "end"]
    assert sorted(e["value"] for e in ends) == [1, 2, 3] and {e["state"] for e in ends} == {"completed"}
    assert [e["state"] for e in events if e["e"] == "study_end"] == ["finished"]
    # The controller ran as that Slurm job, with this installation's interpreter.
    script = (study_dir / "controller" / "controller.sbatch").read_text()
    (exec_line,) = [line for line in script.splitlines() if line.startswith("exec ")]
    interpreter = exec_line.split()[1]
    assert Path(interpreter).parent == Path(sys.executable).parent, exec_line  # this installation's bin/
    logs = list((study_dir / "controller").glob(f"slurm-{controller_jobs[0]}.out"))
    assert logs, "the controller job wrote no output file"
    sacct = subprocess.run(["sacct", "-n", "-X", "-P", "-o", "State", "-j", controller_jobs[0]],
                           capture_output=True, text=True, timeout=60).stdout.split()
    assert sacct and sacct[0] == "COMPLETED", sacct


def test_wheel_carries_the_report_page_assets(built) -> None:
    """`hpc-tune report` inlines its style and the table's script from the package."""
    assets = sorted(p.relative_to(REPO_ROOT).as_posix() for p in (REPO_ROOT / "hpc_tune/htmlreport/assets").iterdir())
    assert assets == ["hpc_tune/htmlreport/assets/report.css", "hpc_tune/htmlreport/assets/table.js"]
    with zipfile.ZipFile(built["wheel"]) as whl:
        for name in assets:
            assert whl.read(name) == (REPO_ROOT / name).read_bytes(), name
