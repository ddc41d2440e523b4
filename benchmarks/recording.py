"""Recording-backbone benchmarks (prints numbers; figures go to BENCHMARKS.md).

    .venv/bin/python benchmarks/recording.py [--episodes 100]

1. scripted collection of N pick-place-v3 episodes, state only, end to end (files on disk);
2. recording overhead per step against bare env.step (state only);
3. writing one 500-step episode with two 128x128 cameras.
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402


def machine() -> str:
    load = os.getloadavg()
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load {load[0]:.2f}"


def bench_collection(episodes: int) -> None:
    from devices.scripted import ScriptedExpert
    from teleop.collect import record_headless

    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        written = record_headless(ScriptedExpert("pick-place-v3"), task="pick-place-v3", episodes=episodes,
                                  out=out, seed=0, progress=False)
        elapsed = time.perf_counter() - start
    print(f"collection: {len(written)} pick-place-v3 episodes (state only) in {elapsed:.1f} s "
          f"({elapsed / len(written) * 1000:.0f} ms/episode, target < 60 s for 100)")


def bench_overhead(steps: int = 5000) -> None:
    """Time env.step and the recorder's per-step work inside the same loop.

    Timing both in one loop makes the ratio immune to the machine's load
    drifting between two separate runs.
    """
    from teleop.env import TaskEnv
    from teleop.recorder import EpisodeBuffer
    from teleop.spawn import SpawnStream

    env = TaskEnv("pick-place-v3")
    stream = SpawnStream(env.spawn_low, env.spawn_high, base_seed=0)
    buffer = EpisodeBuffer(env)
    actions = np.random.default_rng(0).uniform(-1, 1, size=(steps, 4)).astype(np.float32)
    step_time = np.empty(steps)
    record_time = np.empty(steps)
    clock = time.perf_counter
    obs = env.reset(stream[0])
    for t in range(steps):
        if env.steps >= env.max_steps:
            obs = env.reset(stream[t])
            buffer.clear()
        a = actions[t]
        t0 = clock()
        buffer.before_step(obs)
        t1 = clock()
        obs, reward, success, _, _ = env.step(a)
        t2 = clock()
        buffer.after_step(a, reward, success)
        t3 = clock()
        step_time[t] = t2 - t1
        record_time[t] = (t1 - t0) + (t3 - t2)
    s, r = np.median(step_time), np.median(record_time)
    print(f"overhead: env.step {s * 1e6:.0f} us, recording {r * 1e6:.1f} us per step (medians of {steps}): "
          f"{r / s * 100:.1f}% of env.step (target < 5%)")
    env.close()


def bench_image_write(repeats: int = 3) -> None:
    from teleop.episode import SCHEMA, Episode, write_episode
    from teleop.env import TaskEnv
    from teleop.spawn import SpawnStream

    env = TaskEnv("pick-place-v3", cameras=("corner2", "gripperPOV"), image_size=128)
    env.reset(SpawnStream(env.spawn_low, env.spawn_high)[0])
    # Real rendered frames from a moving arm, so compression sees realistic pictures.
    frames = {c: np.empty((500, 128, 128, 3), np.uint8) for c in env.cameras}
    rng = np.random.default_rng(1)
    for t in range(500):
        if t % 25 == 0:
            for c in env.cameras:
                view = env.render(c)
        for c in env.cameras:
            frames[c][t] = view if t % 25 else env.render(c)
        env.step(rng.uniform(-1, 1, 4))
    t = 500
    episode = Episode(attrs={"schema": SCHEMA, "task": "pick-place-v3", "num_steps": t},
                      state=np.zeros((t, 39)), qpos=np.zeros((t, 9)), qvel=np.zeros((t, 9)),
                      action=np.zeros((t, 4), np.float32), reward=np.zeros(t), success=np.zeros(t, bool),
                      sim_state=np.zeros((t, env.state_size)), images=frames)
    times = []
    with tempfile.TemporaryDirectory() as out:
        for i in range(repeats):
            start = time.perf_counter()
            path = write_episode(os.path.join(out, f"episode_{i:06d}.hdf5"), episode)
            times.append(time.perf_counter() - start)
        size = os.path.getsize(path) / 1e6
    raw = sum(f.nbytes for f in frames.values()) / 1e6
    print(f"image write: 500 steps x 2 cameras 128x128 ({raw:.0f} MB raw -> {size:.1f} MB) in "
          f"{np.median(times):.3f} s median of {repeats} (target < 0.5 s)")
    env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=100)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    bench_collection(args.episodes)
    bench_overhead()
    bench_image_write()
    print(f"machine after: {machine()}")


if __name__ == "__main__":
    main()
