"""The operator's episode flow in the live window, as a pure state machine.

    IDLE --TOGGLE_RECORD or first motion--> RECORDING --success + hold, step limit,
    TOGGLE_RECORD, MARK_SUCCESS--> REVIEW --KEEP / TOGGLE_RECORD--> (kept) IDLE on a fresh spawn
                                           \\--DISCARD--> IDLE on the same spawn

With ``keep_failures=False`` (the default of ``teleop record`` and of batch
sessions), KEEP on an episode that did not succeed, and that the operator did
not mark successful, ends the attempt as "failed" and moves on to a fresh spawn
instead of keeping it. Every reset that is not a keep says why the attempt
ended (``Decision.dropped``), so a session can log it.

PAUSE freezes IDLE or RECORDING (again to resume); while paused, each STEP
runs one control step and stays paused (fine positioning, one tick at a time);
a STEP in a pause taken before the episode started starts the recording with
that step, so an episode can be done step by step from its very first tick. RESET gives a fresh spawn from anywhere, dropping an unkept
episode; QUIT ends; DEVICE_LOST freezes until the device reports itself back. The simulator only steps while RECORDING, so a
recorded episode always starts from the exact reset state of its spawn (what
exact replay needs), however long the operator waited before moving.

No simulator, clock or pygame here: :meth:`EpisodeFlow.decide` takes one tick's
events and says what the loop must do, so every transition is unit-tested.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Iterable, Optional

from devices.base import Event


class Phase(str, enum.Enum):
    IDLE = "idle"  # at a fresh spawn, waiting for the operator
    RECORDING = "recording"
    PAUSED = "paused"
    REVIEW = "review"  # the episode ended: keep or discard it
    DONE = "done"


@dataclass(frozen=True)
class Decision:
    """What the control loop does this tick, in this order: keep, reset, step."""

    keep: bool = False  # write the episode that was under review
    reset: Optional[str] = None  # "new" (next spawn) or "same" (re-record this spawn)
    start: bool = False  # a new recording begins with this tick's step
    step: bool = False  # step the simulator (and record the step)
    quit: bool = False
    dropped: str = ""  # the attempt ended unkept: "discarded", "skipped" (fresh spawn asked) or "failed"


@dataclass(frozen=True)
class EndedEpisode:
    """How the episode now under review (or just kept) ended."""

    steps: int
    first_success_step: Optional[int]
    reason: str  # "success", "step limit", "ended by the operator", ...
    marked_success: bool  # the operator pressed MARK_SUCCESS

    @property
    def success(self) -> bool:
        return self.first_success_step is not None


class EpisodeFlow:
    """episodes: how many to keep before DONE. hold_steps: steps recorded after the first
    success before the episode ends. auto: no operator (the scripted expert): start at once,
    keep successes, replace failures with a fresh spawn. keep_failures: whether KEEP writes an
    episode that did not succeed (False: it is dropped as "failed", see the module docstring)."""

    def __init__(self, episodes: int, *, hold_steps: int, auto: bool = False, keep_failures: bool = True):
        self.episodes = episodes
        self.hold_steps = hold_steps
        self.auto = auto
        self.keep_failures = keep_failures
        self.phase = Phase.IDLE
        self._paused_from = Phase.IDLE
        self.device_lost = False
        self.kept = 0
        self.steps = 0
        self.first_success: Optional[int] = None
        self.marked_success = False
        self.ended: Optional[EndedEpisode] = None  # kept after _begin, so the loop can write it

    # ------------------------------------------------------------------ queries
    @property
    def succeeded(self) -> bool:
        return self.first_success is not None

    @property
    def frozen(self) -> bool:
        return self.phase == Phase.PAUSED or self.device_lost

    # ------------------------------------------------------------------ ticks
    def decide(self, events: Iterable[Event], *, moved: bool, device_present: bool = True) -> Decision:
        """One control tick: the operator's events, whether the device commands motion
        (or a gripper change), and whether the device is plugged in."""
        events = set(events)
        if self.phase == Phase.DONE:
            return Decision(quit=True)
        if Event.QUIT in events:
            self.phase = Phase.DONE
            return Decision(quit=True)
        if Event.DEVICE_LOST in events or not device_present:
            self.device_lost = True
            return Decision()
        if self.device_lost:
            # Back: resume where the operator was; this tick's input is from a fresh connection.
            self.device_lost = False
            return Decision()
        if Event.RESET in events:
            return self._begin(reset="new", dropped="skipped")
        if self.phase == Phase.PAUSED:
            if Event.PAUSE in events:
                self.phase = self._paused_from
            elif Event.DISCARD in events and self._paused_from == Phase.RECORDING:
                return self._begin(reset="same", dropped="discarded")
            elif Event.STEP in events:
                started = self._paused_from == Phase.IDLE
                self._paused_from = Phase.RECORDING
                return Decision(start=started, step=True)
            return Decision()
        if Event.PAUSE in events and self.phase in (Phase.IDLE, Phase.RECORDING):
            self._paused_from, self.phase = self.phase, Phase.PAUSED
            return Decision()
        if self.phase == Phase.IDLE:
            if self.auto or moved or Event.TOGGLE_RECORD in events:
                self.phase = Phase.RECORDING
                return Decision(start=True, step=True)
            return Decision()
        if self.phase == Phase.RECORDING:
            if Event.DISCARD in events:
                return self._begin(reset="same", dropped="discarded")
            if Event.MARK_SUCCESS in events:
                self.marked_success = True
                return self._end("marked successful by the operator")
            if Event.KEEP in events:
                self._end("ended by the operator")
                return self._keep()
            if Event.TOGGLE_RECORD in events:
                return self._end("ended by the operator")
            return Decision(step=True)
        # REVIEW
        if self.auto:
            return self._keep() if self.succeeded else self._begin(reset="new", dropped="failed")
        if Event.DISCARD in events:
            return self._begin(reset="same", dropped="discarded")
        if Event.KEEP in events or Event.TOGGLE_RECORD in events:
            return self._keep()
        return Decision()

    def stepped(self, success: bool, truncated: bool) -> None:
        """After each recorded step: end on success + hold, or at the step limit (also while paused)."""
        self.steps += 1
        if success and self.first_success is None:
            self.first_success = self.steps
        if self.first_success is not None and self.steps >= self.first_success + self.hold_steps:
            self._end("success")
        elif truncated:
            self._end("step limit")

    # ------------------------------------------------------------------ helpers
    def _end(self, reason: str) -> Decision:
        self.phase = Phase.REVIEW  # also from a paused single step that reached the end
        self.ended = EndedEpisode(self.steps, self.first_success, reason, self.marked_success)
        return Decision()

    @property
    def keepable(self) -> bool:
        """Whether KEEP writes the episode under review (else it is dropped as "failed")."""
        return self.keep_failures or self.succeeded or self.marked_success

    def _keep(self) -> Decision:
        if not self.keepable:
            return self._begin(reset="new", dropped="failed")
        self.kept += 1
        if self.kept >= self.episodes:
            self.phase = Phase.DONE
            return Decision(keep=True, quit=True)
        decision = self._begin(reset="new")
        return Decision(keep=True, reset=decision.reset)

    def _begin(self, *, reset: str, dropped: str = "") -> Decision:
        self.phase = Phase.IDLE
        self.steps = 0
        self.first_success = None
        self.marked_success = False
        return Decision(reset=reset, dropped=dropped)
