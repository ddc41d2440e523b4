"""The dataset commands: ``teleop inspect``, ``teleop merge``, ``teleop export``, ``teleop render``
(registered by ``teleop/cli.py``).

Every heavy import happens inside the command that needs it.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from teleop.errors import EXIT_FAILED_CHECK, ToolkitError


def cmd_inspect(args) -> int:
    from teleop.datasets.inspect import format_report, plot_spawns, summarize

    summary = summarize(args.folders)
    print(format_report(summary))
    # The data folder is the recordings' own: the picture goes only where the user asks for it.
    if summary.diversity and args.plot:
        target = Path(args.plot)
        try:
            plot_spawns(summary, target)
            print(f"spawn plot: {target}")
        except OSError as error:
            print(f"warning: could not write the spawn plot {target}: {error.strerror or error}", file=sys.stderr)
    elif summary.diversity:
        print(f"spawn plot: teleop inspect {' '.join(args.folders)} --plot spawns.png")
    if not summary.episodes:
        raise ToolkitError(f"no readable episodes in {', '.join(args.folders)}")
    return EXIT_FAILED_CHECK if summary.problems else 0


def cmd_merge(args) -> int:
    from teleop.datasets.merge import EpisodeFilter, merge

    operators = tuple(o.strip() for item in args.operator or [] for o in item.split(",") if o.strip())
    result = merge(args.sources, args.out, skip_duplicates=args.skip_duplicates, episode_filter=EpisodeFilter(
        operators=operators, task=args.task, success_only=args.success_only, min_steps=args.min_steps,
        max_steps=args.max_steps))
    for line in result.skipped:
        print(f"skipped duplicate: {line}", file=sys.stderr)
    print(f"merged {len(result.written)} {result.task} episodes from {len(args.sources)} source(s) -> {result.out}")
    return 0


def cmd_export(args) -> int:
    example = "out.hdf5" if args.format == "robomimic" else "OUT_DIR"
    if len(args.paths) < 2:
        raise ToolkitError("export needs at least one source folder and the output: "
                           f"teleop export --format {args.format} DIR {example}")
    *sources, out = args.paths
    if args.format == "lerobot":
        return _export_lerobot(args, sources, out)
    from teleop.datasets.robomimic import export_robomimic

    if not out.endswith((".hdf5", ".h5")):
        raise ToolkitError(f"the last argument is the output file and must end in .hdf5, got {out!r}")
    valid_fraction = 0.1 if args.valid_fraction is None else args.valid_fraction
    split_seed = 0 if args.split_seed is None else args.split_seed
    result = export_robomimic(sources, out, task=args.task, valid_fraction=valid_fraction,
                              split_seed=split_seed, progress=not args.quiet)
    masks = ", ".join(f"{k} {v}" for k, v in result.masks.items())
    print(f"exported {result.demos} demos ({result.samples} samples) -> {result.out}; masks: {masks}")
    return 0


def _export_lerobot(args, sources, out) -> int:
    from teleop.datasets.lerobot import export_lerobot

    if out.endswith((".hdf5", ".h5")):
        raise ToolkitError(f"the last argument is the output folder of the LeRobot dataset, got the file name {out!r}")
    if args.valid_fraction is not None or args.split_seed is not None:
        raise ToolkitError("--valid-fraction and --split-seed apply to --format robomimic only: "
                           "a LeRobot dataset has one split, train (LeRobot's training picks its own episodes)")
    result = export_lerobot(sources, out, task=args.task, progress=not args.quiet)
    if result.cameras_left_out:
        print(f"warning: left out camera(s) {', '.join(result.cameras_left_out)}: recorded in only some episodes",
              file=sys.stderr)
    videos = ", ".join(result.video_keys) or "none (no camera images in the episodes)"
    print(f"exported {result.episodes} {result.task} episodes ({result.frames} frames) -> {result.out} "
          f"(LeRobotDataset v3.0); videos: {videos}")
    return 0


def cmd_render(args) -> int:
    from teleop.datasets.render import check_size, parse_cameras, render_datasets

    cameras = parse_cameras(args.cameras)
    size = check_size(args.image_size)
    result = render_datasets(args.datasets, cameras, size, jobs=args.jobs, force=args.force,
                             progress=not args.quiet)
    what = f"{', '.join(cameras)} at {size}x{size}"
    if not result.rendered:
        print(f"all {_count(len(result.skipped), 'episode')} already have {what}: nothing to render")
        return 0
    rate = result.frames / result.seconds if result.seconds > 0 else float("inf")
    skipped = f"; {len(result.skipped)} already had them" if result.skipped else ""
    print(f"rendered {what} into {_count(len(result.rendered), 'episode')} ({result.frames} frames in "
          f"{result.seconds:.1f} s, {rate:.0f} frames/s, {_count(result.jobs, 'job')}){skipped}")
    return 0


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


def add_inspect_command(sub) -> None:
    """Add ``inspect`` to the ``teleop`` parser's subcommands."""
    ins = sub.add_parser("inspect", help="list episodes and report spawn diversity")
    ins.add_argument("folders", nargs="+", help="episode folder(s)")
    ins.add_argument("--plot", metavar="PNG", help="also draw the spawns over the spawn box into this PNG file")
    ins.add_argument("--no-plot", action="store_true", help=argparse.SUPPRESS)  # the default now; kept for old scripts
    ins.set_defaults(func=cmd_inspect)


def add_commands(sub) -> None:
    """Add ``merge``, ``export`` and ``render`` to the ``teleop`` parser's subcommands."""
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

    export = sub.add_parser("export", help="write episodes as a dataset for another framework (robomimic, LeRobot)")
    export.add_argument("--format", required=True, choices=("robomimic", "lerobot"),
                        help="robomimic: one HDF5 file; lerobot: a LeRobotDataset v3.0 folder")
    export.add_argument("paths", nargs="+", metavar="PATH", help="source folder(s) or file(s), then the output "
                        "(.hdf5 for robomimic, a new folder for lerobot)")
    export.add_argument("--task", help="export only this task (needed when the sources hold several)")
    export.add_argument("--valid-fraction", type=float, default=None,
                        help="robomimic: share of demos in mask/valid (default 0.1)")
    export.add_argument("--split-seed", type=int, default=None,
                        help="robomimic: seed of the train/valid split (default 0)")
    export.add_argument("--quiet", action="store_true", help="no progress bar")
    export.set_defaults(func=cmd_export)

    render = sub.add_parser("render", help="add camera images to recorded episodes, rendered from their MuJoCo states")
    render.add_argument("datasets", nargs="+", metavar="DATASET", help="episode folder(s) or file(s)")
    render.add_argument("--cameras", required=True, help="comma-separated cameras, e.g. corner2,gripperPOV")
    render.add_argument("--image-size", type=int, default=128,
                        help="image side in pixels (default 128, as teleop record)")
    render.add_argument("--jobs", type=int, default=None,
                        help="worker processes (default: the CPU count, at most 4)")
    render.add_argument("--force", action="store_true",
                        help="render the cameras again where a file already has them (at any size)")
    render.add_argument("--quiet", action="store_true", help="no progress bar")
    render.set_defaults(func=cmd_render)
