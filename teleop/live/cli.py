"""`teleop record` with a human device (the live window), and `teleop devices`.

Kept apart from teleop/cli.py so the main parser only gains two hooks:
:func:`add_live_arguments` on the record parser and :func:`add_devices_command`.
"""

from __future__ import annotations

import os
import sys
import time

from teleop.env import CONTROL_HZ, HOLD_STEPS
from teleop.errors import ToolkitError
from teleop.live.pace import HUMAN_DEVICES
from teleop.spawn import DEFAULT_STRATEGY, FRESH_STRATEGIES


def add_live_arguments(rec) -> None:
    live = rec.add_argument_group("live window (--device keyboard|gamepad|spacemouse, or scripted with --show)")
    live.add_argument("--show", action="store_true", help="show the scripted expert in the live window")
    live.add_argument("--camera", default="operator",
                      help="the view you watch; keys/sticks move the arm in its frame (default operator: a close "
                           "view from the table's corner; any MetaWorld camera works, see `teleop record --help`)")
    live.add_argument("--second-camera", default="gripperPOV",
                      help="second view in the side panel (default gripperPOV: looking down from the gripper); "
                           "'none' for none")
    live.add_argument("--view-size", type=int, default=560,
                      help="scene side in pixels at start (the window can be resized)")
    live.add_argument("--render-size", type=int, default=400,
                      help="most pixels per side the scene is rendered at; a larger scene shows that picture "
                           "scaled up (software GL on 2 cores: 560 px about 20 fps, 400 px about 33; "
                           "raise it on a machine with a GPU)")
    live.add_argument("--fps", type=float, default=40.0, help="display frame-rate cap")
    live.add_argument("--hold-s", type=float, default=HOLD_STEPS / CONTROL_HZ,
                      help="simulated seconds recorded after the first success")
    live.add_argument("--speed", type=float,
                      help="simulated seconds per wall-clock second, 0.1-1.0 (default: keyboard, gamepad and "
                           "spacemouse 0.5, scripted 1.0); [ and ] change it while recording")
    live.add_argument("--practice", action="store_true",
                      help="try the task without recording: nothing is saved and there is no step limit")
    live.add_argument("--sensitivity", type=float,
                      help="scale device motion (0.05..5); saved for this device in the settings file")
    live.add_argument("--invert", help="invert view axes, e.g. x,y (or 'none'); saved for this device")
    live.add_argument("--no-save-settings", action="store_true",
                      help="use --sensitivity/--invert for this run only")
    live.add_argument("--gamepad-layout", help="force the gamepad layout: xbox, playstation or generic")
    live.add_argument("--gamepad-mapping", help="gamepad mapping file (.json/.toml): bindings, deadzone, raw")
    live.add_argument("--device-path", help="which device: a SpaceMouse HID path or a gamepad index "
                                            "(see `teleop devices`)")


def add_devices_command(sub) -> None:
    dev = sub.add_parser("devices", help="list connected SpaceMice and gamepads, and whether they can be opened")
    dev.set_defaults(func=cmd_devices)


def cmd_devices(args) -> int:
    os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # listing needs no window
    os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
    from devices.discovery import format_devices, list_devices

    print("\n".join(format_devices(list_devices())))
    return 0


def wants_live(args) -> bool:
    return args.device in HUMAN_DEVICES or bool(getattr(args, "show", False))


def _device_options(args) -> dict:
    if args.device == "gamepad":
        options = {"layout": args.gamepad_layout, "mapping_file": args.gamepad_mapping}
        if args.device_path is not None:
            try:
                options["index"] = int(args.device_path)
            except ValueError:
                raise ToolkitError(f"--device-path {args.device_path!r}: a gamepad is chosen by its index "
                                   "(0, 1, ...; see `teleop devices`)") from None
        return options
    if args.device == "spacemouse":
        return {"path": args.device_path} if args.device_path else {}
    if args.gamepad_layout or args.gamepad_mapping:
        raise ToolkitError("--gamepad-layout/--gamepad-mapping need --device gamepad")
    return {}


def record_live(args, out: str) -> int:
    from devices.registry import make_device
    from teleop.live.device_settings import describe, resolve
    from teleop.live.pace import DEFAULT_SPEED, HUMAN_MAX_STEPS
    from teleop.live.window import LiveConfig, run_live

    if args.cameras:
        raise ToolkitError("--cameras records images in headless scripted runs only; live episodes store the "
                           "MuJoCo state every step, so render views afterwards (`teleop replay --video`)")
    settings, saved_to = resolve(args.device, sensitivity=args.sensitivity, invert=args.invert,
                                 save=not args.no_save_settings)
    if saved_to:
        print(f"{args.device} settings ({describe(settings)}) saved to {saved_to}")
    second = None if (args.second_camera or "").lower() in ("", "none") else args.second_camera
    human = args.device in HUMAN_DEVICES
    config = LiveConfig(
        task=args.task, episodes=args.episodes, out=out, seed=args.seed, spawn=args.spawn, camera=args.camera,
        second_camera=second, view_size=args.view_size, render_size=args.render_size, fps=args.fps, hold_s=args.hold_s,
        max_steps=args.max_steps if args.max_steps is not None else (HUMAN_MAX_STEPS if human else 500),
        speed=args.speed if args.speed is not None else DEFAULT_SPEED.get(args.device, 1.0),
        practice=args.practice, keep_failures=args.keep_failures, operator=args.operator, session=args.session,
        settings=settings,
        settings_text=describe(settings) if args.device != "scripted" else "").check()
    if args.device == "scripted":
        device = make_device("scripted", task=args.task)
    elif args.device in HUMAN_DEVICES:
        if args.device == "gamepad":
            from devices.gamepad import allow_background_events

            allow_background_events()  # before pygame.init(), or pad input without focus is dropped
        device = make_device(args.device, **_device_options(args))
    else:
        raise ToolkitError(f"unknown device {args.device!r}: use scripted, {', '.join(HUMAN_DEVICES)}")
    started = time.perf_counter()
    result = run_live(device, config)
    if config.practice:
        print(f"practised {args.task} for {time.perf_counter() - started:.1f} s; nothing was saved")
    else:
        print(f"kept {len(result.written)} episodes of {args.task} in {time.perf_counter() - started:.1f} s -> {out}")
    if not args.quiet:
        print(f"timing: {result.stats.format()}", file=sys.stderr)
    return 0


# --------------------------------------------------------------------- teleop correct
CORRECT_DEVICES = (*HUMAN_DEVICES, "corrector")


def add_correct_command(sub) -> None:
    from teleop.correction import HAND_BACK_S

    cor = sub.add_parser("correct", help="the policy drives, you take over where it goes wrong (HG-DAgger); "
                                         "records correction episodes",
                         description="Run a trained policy in the live window; any input takes over at once "
                                     "and letting go hands back. Every step records who drove (/intervention) "
                                     "and what the policy asked for (/policy_action).")
    cor.add_argument("--ckpt", required=True, help="act-train run folder or checkpoint file")
    cor.add_argument("--task", help="MetaWorld v3 task (default: the policy's)")
    cor.add_argument("--device", default="keyboard",
                     help="keyboard, gamepad, spacemouse (live window) or corrector (the scripted expert "
                          "gated by a person's rule, headless: devices/corrector.py)")
    cor.add_argument("--episodes", type=int, default=10, help="episodes to keep")
    cor.add_argument("--out", help="output folder (default recordings/<task>_corrections_<time>)")
    cor.add_argument("--seed", type=int, default=0, help="base seed of the spawn stream")
    cor.add_argument("--spawn", choices=FRESH_STRATEGIES, default=DEFAULT_STRATEGY,
                     help="spawn strategy (as teleop record's)")
    cor.add_argument("--spawns-from", metavar="EVAL_DIR",
                     help="take the spawns of an act-eval --out folder (or its results.json), failures first, "
                          "so corrections are spent where the policy fails")
    cor.add_argument("--failures-only", action="store_true", help="with --spawns-from: only the failed spawns")
    cor.add_argument("--hand-back", type=float, default=HAND_BACK_S, metavar="S",
                     help="seconds without input before the policy drives again")
    cor.add_argument("--keep-failures", action="store_true", help="keep episodes that did not succeed")
    cor.add_argument("--hold-steps", type=int, default=HOLD_STEPS,
                     help="headless: steps recorded after the first success")
    cor.add_argument("--max-steps", type=int,
                     help="step limit per episode (default: the policy's horizon, and at least 2000 for a person)")
    cor.add_argument("--operator", default="", help="operator name stored in each episode")
    cor.add_argument("--session", default="", help="session name stored in each episode")
    cor.add_argument("--quiet", action="store_true", help="no progress bar")
    add_live_arguments(cor)
    cor.set_defaults(func=cmd_correct, cameras=None)


def cmd_correct(args) -> int:
    """Checks everything (checkpoint, task, spawns) before anything is written."""
    from pathlib import Path

    from teleop.correction import load_pilot, spawns_from_results
    from teleop.env import TaskEnv, check_task

    if args.device not in CORRECT_DEVICES:
        raise ToolkitError(f"--device {args.device!r}: use one of {', '.join(CORRECT_DEVICES)}")
    if args.failures_only and not args.spawns_from:
        raise ToolkitError("--failures-only needs --spawns-from EVAL_DIR (an act-eval --out folder)")
    if args.task:
        check_task(args.task)
    pilot = load_pilot(args.ckpt, task=args.task)
    task = args.task or pilot.task
    spawns = None
    if args.spawns_from:
        probe = TaskEnv(task)
        try:
            spawns = spawns_from_results(args.spawns_from, task, probe.spawn_low, probe.spawn_high,
                                         failures_only=args.failures_only)
        finally:
            probe.close()
    out = args.out or str(Path("recordings") / f"{task}_corrections_{time.strftime('%Y%m%d-%H%M%S')}")
    episodes = min(args.episodes, len(spawns)) if spawns else args.episodes
    print(f"policy: {pilot.description}; {task}, {episodes} episodes"
          + (f" on {len(spawns)} spawns from {args.spawns_from}" if spawns else ""))
    started = time.perf_counter()
    if args.device == "corrector":
        from devices.registry import make_device
        from teleop.collect import record_headless

        summary: dict = {}
        written = record_headless(
            make_device("corrector", task=task), task=task, episodes=episodes, out=out, spawns=spawns,
            seed=args.seed, spawn=args.spawn, hand_back_s=args.hand_back, keep_failures=args.keep_failures,
            hold_steps=args.hold_steps, max_steps=args.max_steps or pilot.horizon, operator=args.operator,
            session=args.session, progress=not args.quiet, pilot=pilot, totals=summary)
        print(f"{summary['successes']} of {summary['attempts']} attempts succeeded; {summary['takeovers']} takeovers, "
              f"{summary['person_steps']} steps driven by the corrector, {summary['policy_steps']} by the policy")
    else:
        written = _correct_live(args, task, out, pilot, spawns, episodes)
    print(f"kept {len(written)} correction episodes of {task} in {time.perf_counter() - started:.1f} s -> {out}")
    return 0


def _correct_live(args, task: str, out: str, pilot, spawns, episodes: int) -> list:
    from devices.registry import make_device
    from teleop.live.device_settings import describe, resolve
    from teleop.live.pace import DEFAULT_SPEED, HUMAN_MAX_STEPS
    from teleop.live.window import LiveConfig, run_live

    settings, saved_to = resolve(args.device, sensitivity=args.sensitivity, invert=args.invert,
                                 save=not args.no_save_settings)
    if saved_to:
        print(f"{args.device} settings ({describe(settings)}) saved to {saved_to}")
    second = None if (args.second_camera or "").lower() in ("", "none") else args.second_camera
    config = LiveConfig(
        task=task, episodes=episodes, out=out, seed=args.seed, spawn=args.spawn, camera=args.camera,
        second_camera=second, view_size=args.view_size, render_size=args.render_size, fps=args.fps,
        hold_s=args.hold_s, max_steps=args.max_steps or max(pilot.horizon, HUMAN_MAX_STEPS),
        speed=args.speed if args.speed is not None else DEFAULT_SPEED[args.device],
        keep_failures=args.keep_failures, operator=args.operator, session=args.session, settings=settings,
        settings_text=describe(settings), pilot=pilot, hand_back_s=args.hand_back).check()
    if args.device == "gamepad":
        from devices.gamepad import allow_background_events

        allow_background_events()
    result = run_live(make_device(args.device, **_device_options(args)), config, spawns=spawns)
    if not args.quiet:
        print(f"timing: {result.stats.format()}", file=sys.stderr)
    return result.written
