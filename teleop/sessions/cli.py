"""The ``teleop session run | status | report`` commands (registered by ``teleop/cli.py``).

Every heavy import happens inside the command that needs it.
"""

from __future__ import annotations

import time
from pathlib import Path



def cmd_session_run(args) -> int:
    from teleop.sessions.report import REPORT_DIR, format_status, session_status
    from teleop.sessions.run import run_session

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
    from teleop.sessions.report import format_status, session_status

    print(format_status(session_status(args.folder)))
    return 0


def cmd_session_report(args) -> int:
    from teleop.sessions.report import write_report

    print(f"report: {write_report(args.folder)}")
    return 0


def add_commands(sub) -> None:
    """Add ``session`` to the ``teleop`` parser's subcommands."""
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
