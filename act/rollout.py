"""Run a Policy in the simulator from given spawns and report what happened, per episode.

B environments step in lockstep so the policy answers all of them with one forward pass; an
environment that has finished is left out of the forward pass (the ensembler keeps its fixed
batch shape) and gets no more steps. Deterministic: the same spawns give the same results.

Evaluation spawns come from a random SpawnStream whose base seed (10**6) is far from the seeds
recordings use (0 + i by default), and `evaluation_spawns` refuses any overlap with training seeds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from teleop.errors import ToolkitError
from teleop.spawn import Spawn, SpawnStream

EVAL_BASE_SEED = 10**6


@dataclass
class RolloutResult:
    seed: int
    spawn: list[float]  # the rand_vec actually used
    success: bool
    length: int  # steps run
    steps_to_success: int | None
    final_obj_to_target: float  # metres, info['obj_to_target'] after the last step
    total_reward: float

    def to_dict(self) -> dict:
        return asdict(self)


def evaluation_spawns(low, high, count: int, *, base_seed: int = EVAL_BASE_SEED,
                      training_seeds=()) -> list[Spawn]:
    """`count` independent random spawns with seeds base_seed .. base_seed+count-1."""
    stream = SpawnStream(low, high, strategy="random", base_seed=base_seed)
    spawns = [stream[i] for i in range(count)]
    overlap = sorted({s.seed for s in spawns} & {int(s) for s in training_seeds})
    if overlap:
        raise ToolkitError(f"evaluation seeds {overlap[:5]} were used by training episodes; pick an "
                           f"evaluation base seed away from the recording seeds")
    return spawns


def rollout(policy, task: str, spawns: list[Spawn], *, max_steps: int = 500, batch_size: int = 10,
            stop_on_success: bool = True, envs=None, on_step=None) -> list[RolloutResult]:
    """One episode per spawn, in groups of `batch_size` environments. An episode ends at its first
    success (when stop_on_success) or at max_steps.

    on_step(slot, env, step, success), if given, is called after each reset (step 0) and after
    every step of an episode still running (e.g. to render video frames)."""
    from teleop.env import TaskEnv

    cameras = tuple(policy.config.camera_names)
    size = tuple(policy.config.image_size) if cameras else None
    own_envs = envs is None
    if own_envs:
        envs = [TaskEnv(task, cameras=cameras, max_steps=max_steps)
                for _ in range(min(batch_size, len(spawns)))]
    elif any(env.max_steps < max_steps for env in envs):
        # An environment truncates at its own limit: episodes would end early without a word.
        raise ValueError(f"rollout of {max_steps} steps on environments limited to "
                         f"{min(env.max_steps for env in envs)}: build them with max_steps={max_steps}")
    try:
        results = []
        for start in range(0, len(spawns), len(envs)):
            group = spawns[start:start + len(envs)]
            results.extend(_run_group(policy, envs[:len(group)], group, max_steps=max_steps,
                                      stop_on_success=stop_on_success, cameras=cameras, size=size,
                                      on_step=on_step))
        return results
    finally:
        if own_envs:
            for env in envs:
                env.close()


def _run_group(policy, envs, spawns, *, max_steps, stop_on_success, cameras, size,
               on_step=None) -> list[RolloutResult]:
    b = len(envs)
    obs = np.stack([env.reset(spawn) for env, spawn in zip(envs, spawns)])  # (B, 39)
    if on_step is not None:
        for i, env in enumerate(envs):
            on_step(i, env, 0, False)
    policy.reset()
    done = np.zeros(b, bool)
    length = np.zeros(b, int)
    first_success = [None] * b
    reward_sum = np.zeros(b)
    distance = np.full(b, np.nan)
    wants_qpos = policy.spec.qpos
    while not done.all():
        qpos = np.stack([env.robot_qpos() for env in envs]) if wants_qpos else None  # (B, J)
        images = None
        if cameras and policy.queries_next():  # rendered for the running episodes, only when the policy looks
            images = np.zeros((b, len(cameras), *size, 3), np.uint8)  # (B, N, H, W, 3)
            for i in np.flatnonzero(~done):
                images[i] = [envs[i].render(c, size) for c in cameras]
        actions = policy.act(obs, qpos, images, active=~done)  # (B, 4)
        for i, env in enumerate(envs):
            if done[i]:
                continue
            obs[i], reward, success, truncated, info = env.step(actions[i])
            length[i] += 1
            reward_sum[i] += reward
            distance[i] = env.goal_distance(obs[i], info)
            if success and first_success[i] is None:
                first_success[i] = int(length[i])
            if on_step is not None:
                on_step(i, env, int(length[i]), first_success[i] is not None)
            if truncated or length[i] >= max_steps or (stop_on_success and success):
                done[i] = True
    return [RolloutResult(seed=int(spawn.seed), spawn=env.rand_vec.tolist(),
                          success=first_success[i] is not None, length=int(length[i]),
                          steps_to_success=first_success[i], final_obj_to_target=float(distance[i]),
                          total_reward=float(reward_sum[i]))
            for i, (env, spawn) in enumerate(zip(envs, spawns))]

