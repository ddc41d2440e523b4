"""Live-window timing: does control keep its tick rate while the window renders and records?

    .venv/bin/python benchmarks/live_loop.py [--seconds 60] [--task pick-place-v3] [--speed 1.0]
    .venv/bin/python benchmarks/live_loop.py --speed 0.5 --ckpt runs/pp20     # teleop correct's loop

Runs the real live loop (teleop.live.run_live) with the keyboard device under
SDL's dummy video driver (or the X display in $DISPLAY with --display). A
separate thread plays the operator: it posts key presses and releases at
random moments, each stamped with the time it was posted, keeps every episode
when it ends (step limit) and starts the next, so the simulator is recording
for nearly the whole run. Prints control tick rate, missed ticks, tick jitter,
display frame rate and input-to-action latency (posted -> the action that
reflects it reaches env.step), beside the machine's load.

The window is the one a person gets (the operator view with its depth cues at 560 px, gripperPOV in
the side panel; the scene rendered at 400 px and scaled up), at ``--speed`` (default 1.0: 80 ticks a second, the most the loop is asked for; a
person's default is 0.5, 40 ticks a second).

With ``--ckpt`` the loop is ``teleop correct``'s: the policy is queried every tick (its time is in the
tick work) and the operator's keys take over and hand back (``--hand-back``, 0.2 s here so both happen
often); the share of steps the policy drove is printed.

Targets: the tick rate with no missed tick, display >= 30 fps, latency p99 <= one tick period.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load {one:.2f} (1 min), {five:.2f} (5 min) on {os.cpu_count()} cores, {platform.machine()}"


def cpu_times() -> list[int] | None:
    """The machine's cumulative CPU jiffies (user nice system idle iowait irq softirq steal), or None off Linux."""
    try:
        with open("/proc/stat") as f:
            return [int(v) for v in f.readline().split()[1:9]]
    except (OSError, ValueError):
        return None


def steal_text(before, after) -> str:
    """Share of CPU time the hypervisor took from this VM between two cpu_times() readings."""
    if before is None or after is None:
        return "n/a (no /proc/stat)"
    delta = [b - a for a, b in zip(before, after)]
    total = sum(delta)
    return f"{100.0 * delta[7] / total:.2f}% of CPU time" if total else "n/a"


def machine_stalls(seconds: float = 5.0) -> str:
    """Spin on one core and report the gaps: time the VM was not running this process at all.

    Run after the live loop, with nothing else of ours running: a gap here is the host
    (hypervisor steal, interrupts), which a control loop in this VM cannot avoid either.
    """
    gaps, last = [], time.perf_counter()
    end = last + seconds
    while last < end:
        now = time.perf_counter()
        if now - last > 0.001:
            gaps.append(now - last)
        last = now
    if not gaps:
        return f"no gap over 1 ms in {seconds:.0f} s of spinning"
    return (f"{len(gaps)} gaps over 1 ms in {seconds:.0f} s of spinning, longest {max(gaps) * 1000:.1f} ms, "
            f"{100 * sum(gaps) / seconds:.2f}% of the time")


class Operator(threading.Thread):
    """Posts stamped key events until ``seconds`` have passed, then Escape."""

    def __init__(self, control_ref, seconds: float, seed: int = 0, gaps=(0.01, 0.1)):
        super().__init__(name="fake-operator", daemon=True)
        self.control_ref, self.seconds, self.rng = control_ref, seconds, random.Random(seed)
        self.gaps = gaps  # seconds between two key presses (longer with a policy in the loop: it drives between)
        self.presses = 0

    def post(self, kind, key):
        import pygame

        try:
            pygame.event.post(pygame.event.Event(kind, key=key, mod=0, unicode="", scancode=0,
                                                 injected_at=time.perf_counter()))
        except pygame.error:  # the window closed (the run ended) while this thread was asleep
            pass

    def tap(self, key):
        import pygame

        self.post(pygame.KEYDOWN, key)
        time.sleep(0.03)
        self.post(pygame.KEYUP, key)

    def run(self):
        import pygame

        end = time.perf_counter() + self.seconds
        keys = [pygame.K_a, pygame.K_d, pygame.K_w, pygame.K_s, pygame.K_r, pygame.K_f]
        while time.perf_counter() < end:
            control = self.control_ref()
            phase = control.flow.phase.value if control is not None else "idle"
            if phase == "review":
                self.tap(pygame.K_k)  # keep, then a fresh spawn
            elif phase == "idle":
                self.tap(pygame.K_RETURN)
            else:
                key = self.rng.choice(keys)
                self.post(pygame.KEYDOWN, key)
                self.presses += 1
                time.sleep(self.rng.uniform(0.02, 0.25))  # random phase against the tick
                self.post(pygame.KEYUP, key)
            time.sleep(self.rng.uniform(*self.gaps))
        self.tap(pygame.K_ESCAPE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to record")
    parser.add_argument("--task", default="pick-place-v3")
    parser.add_argument("--view-size", type=int, default=560, help="scene side in pixels")
    parser.add_argument("--render-size", type=int, default=400, help="most pixels per side rendered (then scaled up)")
    parser.add_argument("--camera", default="operator")
    parser.add_argument("--second-camera", default="gripperPOV", help="'none' for no second view")
    parser.add_argument("--speed", type=float, default=1.0, help="fraction of real time (a person's default: 0.5)")
    parser.add_argument("--display", action="store_true", help="use $DISPLAY (e.g. Xvfb) instead of SDL's dummy driver")
    parser.add_argument("--ckpt", help="a checkpoint: run teleop correct's loop, the policy driving between keys")
    parser.add_argument("--hand-back", type=float, default=0.2, help="with --ckpt: seconds before the policy drives again")
    parser.add_argument("--no-boost", action="store_true",
                        help="do not raise the control/window threads' priority (what a non-root user gets)")
    args = parser.parse_args()
    if not args.display:
        os.environ["SDL_VIDEODRIVER"] = "dummy"

    import teleop.live.window as live
    from devices.keyboard import KeyboardDevice
    from teleop.env import CONTROL_HZ
    from teleop.live.timing import LoopStats

    pilot = None
    if args.ckpt:
        from teleop.correction import load_pilot

        pilot = load_pilot(args.ckpt, task=args.task)
    holder = {}  # the operator thread watches the control loop's phase
    stats = LoopStats()
    operator = Operator(lambda: holder.get("control"), args.seconds, gaps=(0.1, 0.8) if pilot else (0.01, 0.1))
    print(f"before: {load()}")
    with tempfile.TemporaryDirectory() as out:
        config = live.LiveConfig(task=args.task, episodes=10_000, out=out, camera=args.camera,
                                 second_camera=None if args.second_camera == "none" else args.second_camera,
                                 view_size=args.view_size, render_size=args.render_size, speed=args.speed, boost_priority=not args.no_boost,
                                 keep_failures=True, pilot=pilot, hand_back_s=args.hand_back)
        def start_operator(control):
            holder["control"] = control
            operator.start()  # pygame is initialised by now

        started, cpu_before = time.perf_counter(), cpu_times()
        result = live.run_live(KeyboardDevice(), config, stats=stats, on_start=start_operator)
        elapsed, cpu_after = time.perf_counter() - started, cpu_times()
        if pilot is not None:
            from teleop.episode import read_intervention, takeovers

            drove = [read_intervention(path) for path in result.written]
            person = sum(int(d.sum()) for d in drove)
            policy = sum(int((~d).sum()) for d in drove)
            taken = sum(takeovers(d) for d in drove)
    s = stats.summary()
    recording = len(stats.step_durations)  # one per recorded step
    print(f"after:  {load()}")
    print(f"ran {elapsed:.1f} s, {result.kept} episodes kept, {recording} recorded steps "
          f"({recording / CONTROL_HZ / args.speed:.1f} s of recording), {operator.presses} key presses")
    rate = CONTROL_HZ * args.speed
    print(f"window                 {args.camera} view at {args.view_size} px (rendered at {min(args.view_size, args.render_size)}), second view {args.second_camera}, "
          f"speed {args.speed}")
    print(f"control tick rate      {s['tick_rate_hz']:.2f} Hz (target {rate:g})")
    print(f"missed ticks           {s['missed_ticks']} (target 0)")
    print(f"tick jitter            p50 {s['jitter_p50_ms']:.3f} ms, p99 {s['jitter_p99_ms']:.3f} ms, "
          f"max {s['jitter_max_ms']:.2f} ms")
    print(f"tick work (step+rec)   p99 {s['step_p99_ms']:.2f} ms")
    print(f"display                {s['display_fps']:.1f} fps (target >= 30), render+HUD p50 {s['render_p50_ms']:.1f} ms")
    print(f"input->action latency  p50 {s['latency_p50_ms']:.2f} ms, p99 {s['latency_p99_ms']:.2f} ms, "
          f"max {s['latency_max_ms']:.2f} ms over {s['latency_n']} events (target p99 <= {1000 / rate:.1f})")
    print(f"  posted -> tick due   p99 {s['tick_wait_p99_ms']:.2f} ms (waiting for the next tick; "
          f"uniform over one period: p99 {0.99 * 1000 / rate:.3f} ms)")
    print(f"  tick due -> applied  p50 {s['apply_delay_p50_ms']:.3f} ms, p99 {s['apply_delay_p99_ms']:.3f} ms "
          f"(what the loop adds: wake-up lateness + drain, poll, map)")
    print(f"  pick-up              p99 {s['pickup_p99_ms']:.2f} ms (posted -> taken off SDL's queue)")
    if pilot is not None:
        print(f"policy in the loop     {pilot.description}; it drove {policy} of {policy + person} recorded steps, "
              f"{taken} takeovers (its query every tick is in the tick work above)")
    print(f"host steal             {steal_text(cpu_before, cpu_after)} (CPU the hypervisor gave to other VMs)")
    print(f"machine stalls         {machine_stalls()} (idle machine, after the run)")


if __name__ == "__main__":
    main()
