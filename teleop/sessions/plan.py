"""The session plan: a TOML file saying who collects what, with which device.

Example (``teleop session run plan.toml --out sessions/alice-mon``)::

    name = "pick-and-push"
    operators = ["alice", "bob"]      # or: operator = "alice"
    device = "scripted"               # scripted | keyboard | gamepad | spacemouse
    spawn = "stratified"              # stratified (the default) | chebyshev | random
    episode_time_limit_s = 6.25       # simulated seconds (default: MetaWorld's 6.25 for the scripted expert,
                                      # 25 for a person; at most 600)
    speed = 0.5                       # a person's window: fraction of real time (default: the device's)
    break_every_minutes = 25          # optional break reminder for human operators

    [[task]]
    name = "reach-v3"
    episodes = 5                      # successful episodes wanted

    [[task]]
    name = "push-v3"
    episodes = 5

A plan of corrections (``teleop correct`` in a session: the policy drives, the operator takes over)
names ``mode = "correct"`` and a checkpoint per task (``checkpoint`` at the top for every task, or in a
``[[task]]`` block; a relative path is taken from the plan's folder). ``device = "corrector"`` runs the
simulated corrector headless. Episodes count as kept as in a recording session.

Every error names the file, the line and the key, because tomllib reports line
numbers only for syntax errors: the line of a key is found by scanning the text.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from teleop.env import CONTROL_HZ, HOLD_STEPS, LONGEST_STEPS, MAX_STEPS
from teleop.errors import ToolkitError
from teleop.live.pace import HUMAN_DEVICES, HUMAN_MAX_STEPS, SPEED_RANGE
from teleop.spawn import DEFAULT_STRATEGY, FRESH_STRATEGIES

DEVICES = ("scripted", *HUMAN_DEVICES)
MODES = ("record", "correct")
CORRECT_DEVICES = (*HUMAN_DEVICES, "corrector")

_TOP_KEYS = {
    "name": "plan name, used in the session id",
    "operator": "the one operator",
    "operators": "operators who may run this plan (choose with --operator)",
    "device": f"one of {', '.join(DEVICES)}; corrector too with mode = \"correct\"",
    "mode": "record (demos) or correct (the policy drives, the operator takes over)",
    "checkpoint": "with mode = \"correct\": the policy's act-train run folder or checkpoint file",
    "spawn": f"one of {', '.join(FRESH_STRATEGIES)}",
    "episode_time_limit_s": "simulated seconds per episode",
    "speed": "fraction of real time the live window runs at (human devices)",
    "hold_steps": "steps recorded after the first success",
    "attempts_per_spawn": "attempts on one spawn before it is replaced by a fresh one",
    "break_every_minutes": "break reminder interval",
    "cameras": "cameras to record images from",
    "image_size": "recorded image side in pixels",
    "task": "[[task]] blocks",
}
_TASK_KEYS = {"name": "MetaWorld v3 task", "episodes": "successful episodes wanted",
              "checkpoint": "with mode = \"correct\": this task's policy"}


class PlanError(ToolkitError):
    """A plan file that cannot be used; the message names the file, line and key."""


@dataclass(frozen=True)
class TaskBlock:
    task: str
    episodes: int  # successful episodes wanted
    checkpoint: str = ""  # mode = "correct": the policy that drives (absolute path)


@dataclass(frozen=True)
class SessionPlan:
    """A parsed, checked plan. ``max_steps`` is the time limit in control steps."""

    name: str
    operators: tuple[str, ...]
    device: str
    spawn: str
    tasks: tuple[TaskBlock, ...]
    max_steps: int = MAX_STEPS
    speed: float | None = None  # the live window's speed; None: the device's default
    hold_steps: int = HOLD_STEPS
    attempts_per_spawn: int = 3
    break_every_minutes: float | None = None
    cameras: tuple[str, ...] = ()
    image_size: int = 128
    mode: str = "record"  # "correct": the policy drives, the operator takes over (teleop correct)
    source: str = ""  # the plan file's text, kept with the session
    path: Path | None = field(default=None, compare=False)

    @property
    def human(self) -> bool:
        return self.device in HUMAN_DEVICES

    @property
    def correcting(self) -> bool:
        return self.mode == "correct"

    def pilots(self) -> dict:
        """mode = "correct": each task's policy (teleop.correction.Pilot), loaded and checked against its
        task; {} for a recording plan."""
        from teleop.correction import load_pilot

        if not self.correcting:
            return {}
        return {block.task: load_pilot(block.checkpoint, task=block.task) for block in self.tasks}

    def choose_operator(self, operator: str | None) -> str:
        if operator:
            if self.operators and operator not in self.operators:
                raise PlanError(f"operator {operator!r} is not in the plan's operators "
                                f"({', '.join(self.operators)}): add them to the plan or pick one of those")
            return operator
        if len(self.operators) == 1:
            return self.operators[0]
        if not self.operators:
            raise PlanError("the plan names no operator: add operator = \"NAME\" to it or pass --operator NAME")
        raise PlanError(f"the plan lists operators {', '.join(self.operators)}: say who you are with --operator NAME")

    def to_dict(self) -> dict:
        return {
            "name": self.name, "operators": list(self.operators), "device": self.device, "spawn": self.spawn,
            "tasks": [{"task": t.task, "episodes": t.episodes, **({"checkpoint": t.checkpoint} if t.checkpoint else {})}
                      for t in self.tasks],
            **({"mode": self.mode} if self.correcting else {}),
            "max_steps": self.max_steps, "speed": self.speed, "hold_steps": self.hold_steps,
            "attempts_per_spawn": self.attempts_per_spawn, "break_every_minutes": self.break_every_minutes,
            "cameras": list(self.cameras), "image_size": self.image_size,
        }


# --------------------------------------------------------------------- key lines
_HEADER = re.compile(r"^\s*(\[\[?)\s*([A-Za-z0-9_.\-\"]+)\s*\]\]?")
_KEY = re.compile(r"^\s*([A-Za-z0-9_\-\"']+)\s*=")


def key_lines(text: str) -> dict[tuple, int]:
    """Map (table, block, key) -> 1-based line number, by scanning the text.

    ``table`` is "" for top-level keys; ``block`` counts ``[[table]]`` blocks from 0.
    """
    lines: dict[tuple, int] = {}
    table, block, counts = "", 0, {}
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw  # the patterns are anchored at the start, so trailing comments do not matter
        header = _HEADER.match(line)
        if header:
            table = header.group(2).strip('"')
            if header.group(1) == "[[":
                block = counts.get(table, -1) + 1
                counts[table] = block
            else:
                block = 0
            lines.setdefault((table, block, None), number)
            continue
        key = _KEY.match(line)
        if key:
            lines.setdefault((table, block, key.group(1).strip("\"'")), number)
    return lines


# --------------------------------------------------------------------- parsing
def load_plan(path: str | Path) -> SessionPlan:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise PlanError(f"cannot read plan {path}: {error.strerror or error}") from error
    return parse_plan(text, path)


def _toml():
    try:
        import tomllib  # Python 3.11+
    except ModuleNotFoundError:
        try:
            import tomli as tomllib  # the same parser, for Python 3.10
        except ModuleNotFoundError:
            raise PlanError("reading a session plan needs Python 3.11+ or `pip install tomli`") from None
    return tomllib


def parse_plan(text: str, path: str | Path = "plan.toml") -> SessionPlan:
    tomllib = _toml()
    path = Path(path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise PlanError(f"{path}: not valid TOML ({error}): fix the syntax on that line") from error
    lines = key_lines(text)

    def where(key, table="", block=0):
        number = lines.get((table, block, key)) or lines.get((table, block, None))
        return f"{path}:{number}" if number else str(path)

    def fail(message, key, table="", block=0):
        raise PlanError(f"{where(key, table, block)}: {message}")

    for key in data:
        if key not in _TOP_KEYS:
            fail(f"unknown key {key!r}{_suggest(key, _TOP_KEYS)}; known keys: {', '.join(_TOP_KEYS)}", key)

    def typed(key, kind, default, table="", block=0, source=None):
        value = (data if source is None else source).get(key, default)
        if value is default:
            return value
        ok = isinstance(value, kind) and not (kind in (int, (int, float)) and isinstance(value, bool))
        if not ok:
            names = kind.__name__ if isinstance(kind, type) else "number"
            fail(f"{key} must be a {names}, got {value!r}", key, table, block)
        return value

    if "operator" in data and "operators" in data:
        fail("give either operator or operators, not both", "operators")
    operators = typed("operators", list, [])
    if "operator" in data:
        operators = [typed("operator", str, "")]
    for name in operators:
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            fail(f"operator names are letters, digits, '.', '_' or '-', got {name!r}",
                 "operators" if "operators" in data else "operator")

    mode = typed("mode", str, "record")
    if mode not in MODES:
        fail(f"mode {mode!r}: use record (demos) or correct (the policy drives, you take over)", "mode")
    device = typed("device", str, "keyboard" if mode == "correct" else "scripted")
    allowed = CORRECT_DEVICES if mode == "correct" else DEVICES
    if device not in allowed:
        fail(f"device {device!r} with mode = \"{mode}\"{_suggest(device, allowed)}: use one of {', '.join(allowed)}",
             "device")
    default_checkpoint = typed("checkpoint", str, "")
    if default_checkpoint and mode != "correct":
        fail("checkpoint is for mode = \"correct\" (a policy to correct): add that, or remove checkpoint", "checkpoint")
    spawn = typed("spawn", str, DEFAULT_STRATEGY)
    if spawn not in FRESH_STRATEGIES:
        fail(f"spawn {spawn!r} is not available in sessions: use one of {', '.join(FRESH_STRATEGIES)}",
             "spawn")

    limit = typed("episode_time_limit_s", (int, float), None)
    max_steps = HUMAN_MAX_STEPS if device in HUMAN_DEVICES else MAX_STEPS
    if limit is not None:
        max_steps = int(math.ceil(limit * CONTROL_HZ - 1e-9))
        if not 1 <= max_steps <= LONGEST_STEPS:
            fail(f"episode_time_limit_s must be in (0, {LONGEST_STEPS / CONTROL_HZ:g}] simulated seconds "
                 f"(MetaWorld's horizon is {MAX_STEPS / CONTROL_HZ} s), got {limit}", "episode_time_limit_s")
    speed = typed("speed", (int, float), None)
    if speed is not None and not SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]:
        fail(f"speed must be in [{SPEED_RANGE[0]}, {SPEED_RANGE[1]}] (a fraction of real time), got {speed}", "speed")
    hold_steps = typed("hold_steps", int, HOLD_STEPS)
    if hold_steps < 0:
        fail(f"hold_steps must be >= 0, got {hold_steps}", "hold_steps")
    attempts = typed("attempts_per_spawn", int, 3)
    if attempts < 1:
        fail(f"attempts_per_spawn must be >= 1, got {attempts}", "attempts_per_spawn")
    break_every = typed("break_every_minutes", (int, float), None)
    if break_every is not None and break_every <= 0:
        fail(f"break_every_minutes must be > 0, got {break_every}", "break_every_minutes")
    cameras = typed("cameras", list, [])
    if not all(isinstance(c, str) for c in cameras):
        fail("cameras must be a list of camera names", "cameras")
    image_size = typed("image_size", int, 128)
    if image_size < 16:
        fail(f"image_size must be >= 16, got {image_size}", "image_size")

    blocks = data.get("task", [])
    if not isinstance(blocks, list) or not blocks:
        fail("the plan has no [[task]] blocks: add one per task with name and episodes", "task")
    tasks, seen = [], {}
    for i, block in enumerate(blocks):
        if not isinstance(block, dict):
            fail("task must be written as [[task]] blocks", "task")
        for key in block:
            if key not in _TASK_KEYS:
                fail(f"unknown key {key!r} in [[task]]{_suggest(key, _TASK_KEYS)}; "
                     f"known keys: {', '.join(_TASK_KEYS)}", key, "task", i)
        if "name" not in block:
            fail("[[task]] needs name = \"<task>-v3\"", None, "task", i)
        name = typed("name", str, None, "task", i, block)
        episodes = typed("episodes", int, None, "task", i, block)
        if episodes is None:
            fail(f"[[task]] {name} needs episodes = N (successful episodes wanted)", "name", "task", i)
        if episodes < 1:
            fail(f"episodes must be at least 1, got {episodes}", "episodes", "task", i)
        if name in seen:
            fail(f"task {name} is planned twice (first at line {seen[name]}): merge the blocks", "name", "task", i)
        _check_task_name(name, lambda message: fail(message, "name", "task", i))
        seen[name] = lines.get(("task", i, "name"), "?")
        checkpoint = typed("checkpoint", str, default_checkpoint, "task", i, block)
        if checkpoint and mode != "correct":
            fail("checkpoint is for mode = \"correct\": add that at the top, or remove it", "checkpoint", "task", i)
        if mode == "correct":
            key = "checkpoint" if "checkpoint" in block else "name"
            if not checkpoint:
                fail(f"mode = \"correct\" needs a policy for {name}: add checkpoint = \"runs/...\" to this "
                     f"[[task]] block or at the top", key, "task", i)
            checkpoint = str((path.parent / checkpoint).resolve()) if not Path(checkpoint).is_absolute() else checkpoint
            if not Path(checkpoint).exists():
                message = f"checkpoint {checkpoint} does not exist: pass an act-train run folder or a .pt file"
                if "checkpoint" in block:
                    fail(message, "checkpoint", "task", i)
                fail(message, "checkpoint")
        tasks.append(TaskBlock(name, episodes, checkpoint))

    return SessionPlan(
        name=typed("name", str, path.stem), operators=tuple(operators), device=device, spawn=spawn,
        tasks=tuple(tasks), max_steps=max_steps, speed=None if speed is None else float(speed),
        hold_steps=hold_steps, attempts_per_spawn=attempts,
        break_every_minutes=None if break_every is None else float(break_every), cameras=tuple(cameras),
        image_size=image_size, mode=mode, source=text, path=path)


def _check_task_name(name: str, fail) -> None:
    from teleop.env import TaskError, check_task

    try:
        check_task(name)
    except TaskError as error:
        fail(str(error))


def _suggest(word, known) -> str:
    import difflib

    close = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""
