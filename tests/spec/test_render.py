"""The command template (docs/dialect.md, "The command"): every value reaches the program
exactly as written, as one argument, in every place a placeholder can stand, and never runs
as shell code. Each rendered line is run by bash, and a program prints the argv it got."""
from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from hpc_tune.cli import main
from hpc_tune.spec import Command, TemplateError, load_spec, render
from hpc_tune.spec.render import render_shell, shell_script_index

PRINT_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"
PY = shlex.quote(sys.executable)
# The program of the property tests: coreutils' printf (a separate program, and fast to start)
# prints each argument it got, NUL-terminated.
PRINTF = shutil.which("printf", path="/usr/bin:/bin") or "/usr/bin/printf"
PRINTER = f"{shlex.quote(PRINTF)} '%s\\0'"

# Where a placeholder can stand in a shell line, and the argument the program must get.
SHELL_CONTEXTS = {
    "outside quotes": ("{p} {{{{ v }}}}", lambda v: [v]),
    "glued to a flag": ("{p} --v={{{{ v }}}}", lambda v: ["--v=" + v]),
    "inside double quotes": ('{p} --v="{{{{ v }}}}"', lambda v: ["--v=" + v]),
    "inside single quotes": ("{p} --v='{{{{ v }}}}'", lambda v: ["--v=" + v]),
    "double quotes, whole word": ('{p} "{{{{ v }}}}"', lambda v: [v]),
    "inside $( ) in double quotes": ('{p} "$(printf %s {{{{ v }}}})"', None),
}


def shell_template(context: str) -> str:
    return SHELL_CONTEXTS[context][0].format(p=PRINTER)


def run_line(line: str, cwd: Path) -> list:
    """Run ``line`` with bash; the arguments the program got (JSON from Python's printer,
    NUL-terminated from printf)."""
    res = subprocess.run(["bash", "-c", line], capture_output=True, cwd=cwd, timeout=60)
    assert res.returncode == 0, (line, res.stderr)
    out = res.stdout.decode("utf-8", "surrogateescape")
    if out.startswith("[") and "\0" not in out:
        return json.loads(out)
    assert out.endswith("\0") or out == "", out
    return out.split("\0")[:-1]


def argv_command(*argv: str) -> Command:
    return Command.from_argv(list(argv))


# Text a YAML file can hold (no NUL, no surrogates) and the shell can pass: arguments are C strings.
values = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=40)
TRICKY = ["adam w", "$(touch X)", "`touch X`", "it's", 'say "hi"', "a\\b", "a\\", "\\", "-n", "--lr=1",
          "line1\nline2", "'", '"', "$HOME", "${HOME}", "*", "~", "é ü 中文", "a'b\"c$d`e\\f", "", " ", "\t", "!"]


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
@example(value="$(touch X)")
@example(value="adam w")
@pytest.mark.parametrize("context", [c for c in SHELL_CONTEXTS if SHELL_CONTEXTS[c][1] is not None])
def test_shell_line_passes_any_value_as_one_argument(tmp_path, context, value):
    line = render(Command.shell(shell_template(context)), {"v": value})
    got = run_line(line, tmp_path)
    assert got == SHELL_CONTEXTS[context][1](value), line
    assert os.listdir(tmp_path) == []  # nothing ran: no file appeared


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values.filter(lambda v: "\n" not in v or v.strip("\n") == v))
@example(value="$(touch X)")
def test_placeholder_inside_a_command_substitution_is_quoted_as_outside(tmp_path, value):
    # `"$(printf %s VALUE)"`: the substitution's words are unquoted words; its output loses
    # trailing newlines, as bash always does.
    line = render(Command.shell(shell_template("inside $( ) in double quotes")), {"v": value})
    assert run_line(line, tmp_path) == [value.rstrip("\n")]
    assert os.listdir(tmp_path) == []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
@example(value="$(touch X)")
@example(value="it's")
def test_argv_passes_any_value_as_one_argument(tmp_path, value):
    cmd = argv_command(PRINTF, "%s\\0", "{{ v }}", "--v={{ v }}", "--n", "{{ v }}x")
    got = run_line(render(cmd, {"v": value}), tmp_path)
    assert got == [value, "--v=" + value, "--n", value + "x"]
    assert os.listdir(tmp_path) == []


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=values)
@example(value="$(touch X)")
@example(value="adam w")
@pytest.mark.parametrize("context", ["outside quotes", "inside double quotes", "inside single quotes"])
def test_shell_c_script_renders_its_values_as_a_shell_line(tmp_path, context, value):
    script = shell_template(context)
    for shell in ("bash", "sh", "/bin/bash"):
        cmd = argv_command(shell, "-c", script)
        got = run_line(render(cmd, {"v": value}), tmp_path)
        assert got == SHELL_CONTEXTS[context][1](value)
    assert os.listdir(tmp_path) == []


# ------------------------------------------------------------------- fixed cases of issue 9


@pytest.mark.parametrize("template", ['--opt="{{ opt }}"', "--opt='{{ opt }}'", "--opt={{ opt }}"])
def test_adam_w_is_one_argument_and_command_substitution_is_text(tmp_path, template):
    line = f"{PY} -c '{PRINT_ARGV}' {template}"
    for value in ("adam w", "$(touch X)", "`touch X`"):
        assert run_line(render(Command.shell(line), {"opt": value}), tmp_path) == ["--opt=" + value]
    assert not (tmp_path / "X").exists()


def write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "study.yml"
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_v1_container_sh_c_with_args_runs_the_whole_script(tmp_path):
    path = write(tmp_path, f"""\
        version: 1.1
        kind: operation
        matrix:
          kind: grid
          params:
            opt: {{kind: choice, value: ["adam w", "$(touch X)"]}}
        run:
          kind: job
          container:
            command: [sh, -c]
            args: ["cd . && {sys.executable} -c '{PRINT_ARGV}' --opt={{{{ opt }}}} --q=\\"{{{{ opt }}}}\\""]
        """)
    spec = load_spec(path)
    assert spec.run.cmd.reading == "argv" and spec.run.cmd.argv[:2] == ("sh", "-c")
    for value in ("adam w", "$(touch X)"):
        line = render(spec.run.cmd, {"opt": value})
        assert line.startswith("sh -c ")
        assert run_line(line, tmp_path) == ["--opt=" + value, "--q=" + value]
    assert not (tmp_path / "X").exists()


def test_v1_list_cmd_is_an_argv_and_v0_list_is_commands_joined_by_and(tmp_path, capsys):
    v1 = write(tmp_path, f"""\
        matrix:
          kind: grid
          params: {{opt: {{kind: choice, value: ["a && touch X"]}}}}
        run:
          cmd: ["{sys.executable}", "-c", "{PRINT_ARGV}", "{{{{ opt }}}}"]
        """)
    spec = load_spec(v1)
    assert spec.run.cmd.reading == "argv"
    assert run_line(render(spec.run.cmd, {"opt": "a && touch X"}), tmp_path) == ["a && touch X"]
    assert main(["plan", v1, "--backend", "local"]) == 0
    assert "(read as an argv list (each element one argument))" in capsys.readouterr().out

    v0 = tmp_path / "v0.yml"
    v0.write_text(textwrap.dedent(f"""\
        hptuning:
          matrix: {{opt: {{values: ["adam w"]}}}}
        run:
          cmd:
            - mkdir -p out
            - {sys.executable} -c '{PRINT_ARGV}' --opt={{{{ opt }}}}
        """))
    spec = load_spec(str(v0))
    assert spec.run.cmd.reading == "commands"
    assert run_line(render(spec.run.cmd, {"opt": "adam w"}), tmp_path) == ["--opt=adam w"]
    assert (tmp_path / "out").is_dir()  # the first command ran, then the second
    assert main(["plan", str(v0), "--backend", "local", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["command_reading"] == "commands"


def test_line_continuations_outside_and_inside_quotes(tmp_path):
    line = f"{PY} -c '{PRINT_ARGV}' \\\n   --a={{{{ v }}}} \\ --b=\"x \\\ny\" --c='p \\ q'"
    assert run_line(render_shell(line, {"v": "1 2"}), tmp_path) == ["--a=1 2", "--b=x y", "--c=p \\ q"]


@pytest.mark.parametrize("argv, index", [
    (["sh", "-c", "x"], 2), (["/bin/bash", "-ec", "x", "name"], 2), (["bash", "-l", "-c", "x"], 3),
    (["bash", "script.sh", "-c"], None), (["python", "-c", "x"], None), (["sh", "-c"], None),
])
def test_which_element_is_a_shell_script(argv, index):
    assert shell_script_index(argv) == index


def test_unclosed_placeholder_is_refused_by_validate_with_file_and_line(tmp_path, capsys):
    path = write(tmp_path, """\
        hptuning:
          matrix: {lr: {values: [0.1]}}
        run:
          cmd: python train.py --lr={{ lr }} --x={{ lr
        """)
    with pytest.raises(TemplateError):
        render(Command.shell("python t.py {{ lr"), {"lr": 1})
    for command in ("validate", "plan"):
        assert main([command, path, "--backend", "local"]) == 2
        err = capsys.readouterr().err
        assert f"{path}:4: run.cmd: unclosed `{{{{`" in err
