"""`validate` and `plan` refuse what `submit` would refuse, with file, line and key path
(issue 9, item 3). The collection of bad files (tests/spec/bad_files/) checks the same over
many files; these are the cases of the issue, one by one."""
from __future__ import annotations

import sys
import textwrap
import tracemalloc
from pathlib import Path

import pytest

from hpc_tune.cli import main
from hpc_tune.errors import SpecError
from hpc_tune.spec import check_submittable, load_spec


def write(tmp_path: Path, text: str, name: str = "study.yml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def refused(capsys, path: str, *extra: str) -> str:
    """The one message each of validate, plan and submit prints; they must agree."""
    messages = []
    for argv in (["validate", path], ["plan", path], ["submit", path, "--state-dir", str(Path(path).parent / "st")]):
        assert main([*argv, *extra]) == 2, argv
        out, err = capsys.readouterr()
        lines = [line for line in err.splitlines() if not line.startswith("warning: ")]
        assert len(lines) == 1 and lines[0].startswith("hpc-tune: error: "), err
        assert "Traceback" not in err
        messages.append(lines[0])
    assert len(set(messages)) == 1, messages
    assert not (Path(path).parent / "st").exists()  # refused before a study was made
    return messages[0]


def test_nan_in_values(tmp_path, capsys):
    path = write(tmp_path, """\
        hptuning:
          matrix:
            lr: {values: [0.1, .nan]}
        run: {cmd: "echo {{ lr }}"}
        """)
    msg = refused(capsys, path, "--backend", "local")
    assert f"{path}:3: hptuning.matrix.lr.values[1]: NaN is not a value" in msg


def test_no_run_section(tmp_path, capsys):
    path = write(tmp_path, "hptuning:\n  matrix:\n    lr: {values: [0.1]}\n")
    assert f"{path}:1: no `run` section" in refused(capsys, path, "--backend", "local")


def test_url_ref(tmp_path, capsys):
    path = write(tmp_path, """\
        version: 1.1
        kind: operation
        matrix: {kind: grid, params: {lr: {kind: choice, value: [0.1]}}}
        urlRef: https://example.org/typed.yml
        """)
    msg = refused(capsys, path, "--backend", "local")
    assert f"{path}:4: urlRef: hpc-tune does not fetch components from URLs" in msg


def test_path_ref_read_relative_to_the_study_file(tmp_path, capsys, monkeypatch):
    (tmp_path / "components").mkdir()
    write(tmp_path, """\
        version: 1.1
        kind: component
        inputs:
          - {name: batch, type: int, value: 32}
        run:
          kind: job
          container:
            command: [echo, "--lr={{ lr }}", "--batch={{ batch }}"]
        """, name="components/typed.yml")
    path = write(tmp_path, """\
        version: 1.1
        kind: operation
        matrix: {kind: grid, params: {lr: {kind: choice, value: [0.1]}}}
        pathRef: components/typed.yml
        """)
    monkeypatch.chdir("/")  # relative to the file, not to where hpc-tune runs
    assert main(["validate", path, "--backend", "local"]) == 0
    spec = load_spec(path)
    assert spec.run.cmd.argv == ("echo", "--lr={{ lr }}", "--batch={{ batch }}")
    capsys.readouterr()
    missing = write(tmp_path, """\
        version: 1.1
        kind: operation
        matrix: {kind: grid, params: {lr: {kind: choice, value: [0.1]}}}
        pathRef: components/nothere.yml
        """, name="missing.yml")
    msg = refused(capsys, missing, "--backend", "local")
    assert f"{missing}:4: pathRef: cannot read the component 'components/nothere.yml'" in msg


def test_huge_grid_refused_from_its_computed_size_with_little_memory(tmp_path, capsys):
    path = write(tmp_path, """\
        hptuning:
          matrix:
            a: {range: 0:100000:1}
            b: {range: 0:100000:1}
        run: {cmd: "echo {{ a }} {{ b }}"}
        """)
    tracemalloc.start()
    try:
        with pytest.raises(SpecError) as err:
            load_spec(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 100 * 2**20  # the two axes, never the 10^10 points
    assert err.value.line == 2 and err.value.keypath == "hptuning.matrix"
    assert "10,000,000,000 points" in err.value.message
    assert "10,000,000,000 points" in refused(capsys, path, "--backend", "local")


def test_hyperopt_without_the_extra(tmp_path, capsys, monkeypatch):
    path = write(tmp_path, """\
        version: 1.1
        kind: operation
        matrix:
          kind: hyperopt
          numRuns: 4
          metric: {name: loss, optimization: minimize}
          params: {lr: {kind: uniform, value: [0, 1]}}
        run: {cmd: "echo {{ lr }}"}
        """)
    monkeypatch.setitem(sys.modules, "hyperopt", None)  # as if it were not installed
    msg = refused(capsys, path, "--backend", "local")
    assert f"{path}:4: matrix.kind: `kind: hyperopt` needs hyperopt, which is not installed" in msg
    assert "pip install 'hpc-tune[hyperopt]'" in msg


def test_gpu_request_on_the_local_backend(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no nvidia-smi, and no sbatch: local is the default
    path = write(tmp_path, """\
        hptuning:
          matrix: {lr: {values: [0.1]}}
        environment:
          resources:
            gpu: {requests: 1, limits: 1}
        run: {cmd: "echo {{ lr }}"}
        """)
    msg = refused(capsys, path)  # no --backend: the default rule, as submit's
    assert f"{path}:5: environment.resources.gpu: each trial asks for 1 GPU(s)" in msg
    assert "--gpus 0" in msg
    # what the message says works
    assert main(["submit", path, "--gpus", "0", "--state-dir", str(tmp_path / "ok"), "--backend", "local"]) == 0
    # and on Slurm the request is fine for validate
    assert main(["validate", path, "--backend", "slurm"]) == 0


def test_validate_and_submit_use_the_same_backend_rule(tmp_path, monkeypatch):
    path = write(tmp_path, "hptuning:\n  matrix: {lr: {values: [0.1]}}\nslurm: {gpus: 2}\nrun: {cmd: echo}\n")
    spec = load_spec(path)
    check_submittable(spec, "local", local_gpus=2)  # two GPUs here: enough
    check_submittable(spec, "slurm")  # Slurm's GPUs are the cluster's business
    with pytest.raises(SpecError, match="--gpus 0"):
        check_submittable(spec, "local", gpus=3, local_gpus=2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")  # what the local backend counts, as submit does
    monkeypatch.setenv("PATH", "/nonexistent")
    assert main(["validate", path, "--backend", "local"]) == 0
    assert main(["validate", path, "--backend", "local", "--gpus", "3"]) == 2


@pytest.mark.parametrize("word", ["yes", "no", "on", "off", "NO", "y", "n", "Yes", "OFF"])
def test_yaml_1_2_booleans(tmp_path, word):
    path = write(tmp_path, f"hptuning:\n  matrix:\n    c: {{values: [{word}, true, False]}}\nrun: {{cmd: echo}}\n")
    assert load_spec(path).space["c"].values == (word, True, False)


def test_alias_bomb_gives_a_short_located_error(tmp_path, capsys):
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
    lines += ["hptuning:", "  matrix:", "    x: {values: *i}", "run: {cmd: echo}"]
    path = write(tmp_path, "\n".join(lines) + "\n")
    msg = refused(capsys, path, "--backend", "local")
    assert f"{path}:12: hptuning.matrix.x.values[0]:" in msg
    assert len(msg) < 400


@pytest.mark.parametrize("text, opened, failed", [
    ("hptuning:\n  matrix:\n    x: {values: [1, 2\nrun:\n  cmd: echo\n", "the `[` opened on line 3", 4),
    ("hptuning:\n  matrix:\n    x: {values: [1, 2]\n\n\nrun: {cmd: echo}\n", "the `{` opened on line 3", 6),
    ('hptuning:\n  matrix:\n    x: {values: ["a, 1]}\nrun:\n  cmd: echo\n', "the quote opened on line 3", 6),
])
def test_yaml_syntax_error_names_where_the_bracket_or_quote_opened(tmp_path, capsys, text, opened, failed):
    path = write(tmp_path, text)
    msg = refused(capsys, path, "--backend", "local")
    assert msg.startswith(f"hpc-tune: error: {path}:{failed}: not valid YAML: ")
    assert opened in msg


def test_iterative_function_module_must_be_findable(tmp_path, capsys):
    body = """\
        version: 1.1
        kind: operation
        matrix:
          kind: iterative
          function: {module}:suggest
          numRuns: 2
          params: {{x: {{kind: uniform, value: [0, 1]}}}}
        run: {{cmd: "echo {{{{ x }}}}"}}
        """
    path = write(tmp_path, body.format(module="nowhere_to_be_found"))
    assert f"{path}:5: matrix.function: cannot find the module `nowhere_to_be_found`" in refused(
        capsys, path, "--backend", "local")
    (tmp_path / "my_search.py").write_text("def suggest(history, n, seed, space):\n    return []\n")
    path = write(tmp_path, body.format(module="my_search"), name="found.yml")
    assert main(["validate", path, "--backend", "local"]) == 0  # next to the study file
