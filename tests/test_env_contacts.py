"""TaskEnv's touching_object (numpy over the contact arrays) answers as MetaWorld's Python loop does."""

import numpy as np
import pytest

from devices.scripted import ScriptedExpert
from teleop.env import TaskEnv
from teleop.spawn import SpawnStream


@pytest.mark.parametrize("task", ["pick-place-v3", "push-back-v3", "hand-insert-v3"])
def test_touching_object_matches_metaworld_at_every_step(task):
    from metaworld.sawyer_xyz_env import SawyerXYZEnv

    env = TaskEnv(task)
    expert = ScriptedExpert(task)
    expert.connect()
    spawns = SpawnStream(env.spawn_low, env.spawn_high, strategy="random", base_seed=11)
    geoms = [env._env._get_id_main_object(), *range(0, env.model.ngeom, 5)]
    answers = []
    try:
        for episode in range(2):
            obs = env.reset(spawns[episode])
            expert.reset()
            for _ in range(120):
                expert.observe(obs)
                obs, *_ = env.step(expert.expert_action())
                for geom in geoms:
                    fast = env._env.touching_object(geom)
                    assert fast == SawyerXYZEnv.touching_object(env._env, geom), (episode, geom)
                    answers.append(fast)
    finally:
        env.close()
    assert any(answers) and not all(answers)  # the expert's grasp or push touched the object, and let go
