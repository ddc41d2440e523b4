"""Measure what each entry of a task's random vector moves; writes teleop/data/spawn_dims.json.

    python -m teleop.spawn_survey

:func:`measure` resets a task on 16 random spawns and names each varying entry after the observed
coordinate it moves with (correlation above 0.95; the object before the goal where both move, as when
a goal is placed relative to its object): the object (observation[4:7]), a second object ([11:14])
or the goal ([36:39]). Why the names matter: teleop/spawn_dims.py.

"Unused by the task" is not measured: a first step's reward does not show it (MetaWorld normalizes
its terms by the initial distances), so it is stated for the tasks whose reward and success read only
the hand and the goal, from MetaWorld's code (``compute_reward`` and ``evaluate_state`` of reach-v3
and reach-wall-v3 never read the object): :data:`OBJECT_IGNORED`. tests/test_spawn_dims.py checks
that moving their puck changes neither the reward nor success along a rollout.
"""

from __future__ import annotations

import json

import numpy as np

from teleop.env import TaskEnv, task_names
from teleop.spawn import SpawnStream
from teleop.spawn_dims import TABLE, UNUSED

OBSERVED = (("object", slice(4, 7)), ("object 2", slice(11, 14)), ("goal", slice(36, 39)))
MIN_CORRELATION = 0.95
OBJECT_IGNORED = ("reach-v3", "reach-wall-v3")  # their object is placed but never read (see above)


def measure(task: str, samples: int = 16, seed: int = 0) -> list[str]:
    """Name each entry of ``task``'s random vector after what it moves, from ``samples`` resets."""
    with TaskEnv(task) as env:
        stream = SpawnStream(env.spawn_low, env.spawn_high, strategy="random", base_seed=seed)
        vectors, seen = [], []
        for i in range(samples):
            obs = env.reset(stream[i])
            vectors.append(env.rand_vec.copy())
            seen.append(np.hstack([obs[part] for _, part in OBSERVED]))
        low, high = env.spawn_low, env.spawn_high
    vectors, seen = np.array(vectors), np.array(seen)
    names = []
    for i in range(vectors.shape[1]):
        name = f"rand_vec[{i}]"
        if high[i] - low[i] > 1e-12:
            correlation = np.array([abs(np.corrcoef(vectors[:, i], column)[0, 1]) if np.std(column) > 1e-9 else 0.0
                                    for column in seen.T])
            if correlation.max() >= MIN_CORRELATION:
                best = int(np.flatnonzero(correlation >= correlation.max() - 0.01)[0])  # the object first
                name = f"{OBSERVED[best // 3][0]} {'xyz'[best % 3]}"
            if task in OBJECT_IGNORED and name.startswith("object"):
                name += UNUSED
        names.append(name)
    for i, name in enumerate(names):  # two entries moving one coordinate keep their index apart
        if names.count(name) > 1 and not name.startswith("rand_vec"):
            names[i] = f"{name} (rand_vec[{i}])"
    return names


def main() -> int:
    table = {}
    for task in task_names():
        table[task] = measure(task)
        print(f"{task:32s} {', '.join(table[task])}")
    TABLE.parent.mkdir(parents=True, exist_ok=True)
    TABLE.write_text(json.dumps(table, indent=1, sort_keys=True) + "\n")
    print(f"wrote {TABLE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
