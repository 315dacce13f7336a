"""Runs ``hpc-tune`` commands, each in its own process forked from this one, which has
imported hpc_tune already: a restarted controller then starts in milliseconds instead of
the seconds importing scipy takes on a busy machine (the kill -9 tests restart it 22 times,
and its trials run on meanwhile).

Each child is a complete ``hpc-tune ARGS`` (``hpc_tune.cli.main``) with its own pid, its
environment (``HPC_TUNE_FAULT``), and its output in a log file; it can be killed like any
controller. Protocol, one JSON line each way per command:

    stdin:  {"args": [...], "env": {...}, "log": "/path/to/log"}
    stdout: {"rc": exit code, or -N when signal N killed it, "pid": the child's pid}

Run it with one thread per BLAS (OPENBLAS_NUM_THREADS=1 ...): only the forking thread
survives a fork.
"""
import importlib.util
import json
import os
import sys
import traceback

# The hpc_tune the tests run against: the installed one (CI installs the wheel). Only
# when none is installed, this repository's (run as a script, the folder on sys.path is
# tests/faults, not the repository).
if importlib.util.find_spec("hpc_tune") is None:
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import hpc_tune.cli  # noqa: E402
import hpc_tune.controller.faults  # noqa: E402
import hpc_tune.controller.launcher  # noqa: E402,F401  (what `resume --foreground` imports: backends, submitit)


def child(request):
    fd = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.environ.update(request.get("env") or {})
    # The controller reads HPC_TUNE_FAULT once, when it is imported (here: before the fork).
    hpc_tune.controller.faults._FAULT = os.environ.get("HPC_TUNE_FAULT", "")
    hpc_tune.controller.faults._fault_hits.clear()
    rc = 1
    try:
        rc = hpc_tune.cli.main(list(request["args"]))
    except SystemExit as exc:
        rc = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
    os._exit(rc or 0)


def main():
    for line in sys.stdin:
        if not line.strip():
            continue
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            child(request)
        _, status = os.waitpid(pid, 0)
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        sys.stdout.write(json.dumps({"rc": rc, "pid": pid}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
