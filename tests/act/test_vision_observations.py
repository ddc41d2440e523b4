"""--observations vision: camera images, the robot's own state and the goal, never an object's pose."""

import json

import numpy as np
import pytest
import torch

from act_helpers import TINY_MODEL
from cli_helpers import run_cli
from test_act_train_cli import assert_one_line_error

OBJECT_COLUMNS = list(range(4, 18)) + list(range(22, 36))  # MetaWorld: the objects' poses, this frame and the last


def test_the_vision_spec_reads_no_object_column():
    from act.data import StateSpec

    spec = StateSpec.vision()
    assert not spec.sees_objects and spec.qpos
    assert not set(spec.columns().tolist()) & set(OBJECT_COLUMNS)
    assert set(spec.columns().tolist()) == {0, 1, 2, 3, 18, 19, 20, 21, 36, 37, 38}
    assert StateSpec().sees_objects and StateSpec.parse("0:4", relative=True).sees_objects
    rng = np.random.default_rng(0)
    obs, qpos = rng.normal(size=(5, 39)), rng.normal(size=(5, 9))
    moved = obs.copy()
    moved[:, OBJECT_COLUMNS] += rng.normal(size=(5, len(OBJECT_COLUMNS)))
    np.testing.assert_array_equal(spec.state(obs, qpos), spec.state(moved, qpos))
    changed_goal = obs.copy()
    changed_goal[:, 36] += 0.1
    assert not np.array_equal(spec.state(obs, qpos), spec.state(changed_goal, qpos))


def test_a_tiny_vision_run_trains_evaluates_and_never_sees_the_object(image_demos, tmp_path):
    run = tmp_path / "run"
    res = run_cli("act.train", "--data", str(image_demos), "--out", str(run), *TINY_MODEL, "--steps", "2",
                  "--observations", "vision", "--cameras", "corner2", "--backbone", "small", "--val-fraction", "0",
                  "--image-shift", "2")
    assert res.returncode == 0, res.stderr
    checkpoint = torch.load(run / "latest.pt", weights_only=True)
    assert checkpoint["state_spec"] == {"slices": [[0, 4], [18, 22], [36, 39]], "qpos": True, "relative": False}
    assert checkpoint["train_args"]["observations"] == "vision"

    from act.policy import Policy

    policy = Policy.load(run, query_every=1, temporal_ensemble=None)
    rng = np.random.default_rng(1)
    obs, qpos = rng.normal(size=(2, 39)), rng.normal(size=(2, 9))
    images = rng.integers(0, 255, size=(2, 1, 32, 32, 3), dtype=np.uint8)
    moved = obs.copy()
    moved[:, OBJECT_COLUMNS] += 1.0
    policy.reset()
    first = policy.act(obs, qpos, images)
    policy.reset()
    assert np.array_equal(first, policy.act(moved, qpos, images))  # the object's pose changes nothing
    policy.reset()
    other = images.copy()
    other[:, :, :16] = 255 - other[:, :, :16]
    assert not np.array_equal(first, policy.act(obs, qpos, other))  # the images do

    out = tmp_path / "eval"
    res = run_cli("act.evaluate", "--ckpt", str(run), "--out", str(out), "--episodes", "1", "--max-steps", "5",
                  "--videos", "1", "--workers", "1")
    assert res.returncode == 0, res.stderr
    assert len(json.loads((out / "results.json").read_text())["episodes"]) == 1
    from teleop.video import read_video

    frames = read_video(out / "videos" / "episode_000.mp4")
    assert frames.shape[1:] == (256, 512, 3)  # the overview camera, and beside it what the policy saw
    res = run_cli("act.evaluate", "--ckpt", str(run), "--out", str(tmp_path / "e2"), "--device", "tpu")
    assert_one_line_error(res, "--device 'tpu'")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_training_and_evaluation_on_a_gpu(image_demos, tmp_path):
    run = tmp_path / "run"
    res = run_cli("act.train", "--data", str(image_demos), "--out", str(run), *TINY_MODEL, "--steps", "4",
                  "--observations", "vision", "--cameras", "corner2", "--device", "cuda", "--val-fraction", "0")
    assert res.returncode == 0, res.stderr
    res = run_cli("act.evaluate", "--ckpt", str(run), "--out", str(tmp_path / "eval"), "--episodes", "2",
                  "--max-steps", "5", "--videos", "0", "--device", "cuda")
    assert res.returncode == 0, res.stderr


def test_vision_on_a_dataset_without_images_names_teleop_render(pick_place_demos, tmp_path):
    res = run_cli("act.train", "--data", str(pick_place_demos), "--out", str(tmp_path / "r"), *TINY_MODEL,
                  "--observations", "vision", "--cameras", "corner2")
    assert_one_line_error(res, "teleop render")
    assert not (tmp_path / "r").exists()
    res = run_cli("act.train", "--data", str(pick_place_demos), "--out", str(tmp_path / "r"), *TINY_MODEL,
                  "--observations", "vision")
    assert_one_line_error(res, "--observations vision needs --cameras")


def test_images_in_memory_are_the_files_images_and_a_budget_is_enforced(image_demos):
    from act.data import ChunkDataset, DataError, load_dataset

    episodes = load_dataset(image_demos, cameras=("corner2",)).episodes
    from_files = ChunkDataset(episodes, 5, cameras=("corner2",))
    in_memory = ChunkDataset(episodes, 5, cameras=("corner2",), image_memory_gb=1.0)
    every = np.arange(len(from_files))
    np.testing.assert_array_equal(from_files.__getitems__(every)["images"], in_memory.__getitems__(every)["images"])
    assert in_memory._memory.dtype == np.uint8
    with pytest.raises(DataError, match="--image-memory-gb"):
        ChunkDataset(episodes, 5, cameras=("corner2",), image_memory_gb=1e-6)


def test_random_shift_moves_each_sample_within_the_pad():
    from act.train_loop import random_shift

    torch.manual_seed(0)
    images = torch.rand(6, 2, 3, 16, 16)
    assert torch.equal(random_shift(images, 0), images)
    shifted = random_shift(images, 2)
    assert shifted.shape == images.shape
    for i in range(6):  # each sample is its image moved by one (dy, dx) in [-2, 2], the same for both cameras
        found = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                 if torch.equal(shifted[i, :, :, 2:-2, 2:-2], images[i, :, :, 2 + dy:14 + dy, 2 + dx:14 + dx])]
        assert len(found) == 1


def test_backbone_defaults_follow_the_device_and_the_weights(image_demos, tmp_path):
    """On a CPU the small CNN, trained at --lr like the rest; torchvision-named weights (here random ones with
    the right names) start a resnet18 at ACT's 1e-5; wrong weights are one line and write nothing."""
    from test_backbone import random_torchvision_state_dict

    common = ["--data", str(image_demos), *TINY_MODEL, "--steps", "1", "--observations", "vision",
              "--cameras", "corner2", "--val-fraction", "0", "--ema", "0"]
    res = run_cli("act.train", *common, "--out", str(tmp_path / "cpu"), "--lr", "2e-4")
    assert res.returncode == 0, res.stderr
    config = torch.load(tmp_path / "cpu" / "latest.pt", weights_only=True)["config"]
    assert config["backbone"] == "small" and config["lr_backbone"] == 2e-4

    state = random_torchvision_state_dict()
    torch.save(state, tmp_path / "r18.pt")
    res = run_cli("act.train", *common, "--out", str(tmp_path / "pre"), "--backbone", "resnet18",
                  "--backbone-weights", str(tmp_path / "r18.pt"))
    assert res.returncode == 0, res.stderr
    checkpoint = torch.load(tmp_path / "pre" / "latest.pt", weights_only=True)
    assert checkpoint["config"]["backbone"] == "resnet18" and checkpoint["config"]["lr_backbone"] == 1e-5
    loaded = checkpoint["model"]["images.backbone.conv1.weight"]
    assert torch.allclose(loaded, state["conv1.weight"], atol=1e-4)  # one step at 1e-5 from the file's weights
    assert torch.equal(checkpoint["model"]["images.backbone.layer4.1.bn2.running_var"],
                       state["layer4.1.bn2.running_var"])  # frozen: exactly the file's

    state["layer3.0.conv2.weight"] = torch.zeros(256, 256, 1, 1)
    torch.save(state, tmp_path / "bad.pt")
    res = run_cli("act.train", *common, "--out", str(tmp_path / "bad"), "--backbone", "resnet18",
                  "--backbone-weights", str(tmp_path / "bad.pt"))
    assert_one_line_error(res, "layer3.0.conv2.weight has shape (256, 256, 1, 1), expected (256, 256, 3, 3)")
    assert not (tmp_path / "bad").exists()
    res = run_cli("act.train", *common, "--out", str(tmp_path / "tv"), "--backbone", "small",
                  "--backbone-weights", "torchvision")
    assert_one_line_error(res, "--backbone resnet18")
    res = run_cli("act.train", "--data", str(image_demos), "--out", str(tmp_path / "st"), *TINY_MODEL,
                  "--backbone-weights", str(tmp_path / "r18.pt"))
    assert_one_line_error(res, "--backbone-weights needs --cameras")


@pytest.fixture(scope="module")
def vision_run(image_demos, tmp_path_factory):
    run = tmp_path_factory.mktemp("vision") / "run"
    res = run_cli("act.train", "--data", str(image_demos), "--out", str(run), *TINY_MODEL, "--steps", "1",
                  "--observations", "vision", "--cameras", "corner2", "--val-fraction", "0")
    assert res.returncode == 0, res.stderr
    return run


def test_rollouts_render_only_what_the_policy_reads(vision_run, monkeypatch):
    """Open-loop chunks of 5 read images on steps 0, 5, 10, ... only; a filmed episode (another size) does not
    make the environment build a renderer again each step."""
    from act.policy import Policy
    from act.rollout import evaluation_spawns, rollout
    from teleop.env import TaskEnv

    run = vision_run
    renders = []
    real_render = TaskEnv.render
    monkeypatch.setattr(TaskEnv, "render", lambda env, camera, size=None: renders.append((id(env), size))
                        or real_render(env, camera, size))
    policy = Policy.load(run, query_every=5, temporal_ensemble=None)
    envs = [TaskEnv("pick-place-v3", max_steps=12) for _ in range(2)]
    spawns = evaluation_spawns(envs[0].spawn_low, envs[0].spawn_high, 2, base_seed=10**6)
    films = []
    rollout(policy, "pick-place-v3", spawns, max_steps=12, envs=envs,
            on_step=lambda slot, env, step, success: slot == 0 and films.append(env.render("corner2", 48)))
    policy_renders = [r for r in renders if r[1] == (32, 32)]
    assert len(policy_renders) == 2 * 3  # steps 0, 5 and 10 of two episodes of 12 steps
    assert len(films) == 13 and all(len(env._renderers) == n for env, n in zip(envs, (2, 1)))
    before = {id(r) for r in envs[0]._renderers.values()}
    envs[0].render("corner2", 48)
    assert {id(r) for r in envs[0]._renderers.values()} == before  # kept, not rebuilt
    for env in envs:
        env.close()


def test_teleop_correct_refuses_a_camera_policy_in_one_line(vision_run, tmp_path):
    out = tmp_path / "out"
    res = run_cli("teleop.cli", "correct", "--ckpt", str(vision_run), "--device", "corrector", "--out", str(out))
    assert_one_line_error(res, "camera policy (corner2)")
    assert not out.exists()


def test_a_state_only_dataset_is_rendered_trained_on_and_evaluated_end_to_end(pick_place_demos, tmp_path):
    """What a person's live demos go through: `teleop render` adds the images, act-train --observations vision
    trains on them, act-eval runs the policy with a video."""
    import shutil

    data = tmp_path / "demos"
    data.mkdir()
    for file in sorted(pick_place_demos.glob("*.hdf5"))[:2]:
        shutil.copy(file, data / file.name)
    res = run_cli("teleop.cli", "render", str(data), "--cameras", "corner2", "--image-size", "32", "--jobs", "1")
    assert res.returncode == 0, res.stderr
    run = tmp_path / "run"
    res = run_cli("act.train", "--data", str(data), "--out", str(run), *TINY_MODEL, "--steps", "2",
                  "--observations", "vision", "--cameras", "corner2", "--val-fraction", "0")
    assert res.returncode == 0, res.stderr
    out = tmp_path / "eval"
    res = run_cli("act.evaluate", "--ckpt", str(run), "--out", str(out), "--episodes", "1", "--max-steps", "5",
                  "--videos", "1", "--workers", "1")
    assert res.returncode == 0, res.stderr
    from teleop.video import read_video

    assert read_video(out / "videos" / "episode_000.mp4").shape[1:] == (256, 512, 3)
