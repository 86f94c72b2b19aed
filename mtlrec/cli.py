"""The `mtlrec` command line (SPEC §3).

Imports nothing heavy at start-up: TensorFlow, Beam and tf.Transform load inside the
command that needs them. Every failure the user can fix ends with one line on stderr
and a non-zero exit code: 2 for a bad command line or configuration, 1 for a failed step,
130 for Ctrl-C and 143 for SIGTERM (the step records `interrupted`, the lock is released).
The full traceback of a failure goes to a log file in the workdir, which the line names.

Options are strict: an unknown option is an error naming the closest valid one. Beam
options go after `--` or through `--beam-arg OPTION` (repeatable) and are checked against
Beam's own `PipelineOptions`.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import logging
import os
import pathlib
import re
import sys
import webbrowser
from collections.abc import Sequence

import yaml

from mtlrec import inspect_data, termination
from mtlrec.config import (
    PRESETS,
    Config,
    ConfigError,
    GenerateConfig,
    RunnerConfig,
    config_document,
    data_preset,
    dump_yaml,
    load_config,
    schema_lines,
    validate,
)
from mtlrec.features.schema import DATA_DESCRIPTION
from mtlrec.fit_data import adapt
from mtlrec.manifest import STEP_NAMES
from mtlrec.native_logs import quiet_native_logs
from mtlrec.runs import report_path, run_summary, runs_table

RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
"""Kept equal to `mtlrec.run.RUN_ID` (tests/mtlrec/test_cli.py checks it)."""

_STEP_HELP = {
    "validate": "validate the raw logs: dead-letter bad rows, count them, dedupe events",
    "preprocess": "join, label, split by time and run tf.Transform into TFRecords",
    "train": "train the multi-task TFRS model on the preprocessed TFRecords",
    "evaluate": "evaluate on the eval split, with baselines and slices; write the report",
    "bless": "decide whether the evaluated model may be pushed",
    "export": "export the ranker, retriever and recommender SavedModels",
    "push": "copy a blessed model's versions into the serving directory",
}


_WORKDIR = RunnerConfig().workdir
WORLD_KNOBS = ("latent_dim", "affinity", "popularity_skew", "position_decay", "task_correlation")
QUIET_LOGGERS = ("tensorflow", "apache_beam.runners.portability.local_job_service")
NATIVE_LOG_ENV = "MTLREC_NATIVE_LOG"
"""Environment variable naming a file that keeps the native log lines the console drops."""
_VERBOSE_HELP = "show TensorFlow's and absl's native log lines and TensorFlow's warnings"


def _add_config_options(p: argparse.ArgumentParser, *, window: bool = True) -> None:
    """The configuration options; `window=False` leaves out the date window's (`backfill`
    takes --start/--end as the range of days instead)."""
    # SUPPRESS: a subcommand's default must not undo `mtlrec --verbose COMMAND`.
    p.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS, help=_VERBOSE_HELP)
    p.add_argument("--config", type=pathlib.Path, help="YAML configuration file")
    p.add_argument(
        "--preset",
        choices=PRESETS,
        help="configuration preset the config file and --set apply over (default: the one "
        f"the data directory names in {DATA_DESCRIPTION}, else none)",
    )
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override one configuration value, e.g. --set model.sharing=mmoe (repeatable)",
    )
    p.add_argument("--data", help="raw log directory (sets data.raw_dir)")
    p.add_argument("--workdir", help="work directory of runs and exports (sets runner.workdir)")
    p.add_argument("--split-ts", help="train/eval boundary, ISO-8601 or ms (sets data.split_ts)")
    if window:
        p.add_argument(
            "--date",
            help="the run's day YYYY-MM-DD (data.date): its window ends on it and spans "
            "data.train_days days; a scheduler's logical date",
        )
        p.add_argument("--start", help="first date YYYY-MM-DD of the run's window (data.start)")
        p.add_argument("--end", help="last date YYYY-MM-DD of the run's window (data.end)")
    p.add_argument(
        "--log-format", choices=("text", "json"), help="progress for people or JSON lines"
    )


def _add_beam_option(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--beam-arg",
        dest="beam_args",
        action="append",
        default=[],
        metavar="OPTION",
        help="an Apache Beam option, e.g. --beam-arg=--runner=DataflowRunner (repeatable; "
        "or pass Beam options after --)",
    )


def _add_run_options(p: argparse.ArgumentParser, command: str) -> None:
    _add_config_options(p)
    _add_beam_option(p)
    p.add_argument(
        "--run-id",
        help="run directory name: letters, digits and -_. (default: derived from the input data)",
    )
    p.add_argument("--force", action="store_true", help="redo steps even when up to date")
    if command in ("run", "push"):
        p.add_argument("--force-push", action="store_true", help="push even when not blessed")
    p.add_argument(
        "--wait", type=float, default=0.0, metavar="SECONDS", help="wait for the workdir lock"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mtlrec",
        description="Raw interaction logs in; a served multi-task recommender and its "
        "evaluation report out. Apache Beam options go after -- (e.g. mtlrec run -- "
        "--runner=DataflowRunner --project=P --region=R) or through --beam-arg.",
    )
    parser.add_argument("--verbose", action="store_true", help=_VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="the whole batch job (synthetic data when none is given)")
    _add_run_options(p, "run")
    p.add_argument("--from", dest="from_step", choices=STEP_NAMES, help="redo from this step on")

    for name in STEP_NAMES:
        _add_run_options(sub.add_parser(name, help=_STEP_HELP[name]), name)

    p = sub.add_parser("backfill", help="the daily run for each day of a range, in order")
    _add_config_options(p, window=False)
    _add_beam_option(p)
    p.add_argument("--start", dest="first_day", required=True, help="first day YYYY-MM-DD")
    p.add_argument("--end", dest="last_day", required=True, help="last day YYYY-MM-DD")
    p.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")

    p = sub.add_parser("tune", help="search training and model keys (Optuna), on validation")
    _add_config_options(p)
    _add_beam_option(p)
    p.add_argument("--space", type=pathlib.Path, required=True, help="search space (YAML)")
    p.add_argument("--trials", type=int, help="completed trials to reach (default: the file's)")
    p.add_argument("--run-id", help="run directory name (default: derived from the input data)")

    p = sub.add_parser("generate", help="write synthetic logs with known ground truth")
    p.add_argument("--out", type=pathlib.Path, required=True, help="output directory")
    size = GenerateConfig()
    p.add_argument("--users", type=int, default=size.users, help=f"users (default {size.users})")
    p.add_argument("--items", type=int, default=size.items, help=f"items (default {size.items})")
    p.add_argument("--days", type=int, default=size.days, help=f"days of traffic ({size.days})")
    p.add_argument("--seed", type=int, default=size.seed, help=f"random seed ({size.seed})")
    for name in WORLD_KNOBS:
        field = GenerateConfig.model_fields[name]
        p.add_argument(
            f"--{name.replace('_', '-')}",
            type=type(field.default),
            default=field.default,
            help=f"{field.description} (default {field.default})",
        )

    p = sub.add_parser("import", help="convert a public data set to the raw contract")
    p.add_argument("dataset", choices=("movielens",), help="data set to import")
    p.add_argument("--src", type=pathlib.Path, required=True, help="the data set's directory")
    p.add_argument("--out", type=pathlib.Path, required=True, help="output raw directory")

    p = sub.add_parser("recommend", help="batch top-K for many users via Beam RunInference")
    p.add_argument("--model", type=pathlib.Path, required=True, help="exported version dir")
    p.add_argument("--users", type=pathlib.Path, required=True, help="Parquet/CSV with user_id")
    p.add_argument("--out", type=pathlib.Path, required=True, help="output Parquet directory")
    _add_beam_option(p)

    p = sub.add_parser("bench", help="run a benchmark of bench/ (python -m bench.NAME)")
    p.add_argument("name", help="benchmark: preprocess, train, serving, movielens, ...")
    p.add_argument("bench_args", nargs=argparse.REMAINDER, help="options of the benchmark")

    p = sub.add_parser("inspect", help="statistics of raw logs, rejects by reason, a config")
    _add_config_options(p)
    p.add_argument("--out", type=pathlib.Path, help="write the proposed config (YAML) here")

    p = sub.add_parser("runs", help="list the runs of a workdir: dates, status, metrics, blessing")
    p.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path(_WORKDIR))

    p = sub.add_parser("report", help="print the path of a run's evaluation report")
    p.add_argument("run", nargs="?", help="run id (default: the latest run)")
    p.add_argument("--workdir", type=pathlib.Path, default=pathlib.Path(_WORKDIR))
    p.add_argument("--open", action="store_true", help="open it in the web browser too")

    p = sub.add_parser("config", help="print the effective configuration or its schema")
    p.add_argument("action", choices=("show", "schema"), help="show: effective; schema: fields")
    _add_config_options(p)
    return parser


def _config(args: argparse.Namespace, beam_args: Sequence[str]) -> Config:
    config = validate(_document(args))
    if beam_args:
        # Later options win in Beam's own parser, so user flags override the defaults.
        runner = config.runner.model_copy(
            update={"beam_args": config.runner.beam_args + tuple(beam_args)}
        )
        config = config.model_copy(update={"runner": runner})
    return config


def _document(args: argparse.Namespace) -> dict:
    """The configuration document of the command line, fitted to its data (with notes)."""
    overrides = list(args.overrides)
    for flag, key in (
        ("data", "data.raw_dir"),
        ("workdir", "runner.workdir"),
        ("split_ts", "data.split_ts"),
        ("date", "data.date"),
        ("start", "data.start"),
        ("end", "data.end"),
        ("log_format", "runner.log_format"),
    ):
        value = getattr(args, flag, None)
        if value is not None:
            overrides.append(f"{key}={_quoted(value)}")
    preset = args.preset
    config = load_config(args.config, overrides, preset)
    if preset is None and (preset := data_preset(config.data.raw_dir)) is not None:
        _note(f"{config.data.raw_dir} names the preset {preset!r} ({DATA_DESCRIPTION})")
    document = config_document(args.config, overrides, preset)
    document, notes = adapt(document, validate(document))
    for note in notes:
        _note(note)
    return document


def _note(text: str) -> None:
    print(f"mtlrec: note: {text}", file=sys.stderr)


def _quoted(value: str) -> str:
    # The value is parsed as YAML: keep ids, dates and paths as strings.
    return "'" + value.replace("'", "''") + "'" if not value.isdigit() else value


def _cmd_run(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from mtlrec import log
    from mtlrec.models.distribute import worker_role
    from mtlrec.pipeline import worker_guard
    from mtlrec.run import run, train_worker

    config = _config(args, beam_args)
    _check_beam_args(config.runner.beam_args)
    log.configure(config.runner.log_format)
    if not worker_role().is_chief:
        if args.command != "train":
            raise ConfigError(
                f"mtlrec {args.command}: TF_CONFIG names this process a worker other than the "
                "chief, which runs only `mtlrec train`"
            )
        train_worker(config, run_id=args.run_id)
        return 0
    # Beam SDK workers die with this driver, even on kill -9.
    worker_guard.start_watchdog()
    only = None if args.command == "run" else [args.command]
    doc = run(
        config,
        only=only,
        force=args.force,
        from_step=getattr(args, "from_step", None),
        run_id=args.run_id,
        force_push=getattr(args, "force_push", False),
        lock_wait_s=args.wait,
    )
    run_dir = pathlib.Path(config.runner.workdir) / "runs" / doc["run_id"]
    for line in run_summary(doc, run_dir):
        log.event(line)
    log.event("run finished", run_dir=str(run_dir))
    return 0


def _cmd_backfill(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from mtlrec import log
    from mtlrec.backfill import backfill
    from mtlrec.pipeline import worker_guard

    config = _config(args, beam_args)
    _check_beam_args(config.runner.beam_args)
    log.configure(config.runner.log_format)
    worker_guard.start_watchdog()
    backfill(config, args.first_day, args.last_day, dry_run=args.dry_run)
    return 0


def _cmd_tune(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from mtlrec import log
    from mtlrec.pipeline import worker_guard
    from mtlrec.search_space import load_space
    from mtlrec.tune import tune

    document = _document(args)
    config = _config(args, beam_args)
    _check_beam_args(config.runner.beam_args)
    document.setdefault("runner", {})["beam_args"] = list(config.runner.beam_args)
    space = load_space(args.space, document)
    if args.trials is not None:
        space = space.model_copy(update={"trials": args.trials})
    log.configure(config.runner.log_format)
    worker_guard.start_watchdog()
    tune(document, space, run_id=args.run_id)
    return 0


def _cmd_generate(args: argparse.Namespace) -> int:
    from mtlrec.datasets.synthetic.generate import generate

    world = GenerateConfig(**{name: getattr(args, name) for name in WORLD_KNOBS}).world()
    truth = generate(
        args.out, users=args.users, items=args.items, days=args.days, seed=args.seed, world=world
    )
    counts = truth["counts"]
    print(f"wrote {counts['events_read']} events to {args.out} (truth in {args.out}/truth.json)")
    return 0


def _cmd_import(args: argparse.Namespace) -> int:
    from mtlrec.datasets.movielens import import_movielens

    counts = import_movielens(args.src, args.out)
    print(f"imported {counts['ratings']} ratings from {args.src} into {args.out}")
    return 0


def _cmd_recommend(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    from mtlrec import log
    from mtlrec.deploy.recommend import recommend
    from mtlrec.pipeline.staging import staged_args

    _check_beam_args(beam_args)
    log.configure()
    recommend(args.model, args.users, args.out, staged_args(beam_args))
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    import importlib.util
    import runpy

    # bench/ is part of the checkout, not of the installed package.
    sys.path.insert(0, str(pathlib.Path.cwd()))
    module = f"bench.{args.name}"
    if importlib.util.find_spec("bench") is None:
        raise ValueError(f"no bench/ in {pathlib.Path.cwd()}: run mtlrec bench from the checkout")
    if importlib.util.find_spec(module) is None:
        raise ValueError(f"no benchmark {args.name!r}: expected a module {module}")
    sys.argv = [module, *args.bench_args]
    runpy.run_module(module, run_name="__main__")
    return 0


def _cmd_inspect(args: argparse.Namespace) -> int:
    document = _document(args)
    config = validate(document)
    if config.data.raw_dir is None:
        raise ValueError("inspect needs the raw log directory: --data DIR")
    print("\n".join(inspect_data.report_lines(inspect_data.inspect_tables(config))))
    proposed = inspect_data.proposed_document(document, config)
    validate(proposed)  # what is proposed must load as written
    text = yaml.safe_dump(proposed, sort_keys=False)
    if args.out is None:
        print("# proposed configuration\n" + text, end="")
    else:
        args.out.write_text(text)
        print(f"proposed configuration written to {args.out}")
    return 0


def _cmd_runs(args: argparse.Namespace) -> int:
    print("\n".join(runs_table(args.workdir)))
    return 0


def _cmd_report(args: argparse.Namespace) -> int:
    path = report_path(args.workdir, args.run).resolve()
    print(path)
    if args.open:
        webbrowser.open(path.as_uri())
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    if args.action == "schema":
        print("\n".join(schema_lines()))
    else:
        print(dump_yaml(_config(args, ())), end="")
    return 0


def _plain_run_id(run_id: str) -> bool:
    """The rule of `mtlrec.run.check_run_id`, without importing the run (and TensorFlow)."""
    return bool(RUN_ID.fullmatch(run_id)) and run_id not in (".", "..")


def _split_beam_args(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """(mtlrec's options, the Beam options after the first `--`)."""
    argv = list(argv)
    if "--" in argv:
        at = argv.index("--")
        return argv[:at], argv[at + 1 :]
    return argv, []


def _option_strings(parser: argparse.ArgumentParser, command: str | None) -> list[str]:
    target = parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            target = action.choices[command]
    return [o for a in target._actions for o in a.option_strings if o.startswith("--")]


def _reject_unknown(parser: argparse.ArgumentParser, command: str, unknown: list[str]) -> None:
    """Exits 2 with one line naming the first unknown option and the closest valid one."""
    first = next((u for u in unknown if u.startswith("-")), unknown[0])
    name = first.split("=", 1)[0]
    valid = _option_strings(parser, command)
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.6)
    hint = f"; did you mean {close[0]}?" if close else ""
    if name.startswith("--") and name in _beam_option_names():
        hint = f" (an Apache Beam option: Apache Beam options go after -- or in --beam-arg={first})"
    what = "option" if first.startswith("-") else "argument"
    parser.exit(2, f"mtlrec {command}: error: unknown {what} {first}{hint}\n")


def _beam_parser() -> argparse.ArgumentParser:
    """The parser Beam's `PipelineOptions.get_all_options` builds: every options class."""
    from apache_beam.options.pipeline_options import PipelineOptions, _BeamArgumentParser

    parser = _BeamArgumentParser(allow_abbrev=False)
    subclasses = {}
    pending = list(PipelineOptions.__subclasses__())
    while pending:
        cls = pending.pop()
        subclasses.setdefault(str(cls), cls)
        pending.extend(cls.__subclasses__())
    for cls in subclasses.values():
        cls._add_argparse_args(parser)
    return parser


def _beam_option_names() -> set[str]:
    return {o for a in _beam_parser()._actions for o in a.option_strings}


def _import_runner(beam_args: Sequence[str]) -> None:
    """Imports the module of a runner given by its class path (`--runner=pkg.mod.Class`), as
    Beam does when it starts the job, so the runner's own options (DaskOptions, ...) exist.

    Raises:
      ConfigError: the runner's module cannot be imported.
    """
    from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions

    runner = PipelineOptions(list(beam_args)).view_as(StandardOptions).runner
    if not isinstance(runner, str) or "." not in runner:
        return
    module = runner.rsplit(".", 1)[0]
    try:
        importlib.import_module(module)
    except ImportError as e:
        raise ConfigError(f"config error: --runner={runner}: cannot import {module}: {e}") from e


def _check_beam_args(beam_args: Sequence[str]) -> None:
    """Raises ConfigError naming the first option Beam's `PipelineOptions` does not know."""
    if not beam_args:
        return
    _import_runner(beam_args)
    parser = _beam_parser()
    _, unknown = parser.parse_known_args(list(beam_args))
    if unknown:
        valid = [o for a in parser._actions for o in a.option_strings]
        name = unknown[0].split("=", 1)[0]
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f"; did you mean {close[0]}?" if close else ""
        raise ConfigError(f"config error: unknown Apache Beam option {unknown[0]}{hint}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    ours, after_dashes = _split_beam_args(sys.argv[1:] if argv is None else argv)
    args, unknown = parser.parse_known_args(ours)
    if unknown:
        _reject_unknown(parser, args.command, unknown)
    beam_args = [*getattr(args, "beam_args", []), *after_dashes]
    if after_dashes and not hasattr(args, "beam_args"):
        parser.exit(2, f"mtlrec {args.command}: error: takes no Apache Beam options\n")
    if getattr(args, "run_id", None) is not None and not _plain_run_id(args.run_id):
        print(
            f"mtlrec {args.command}: error: --run-id {args.run_id!r}: a run id is a plain name "
            "of letters, digits and -_. (starting with a letter or digit), so the run stays "
            "inside <workdir>/runs/",
            file=sys.stderr,
        )
        return 2
    with termination.raise_on_sigterm():
        return _guarded(args, beam_args)


def _guarded(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    """Runs the command; every failure the user can fix becomes one line and an exit code."""
    try:
        if args.verbose:
            return _dispatch(args, beam_args)
        # TensorFlow's Python warnings (AutoGraph, Keras serialization) and the Beam
        # workers' start-up warnings are for developers; errors still show.
        for name in QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        with quiet_native_logs(os.environ.get(NATIVE_LOG_ENV)):
            return _dispatch(args, beam_args)
    except ConfigError as e:
        print(f"mtlrec: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        return _interrupted(terminated=isinstance(e, termination.Terminated))
    except Exception as e:
        if termination.received():
            # A library turned the raised Terminated into an error of its own.
            return _interrupted(terminated=True)
        if not isinstance(e, ValueError | OSError | RuntimeError):
            raise
        saved = _save_traceback(e, _workdir_of(args))
        print(f"mtlrec: error: {_describe(e)}{saved}", file=sys.stderr)
        return 1


def _interrupted(*, terminated: bool) -> int:
    from mtlrec.pipeline import worker_guard

    # The Beam runner's threads wait on their workers: end them, or the exit would hang.
    worker_guard.kill_descendants()
    print(f"mtlrec: {'terminated (SIGTERM)' if terminated else 'interrupted'}", file=sys.stderr)
    return 143 if terminated else 130


def _dispatch(args: argparse.Namespace, beam_args: Sequence[str]) -> int:
    if args.command in ("run", *STEP_NAMES):
        return _cmd_run(args, beam_args)
    if args.command == "recommend":
        return _cmd_recommend(args, beam_args)
    if args.command == "tune":
        return _cmd_tune(args, beam_args)
    if args.command == "backfill":
        return _cmd_backfill(args, beam_args)
    handlers = {
        "generate": _cmd_generate,
        "import": _cmd_import,
        "config": _cmd_config,
        "bench": _cmd_bench,
        "inspect": _cmd_inspect,
        "runs": _cmd_runs,
        "report": _cmd_report,
    }
    return handlers[args.command](args)


def _workdir_of(args: argparse.Namespace) -> pathlib.Path | None:
    if getattr(args, "command", None) not in ("run", "tune", "backfill", *STEP_NAMES):
        return None
    if args.workdir is not None:
        return pathlib.Path(args.workdir)
    try:
        return pathlib.Path(load_config(args.config, list(args.overrides)).runner.workdir)
    except (ValueError, OSError):
        return None


def _save_traceback(error: BaseException, workdir: pathlib.Path | None) -> str:
    """Writes the traceback into `<workdir>/logs/`; returns the line's pointer to it."""
    from mtlrec import log

    if workdir is None:
        return ""
    try:
        path = log.write_traceback(workdir, error)
    except OSError as e:
        return f" (traceback not saved: {e.strerror or e} in {workdir})"
    return f" (traceback: {path})"


def _root_os_error(error: BaseException | None) -> OSError | None:
    seen = set()
    while error is not None and id(error) not in seen:
        if isinstance(error, OSError) and error.errno is not None:
            return error
        seen.add(id(error))
        error = error.__cause__ or error.__context__
    return None


def _describe(error: BaseException) -> str:
    """One line: the path and cause of an OSError (also under a failed step), else the
    first line of the message."""
    cause = _root_os_error(error)
    if cause is None:
        return _first_line(error)
    reason = cause.strerror or errno.errorcode.get(cause.errno, str(cause.errno))
    where = cause.filename if cause.filename is not None else "(path unknown)"
    text = f"{os.fsdecode(where) if isinstance(where, bytes) else where}: {reason}"
    if cause is not error and not isinstance(error, OSError):
        head = _first_line(error).split(":", 1)[0]
        text = f"{head}: {text}"
    return text


def _first_line(error: BaseException) -> str:
    text = str(error) or type(error).__name__
    return text.strip().splitlines()[0]


if __name__ == "__main__":
    sys.exit(main())
