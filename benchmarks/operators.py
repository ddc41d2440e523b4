"""How long a person needs per kept demo: the simulated operator at the real live window.

    .venv/bin/python benchmarks/operators.py                                 # keyboard, pick-place, 10 demos
    .venv/bin/python benchmarks/operators.py --devices keyboard gamepad spacemouse --tasks all7 --demos 5
    .venv/bin/python benchmarks/operators.py --speeds 0.35 0.5 0.7 1.0        # choose a default speed
    .venv/bin/python benchmarks/operators.py --before                         # the window as it was
    .venv/bin/python benchmarks/operators.py --demos 50 --keep recordings/op-kb-pp  # demos to train on
    .venv/bin/python benchmarks/operators.py --release --devices keyboard     # + travel after a key release
    .venv/bin/python benchmarks/operators.py --release-only                   # only that

The person is benchmarks/operator_model.py's (what it models and what it does not is written there):
it acts only through the real device classes (keyboard key events, an SDL virtual gamepad, SpaceMouse
report bytes) on the real control loop, in wall-clock time, at the window's ``--speed``. The window
runs under SDL's dummy video driver with its render thread drawing as usual, so the machine carries
the same load as with a person.

Per device and task it prints: attempts per kept demo and the share of attempts that succeeded,
wall-clock seconds per kept demo (median and 90th percentile, counting failed attempts, looking at
fresh spawns and pressing keep), simulation steps per demo; and, for the keyboard, the gripper's
travel after a key is released (how far it goes on once the key is up, at the window's speed).
``--before`` runs the window as it was before stop-on-release, the operator view and the depth cues:
real time, MetaWorld's plain action, the ``corner`` camera, a 500-step limit, and depth judged
without the spot under the gripper (``depth_floor`` 1.5 cm).

Targets (issue: a person records a pick-place demo in under half a minute): keyboard pick-place-v3
median <= 30 s per kept demo with >= 80% of attempts succeeding, SpaceMouse <= 15 s; travel after
release <= 2 mm at the default speed.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("SDL_JOYSTICK_ALLOW_BACKGROUND_EVENTS", "1")  # the virtual pad, without window focus
os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

SEVEN_TASKS = ("reach-v3", "push-v3", "pick-place-v3", "drawer-open-v3", "door-open-v3",
               "button-press-topdown-v3", "peg-insert-side-v3")
RESULTS = ROOT / "benchmarks" / "results" / "operators.jsonl"


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores, {platform.machine()}"


def make_device(kind: str):
    """(device, stand-in hardware kwargs for the operator)."""
    if kind == "keyboard":
        from devices.keyboard import KeyboardDevice

        return KeyboardDevice(), {}
    if kind == "spacemouse":
        from devices.spacemouse import SpaceMouseDevice
        from devices.stand_ins import COMPACT, FakeHid

        hid = FakeHid(COMPACT)
        path = next(iter(hid.plugged))
        return SpaceMouseDevice(hid_api=hid), {"hid": hid, "hid_path": path}
    if kind == "gamepad":
        import pygame
        from pygame._sdl2 import controller

        from devices.gamepad import GamepadDevice
        from devices.stand_ins import VirtualPad, load_sdl

        pygame.display.init()  # SDL's joystick needs the video subsystem
        pygame.joystick.init()
        if not controller.get_init():
            controller.init()
        pad = VirtualPad(load_sdl(pygame), pygame, "Xbox 360 Controller", 0x045E, 0x028E)
        return GamepadDevice(), {"pad": pad}
    raise SystemExit(f"unknown device {kind!r}: keyboard, gamepad or spacemouse")


def run_window(task: str, kind: str, demos: int, *, speed: float, params, out: Path, before: bool,
               max_steps: int, timeout_s: float) -> dict:
    """One live window until ``demos`` are kept (or ``timeout_s``); returns its figures."""
    import pygame

    from operator_model import SimulatedOperator
    from teleop.episode import read_episode
    from teleop.live.window import LiveConfig, run_live

    device, hardware = make_device(kind)
    config = LiveConfig(task=task, episodes=demos, out=str(out), seed=params.seed * 1000, speed=speed,
                        max_steps=500 if before else max_steps, view_size=400, fps=30,
                        camera="corner" if before else "operator", second_camera=None if before else "gripperPOV",
                        stop_on_release=not before, operator="simulated")
    operators = []
    timer = None

    def start(control):
        nonlocal timer
        operator = SimulatedOperator(control, kind, params, **hardware)
        operators.append(operator)
        operator.start()

        def out_of_time():
            pygame.event.post(pygame.event.Event(pygame.QUIT))

        timer = threading.Timer(timeout_s, out_of_time)
        timer.daemon = True
        timer.start()

    started = time.perf_counter()
    result = run_live(device, config, on_start=start)
    wall = time.perf_counter() - started
    if timer is not None:
        timer.cancel()
    operator = operators[0]
    operator.stop.set()
    operator.join(2)
    if hardware.get("pad") is not None:
        hardware["pad"].detach()
    if operator.error is not None:
        raise operator.error
    steps = [read_episode(p).num_steps for p in result.written]
    marks = [started] + operator.log.kept_at
    per_demo = list(np.diff(marks)) if operator.log.kept_at else []
    attempts = max(operator.log.attempts, 1)
    return {
        "task": task, "device": kind, "speed": speed, "before": before, "demos_wanted": demos,
        "kept": len(result.written), "attempts": operator.log.attempts,
        "attempts_per_demo": attempts / max(len(result.written), 1),
        "success_share": len(result.written) / attempts,
        "wall_s": wall, "s_per_demo_median": float(np.median(per_demo)) if per_demo else None,
        "s_per_demo_p90": float(np.percentile(per_demo, 90)) if per_demo else None,
        "steps_median": float(np.median(steps)) if steps else None, "steps_max": max(steps) if steps else None,
        "missed_ticks": result.stats.missed_ticks, "display_fps": result.stats.display_fps(),
        "load": load(), "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def release_travel(speed: float, holds=(0.05, 0.12, 0.25, 0.5, 1.0), *, before: bool = False) -> list[dict]:
    """Hold A for each duration and let go: how far the gripper goes on after the release (mm).

    Measured on the recorded episode: the hand at the tick the release was applied against where it
    rests 1.5 s (of simulation) later, along the motion, and the farthest it got in between.
    """
    import pygame

    from devices.keyboard import KeyboardDevice
    from teleop.episode import read_episode
    from teleop.live.window import LiveConfig, run_live

    marks: list[tuple[float, int, int]] = []  # (hold, steps taken at the press, at the release)
    settle = int(1.5 * 80)

    def script(control):
        def post(kind, key):
            pygame.event.post(pygame.event.Event(kind, key=key, mod=0, unicode="", scancode=0))

        def run():
            while control.flow.phase.value != "idle":
                time.sleep(0.01)
            post(pygame.KEYDOWN, pygame.K_RETURN)  # start recording, arm still
            time.sleep(1.0)
            for hold in holds:
                pressed = control.flow.steps
                post(pygame.KEYDOWN, pygame.K_a)
                time.sleep(hold)
                post(pygame.KEYUP, pygame.K_a)
                released = control.flow.steps
                marks.append((hold, pressed, released))
                while control.flow.steps < released + settle + 5:
                    time.sleep(0.01)
            post(pygame.KEYDOWN, pygame.K_RETURN)
            while control.flow.phase.value != "review":
                time.sleep(0.01)
            post(pygame.KEYDOWN, pygame.K_k)

        threading.Thread(target=run, daemon=True).start()

    with tempfile.TemporaryDirectory() as out:
        config = LiveConfig(task="reach-v3", episodes=1, out=out, speed=1.0 if before else speed,
                            max_steps=4000, view_size=300, fps=30, keep_failures=True, stop_on_release=not before,
                            camera="corner" if before else "operator", second_camera=None)
        result = run_live(KeyboardDevice(), config, on_start=script)
        episode = read_episode(result.written[0])
    rows = []
    hand = episode.state[:, :3]  # before each step; the release is applied at the tick after it was posted
    for hold, pressed, released in marks:
        moved = hand[released] - hand[pressed]
        direction = moved / max(np.linalg.norm(moved), 1e-9)
        later = (hand[released:released + settle] - hand[released]) @ direction
        rows.append({"hold_s": hold, "moved_mm": float(np.linalg.norm(moved) * 1000),
                     "final_mm": float(later[-1] * 1000), "peak_mm": float(later.max() * 1000)})
    return rows


def format_rows(rows: list[dict]) -> str:
    lines = [f"{'device':<19}{'task':<25}{'speed':>6}{'kept':>6}{'tries/demo':>11}{'success':>9}"
             f"{'s/demo':>8}{'p90 s':>7}{'steps':>7}{'missed':>8}"]
    for r in rows:
        median = "-" if r["s_per_demo_median"] is None else f"{r['s_per_demo_median']:.1f}"
        p90 = "-" if r["s_per_demo_p90"] is None else f"{r['s_per_demo_p90']:.1f}"
        steps = "-" if r["steps_median"] is None else f"{r['steps_median']:.0f}"
        name = r["device"] + (" (before)" if r["before"] else "")
        lines.append(f"{name:<19}{r['task']:<25}{r['speed']:>6.2f}{r['kept']:>6}{r['attempts_per_demo']:>11.2f}"
                     f"{r['success_share']:>9.0%}{median:>8}{p90:>7}{steps:>7}{r['missed_ticks']:>8}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs="+", default=["keyboard"], help="keyboard gamepad spacemouse")
    parser.add_argument("--tasks", nargs="+", default=["pick-place-v3"], help="task names, or all7")
    parser.add_argument("--demos", type=int, default=10, help="demos to keep per device and task")
    parser.add_argument("--speeds", type=float, nargs="+", help="window speeds (default: each device's default)")
    parser.add_argument("--max-steps", type=int, default=None, help="step limit (default: the window's)")
    parser.add_argument("--before", action="store_true", help="the window before this issue (see above)")
    parser.add_argument("--seed", type=int, default=0, help="operator seed (its errors) and spawn seeds")
    parser.add_argument("--keep", help="keep the recorded demos in this folder (one task, one device)")
    parser.add_argument("--release", action="store_true", help="also measure travel after a key release")
    parser.add_argument("--release-only", action="store_true", help="only measure travel after a key release")
    parser.add_argument("--minutes-per-window", type=float, default=30.0, help="give up on a window after this")
    args = parser.parse_args(argv)

    from operator_model import OperatorParams, describe
    from teleop.live.pace import DEFAULT_SPEED, HUMAN_MAX_STEPS

    tasks = list(SEVEN_TASKS) if args.tasks == ["all7"] else args.tasks
    params = OperatorParams(seed=args.seed, depth_floor_m=0.015 if args.before else OperatorParams.depth_floor_m)
    print(f"simulated operator: {describe(params)}")
    print(f"machine: {load()}")
    speeds = args.speeds or [None]
    if args.release or args.release_only:
        for speed in ([1.0] if args.before else args.speeds or [DEFAULT_SPEED["keyboard"]]):
            rows = release_travel(speed, before=args.before)
            text = ", ".join(f"{r['hold_s']:.2f} s (moved {r['moved_mm']:.0f} mm) -> {r['final_mm']:+.1f} mm "
                             f"(peak {r['peak_mm']:.1f})" for r in rows)
            print(f"travel after releasing A, held for ({'before, ' if args.before else ''}speed {speed}): {text}")
            _append({"release_travel": rows, "speed": speed, "before": args.before, "load": load(),
                     "date": time.strftime("%Y-%m-%d %H:%M")})
    if args.release_only:
        return 0
    rows = []
    for kind in args.devices:
        for task in tasks:
            for speed in speeds:
                speed = 1.0 if args.before else (speed or DEFAULT_SPEED[kind])
                out = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="operator-"))
                row = run_window(task, kind, args.demos, speed=speed, params=params, out=out, before=args.before,
                                 max_steps=args.max_steps or HUMAN_MAX_STEPS,
                                 timeout_s=args.minutes_per_window * 60)
                rows.append(row)
                _append(row)
                print(format_rows([row]).splitlines()[1], flush=True)
    print()
    print(format_rows(rows))
    return 0


def _append(row: dict) -> None:
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    with open(RESULTS, "a") as f:
        f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    sys.exit(main())
