"""The ``teleop`` command: record, correct, inspect, replay, sessions, merge, export, render, demo.

Every user-facing problem is a ToolkitError/DeviceError: printed as one line
``error: ...`` on stderr with a non-zero exit, never a traceback.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from devices.base import DeviceError
from teleop.env import HOLD_STEPS
from teleop.errors import EXIT_ERROR, EXIT_FAILED_CHECK, ToolkitError
from teleop.spawn import DEFAULT_STRATEGY, STRATEGIES


def _default_out(task: str) -> str:
    return str(Path("recordings") / f"{task}_{time.strftime('%Y%m%d-%H%M%S')}")


def _cameras(text: str | None) -> tuple[str, ...]:
    return tuple(c.strip() for c in text.split(",") if c.strip()) if text else ()


# --------------------------------------------------------------------- record
def cmd_record(args) -> int:
    from teleop.env import check_task

    check_task(args.task)
    out = args.out or _default_out(args.task)
    from teleop.live.cli import record_live, wants_live

    if args.expert_noise and args.device != "scripted":
        raise ToolkitError(f"--expert-noise applies to --device scripted, not {args.device}: drop the flag")
    if wants_live(args) and args.expert_noise:
        raise ToolkitError("--expert-noise records headless: drop --show (or the flag) to watch the expert")
    if wants_live(args):  # a person at a device, or the expert shown with --show: the live window
        return record_live(args, out)
    if args.device in ("scripted", "humanlike"):  # headless experts
        from devices.registry import make_device
        from teleop.collect import record_headless

        options = {"seed": args.seed} if args.device == "humanlike" else {}
        if args.expert_noise:
            options.update(noise=args.expert_noise, seed=args.seed)
        started = time.perf_counter()
        written = record_headless(
            make_device(args.device, task=args.task, **options), task=args.task, episodes=args.episodes, out=out,
            seed=args.seed,
            spawn=args.spawn, cameras=_cameras(args.cameras), image_size=args.image_size,
            keep_failures=args.keep_failures, hold_steps=args.hold_steps, max_steps=500 if args.max_steps is None else args.max_steps,
            operator=args.operator, session=args.session, progress=not args.quiet)
        print(f"recorded {len(written)} episodes of {args.task} in {time.perf_counter() - started:.1f} s -> {out}")
        _warn_if_degenerate(out)
        return 0
    raise ToolkitError(f"unknown device {args.device!r}: use scripted, humanlike, keyboard, gamepad or spacemouse")


def _warn_if_degenerate(out) -> None:
    from teleop.datasets.inspect import summarize

    for diversity in summarize([out]).diversity.values():
        warning = diversity.warning()
        if warning:
            print(f"WARNING: {warning}", file=sys.stderr)


# --------------------------------------------------------------------- replay
def cmd_replay(args) -> int:
    from teleop.episode import episode_files
    from teleop.replay import replay

    paths = []
    for item in args.files:
        p = Path(item)
        paths.extend(episode_files(p) if p.is_dir() else [p])
    if args.video and len(paths) != 1:
        raise ToolkitError("--video takes a single episode file")
    failed = rounded = 0
    for path in paths:
        report = replay(path, video=args.video, camera=args.camera, video_size=args.video_size,
                        video_speed=args.video_speed)
        if args.verify:
            verdict = ("exact" if report.exact else
                       "exact MuJoCo states; observations and rewards equal up to rounding (recorded on "
                       "another CPU or build)" if report.reproduced else
                       f"DIVERGES from step {report.first_divergent_step}")
            print(f"{path}: {report.steps} steps, success {report.success}, max |obs diff| "
                  f"{report.max_state_diff:.3g}, max |sim state diff| {report.max_sim_state_diff:.3g}, "
                  f"max |reward diff| {report.max_reward_diff:.3g}: {verdict}")
            failed += not report.reproduced
            rounded += report.reproduced and not report.exact
        else:
            print(f"{path}: replayed {report.steps} steps, success {report.success}")
    if args.video:
        print(f"video: {args.video}")
    if args.verify and len(paths) > 1:
        print(f"{len(paths) - failed - rounded} of {len(paths)} episodes replay exactly"
              + (f", {rounded} up to rounding" if rounded else ""))
    return EXIT_FAILED_CHECK if failed else 0


def cmd_tasks(args) -> int:
    from teleop.env import task_names

    print("\n".join(task_names()))
    return 0


# --------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    # The entry point wires the parts together: the record/replay core here, the live window,
    # sessions and dataset tools each add their own commands (their modules load when one runs).
    from teleop.datasets.cli import add_commands as add_dataset_commands
    from teleop.datasets.cli import add_inspect_command
    from teleop.demo import add_command as add_demo
    from teleop.live.cli import add_correct_command, add_devices_command, add_live_arguments
    from teleop.sessions.cli import add_commands as add_session_commands

    parser = argparse.ArgumentParser(
        prog="teleop", description="Teleoperate MetaWorld's Sawyer, record demonstrations to HDF5 and manage "
                                   "the datasets (act-train and act-eval train and evaluate on them).",
        epilog="Start with `teleop record --device keyboard` (or gamepad, spacemouse); `teleop COMMAND --help` "
               "for each command.")
    sub = parser.add_subparsers(dest="command", required=True)

    rec = sub.add_parser("record", help="record demonstrations to HDF5 episode files")
    rec.add_argument("--device", default="scripted",
                     help="scripted (headless expert), humanlike (the expert with human-like noise, "
                          "pauses and overshoot; headless) or keyboard, gamepad, spacemouse (live window)")
    rec.add_argument("--task", default="pick-place-v3", help="MetaWorld v3 task name (see `teleop tasks`)")
    rec.add_argument("--episodes", type=int, default=10, help="episodes to keep")
    rec.add_argument("--out", help="output folder (default recordings/<task>_<time>)")
    rec.add_argument("--seed", type=int, default=0, help="base seed: episode i gets spawn seed SEED+i")
    rec.add_argument("--spawn", choices=STRATEGIES, default=DEFAULT_STRATEGY,
                     help="how spawns are drawn: independent uniform, evenly covering the spawn box (the "
                          "default), covering it with more spawns near its faces (chebyshev: for policies that "
                          "fail outside the training hull, README \"Which spawns a recording gets\"), or "
                          "(experiments only) every episode from one spawn")
    rec.add_argument("--cameras", help="comma-separated cameras to record images from, e.g. corner2,gripperPOV")
    rec.add_argument("--image-size", type=int, default=128, help="recorded image side in pixels")
    rec.add_argument("--expert-noise", type=float, default=0.0,
                     help="with --device scripted: Gaussian noise of this std added to the expert's translation "
                          "every step (action units, 1 = 1 cm a step; DART's way of showing recoveries); an "
                          "experiment: on 50 tasks it moved ACT's success both ways (BENCHMARKS.md, \"Demos with "
                          "noise\"); 0: the expert's own actions")
    rec.add_argument("--keep-failures", action="store_true", help="keep failed episodes (marked success=False)")
    rec.add_argument("--hold-steps", type=int, default=HOLD_STEPS,
                     help=f"steps recorded after the first success (default {HOLD_STEPS}: half a simulated second)")
    rec.add_argument("--max-steps", type=int,
                     help="step limit per episode (default: 500, MetaWorld's horizon, for the scripted devices; "
                          "2000 for a person at keyboard, gamepad or spacemouse; at most 48000)")
    rec.add_argument("--operator", default="", help="operator name stored in each episode")
    rec.add_argument("--session", default="", help="session name stored in each episode")
    rec.add_argument("--quiet", action="store_true", help="no progress bar")
    rec.set_defaults(func=cmd_record)
    add_live_arguments(rec)  # --show, --camera, --sensitivity, --invert, ...
    add_devices_command(sub)  # teleop devices
    add_inspect_command(sub)  # teleop inspect
    add_correct_command(sub)  # teleop correct: the policy drives, a person takes over

    rep = sub.add_parser("replay", help="re-run recorded actions; --verify checks every step")
    rep.add_argument("files", nargs="+", help="episode file(s) or folder(s)")
    rep.add_argument("--verify", action="store_true", help="compare each step with the file (must be exact)")
    rep.add_argument("--video", help="write an H.264 mp4 of the replay")
    rep.add_argument("--camera", default="corner2", help="camera for --video")
    rep.add_argument("--video-size", type=int, default=480, help="video side in pixels")
    rep.add_argument("--video-speed", type=float, default=0.25,
                     help="playback speed, a fraction of real time (0.25: a 55-step grasp lasts 2.8 s)")
    rep.set_defaults(func=cmd_replay)

    tasks = sub.add_parser("tasks", help="list the MetaWorld v3 task names")
    tasks.set_defaults(func=cmd_tasks)

    add_session_commands(sub)  # teleop session run|status|report
    add_dataset_commands(sub)  # teleop merge, teleop export
    add_demo(sub)  # teleop demo
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (ToolkitError, DeviceError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("interrupted: every episode finished before now is on disk", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
