"""Corrections with the policy in the loop (HG-DAgger): the policy drives, the person takes over.

Each control step the policy proposes an action and the device gives a command; :class:`Takeover`
decides who drives:

- Any input takes over at once: a translation above ``START_THRESHOLD`` of full scale, or a gripper
  press. From then on the person drives (their command through the usual view-frame mapping).
- The gripper does not jump at a takeover: it stays where the policy had it (closed on an object
  stays closed) and each gripper press of the person toggles it. A device that speaks the
  simulator's own frame (the simulated corrector) sets it directly.
- When the person lets go for ``hand_back_s`` (no input at all), the policy drives again. In those
  last moments the person's "no input" is applied (the hand holds still), and those steps count as the
  person's: their command was applied.

Every step records who drove (``/intervention``: True where the person's command was applied) and
what the policy asked for (``/policy_action``, also on the person's steps), episode schema 2
(:mod:`teleop.episode`).

The policy comes from a *pilot provider*: ``teleop`` never imports ``act`` (recording does not load
torch), so the package that can run a checkpoint registers a loader under the entry-point group
``teleop.pilots`` (``act`` does: ``act.pilot:load``) and :func:`load_pilot` finds it there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Protocol

import numpy as np

from devices.base import Command, Event
from teleop.errors import ToolkitError

START_THRESHOLD = 0.05  # device motion below this (fraction of full scale) is not input
HAND_BACK_S = 0.5  # seconds without input before the policy drives again
PILOT_GROUP = "teleop.pilots"


class Pilot(Protocol):
    """A policy that drives one environment: what ``teleop correct`` needs of a checkpoint."""

    task: str  # the task it was trained on
    description: str  # one line for the HUD and the episode attrs (checkpoint, step, inference)
    horizon: int  # the step limit it was trained for

    def reset(self) -> None: ...

    def act(self, obs: np.ndarray, qpos: np.ndarray) -> np.ndarray:
        """One step: the (39,) observation and the robot's joint positions -> a (4,) action in [-1, 1]."""


def load_pilot(checkpoint: str, *, task: Optional[str] = None) -> Pilot:
    """The pilot of a checkpoint (a file or a run folder), from the installed provider; refuses a policy
    trained on another task than ``task``."""
    from importlib.metadata import entry_points

    providers = list(entry_points(group=PILOT_GROUP))
    if not providers:
        raise ToolkitError("no policy provider is installed (entry point group 'teleop.pilots'); install the "
                           "toolkit with `pip install -e .` so that act's pilot is registered")
    pilot = providers[0].load()(checkpoint)
    if task is not None and pilot.task != task:
        raise ToolkitError(f"--ckpt {checkpoint} is a {pilot.task} policy, not {task}: pass a checkpoint "
                           f"trained on {task}, or --task {pilot.task}")
    return pilot


def is_input(command: Command, *, world_frame: bool) -> bool:
    """Whether the operator is commanding anything this tick (motion, or a gripper press)."""
    if world_frame:  # the scripted corrector: silent ticks carry no gripper at all
        return command.gripper is not None
    return (max(abs(v) for v in command.translation) > START_THRESHOLD
            or Event.GRIPPER_TOGGLE in command.events)


@dataclass
class TakeoverStats:
    takeovers: int = 0
    person_steps: int = 0
    policy_steps: int = 0


class Takeover:
    """Who drives, step by step (see the module docstring). ``now`` is in seconds: wall time in the
    live window (a person lets go in their own time), simulated time headless."""

    def __init__(self, *, world_frame: bool, hand_back_s: float = HAND_BACK_S):
        if not hand_back_s >= 0:
            raise ToolkitError(f"--hand-back {hand_back_s}: must be >= 0 seconds (e.g. {HAND_BACK_S})")
        self.world_frame = world_frame
        self.hand_back_s = float(hand_back_s)
        self.reset()

    def reset(self) -> None:
        self.person = False
        self.since = 0.0  # when the current driver took over
        self.last_input = -np.inf
        self.gripper = -1.0  # the person's gripper while they drive
        self.stats = TakeoverStats()

    def driving_for(self, now: float) -> float:
        return max(0.0, now - self.since)

    def step(self, command: Command, person_action: np.ndarray, policy_action: np.ndarray,
             now: float) -> tuple[np.ndarray, bool]:
        """(the action to apply, whether it is the person's). ``person_action``: the device command through
        the mapping; its gripper is replaced as described in the module docstring."""
        active = is_input(command, world_frame=self.world_frame)
        if active:
            self.last_input = now
            if not self.person:  # take over: the gripper stays where the policy had it
                self.person, self.since = True, now
                self.stats.takeovers += 1
                self.gripper = 1.0 if policy_action[3] > 0 else -1.0
            if self.world_frame:
                self.gripper = float(command.gripper)
            elif Event.GRIPPER_TOGGLE in command.events:
                self.gripper = -self.gripper
        elif self.person and now - self.last_input >= self.hand_back_s:
            self.person, self.since = False, now
        if self.person:
            self.stats.person_steps += 1
            action = np.array(person_action, dtype=np.float32, copy=True)
            action[3] = self.gripper
            return action, True
        self.stats.policy_steps += 1
        return np.asarray(policy_action, dtype=np.float32), False


# --------------------------------------------------------------------- spawns aimed at failures
def spawns_from_results(path, task: str, low, high, *, failures_only: bool = False) -> list:
    """The spawns of an ``act-eval`` results.json (or its folder), failures first, as act-eval drew them."""
    import json
    from pathlib import Path

    from teleop.spawn import SpawnStream

    path = Path(path)
    if path.is_dir():
        path = path / "results.json"
    try:
        report = json.loads(path.read_text())
        episodes, base, evaluated = report["episodes"], int(report["seed"]), report["task"]
        seeds = [(int(e["seed"]), bool(e["success"])) for e in episodes]
    except FileNotFoundError:
        raise ToolkitError(f"--spawns-from {path}: no such file; pass an act-eval --out folder or its "
                           f"results.json") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ToolkitError(f"--spawns-from {path}: not an act-eval results.json ({type(error).__name__}: "
                           f"{str(error)[:80]}); pass the results.json act-eval wrote") from None
    if evaluated != task:
        raise ToolkitError(f"--spawns-from {path} evaluated {evaluated}, not {task}: pass an evaluation of "
                           f"a {task} policy")
    stream = SpawnStream(low, high, strategy="random", base_seed=base)
    ordered = [s for s, ok in seeds if not ok] + ([] if failures_only else [s for s, ok in seeds if ok])
    if not ordered:
        raise ToolkitError(f"--spawns-from {path}: no failed episodes to correct (the policy succeeded on all "
                           f"{len(seeds)}); drop --failures-only or evaluate on more spawns")
    return [stream[seed - base] for seed in ordered]
