"""Re-run an episode's recorded actions from its recorded spawn, and check it step by step.

Freezing the recorded ``rand_vec`` and resetting rebuilds the initial state
bit for bit (MetaWorld's reset is deterministic given the vector), and MuJoCo
is deterministic on the same machine and build, so every observation, reward
and MuJoCo state must match the file exactly.

Across machines the MuJoCo state still matches bit for bit, but observations and rewards, which
MetaWorld derives from it in floating point, can differ in their last bits: a file recorded on the
host of 2026-12-06 replays on an AVX2-only host of 2026-12-07 with identical MuJoCo states and
observation / reward differences of 1.1e-16 / 8.3e-17 from step 0 (the same with numpy 2.3 and 2.4).
``reproduced`` accepts that rounding (``ROUNDING``); ``exact`` does not.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from teleop.env import MAX_STEPS, TaskEnv
from teleop.episode import read_episode
from teleop.video import VIDEO_FPS, VIDEO_SPEED


# Largest observation or reward difference still counted as rounding when the MuJoCo states match
# bit for bit (rewards are at most 10; a real divergence moves them by far more, 1e-3 and up).
ROUNDING = 1e-9


def within_rounding(state_diff: float, sim_state_diff: float, reward_diff: float = 0.0) -> bool:
    """The MuJoCo state bit for bit, the observation and reward no further off than rounding."""
    return sim_state_diff == 0.0 and state_diff <= ROUNDING and reward_diff <= ROUNDING


@dataclass
class ReplayReport:
    path: Path
    steps: int
    max_state_diff: float  # largest |observation - recorded| over every step
    max_sim_state_diff: float
    max_reward_diff: float
    success_mismatches: int
    first_divergent_step: int | None
    success: bool

    @property
    def exact(self) -> bool:
        return (self.max_state_diff == 0.0 and self.max_sim_state_diff == 0.0
                and self.max_reward_diff == 0.0 and self.success_mismatches == 0)

    @property
    def reproduced(self) -> bool:
        """The same MuJoCo states bit for bit, and observations and rewards equal up to rounding: what
        a file recorded on another CPU gives (``exact`` on the machine that recorded it)."""
        return (within_rounding(self.max_state_diff, self.max_sim_state_diff, self.max_reward_diff)
                and self.success_mismatches == 0)


def replay(path: str | Path, *, video: str | Path | None = None, camera: str = "corner2",
           video_size: int = 480, video_speed: float = VIDEO_SPEED) -> ReplayReport:
    episode = read_episode(path)
    # A person's demo may run past MetaWorld's 500 steps (recorded with a longer step limit): give the
    # replay room for every recorded step; the limit changes nothing else in the simulation.
    env = TaskEnv(episode.task, max_steps=max(MAX_STEPS, episode.num_steps))
    writer = None
    shown = {}  # state index -> how many video frames show it
    try:
        if video is not None:
            from teleop.video import VideoWriter, playback_steps

            env.check_camera(camera)
            writer = VideoWriter(video, fps=VIDEO_FPS)
            for t in playback_steps(episode.num_steps + 1, video_speed):  # the states before and after each step
                shown[t] = shown.get(t, 0) + 1
        obs = env.reset(rand_vec=episode.rand_vec)
        state_diff = sim_diff = reward_diff = 0.0
        mismatches = 0
        first_divergent = None
        sim_state = np.empty(env.state_size)
        success = False
        for t in range(episode.num_steps):
            d_state = float(np.max(np.abs(obs - episode.state[t])))
            d_sim = float(np.max(np.abs(env.sim_state(out=sim_state) - episode.sim_state[t])))
            if t in shown:
                _show(writer, env, camera, video_size, t, video_speed, shown[t])
            obs, reward, step_success, _, _ = env.step(episode.action[t])
            d_reward = abs(reward - float(episode.reward[t]))
            mismatch = bool(step_success) != bool(episode.success[t])
            if first_divergent is None and (d_state or d_sim or d_reward or mismatch):
                first_divergent = t
            state_diff, sim_diff = max(state_diff, d_state), max(sim_diff, d_sim)
            reward_diff = max(reward_diff, d_reward)
            mismatches += mismatch
            success = success or step_success
        if episode.num_steps in shown:
            _show(writer, env, camera, video_size, episode.num_steps, video_speed, shown[episode.num_steps])
    finally:
        if writer is not None:
            writer.close()
        env.close()
    return ReplayReport(Path(path), episode.num_steps, state_diff, sim_diff, reward_diff, mismatches,
                        first_divergent, success)


def _show(writer, env, camera: str, size: int, step: int, speed: float, times: int) -> None:
    from teleop.video import caption, speed_label

    frame, _, _ = caption(env.render(camera, size), f"step {step:3d}  {speed_label(speed)}")
    for _ in range(times):
        writer.append(frame)
