"""Real-time pacing for the live control loop, and the numbers that say whether it kept time.

The control loop must tick at the environment's 80 Hz on a machine where
another thread renders with software GL. ``time.sleep`` alone wakes up to a
millisecond or more late, so :class:`DeadlineScheduler` sleeps until shortly
before each deadline and spins (yielding the GIL) for the rest. Deadlines are
absolute (``start + k * period``), so lateness never accumulates; a tick whose
whole period has passed is counted as missed and skipped rather than bunched
up with the next one, which would make the arm jump.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

import numpy as np


class DeadlineScheduler:
    """Wakes at ``start + k * period`` for k = 1, 2, ...

    spin_s: how long before each deadline to stop sleeping and spin; larger
        values give less jitter for more CPU.
    clock / sleep: injectable for tests.
    """

    def __init__(self, period_s: float, *, spin_s: float = 0.0015, clock=time.perf_counter, sleep=time.sleep):
        if period_s <= 0:
            raise ValueError(f"period_s={period_s}: must be positive")
        self.period_s = period_s
        self.spin_s = spin_s
        self._clock = clock
        self._sleep = sleep
        self.start = clock()
        self.tick = 0  # index of the last deadline handed out
        self.missed = 0

    @property
    def next_deadline(self) -> float:
        return self.start + (self.tick + 1) * self.period_s

    def wait(self) -> tuple[float, float]:
        """Block until the next deadline; returns (deadline, actual wake time).

        When the loop fell behind by a whole period or more, the deadlines that
        passed are counted in ``missed`` and skipped.
        """
        now = self._clock()
        behind = int((now - self.next_deadline) // self.period_s)
        if behind >= 1:
            self.missed += behind
            self.tick += behind
        deadline = self.next_deadline
        remaining = deadline - now
        if remaining > self.spin_s:
            self._sleep(remaining - self.spin_s)
        while True:
            now = self._clock()
            if now >= deadline:
                break
            self._sleep(0)  # releases the GIL so the render and window threads keep going
        self.tick += 1
        return deadline, now

    def rebase(self) -> None:
        """Start counting again from now (after a pause, so the pause is not counted as missed ticks)."""
        self.start = self._clock()
        self.tick = 0

    def set_period(self, period_s: float) -> None:
        """Tick every ``period_s`` from now on (the live window's speed changed)."""
        if period_s <= 0:
            raise ValueError(f"period_s={period_s}: must be positive")
        self.period_s = period_s
        self.rebase()


def percentile_ms(values, q: float) -> float:
    """The q-th percentile of ``values`` (seconds) in milliseconds; nan when empty."""
    if len(values) == 0:
        return float("nan")
    return float(np.percentile(np.asarray(values, dtype=np.float64), q) * 1000.0)


@dataclass
class LoopStats:
    """What the control and display threads measured; appended to from their own threads."""

    tick_jitter: list = field(default_factory=list)  # wake time - deadline, seconds
    tick_times: list = field(default_factory=list)  # wake times (perf_counter)
    step_durations: list = field(default_factory=list)  # poll + map + step + record, seconds
    input_latency: list = field(default_factory=list)  # event arrival -> action applied, seconds
    pickup_delay: list = field(default_factory=list)  # event posted -> window thread took it (injected only)
    tick_wait: list = field(default_factory=list)  # event posted -> the due time of the tick that applied it
    apply_delay: list = field(default_factory=list)  # a tick's due time -> its action applied (lateness + work)
    frame_times: list = field(default_factory=list)  # when each newly rendered frame was shown
    render_durations: list = field(default_factory=list)
    missed_ticks: int = 0

    def tick_rate(self) -> float:
        t = self.tick_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else float("nan")

    def display_fps(self) -> float:
        t = self.frame_times
        return (len(t) - 1) / (t[-1] - t[0]) if len(t) > 1 and t[-1] > t[0] else float("nan")

    def summary(self) -> dict:
        return {
            "ticks": len(self.tick_times),
            "tick_rate_hz": self.tick_rate(),
            "missed_ticks": self.missed_ticks,
            "jitter_p50_ms": percentile_ms(self.tick_jitter, 50),
            "jitter_p99_ms": percentile_ms(self.tick_jitter, 99),
            "jitter_max_ms": percentile_ms(self.tick_jitter, 100),
            "step_p99_ms": percentile_ms(self.step_durations, 99),
            "display_fps": self.display_fps(),
            "render_p50_ms": percentile_ms(self.render_durations, 50),
            "latency_n": len(self.input_latency),
            "latency_p50_ms": percentile_ms(self.input_latency, 50),
            "latency_p99_ms": percentile_ms(self.input_latency, 99),
            "latency_max_ms": percentile_ms(self.input_latency, 100),
            "pickup_p99_ms": percentile_ms(self.pickup_delay, 99),
            "tick_wait_p99_ms": percentile_ms(self.tick_wait, 99),
            "apply_delay_p50_ms": percentile_ms(self.apply_delay, 50),
            "apply_delay_p99_ms": percentile_ms(self.apply_delay, 99),
        }

    def format(self) -> str:
        """One line for the terminal; a figure with nothing measured behind it shows as "-", never nan."""
        s = {k: ("-" if isinstance(v, float) and v != v else v) for k, v in self.summary().items()}

        def ms(key: str, digits: int) -> str:
            return s[key] if s[key] == "-" else f"{s[key]:.{digits}f} ms"

        def num(key: str, digits: int) -> str:
            return s[key] if s[key] == "-" else f"{s[key]:.{digits}f}"

        latency = (f"input->action latency p50 {ms('latency_p50_ms', 2)} p99 {ms('latency_p99_ms', 2)} "
                   f"(max {ms('latency_max_ms', 2)}, n={s['latency_n']})" if s["latency_n"]
                   else "no input reached the simulator")
        return (f"control {num('tick_rate_hz', 2)} Hz over {s['ticks']} ticks, missed {s['missed_ticks']}, "
                f"jitter p50 {ms('jitter_p50_ms', 3)} p99 {ms('jitter_p99_ms', 3)} (max {ms('jitter_max_ms', 2)}), "
                f"recorded-tick work p99 {ms('step_p99_ms', 2)}; display {num('display_fps', 1)} fps "
                f"(render p50 {ms('render_p50_ms', 1)}); {latency}")


def set_thread_nice(nice: int) -> bool:
    """Set the calling thread's nice value; False where the OS does not allow it.

    Linux keeps a nice value per thread and new threads inherit it, so calling
    this on the render thread before the renderer exists also covers Mesa's
    llvmpipe threads. Raising priority (nice < 0) needs root or CAP_SYS_NICE;
    without it the loop runs as before, just with less protection from load.
    """
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        return True
    except (AttributeError, OSError):  # not Linux, or not permitted
        return False
