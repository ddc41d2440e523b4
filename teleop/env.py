"""MetaWorld v3 tasks with a fresh, seed-reproducible spawn every episode.

MetaWorld's goal-observable environments freeze their random vector after
the first reset, so every episode starts from the same object position (the
trap that produced a 0%-success policy in the project this toolkit replaces).
:class:`TaskEnv` instead takes a :class:`~teleop.spawn.Spawn` (or a recorded
``rand_vec``) at every reset and records the vector it really used.
"""

from __future__ import annotations

import difflib
import os
import sys
import warnings

if sys.platform.startswith("linux"):
    # Offscreen rendering without a display; must be set before mujoco is imported.
    os.environ.setdefault("MUJOCO_GL", "egl")

import numpy as np

from teleop.cameras import UPSIDE_DOWN_CAMERAS, render_camera, view_names
from teleop.errors import ToolkitError
from teleop.spawn import Spawn

CONTROL_HZ = 80.0  # MetaWorld: frame_skip 5 x timestep 0.0025 s
MAX_STEPS = 500  # MetaWorld's horizon (max_path_length): the scripted expert's clock
LONGEST_STEPS = 48_000  # the longest episode a TaskEnv allows (10 simulated minutes): a person's slow demo
# Steps recorded after an episode's first success (half a simulated second): a policy learns where to stop from
# them. 40 beat 20 and 0 for ACT on 20 scripted demos (BENCHMARKS.md, "How long a demo holds its success").
HOLD_STEPS = 40
# Where the Sawyer's mocap target sits relative to the hand body when the arm is at rest (the weld sags
# under gravity). Measured on pick-place-v3 and reach-v3 over the workspace: x and y within 0.3 mm, z
# 3.7-4.1 mm. The live window's stop-on-release mapping holds the target here (teleop/mapping.py).
HAND_SAG = (0.0, -0.0002, 0.0039)
OBS_DIM = 39
ACTION_DIM = 4
_ROBOT_JOINT_PREFIXES = ("right_j", "r_close", "l_close")
# Tasks whose info reports obj_to_target as 0 at every step: MetaWorld does not measure it there.
UNMEASURED_GOAL_DISTANCE = frozenset({"assembly-v3", "box-close-v3", "disassemble-v3", "door-open-v3", "hammer-v3"})


class TaskError(ToolkitError):
    """Unknown task name."""


class CameraError(ToolkitError):
    """Unknown camera name."""


class ActionError(ToolkitError):
    """An action that must not reach the simulator (NaN, inf, wrong shape)."""


def _import_metaworld():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import metaworld  # noqa: F401
        from metaworld import env_dict
    return env_dict


def task_names() -> list[str]:
    """The 50 MetaWorld v3 task names, e.g. ``pick-place-v3``."""
    return sorted(_import_metaworld().ALL_V3_ENVIRONMENTS)


def check_task(task: str) -> str:
    names = task_names()
    if task in names:
        return task
    close = difflib.get_close_matches(task, names, n=4, cutoff=0.5)
    hint = f"did you mean {', '.join(close)}?" if close else "run `teleop tasks` for the list"
    raise TaskError(f"unknown task {task!r}: {hint}")


def check_max_steps(max_steps: int) -> int:
    if not 1 <= max_steps <= LONGEST_STEPS:
        raise ToolkitError(f"step limit {max_steps}: must be in 1..{LONGEST_STEPS} ({LONGEST_STEPS / CONTROL_HZ / 60:.0f} "
                           f"simulated minutes; MetaWorld's own horizon is {MAX_STEPS})")
    return int(max_steps)


def spawn_box(task: str) -> tuple[np.ndarray, np.ndarray]:
    """The task's spawn box (low, high) for its random vector."""
    env = TaskEnv(task)
    try:
        return env.spawn_low.copy(), env.spawn_high.copy()
    finally:
        env.close()


def fast_renderer(model, height: int, width: int):
    """A mujoco.Renderer with shadows, reflections and multisampling off (3-5x faster on software GL)."""
    import mujoco

    model.vis.quality.offsamples = 0
    model.vis.global_.offwidth = max(model.vis.global_.offwidth, width)
    model.vis.global_.offheight = max(model.vis.global_.offheight, height)
    renderer = mujoco.Renderer(model, height, width)
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_SHADOW] = 0
    renderer.scene.flags[mujoco.mjtRndFlag.mjRND_REFLECTION] = 0
    return renderer


def _fast_touching_object(env):
    """MetaWorld's ``touching_object`` for ``env``, the same answer without a Python loop over contacts.

    Fourteen tasks (pick-place, push, push-back, shelf-place, ...) ask it every step for their info's
    ``grasp_success`` (the live window's grasp cue); it walks ``data.contact`` twice in Python, creating
    an object per contact, which took longer than the physics (0.42 ms a step against 0.25 ms for
    ``mj_step`` on push-back-v3). Here numpy picks the contacts between a finger pad and the object,
    and their forces are summed in the same order with the same indexing as MetaWorld's, so the answer
    is the same (tests/test_env_contacts.py compares the two at every step of scripted episodes).
    """
    left = env.data.geom("leftpad_geom").id
    right = env.data.geom("rightpad_geom").id

    def touching_object(object_geom_id: int) -> bool:
        contact, forces = env.data.contact, env.data.efc_force
        geom1, geom2 = contact.geom1, contact.geom2  # (ncon,) each
        on_object = (geom1 == object_geom_id) | (geom2 == object_geom_id)
        if not on_object.any():
            return False
        address = contact.efc_address

        def force(pad: int):
            hits = np.flatnonzero(on_object & ((geom1 == pad) | (geom2 == pad)))
            return sum(forces[address[i]] for i in hits)

        return 0 < force(left) and 0 < force(right)

    return touching_object


class TaskEnv:
    """One MetaWorld v3 task, goal-observable, with explicit spawns.

    Observations are the 39 floats of MetaWorld's goal-observable state; actions
    are 4 floats in [-1, 1] (dx, dy, dz in units of 1 cm, gripper).
    """

    def __init__(self, task: str, *, cameras=(), image_size: int = 128, max_steps: int = MAX_STEPS):
        check_task(task)
        check_max_steps(max_steps)
        env_dict = _import_metaworld()
        import mujoco

        self._mujoco = mujoco
        self.task = task
        self.max_steps = int(max_steps)
        cls = env_dict.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            # seed= keeps the constructor's own reset away from the global numpy RNG.
            self._env = cls(seed=0)
        # MetaWorld truncates at its max_path_length (500) and raises one step later; a longer limit
        # changes nothing else (observations, rewards and success do not depend on it).
        self._env.max_path_length = max(MAX_STEPS, self.max_steps)
        self._env.touching_object = _fast_touching_object(self._env)
        self.model = self._env.model
        self.data = self._env.data
        self.spawn_low = np.asarray(self._env._random_reset_space.low, dtype=np.float64)
        self.spawn_high = np.asarray(self._env._random_reset_space.high, dtype=np.float64)
        self.camera_names = view_names(self.model)  # MetaWorld's cameras and the toolkit's views
        self.cameras = tuple(self.check_camera(c) for c in cameras)
        self.image_size = int(image_size)
        self._renderers: dict[tuple[int, int], object] = {}  # one per image size (policy cameras, video)
        self._state_size = mujoco.mj_stateSize(self.model, mujoco.mjtState.mjSTATE_INTEGRATION)
        joints = [self.model.joint(i) for i in range(self.model.njnt)]
        robot = [j for j in joints if j.name.startswith(_ROBOT_JOINT_PREFIXES)]
        self._qpos_index = np.array([self.model.jnt_qposadr[j.id] for j in robot])
        self._qvel_index = np.array([self.model.jnt_dofadr[j.id] for j in robot])
        self._hand_body = self.model.body("hand").id
        self.rand_vec: np.ndarray | None = None
        self.steps = 0

    # ------------------------------------------------------------------ spawn
    def reset(self, spawn: Spawn | None = None, *, rand_vec=None) -> np.ndarray:
        """Start an episode from a new spawn, or from a recorded ``rand_vec``.

        Returns the first observation, shape (39,).
        """
        if (spawn is None) == (rand_vec is None):
            raise ValueError("reset() takes exactly one of spawn or rand_vec")
        env = self._env
        if rand_vec is not None:
            env._last_rand_vec = np.asarray(rand_vec, dtype=np.float64).copy()
            env._freeze_rand_vec = True
            self._quiet(env.reset)
        else:
            self._reset_from_candidate(spawn)
        self.rand_vec = np.asarray(env._last_rand_vec, dtype=np.float64).copy()
        self.steps = 0
        return self._first_observation()

    def _first_observation(self) -> np.ndarray:
        """The observation after reset, computed from the reset state alone.

        Some tasks (door-open, ...) move bodies in ``reset_model`` and read
        positions before MuJoCo recomputes them, so MetaWorld's own first
        observation still shows the previous episode's layout. Recomputing the
        kinematics makes it a function of the spawn only, which exact replay needs.
        """
        env = self._env
        self._mujoco.mj_forward(self.model, self.data)
        current = env._get_curr_obs_combined_no_goal()
        env._prev_obs = current.copy()
        obs = np.hstack([current, current, env._get_pos_goal()]).astype(np.float64)
        return obs

    def _reset_from_candidate(self, spawn: Spawn) -> None:
        """Reset with the spawn's candidate; if the task rejects it, redraw from the spawn's seed.

        Some tasks (pick-place, push, reach, ...) loop in ``reset_model`` until
        the goal is far enough from the object, asking ``_get_state_rand_vec``
        again. A second call within one ``reset_model`` therefore means the
        previous vector was rejected.
        """
        env = self._env
        rng = spawn.redraw_rng()
        state = {"calls": 0, "current": np.asarray(spawn.candidate, dtype=np.float64).copy()}
        original_reset_model = env.reset_model

        def get_rand_vec():
            if state["calls"] > 0:
                state["current"] = rng.uniform(self.spawn_low, self.spawn_high)
            state["calls"] += 1
            env._last_rand_vec = state["current"]
            return state["current"]

        def reset_model():
            state["calls"] = 0
            return original_reset_model()

        env._get_state_rand_vec = get_rand_vec
        env.reset_model = reset_model
        try:
            self._quiet(env.reset)
        finally:
            del env._get_state_rand_vec
            del env.reset_model
        env._freeze_rand_vec = True

    @staticmethod
    def _quiet(fn, *args):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return fn(*args)

    @property
    def object_pos(self) -> np.ndarray:
        return np.asarray(self._env._get_pos_objects()[:3], dtype=np.float64)

    @property
    def goal_pos(self) -> np.ndarray:
        return np.asarray(self._env._target_pos, dtype=np.float64).copy()

    @property
    def hand_pos(self) -> np.ndarray:
        return np.asarray(self._env.tcp_center, dtype=np.float64).copy()

    def target_site_names(self) -> list[str]:
        """The sites MetaWorld draws the task's goal(s) with (after a reset)."""
        return [name for name, _ in self._env._target_site_config]

    def arm_state(self) -> tuple[np.ndarray, np.ndarray]:
        """(hand, mocap target) positions, world frame, metres: the hand body follows the target.

        The target is where MetaWorld's action moves it (1 cm per unit per step); the hand lags
        behind it by up to ~3 cm at full speed, and at rest sits ``HAND_SAG`` below it.
        """
        return self.data.xpos[self._hand_body].copy(), self.data.mocap_pos[0].copy()

    # ------------------------------------------------------------------ step
    def step(self, action) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Apply one action. Returns (obs, reward, success, truncated, info).

        Refuses NaN/inf or wrongly shaped actions before they reach the simulator.
        """
        action = np.asarray(action, dtype=np.float32)
        if action.shape != (ACTION_DIM,):
            raise ActionError(f"action must have shape ({ACTION_DIM},), got {action.shape}")
        if not np.all(np.isfinite(action)):
            raise ActionError(f"non-finite action {action.tolist()} refused before the simulator")
        if self.steps >= self.max_steps:
            raise ActionError(f"episode already at its {self.max_steps}-step limit: reset first")
        obs, reward, _, truncated, info = self._quiet(self._env.step, action)
        self.steps += 1
        truncated = bool(truncated) or self.steps >= self.max_steps
        return obs, float(reward), bool(info["success"]), truncated, info

    def measure(self, obs) -> dict:
        """MetaWorld's info (obj_to_target, near_object, ...) for the state now, without a step.

        MetaWorld computes it only inside ``step``, so before an episode's first step nothing says how far
        the goal is. Some tasks' reward code stores flags on the environment as it runs (pickCompleted,
        reachCompleted, ...): every attribute is put back afterwards, so the next step is the one it would
        have been (tests/test_env_measure.py; all 50 tasks were checked that way when it was written).
        """
        env = self._env
        saved = dict(vars(env))
        try:
            _, info = self._quiet(env.evaluate_state, np.asarray(obs, dtype=np.float64),
                                  np.zeros(ACTION_DIM, dtype=np.float32))
        finally:
            vars(env).clear()
            vars(env).update(saved)
        return dict(info)

    def goal_distance(self, obs, info: dict) -> float | None:
        """Metres still to go: MetaWorld's obj_to_target from ``info`` (the task's own measure: the hand's
        distance on reach tasks, the object's elsewhere), or, on the tasks where MetaWorld reports 0 at every
        step, the object's distance to the goal in ``obs``. None when ``info`` has neither."""
        if self.task in UNMEASURED_GOAL_DISTANCE:
            return float(np.linalg.norm(np.asarray(obs[4:7]) - np.asarray(obs[36:39])))
        return float(info["obj_to_target"]) if "obj_to_target" in info else None

    # ------------------------------------------------------------------ state
    @property
    def state_size(self) -> int:
        return self._state_size

    def sim_state(self, out: np.ndarray | None = None) -> np.ndarray:
        """The MuJoCo integration state (mjSTATE_INTEGRATION), shape (S,)."""
        if out is None:
            out = np.empty(self._state_size, dtype=np.float64)
        self._mujoco.mj_getState(self.model, self.data, out, self._mujoco.mjtState.mjSTATE_INTEGRATION)
        return out

    def robot_qpos(self) -> np.ndarray:
        return self.data.qpos[self._qpos_index].copy()

    def robot_qvel(self) -> np.ndarray:
        return self.data.qvel[self._qvel_index].copy()

    @property
    def robot_dof(self) -> int:
        return int(self._qpos_index.size)

    # ------------------------------------------------------------------ render
    def check_camera(self, name: str) -> str:
        if name not in self.camera_names:
            raise CameraError(f"unknown camera {name!r}: this scene has {', '.join(self.camera_names)}")
        return name

    def render(self, camera: str, size: int | tuple[int, int] | None = None) -> np.ndarray:
        """An upright RGB image (H, W, 3) uint8 from a named camera.

        Shadows, reflections and multisampling are off: on a CPU with software
        GL that is 3-5x faster and keeps interactive rendering at 30+ frames/s.
        """
        self.check_camera(camera)
        if size is None:
            size = self.image_size
        height, width = (size, size) if isinstance(size, int) else size
        renderer = self._get_renderer(height, width)
        renderer.update_scene(self.data, camera=render_camera(camera))
        image = renderer.render()
        if camera in UPSIDE_DOWN_CAMERAS:
            image = image[::-1, ::-1]
        return np.ascontiguousarray(image)

    def _get_renderer(self, height: int, width: int):
        # One renderer per size: an evaluation that films an episode (one size) for a policy that sees
        # its cameras (another) would otherwise build a GL context twice a step.
        renderer = self._renderers.get((height, width))
        if renderer is None:
            renderer = self._renderers[(height, width)] = fast_renderer(self.model, height, width)
        return renderer

    def close(self) -> None:
        for renderer in self._renderers.values():
            try:
                renderer.close()
            except Exception:  # noqa: BLE001 - a GL context torn down at exit must not mask real errors
                pass
        self._renderers.clear()
        self._env.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False
