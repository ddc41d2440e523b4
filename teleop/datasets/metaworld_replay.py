"""Replay a teleop-act episode file with nothing but h5py and MetaWorld, and check it step by step.

    python metaworld_replay.py recordings/pp50/episode_000000.hdf5 [more files ...]

This file imports nothing from the toolkit: copy it next to your own code. It is the exact recipe
that reproduces a recording bit for bit (observations, MuJoCo states, rewards):

1. build the task's goal-observable environment and give it a step limit that covers the episode;
2. freeze the recorded random vector (``attrs["rand_vec"]``) and reset;
3. do what the toolkit's reset adds: ``mujoco.mj_forward`` (some tasks, door-open among them, move
   bodies in ``reset_model`` and read positions before MuJoCo recomputes them, so MetaWorld's own
   first observation shows the previous layout), then restart the previous-frame half of the
   observation from the recomputed one (``env._prev_obs``);
4. step the recorded actions (``/action``).

Skipping step 3 is not harmless: ``mj_forward`` also copies the solver's accelerations into its warm
start, so the first step differs by ~1e-15 and contacts grow that to centimetres (1.8 cm over a
69-step pick-place). Episode layout: README.md, "The episode file".
"""

from __future__ import annotations

import sys
import warnings

import h5py
import mujoco
import numpy as np


def replay(path: str, *, toolkit_reset: bool = True) -> dict:
    """Step one episode file in a fresh MetaWorld environment; returns the largest differences.
    ``toolkit_reset=False`` leaves out step 3 (to see what it is for)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MetaWorld warns about gymnasium's API on import and reset
        from metaworld import env_dict

        with h5py.File(path, "r") as f:
            task = str(f.attrs["task"])
            rand_vec = np.asarray(f.attrs["rand_vec"], dtype=np.float64)
            states = f["observations/state"][()]
            sim_states = f["sim_state"][()]
            actions = f["action"][()]
            rewards = f["reward"][()]

        env = env_dict.ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[f"{task}-goal-observable"](seed=0)
        env.max_path_length = max(500, len(actions))  # 1.
        env._last_rand_vec = rand_vec.copy()  # 2.
        env._freeze_rand_vec = True
        obs, _ = env.reset()
        if toolkit_reset:
            mujoco.mj_forward(env.model, env.data)  # 3.
            env._prev_obs = env._get_curr_obs_combined_no_goal()
            obs = np.hstack([env._prev_obs, env._prev_obs, env._get_pos_goal()])

        sim = np.empty(mujoco.mj_stateSize(env.model, mujoco.mjtState.mjSTATE_INTEGRATION))
        worst = {"observation": 0.0, "sim_state": 0.0, "reward": 0.0}
        for t, action in enumerate(actions):  # 4.
            mujoco.mj_getState(env.model, env.data, sim, mujoco.mjtState.mjSTATE_INTEGRATION)
            worst["observation"] = max(worst["observation"], float(np.max(np.abs(obs - states[t]))))
            worst["sim_state"] = max(worst["sim_state"], float(np.max(np.abs(sim - sim_states[t]))))
            obs, reward, _, _, _ = env.step(action)
            worst["reward"] = max(worst["reward"], abs(float(reward) - float(rewards[t])))
        env.close()
    return {"task": task, "steps": len(actions), **worst}


def main(paths: list[str]) -> int:
    if not paths:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    exact = 0
    for path in paths:
        result = replay(path)
        same = result["observation"] == result["sim_state"] == result["reward"] == 0.0
        exact += same
        print(f"{path}: {result['task']}, {result['steps']} steps, max |difference| observation "
              f"{result['observation']:.3g}, MuJoCo state {result['sim_state']:.3g}, reward {result['reward']:.3g}"
              f"{'' if same else '  DIVERGES'}")
    print(f"{exact} of {len(paths)} episodes reproduced exactly")
    return 0 if exact == len(paths) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
