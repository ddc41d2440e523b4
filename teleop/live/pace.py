"""How fast the live window runs: a clock a person can work with.

MetaWorld's clock is the scripted expert's: 80 control steps a second, the arm up to 0.8 m/s, an
episode over after 500 steps (6.25 s). The window keeps the 80 Hz control step (the data stay
MetaWorld's) but can tick it slower than real time, and gives a person a longer step limit.
The defaults were chosen with the simulated operator (benchmarks/operators.py; BENCHMARKS.md,
"Human pace"); the operator changes the speed live with SLOWER / FASTER.
"""

from __future__ import annotations

HUMAN_DEVICES = ("keyboard", "gamepad", "spacemouse")  # the devices a person holds
# The speeds SLOWER / FASTER step through (fractions of real time).
SPEEDS = (0.1, 0.15, 0.25, 0.35, 0.5, 0.7, 1.0)
SPEED_RANGE = (SPEEDS[0], SPEEDS[-1])
# Each device's window starts at this fraction of real time.
DEFAULT_SPEED = {"keyboard": 0.5, "gamepad": 0.5, "spacemouse": 0.5, "scripted": 1.0}
# A person's step limit (25 simulated seconds); MetaWorld's 500 stays the scripted experts'.
HUMAN_MAX_STEPS = 2000


def next_speed(speed: float, faster: bool) -> float:
    """The next of :data:`SPEEDS` above (or below) ``speed``; the end of the range stays."""
    if faster:
        return next((s for s in SPEEDS if s > speed + 1e-9), SPEEDS[-1])
    return next((s for s in reversed(SPEEDS) if s < speed - 1e-9), SPEEDS[0])
