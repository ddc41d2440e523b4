"""The ``teleop session | merge | export`` commands (registered by ``teleop/cli.py``).

Kept apart from cli.py so batch collection and dataset handling can change
without touching the recording commands; every heavy import happens inside
the command that needs it.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

from teleop.errors import ToolkitError


def cmd_session_run(args) -> int:
    from teleop.session_run import run_session
    from teleop.session_report import REPORT_DIR, format_status, session_status

    started = time.perf_counter()
    session = run_session(args.plan, args.out, operator=args.operator, progress=not args.quiet)
    print(format_status(session_status(session.folder)))
    report = Path(args.out) / REPORT_DIR / "session_report.md"
    if session.done:
        print(f"session finished in {time.perf_counter() - started:.1f} s; report: {report}")
    else:  # the operator quit the live window
        print(f"session stopped after {time.perf_counter() - started:.1f} s, not complete; run the same command "
              f"again to resume. Report so far: {report}")
    return 0


def cmd_session_status(args) -> int:
    from teleop.session_report import format_status, session_status

    print(format_status(session_status(args.folder)))
    return 0


def cmd_session_report(args) -> int:
    from teleop.session_report import write_report

    print(f"report: {write_report(args.folder)}")
    return 0


def cmd_merge(args) -> int:
    from teleop.merge import EpisodeFilter, merge

    operators = tuple(o.strip() for item in args.operator or [] for o in item.split(",") if o.strip())
    result = merge(args.sources, args.out, skip_duplicates=args.skip_duplicates, episode_filter=EpisodeFilter(
        operators=operators, task=args.task, success_only=args.success_only, min_steps=args.min_steps,
        max_steps=args.max_steps))
    for line in result.skipped:
        print(f"skipped duplicate: {line}", file=sys.stderr)
    print(f"merged {len(result.written)} {result.task} episodes from {len(args.sources)} source(s) -> {result.out}")
    return 0


def cmd_export(args) -> int:
    from teleop.export import export_robomimic

    if len(args.paths) < 2:
        raise ToolkitError("export needs at least one source folder and the output file: "
                           "teleop export --format robomimic DIR out.hdf5")
    *sources, out = args.paths
    if not out.endswith((".hdf5", ".h5")):
        raise ToolkitError(f"the last argument is the output file and must end in .hdf5, got {out!r}")
    result = export_robomimic(sources, out, task=args.task, valid_fraction=args.valid_fraction,
                              split_seed=args.split_seed, progress=not args.quiet)
    masks = ", ".join(f"{k} {v}" for k, v in result.masks.items())
    print(f"exported {result.demos} demos ({result.samples} samples) -> {result.out}; masks: {masks}")
    return 0


def add_commands(sub) -> None:
    """Add ``session``, ``merge`` and ``export`` to the ``teleop`` parser's subcommands."""
    session = sub.add_parser("session", help="batch collection sessions from a plan file: run, status, report")
    ssub = session.add_subparsers(dest="session_command", required=True)
    run = ssub.add_parser("run", help="work through a plan (running it again resumes where it stopped)")
    run.add_argument("plan", help="session plan (TOML): operators, device, [[task]] blocks with episodes")
    run.add_argument("--out", required=True, help="session folder (created, or resumed when it exists)")
    run.add_argument("--operator", help="who is collecting (must be in the plan's operators when it lists several)")
    run.add_argument("--quiet", action="store_true", help="no progress bar")
    run.set_defaults(func=cmd_session_run)
    status = ssub.add_parser("status", help="kept/discarded, success rate, pace and spawn coverage per task and operator")
    status.add_argument("folder", help="session folder")
    status.set_defaults(func=cmd_session_status)
    report = ssub.add_parser("report", help="write FOLDER/report/session_report.md and its PNG plots")
    report.add_argument("folder", help="session folder")
    report.set_defaults(func=cmd_session_report)

    merge = sub.add_parser("merge", help="merge sessions / episode folders into one dataset folder")
    merge.add_argument("sources", nargs="+", help="session folders, episode folders or episode files")
    merge.add_argument("--out", required=True, help="new dataset folder")
    merge.add_argument("--operator", action="append", help="keep only these operators (repeat or comma-separate)")
    merge.add_argument("--task", help="keep only this task (needed when the sources hold several)")
    merge.add_argument("--success-only", action="store_true", help="keep only successful episodes")
    merge.add_argument("--min-steps", type=int, help="keep only episodes with at least this many steps")
    merge.add_argument("--max-steps", type=int, help="keep only episodes with at most this many steps")
    merge.add_argument("--skip-duplicates", action="store_true",
                       help="leave out repeated seeds / actions instead of refusing the merge")
    merge.set_defaults(func=cmd_merge)

    export = sub.add_parser("export", help="write episodes as one dataset file for another framework")
    export.add_argument("--format", required=True, choices=("robomimic",), help="target layout")
    export.add_argument("paths", nargs="+", metavar="PATH", help="source folder(s) or file(s), then the output .hdf5")
    export.add_argument("--task", help="export only this task (needed when the sources hold several)")
    export.add_argument("--valid-fraction", type=float, default=0.1, help="share of demos in mask/valid")
    export.add_argument("--split-seed", type=int, default=0, help="seed of the train/valid split")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.set_defaults(func=cmd_export)
