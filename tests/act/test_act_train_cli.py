"""act-train as a user runs it: subprocesses with a tiny model and a few steps."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from cli_helpers import ROOT, run_cli
from act_helpers import TINY_MODEL

torch.set_num_threads(1)


def train(*args, timeout=180, env=None):
    """act-train with the tiny model; flags in args come later and override it."""
    return run_cli("act.train", *TINY_MODEL, *args, timeout=timeout, env=env)


def assert_one_line_error(result, *needles):
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: "), result.stderr
    for needle in needles:
        assert needle in last, last
    return last


def copy_episodes(src, dst, count):
    dst.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.glob("episode_*.hdf5"))[:count]:
        shutil.copy(path, dst / path.name)
    return sorted(dst.glob("episode_*.hdf5"))


def load(path):
    from act.checkpoint import load_checkpoint

    return load_checkpoint(path)


# ---------------------------------------------------------------------------- a whole small run

@pytest.fixture(scope="module")
def tiny_run(pick_place_demos, tmp_path_factory):
    """One 20-step run with validation and rollouts, shared by the tests that read its outputs."""
    out = tmp_path_factory.mktemp("tiny") / "run"
    result = train("--data", str(pick_place_demos), "--out", str(out), "--steps", "20", "--val-every", "10",
                   "--log-every", "5", "--eval-every", "10", "--eval-episodes", "2", "--eval-max-steps", "15",
                   "--val-fraction", "0.34", "--keep-every", "10")
    assert result.returncode == 0, result.stderr
    assert "step 20: success" in result.stdout
    assert re.search(r"training spawns: \d+ distinct in \d+ episodes; their hull encloses \d+% of the spawn box",
                     result.stdout)
    return out


def test_run_writes_checkpoints_png_tensorboard(tiny_run, pick_place_demos):
    out = tiny_run
    for name in ("latest.pt", "best.pt", "loss.png", "step_000010.pt", "step_000020.pt"):
        assert (out / name).stat().st_size > 0
    assert (out / "loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert list((out / "tb").glob("events.out.tfevents.*"))
    assert not list(out.glob(".*partial*"))

    checkpoint = load(out / "latest.pt")
    from act.checkpoint import CHECKPOINT_KEYS

    # the default --ema keeps both weight sets; "inference" is act-eval's default way to run the chunks,
    # "horizon" its step limit: the scripted expert's short demos keep MetaWorld's 500
    assert set(checkpoint) == {*CHECKPOINT_KEYS, "train_model", "inference", "horizon"}
    assert checkpoint["horizon"] == 500 and type(checkpoint["horizon"]) is int
    assert checkpoint["step"] == 20 and checkpoint["config"]["chunk_size"] == 5
    assert load(out / "step_000010.pt")["step"] == 10
    assert checkpoint["history"]["step"] == [5, 10, 15, 20]
    assert checkpoint["history"]["eval_step"] == [10, 20]
    fingerprint = checkpoint["dataset"]
    assert fingerprint["task"] == "pick-place-v3" and len(fingerprint["episodes"]) == 6
    assert len(fingerprint["val_files"]) == 2 and not set(fingerprint["val_files"]) & set(fingerprint["train_files"])
    first = fingerprint["episodes"][0]
    assert set(first) == {"file", "seed", "num_steps", "recorded_steps", "rand_vec", "object_init_pos",
                          "correction", "person_steps", "spawn_strategy"}
    assert first["correction"] is False and first["person_steps"] == first["num_steps"]
    assert first["spawn_strategy"] == "stratified"
    assert not any(k.startswith("module.") for k in checkpoint["model"])

    # A second run into the same folder must not clobber it.
    again = train("--data", str(pick_place_demos), "--out", str(out), "--steps", "2")
    assert_one_line_error(again, "--resume")


def test_policy_acts_in_both_modes(tiny_run):
    from act.policy import Policy

    policy = Policy.load(tiny_run, temporal_ensemble=-0.1)  # the run folder -> latest.pt, ensembling
    assert policy.ensembler is not None and policy.ensembler.k == -0.1
    actions = policy.act(torch.zeros(3, 39).numpy())
    assert actions.shape == (3, 4) and actions.dtype.name == "float32"
    assert abs(actions).max() <= 1.0

    policy = Policy.load(tiny_run / "latest.pt", temporal_ensemble=None, query_every=5)
    rng = torch.Generator().manual_seed(0)
    obs = torch.randn(5, 2, 39, generator=rng).numpy() * 0.1
    chunk = policy.normalizer.unnormalize_action(policy.model.predict_chunk(
        policy.normalizer.normalize_state(torch.from_numpy(policy.spec.state(obs[0])))))  # (B, K, A)
    policy.reset()
    for t in range(5):  # later observations are ignored until the chunk runs out
        torch.testing.assert_close(torch.from_numpy(policy.act(obs[t])), chunk[:, t].clamp(-1, 1))


def test_checkpoint_picks_the_inference_by_who_recorded_the_demos(tiny_run):
    from act.config import LEGACY_INFERENCE, default_inference
    from act.policy import Policy

    # Scripted demos: open-loop chunks of 5 (the tiny model's whole chunk); unless told otherwise.
    checkpoint = torch.load(tiny_run / "latest.pt", weights_only=True)
    assert checkpoint["inference"] == {"temporal_ensemble": None, "query_every": 5}
    # ... and no CVAE (z = 0 in training too): the scripted expert has one plan per state
    assert checkpoint["config"]["vae"] is False and not [k for k in checkpoint["model"] if k.startswith("vae_")]
    assert checkpoint["config"]["dropout"] == 0.0  # ... nor dropout: the expert's labels have no noise to average
    policy = Policy.load(tiny_run)
    assert policy.ensembler is None and policy.query_every == 5
    # A person's demos: temporal ensembling; a checkpoint older than the choice: ensembling too.
    assert default_inference(True, 20) == {"temporal_ensemble": -0.1, "query_every": None}
    assert default_inference(False, 3) == {"temporal_ensemble": None, "query_every": 3}  # never past the chunk
    del checkpoint["inference"]
    old = Policy.from_checkpoint(checkpoint)
    assert old.ensembler is not None and old.ensembler.k == LEGACY_INFERENCE["temporal_ensemble"]


def test_rollout_is_deterministic_and_eval_spawns_avoid_training_seeds(tiny_run):
    from act.policy import Policy
    from act.rollout import EVAL_BASE_SEED, evaluation_spawns, rollout
    from teleop.errors import ToolkitError

    checkpoint = load(tiny_run / "latest.pt")
    low, high = checkpoint["dataset"]["spawn_low"], checkpoint["dataset"]["spawn_high"]
    seeds = [e["seed"] for e in checkpoint["dataset"]["episodes"]]
    spawns = evaluation_spawns(low, high, 2, training_seeds=seeds)
    assert [s.seed for s in spawns] == [EVAL_BASE_SEED, EVAL_BASE_SEED + 1]
    with pytest.raises(ToolkitError, match="used by training"):
        evaluation_spawns(low, high, 2, base_seed=seeds[0], training_seeds=seeds)
    policy = Policy.load(tiny_run)
    first = rollout(policy, "pick-place-v3", spawns, max_steps=10)
    second = rollout(policy, "pick-place-v3", spawns, max_steps=10)
    assert [r.to_dict() for r in first] == [r.to_dict() for r in second]
    assert [r.length for r in first] == [10, 10] and first[0].spawn != first[1].spawn
    assert all(r.final_obj_to_target > 0 for r in first)


# ---------------------------------------------------------------------------- resume

def test_resume_after_sigkill_matches_uninterrupted_run(pick_place_demos, tmp_path):
    # With the learning-rate schedule, the state noise and the weight average on: all must continue exactly.
    common = ["--data", str(pick_place_demos), "--steps", "200", "--checkpoint-every", "10",
              "--log-every", "10", "--val-every", "50", "--lr-schedule", "cosine", "--warmup-steps", "20",
              "--state-noise", "0.05", "--ema", "0.9"]
    whole = train(*common, "--out", str(tmp_path / "whole"))
    assert whole.returncode == 0, whole.stderr

    out = tmp_path / "killed"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen([sys.executable, "-m", "act.train", *common, "--out", str(out), *TINY_MODEL],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (out / "latest.pt").exists():
            assert proc.poll() is None, "training ended before its first checkpoint"
            assert time.monotonic() < deadline
            time.sleep(0.005)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    killed_at = load(out / "latest.pt")["step"]
    assert 10 <= killed_at < 200, killed_at

    resumed = train(*common, "--out", str(out), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    a, b = load(tmp_path / "whole" / "latest.pt"), load(out / "latest.pt")
    assert b["step"] == 200
    for weights in ("model", "train_model"):  # the average that runs, and the weights it averages
        assert a[weights].keys() == b[weights].keys()
        for name in a[weights]:
            assert torch.equal(a[weights][name], b[weights][name]), (weights, name)
    assert any(not torch.equal(b["model"][k], b["train_model"][k]) for k in b["model"])
    assert a["history"] == b["history"]  # the same loss trace, bit for bit
    assert a["optimizer"]["state"][0]["exp_avg"].equal(b["optimizer"]["state"][0]["exp_avg"])
    group = b["optimizer"]["param_groups"][0]
    assert group["lr"] == pytest.approx(0.1 * group["initial_lr"], rel=0.01)  # the cosine ran to its end


def test_weight_average_ramps_up_then_follows_the_decay():
    from act.weight_average import WeightAverage

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))
    average = WeightAverage(model, decay=0.99)
    start = model[0].weight.detach().clone()
    expected = start.clone()
    for step in range(50):
        with torch.no_grad():
            model[0].weight.add_(1.0)
        model[1].num_batches_tracked += 1
        average.update(step)
        decay = min(0.99, (1 + step) / (10 + step))  # step 0: 0.1, the first weights fade fast
        expected = decay * expected + (1 - decay) * model[0].weight.detach()
    assert torch.allclose(average.model[0].weight, expected, atol=1e-5)
    assert (average.model[0].weight < model[0].weight - 1).all()  # it lags the trained weights
    assert average.model[1].num_batches_tracked == 50  # integer buffers are copied, not averaged
    assert not any(p.requires_grad for p in average.model.parameters())


def test_lr_schedule_warms_up_then_decays_to_a_tenth():
    from act.train_config import TrainConfig
    from act.train_loop import lr_scale

    cosine = TrainConfig(data=["d"], out="o", steps=1000, lr_schedule="cosine", warmup_steps=100)
    scales = [lr_scale(cosine, step) for step in range(1000)]
    assert scales[0] == pytest.approx(0.01) and scales[99] == pytest.approx(1.0)  # linear warm-up
    assert scales[100] == pytest.approx(1.0) and scales[550] == pytest.approx(0.55)  # cosine midpoint
    assert scales[-1] == pytest.approx(0.1, abs=1e-4)
    assert all(a >= b for a, b in zip(scales[100:], scales[101:]))  # never rises after the warm-up
    constant = TrainConfig(data=["d"], out="o", steps=1000)
    assert {lr_scale(constant, step) for step in (0, 500, 999)} == {1.0}


def test_resume_refuses_mismatched_or_bad_checkpoints(pick_place_demos, tmp_path):
    out = tmp_path / "run"
    assert train("--data", str(pick_place_demos), "--out", str(out), "--steps", "2").returncode == 0
    changed = train("--data", str(pick_place_demos), "--out", str(out), "--resume", "--hidden-dim", "32")
    assert_one_line_error(changed, "hidden_dim", "--resume")
    (out / "latest.pt").write_bytes((out / "latest.pt").read_bytes()[:5000])
    assert_one_line_error(train("--data", str(pick_place_demos), "--out", str(out), "--resume"), "damaged")
    assert_one_line_error(train("--data", str(pick_place_demos), "--out", str(tmp_path / "none"), "--resume"),
                          "does not exist")


def test_resume_refuses_changed_seed_or_data(tiny_run, pick_place_demos):
    from act.train_config import TrainConfig
    from act.train_setup import check_resumable
    from teleop.errors import ToolkitError
    from act.config import ACTConfig

    checkpoint = load(tiny_run / "latest.pt")
    config = ACTConfig.from_dict(checkpoint["config"])
    args = TrainConfig(**checkpoint["train_args"])
    check_resumable(checkpoint, config, args, checkpoint["dataset"], tiny_run)  # same run: fine
    args.steps = 500  # training longer is what --resume is for
    check_resumable(checkpoint, config, args, checkpoint["dataset"], tiny_run)
    with pytest.raises(ToolkitError, match="--seed"):
        check_resumable(checkpoint, config, TrainConfig(**{**checkpoint["train_args"], "seed": 5}),
                         checkpoint["dataset"], tiny_run)
    fewer = {**checkpoint["dataset"], "episodes": checkpoint["dataset"]["episodes"][:-1]}
    with pytest.raises(ToolkitError, match="same --data"):
        check_resumable(checkpoint, config, args, fewer, tiny_run)


def test_a_run_written_before_newer_flags_resumes(pick_place_demos, tmp_path):
    """A checkpoint without the fields added since (the config's backbone and vae; --choose-inference,
    --policy-weight, --correction-weight, --drop-before-takeover) resumes: they take the values the run was
    trained with (a run from before --vae trained the CVAE, whatever the data)."""
    from act.checkpoint import save_checkpoint

    out = tmp_path / "run"
    assert train("--data", str(pick_place_demos), "--out", str(out), "--steps", "2", "--vae").returncode == 0
    checkpoint = load(out / "latest.pt")
    del checkpoint["config"]["backbone"]
    del checkpoint["config"]["vae"]
    for key in ("choose_inference", "policy_weight", "correction_weight", "drop_before_takeover"):
        del checkpoint["train_args"][key]
    save_checkpoint(out / "latest.pt", checkpoint)
    resumed = train("--data", str(pick_place_demos), "--out", str(out), "--steps", "4", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert load(out / "latest.pt")["step"] == 4


@pytest.mark.parametrize("vae", [False, True])
def test_the_progress_line_shows_the_kl_only_with_the_cvae(pick_place_demos, tmp_path, vae):
    result = train("--data", str(pick_place_demos), "--out", str(tmp_path / "run"), "--steps", "6",
                   "--log-every", "3", "--progress", "--vae" if vae else "--no-vae")
    assert result.returncode == 0, result.stderr
    assert "6/6" in result.stderr and "l1=" in result.stderr, result.stderr
    assert ("kl=" in result.stderr) is vae, result.stderr


# ---------------------------------------------------------------------------- bad inputs

def test_empty_and_missing_folders(tmp_path):
    assert_one_line_error(train("--data", str(tmp_path), "--out", str(tmp_path / "r")), "no episode_")
    assert_one_line_error(train("--data", str(tmp_path / "nope"), "--out", str(tmp_path / "r")), "no such folder")


def test_mixed_tasks_refused(pick_place_demos, push_demo, tmp_path):
    result = train("--data", str(pick_place_demos), str(push_demo), "--out", str(tmp_path / "r"))
    assert_one_line_error(result, "push-v3", "one task")


def test_nan_refused(pick_place_demos, tmp_path):
    import h5py

    files = copy_episodes(pick_place_demos, tmp_path / "data", 3)
    with h5py.File(files[2], "r+") as f:
        f["action"][4, 1] = float("nan")
    assert_one_line_error(train("--data", str(tmp_path / "data"), "--out", str(tmp_path / "r")),
                          "NaN", files[2].name)


def test_corrupt_file_skipped_with_warning_or_refused_with_strict(pick_place_demos, tmp_path):
    files = copy_episodes(pick_place_demos, tmp_path / "data", 4)
    files[1].write_bytes(files[1].read_bytes()[:3000])
    skipped = train("--data", str(tmp_path / "data"), "--out", str(tmp_path / "r"), "--steps", "2")
    assert skipped.returncode == 0, skipped.stderr
    assert f"warning: skipped a damaged episode: {files[1]}" in skipped.stderr
    assert len(load(tmp_path / "r" / "latest.pt")["dataset"]["episodes"]) == 3
    strict = train("--data", str(tmp_path / "data"), "--out", str(tmp_path / "r2"), "--strict")
    assert_one_line_error(strict, files[1].name, "--strict")


def test_bad_model_flags_are_one_line_errors(pick_place_demos, tmp_path):
    result = train("--data", str(pick_place_demos), "--out", str(tmp_path / "r"), "--n-heads", "3")
    assert_one_line_error(result, "n_heads")
    for flags, named in ((["--lr-schedule", "linear"], "--lr-schedule"), (["--warmup-steps", "5000"], "--warmup-steps"),
                         (["--state-noise", "-1"], "--state-noise"), (["--fine-relative", "nan"], "--fine-relative"),
                         (["--fine-relative", "0.02", "--no-relative"], "--fine-relative")):
        assert_one_line_error(train("--data", str(pick_place_demos), "--out", str(tmp_path / "r"), *flags), named)


# ---------------------------------------------------------------------------- the diversity guard

def test_guard_refuses_single_spawn_then_trains_when_allowed(fixed_spawn_demos, tmp_path):
    refused = train("--data", str(fixed_spawn_demos), "--out", str(tmp_path / "r"))
    line = assert_one_line_error(refused, "same spawn", "0% success", "--allow-single-spawn")
    assert not (tmp_path / "r").exists()
    assert "random spawns" in line
    allowed = train("--data", str(fixed_spawn_demos), "--out", str(tmp_path / "r"), "--steps", "2",
                    "--allow-single-spawn")
    assert allowed.returncode == 0, allowed.stderr
    assert "warning: all 2 episodes start from the same spawn" in allowed.stderr
    assert (tmp_path / "r" / "latest.pt").exists()


# ---------------------------------------------------------------------------- DDP and images

def test_two_process_ddp_on_cpu_with_gloo(pick_place_demos, tmp_path):
    out = tmp_path / "ddp"
    result = run_cli("torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "act.train",
                     "--data", str(pick_place_demos), "--out", str(out), "--steps", "6", "--checkpoint-every", "3",
                     *TINY_MODEL, timeout=240, env={"OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoint = load(out / "latest.pt")
    assert checkpoint["step"] == 6 and checkpoint["rng"]["world_size"] == 2
    assert not any(k.startswith("module.") for k in checkpoint["model"])


def test_image_observation_run(image_demos, tmp_path):
    result = train("--data", str(image_demos), "--out", str(tmp_path / "r"), "--cameras", "corner2",
                   "--steps", "2", "--hidden-dim", "16", "--val-fraction", "0")
    assert result.returncode == 0, result.stderr
    assert load(tmp_path / "r" / "latest.pt")["config"]["camera_names"] == ["corner2"]


@pytest.mark.parametrize("module", ["act.train", "act.evaluate"])
def test_help_prints_every_flag(module):
    # Field docstrings become argparse help, which %-formats them: a literal "%" must not break --help.
    result = run_cli(module, "--help", timeout=60)
    assert result.returncode == 0, result.stderr[-500:]
    assert "--temporal-ensemble" in result.stdout or "--drop-idle" in result.stdout


def test_the_learning_rate_default_follows_the_observations():
    """State policies train at 6e-4, camera policies at 3e-4 with the backbone from scratch at the same rate
    (BENCHMARKS.md, "Learning rate"); a flag, or the run being resumed, wins."""
    from act.train import parse_args

    def resolved(*argv, saved=None):
        train, flags = parse_args(["--data", "d", "--out", "o", *argv])
        return train.resolve_model_flags(flags, saved)

    assert resolved()["lr"] == 6e-4
    assert resolved("--lr", "1e-4")["lr"] == 1e-4
    assert resolved(saved={"lr": 3e-4})["lr"] == 3e-4  # a run from before the change resumes at its own rate
    camera = resolved("--cameras", "corner2")
    assert camera["lr"] == 3e-4 and camera["lr_backbone"] == 3e-4
    assert resolved("--cameras", "corner2", "--lr", "2e-4")["lr_backbone"] == 2e-4


def test_the_cvae_default_follows_who_recorded_the_demos():
    """Scripted demos train a state policy without the CVAE, a person's demos and camera policies with it
    (BENCHMARKS.md, "The CVAE"); a flag, or the run being resumed, wins."""
    from act.train import parse_args

    def resolved(*argv, saved=None, person):
        train, flags = parse_args(["--data", "d", "--out", "o", *argv])
        return train.resolve_model_flags(flags, saved, recorded_by_person=person)["vae"]

    assert resolved(person=False) is False
    assert resolved(person=True) is True
    assert resolved("--cameras", "corner2", person=False) is True
    assert resolved("--vae", person=False) is True and resolved("--no-vae", person=True) is False
    assert resolved(saved={"lr": 6e-4}, person=False) is True  # a run from before the choice resumes with it
    assert resolved(saved={"vae": False}, person=True) is False


def test_dropout_follows_who_recorded_the_demos():
    """No dropout for a state policy on scripted demos, ACT's 0.1 for a person's and with cameras
    (BENCHMARKS.md, "Dropout without the CVAE"); a flag, or the run being resumed, wins."""
    from act.train import parse_args

    def dropout(*argv, saved=None, person):
        train, flags = parse_args(["--data", "d", "--out", "o", *argv])
        return train.resolve_model_flags(flags, saved, recorded_by_person=person)["dropout"]

    assert dropout(person=False) == 0.0
    assert dropout(person=True) == 0.1
    assert dropout("--cameras", "corner2", person=False) == 0.1
    assert dropout("--dropout", "0.2", person=False) == 0.2 and dropout("--dropout", "0", person=True) == 0.0
    assert dropout(saved={"dropout": 0.1}, person=False) == 0.1  # a resumed run keeps its own
