"""TaskEnv.measure: MetaWorld's info at a spawn before the first step, leaving the episode as it was;
TaskEnv.goal_distance: the distance the live window shows, also where MetaWorld reports none."""

import numpy as np
import pytest

from devices.scripted import ScriptedExpert
from teleop.env import UNMEASURED_GOAL_DISTANCE, TaskEnv, task_names
from teleop.spawn import SpawnStream


def _expert_steps(task: str, measure: bool, steps: int = 40):
    """(goal distance before the first step or None, [(obs, reward, info, goal distance)] of the expert's
    first steps) on one spawn."""
    env = TaskEnv(task)
    expert = ScriptedExpert(task)
    expert.connect()
    try:
        obs = env.reset(SpawnStream(env.spawn_low, env.spawn_high, strategy="random", base_seed=5)[0])
        expert.reset()
        before = env.sim_state().copy()
        ready = env.goal_distance(obs, env.measure(obs)) if measure else None
        assert np.array_equal(env.sim_state(), before)
        trajectory = []
        for _ in range(steps):
            expert.observe(obs)
            obs, reward, _, _, info = env.step(expert.expert_action())
            trajectory.append((obs.copy(), reward, dict(info), env.goal_distance(obs, info)))
        return ready, trajectory
    finally:
        env.close()


# Tasks whose reward code stores flags on the environment (pickCompleted, reachCompleted,
# _target_to_obj_init, ...), and reach, where the distance is the hand's.
@pytest.mark.parametrize("task", ["bin-picking-v3", "assembly-v3", "dial-turn-v3", "reach-v3"])
def test_measuring_before_the_first_step_changes_nothing_after_it(task):
    _, plain = _expert_steps(task, measure=False)
    ready, measured = _expert_steps(task, measure=True)
    for step, ((obs_a, reward_a, info_a, _), (obs_b, reward_b, info_b, _)) in enumerate(zip(plain, measured)):
        assert np.array_equal(obs_a, obs_b) and reward_a == reward_b, (task, step)
        assert info_a.keys() == info_b.keys() and all(np.array_equal(info_a[k], info_b[k]) for k in info_a), step
    first = plain[0][3]  # one step of at most 1 cm moves the distance by little
    assert ready > 0.05 and abs(ready - first) < 0.01


def test_goal_distance_where_metaworld_reports_none():
    """On the five tasks MetaWorld's obj_to_target is 0 even at the spawn; the window shows the object's
    distance to the goal there instead. The set is checked against MetaWorld on all 50 tasks."""
    for task in task_names():
        env = TaskEnv(task)
        try:
            obs = env.reset(SpawnStream(env.spawn_low, env.spawn_high, strategy="random", base_seed=3)[0])
            info = env.measure(obs)
            assert (info["obj_to_target"] == 0) == (task in UNMEASURED_GOAL_DISTANCE), task
            distance = env.goal_distance(obs, info)
            assert distance > 0.02, task
            if task in UNMEASURED_GOAL_DISTANCE:
                assert distance == pytest.approx(np.linalg.norm(env.object_pos - env.goal_pos), abs=0.03), task
            else:
                assert distance == info["obj_to_target"]
        finally:
            env.close()
