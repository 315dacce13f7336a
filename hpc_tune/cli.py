"""The ``hpc-tune`` command line."""
from __future__ import annotations

import argparse
import csv
import json
import os
import shutil
import sys
import time
from typing import Any, Dict, List, Optional

from tabulate import tabulate

from . import __version__
from .errors import HpcTuneError, UserError
from .journal import Journal, load_view
from .journal.events import OptionsChanged
from .spec import Spec, check_submittable, load_spec
from .study import create_study, default_state_dir, find_study, list_studies
from .summary import (
    best_trial,
    curve_rows,
    export_rows,
    flat_row,
    metric_of,
    no_metric_hint,
    study_state,
    trial_log_paths,
)
from .tuner import draw_seed


# The controller side (backends, submitit) is imported only by the commands that
# run or stop trials, so that `validate`, `plan` and `status` start fast.
def default_backend_name() -> str:
    from .backends import default_backend_name as name

    return name()


def run_controller(study_dir: str) -> Dict[str, Any]:
    from .controller.launcher import run_controller as run

    return run(study_dir)


def submit_controller_job(study_dir: str, args: argparse.Namespace) -> str:
    from .controller.launcher import submit_controller_job as submit

    return submit(study_dir, args)


def cancel_study(study_dir: str) -> str:
    from .controller.launcher import cancel_study as cancel

    return cancel(study_dir)


def live_controller(view: Any) -> Optional[str]:
    from .controller.launcher import live_controller as live

    return live(view)


def _warn(messages: List[str]) -> None:
    for m in messages:
        print(f"warning: {m}", file=sys.stderr)


def _load(path: str, quiet: bool = False) -> Spec:
    spec = load_spec(path)
    if not quiet:
        _warn(list(spec.warnings))
    return spec


def _print_json(obj: Any) -> None:
    json.dump(obj, sys.stdout, indent=2, default=str)
    sys.stdout.write("\n")


# ------------------------------------------------------------------------ commands


def _load_submittable(args: argparse.Namespace, quiet: bool = False) -> Spec:
    """The study file as ``submit`` reads it, with the checks ``submit`` makes for the
    backend it would use (validate, plan and submit share them: they refuse the same)."""
    spec = _load(args.file, quiet=quiet)
    backend = args.backend or default_backend_name()
    gpus = getattr(args, "gpus", None)
    local_gpus = 0
    if backend == "local" and (spec.slurm.gpus if gpus is None else gpus) > 0:
        from .backends.local import detect_gpus

        local_gpus = len(detect_gpus())
    check_submittable(spec, backend, gpus, local_gpus)
    return spec


def cmd_validate(args: argparse.Namespace) -> int:
    spec = _load_submittable(args)
    print(f"{args.file}: ok ({spec.algorithm.kind}, {len(spec.space)} parameters, generation {spec.generation})")
    return 0


def cmd_plan(args: argparse.Namespace) -> int:
    from .plan import format_plan, make_plan

    spec = _load_submittable(args, quiet=True)
    seed = args.seed if args.seed is not None else (spec.seed if spec.seed is not None else draw_seed())
    plan = make_plan(spec, seed)
    _warn(plan["warnings"])
    if args.json:
        _print_json(plan)
    else:
        print(format_plan(plan))
    return 0


# ------------------------------------------------------------------- study commands


def _state_dir(args: argparse.Namespace) -> str:
    return os.path.abspath(args.state_dir or default_state_dir())


def _slurm_overrides(args: argparse.Namespace) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for key in ("partition", "time", "mem", "cpus", "gpus", "account", "qos", "max_retries"):
        value = getattr(args, key, None)
        if value is not None:
            out[key] = value
    if getattr(args, "sbatch", None):
        out["extra"] = list(args.sbatch)
    if "time" in out:
        from .backends.base import slurm_time_minutes

        try:
            slurm_time_minutes(out["time"])
        except ValueError:
            raise UserError(f"--time {out['time']}: not a Slurm time; write MM, MM:SS, HH:MM:SS or D-HH:MM:SS "
                            f"(e.g. --time 30 or --time 2:00:00)") from None
    return out


def cmd_submit(args: argparse.Namespace) -> int:
    spec = _load_submittable(args)
    backend = args.backend or default_backend_name()
    seed = args.seed if args.seed is not None else (spec.seed if spec.seed is not None else draw_seed())
    study_dir = create_study(args.file, spec, _state_dir(args), backend=backend, seed=seed,
                             slurm=_slurm_overrides(args), poll_interval=args.poll_interval)
    study_id = os.path.basename(study_dir)
    print(f"study {study_id} created in {study_dir}")
    return _start_controller(study_dir, backend, args)


def _start_controller(study_dir: str, backend: str, args: argparse.Namespace) -> int:
    study_id = os.path.basename(study_dir)
    if backend == "local" or args.foreground:
        print(f"running the controller here ({backend} backend); Ctrl-C stops the controller, "
              f"the trials keep running and `hpc-tune resume {study_id}` carries on")
        _log_to_terminal()
        end = run_controller(study_dir)
        if end.get("state") == "interrupted":
            return _print_interrupted(study_dir, backend, end)
        _print_end(study_dir, end)
        return 0 if end.get("state") in ("finished", "early_stopped") else 1
    job = submit_controller_job(study_dir, args)
    print(f"controller submitted as Slurm job {job}\n"
          f"  follow it:   hpc-tune status {study_id} --watch\n"
          f"  best so far: hpc-tune best {study_id}\n"
          f"  stop it:     hpc-tune cancel {study_id}")
    if not args.wait:
        return 0
    try:
        end = _wait_for_end(study_dir)
    except KeyboardInterrupt:
        print(f"stopped following; the study runs on (controller: Slurm job {job}): `hpc-tune status {study_id} "
              f"--watch` follows it, `hpc-tune cancel {study_id}` stops it")
        return 130
    _print_end(study_dir, end)
    return 0 if end.get("state") in ("finished", "early_stopped") else 1


def _wait_for_end(study_dir: str, every: float = 5.0) -> Dict[str, Any]:
    """Follow a study run by a controller job until it ends, one line per change."""
    last = ""
    while True:
        view = load_view(study_dir)
        line = f"{time.strftime('%H:%M:%S')} {study_state(view)}: " + (
            ", ".join(f"{n} {k}" for k, n in sorted(view.counts().items())) or "no trials yet")
        if line.split(" ", 1)[1] != last:
            print(line, flush=True)
            last = line.split(" ", 1)[1]
        if view.ended is not None:
            return view.ended
        time.sleep(every)


def _log_to_terminal() -> None:
    import logging

    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
    logging.getLogger("hpc_tune").addHandler(handler)
    logging.getLogger("hpc_tune").setLevel(logging.INFO)


def _print_end(study_dir: str, end: Dict[str, Any]) -> None:
    view = load_view(study_dir)
    print(f"study {view.study_id}: {end.get('state')}" + (f" ({end.get('reason')})" if end.get("reason") else ""))
    best = best_trial(view)
    if best is not None:
        print(f"best trial {best.trial_id}: {view.info.get('metric')} = {best.value:g}  "
              + " ".join(f"{k}={v}" for k, v in best.params.items()))


def _print_interrupted(study_dir: str, backend: str, end: Dict[str, Any]) -> int:
    """One line: the controller stopped, what still runs and how to go on or stop it."""
    view = load_view(study_dir)
    n = len(view.live())
    what = "local processes" if backend == "local" else "Slurm jobs"
    print(f"controller stopped ({end.get('reason')}): {n} trial{'s' if n != 1 else ''} keep running as {what}; "
          f"`hpc-tune resume {view.study_id}` carries on, `hpc-tune cancel {view.study_id}` stops them"
          if n else f"controller stopped ({end.get('reason')}), no trial running; "
                    f"`hpc-tune resume {view.study_id}` carries on")
    return 130 if end.get("reason") == "SIGINT" else 1


def cmd_controller(args: argparse.Namespace) -> int:
    end = run_controller(os.path.abspath(args.study_dir))
    return 0 if end.get("state") in ("finished", "early_stopped", "cancelled", "interrupted") else 1


def cmd_status(args: argparse.Namespace) -> int:
    from .status_view import format_status, select, status_dict, study_plan

    if not args.study:
        return _status_all(args)
    study_dir = find_study(args.study, args.state_dir)
    spec = None
    while True:
        view = load_view(study_dir)
        spec = spec or study_plan(view)
        trials = select(view, args.state, args.sort, args.top)
        if args.json:
            _print_json(status_dict(view, trials, spec))
            return 0
        text = format_status(view, trials if _chosen(args) else None, spec=spec,
                             height=shutil.get_terminal_size().lines if args.watch else None)
        if args.watch:  # home and clear, then a frame no taller than the terminal: the header stays in view
            sys.stdout.write("\033[H\033[2J" + text + "\n")
            sys.stdout.flush()
        else:
            print(text)
        if not args.watch or view.ended is not None:
            return 0
        time.sleep(args.interval)


def _chosen(args: argparse.Namespace) -> bool:
    return bool(args.state or args.sort or args.top)


def _status_all(args: argparse.Namespace) -> int:
    from .status_view import planned_trials, study_plan

    rows = []
    for d in list_studies(_state_dir(args)):
        try:
            view = load_view(d)
        except UserError as exc:
            rows.append({"study": os.path.basename(d), "state": f"unreadable: {exc}"})
            continue
        best = best_trial(view)
        spec = study_plan(view)
        rows.append({"study": view.study_id, "state": study_state(view), "trials": len(view.trials),
                     "planned": planned_trials(spec) if spec is not None else None,
                     **{k: v for k, v in view.counts().items()},
                     "best": None if best is None else best.value})
    if args.json:
        _print_json(rows)
    elif not rows:
        print(f"no studies under {_state_dir(args)}")
    else:
        print(tabulate(rows, headers="keys"))
    return 0


def cmd_best(args: argparse.Namespace) -> int:
    view = load_view(find_study(args.study, args.state_dir))
    metric = args.metric or view.info.get("metric")
    if not metric:
        raise UserError(no_metric_hint(view))
    maximize = True if args.maximize else None
    best = best_trial(view, metric, maximize)
    if best is None:
        from .summary import metric_names

        known = metric_names(view)
        hint = "" if metric in known or not known else f" (the trials reported: {', '.join(known)})"
        raise UserError(f"study {view.study_id} has no completed trial with a value of `{metric}` yet{hint}")
    value = metric_of(view, best, metric)
    out = {"study": view.study_id, "trial": best.trial_id, "metric": metric, "value": value,
           "params": best.params, "resource": best.resource, "job_id": best.job_id,
           "metrics": {k: best.last(k) for k in best.metric_names()}}
    if args.json:
        _print_json(out)
    else:
        print(f"best trial {best.trial_id} of {view.study_id}: {metric} = {value:g}")
        print(tabulate([[k, v] for k, v in best.params.items()], headers=["parameter", "value"]))
    return 0


def cmd_logs(args: argparse.Namespace) -> int:
    study_dir = find_study(args.study, args.state_dir)
    view = load_view(study_dir)
    if args.trial not in view.trials:
        raise UserError(f"study {view.study_id} has no trial {args.trial} (trials 0..{len(view.trials) - 1})")
    t = view.trials[args.trial]
    paths = trial_log_paths(study_dir, t)
    written = [p for p in paths if os.path.getsize(p) > 0]
    if not written:
        names = ", ".join(os.path.relpath(p, study_dir) for p in paths)
        if t.state.finished:
            print(f"trial {args.trial} ended ({t.state.value}) without writing any output"
                  + (f" ({names}: empty)" if names else " (no log file)"))
            return 0
        print(f"trial {args.trial} is {t.state.value} and has written no output yet", file=sys.stderr)
        return 1
    for path in written:
        print(f"==> {path} <==")
        with open(path, encoding="utf-8", errors="replace") as fh:
            text = fh.read()[-args.tail_bytes:]
        sys.stdout.write(text if not text or text.endswith("\n") else text + "\n")
    return 0


def cmd_cancel(args: argparse.Namespace) -> int:
    study_dir = find_study(args.study, args.state_dir)
    end = cancel_study(study_dir)
    print(f"study {os.path.basename(study_dir)}: {end}")
    return 0


def cmd_resume(args: argparse.Namespace) -> int:
    study_dir = find_study(args.study, args.state_dir)
    view = load_view(study_dir)
    if view.ended is not None:
        print(f"study {view.study_id} already ended: {view.ended.get('state')} ({view.ended.get('reason', '')})")
        return 0
    holder = live_controller(view)
    if holder:
        raise UserError(f"study {view.study_id} already has a running controller ({holder}); "
                        f"`hpc-tune cancel` stops it")
    backend = _resume_options(study_dir, view, args)
    return _start_controller(study_dir, backend, args)


def _resume_options(study_dir: str, view: Any, args: argparse.Namespace) -> str:
    """Record what `resume` changes for the trials submitted from now on (the per-trial
    Slurm options, the backend) so that the controller, here or as a Slurm job, uses it;
    refuse a change of backend while trials still run on the old one. Returns the backend."""
    before = view.info.get("backend") or default_backend_name()
    backend = args.backend or before
    if backend != before:
        there = [t for t in view.live() if t.submitted]
        if there:
            raise UserError(
                f"study {view.study_id} runs its trials on {before}, and {len(there)} of them still do "
                f"(trial {', '.join(str(t.trial_id) for t in there[:5])}{' ...' if len(there) > 5 else ''}): "
                f"--backend {backend} would lose them. Resume without --backend (add --foreground to run the "
                f"controller here), or let them end first")
    overrides = _slurm_overrides(args)
    if overrides or backend != before:
        Journal(study_dir).append(OptionsChanged(overrides, backend if backend != before else None).to_json())
        changed = ", ".join(f"{k}={v}" for k, v in overrides.items())
        print("from now on: " + ", ".join(x for x in (changed, f"backend {backend}" if backend != before else "")
                                            if x))
    return backend


def cmd_export(args: argparse.Namespace) -> int:
    view = load_view(find_study(args.study, args.state_dir))
    out = open(args.output, "w", newline="", encoding="utf-8") if args.output else sys.stdout
    try:
        if args.curves:  # every reported line, long form
            if args.format == "json":
                json.dump([{"trial": t, "step": s, "key": k, "value": v} for t, s, k, v in curve_rows(view)], out)
                out.write("\n")
            else:
                writer = csv.writer(out)
                writer.writerow(["trial", "step", "key", "value"])
                writer.writerows(curve_rows(view))
        elif args.format == "json":
            json.dump(export_rows(view), out, indent=2, default=str)
            out.write("\n")
        else:
            rows = [flat_row(r) for r in export_rows(view)]
            keys: Dict[str, None] = {}
            for r in rows:
                keys.update(dict.fromkeys(r))
            writer = csv.DictWriter(out, fieldnames=list(keys))
            writer.writeheader()
            writer.writerows(rows)
    finally:
        if out is not sys.stdout:
            out.close()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from .htmlreport import write_report
    from .results import load_study

    study = load_study(args.study, args.state_dir)
    out = args.output or f"{study.id}.html"
    written = write_report(study, out, png_dir=args.png)
    print(f"report of {study.id} ({len(study.trials)} trials, {study.state}): {written[0]}")
    if len(written) > 1:
        print(f"{len(written) - 1} figures as PNG in {args.png}")
    return 0


# ------------------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hpc-tune",
        description="Hyperparameter tuning on Slurm clusters from one polyaxonfile-style YAML file.",
    )
    parser.add_argument("--version", action="version", version=f"hpc-tune {__version__}")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an error")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    def backend_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", choices=("slurm", "local"),
                       help="where trials would run, as for submit (default: slurm when sbatch is on the PATH, "
                            "else local)")
        p.add_argument("--gpus", type=int, help="GPUs per trial, as for submit (overrides the file)")

    p = sub.add_parser("validate", help="check a study file as submit would; exit 0 or print what is wrong")
    p.add_argument("file")
    backend_flag(p)
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("plan", help="show what a study would run, without running it")
    p.add_argument("file")
    backend_flag(p)
    p.add_argument("--json", action="store_true", help="one JSON object for programs")
    p.add_argument("--seed", type=int, help="override the study's seed")
    p.set_defaults(func=cmd_plan)

    def study_arg(p: argparse.ArgumentParser) -> None:
        p.add_argument("study", help="study id (or a unique prefix of one) or study directory")

    def common(p: argparse.ArgumentParser) -> None:
        p.add_argument("--state-dir", help="where studies live (default: $HPC_TUNE_STATE_DIR or "
                                           "./hpc-tune-studies)")

    def json_flag(p: argparse.ArgumentParser) -> None:
        p.add_argument("--json", action="store_true", help="JSON for programs")

    def launch_flags(p: argparse.ArgumentParser) -> None:
        p.add_argument("--backend", choices=("slurm", "local"),
                       help="where trials run (default: slurm when sbatch is on the PATH, else local)")
        p.add_argument("--foreground", action="store_true",
                       help="run the controller in this process instead of as a Slurm job")
        g = p.add_argument_group("Slurm options (override the file's `slurm:` section)")
        g.add_argument("--partition")
        g.add_argument("--time", help="per-trial time limit, e.g. 30 or 2:00:00")
        g.add_argument("--mem", help="per-trial memory, e.g. 4G")
        g.add_argument("--cpus", type=int, help="CPUs per trial")
        g.add_argument("--gpus", type=int, help="GPUs per trial (--gres=gpu:N)")
        g.add_argument("--account")
        g.add_argument("--qos")
        g.add_argument("--max-retries", type=int, help="resubmissions after TIMEOUT or NODE_FAIL")
        g.add_argument("--sbatch", action="append", metavar="OPTION",
                       help="extra sbatch option for trial jobs, e.g. --sbatch=--constraint=a100 (repeatable)")
        g.add_argument("--controller-time", default="2-00:00:00",
                       help="time limit of the controller job (it requeues itself before it)")
        g.add_argument("--controller-partition", help="partition of the controller job")
        g.add_argument("--controller-signal", type=int, default=120, metavar="SECONDS",
                       help="the controller job is warned this long before its time limit, requeues "
                            "itself and carries on (default 120)")
        p.add_argument("--wait", action="store_true",
                       help="with a controller job: follow the study until it ends, then print the best trial")

    p = sub.add_parser("submit", help="create a study and start its controller (a Slurm job, or here)")
    p.add_argument("file")
    p.add_argument("--seed", type=int, help="override the study's seed")
    p.add_argument("--poll-interval", type=float, default=30.0,
                   help="seconds between scheduler queries (default 30; finished trials are seen within a "
                        "second through their exit records)")
    common(p)
    launch_flags(p)
    p.set_defaults(func=cmd_submit)

    p = sub.add_parser("status", help="studies, or one study's progress and trials")
    p.add_argument("study", nargs="?")
    p.add_argument("--watch", action="store_true", help="refresh until the study ends, the header kept in view")
    p.add_argument("--state", help="only trials in these states, e.g. running or completed,stopped")
    p.add_argument("--sort", metavar="KEY", help="order by a column (a parameter, a reported key, value, trial, "
                                                  "run_time, resource...); --sort=-KEY for the largest first")
    p.add_argument("--top", type=int, metavar="N", help="only the first N: the N best by the study's metric, "
                                                          "or the first N of --sort")
    p.add_argument("--interval", type=float, default=5.0, help="seconds between refreshes with --watch")
    common(p)
    json_flag(p)
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("best", help="the best trial of a study")
    study_arg(p)
    p.add_argument("--metric", help="rank by this reported key (its last value) instead of the study's metric")
    p.add_argument("--maximize", action="store_true", help="with --metric: larger is better (default: smaller)")
    common(p)
    json_flag(p)
    p.set_defaults(func=cmd_best)

    p = sub.add_parser("logs", help="a trial's output")
    study_arg(p)
    p.add_argument("trial", type=int)
    p.add_argument("--tail-bytes", type=int, default=20000)
    common(p)
    p.set_defaults(func=cmd_logs)

    p = sub.add_parser("cancel", help="stop a study: cancel its trials and its controller")
    study_arg(p)
    common(p)
    p.set_defaults(func=cmd_cancel)

    p = sub.add_parser("resume", help="start a controller for a study that has none")
    study_arg(p)
    common(p)
    launch_flags(p)
    p.set_defaults(func=cmd_resume)

    p = sub.add_parser("export", help="all trials (parameters, last value of every reported key) as CSV or JSON")
    study_arg(p)
    p.add_argument("--format", choices=("csv", "json"), default="csv")
    p.add_argument("--curves", action="store_true",
                   help="every reported line instead, in long form: trial, step, key, value")
    p.add_argument("-o", "--output", help="file to write (default: standard output)")
    common(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("report", help="one self-contained HTML file about a study (figures, Slurm timeline, "
                                      "trial table); a running study is read as it is now")
    study_arg(p)
    p.add_argument("-o", "--output", help="the HTML file to write (default: STUDY_ID.html here)")
    p.add_argument("--png", metavar="DIR", help="also write every figure as a PNG file in DIR")
    common(p)
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("controller", help=argparse.SUPPRESS)  # what the controller job runs
    p.add_argument("study_dir")
    p.set_defaults(func=cmd_controller)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv  # accepted anywhere on the line, not only before the command
    args = parser.parse_args([a for a in argv if a != "--debug"])
    args.debug = debug
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        print("hpc-tune: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `hpc-tune plan --json | head`
        return 0
    except Exception as exc:  # one message each, never a traceback (unless --debug)
        if args.debug:
            raise
        if isinstance(exc, HpcTuneError):
            print(f"hpc-tune: error: {exc}", file=sys.stderr)
            return exc.exit_code
        print(f"hpc-tune: internal error: {type(exc).__name__}: {exc} (rerun with --debug for the traceback, "
              f"and please report it)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
