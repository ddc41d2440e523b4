"""`teleop export --format lerobot`: every file of the LeRobotDataset v3.0 folder is read back with pyarrow
and checked against the episode files (features declared = columns written, indices, timestamps, stats,
videos), and bad input leaves nothing under the output's name."""

import json
import shutil

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from teleop.cli import main
from teleop.episode import episode_files, read_episode

FPS = 80
QUANTILES = {"q01": 0.01, "q10": 0.10, "q50": 0.50, "q90": 0.90, "q99": 0.99}
STAT_KEYS = {"min", "max", "mean", "std", "count", *QUANTILES}
ARROW = {"float32": pa.float32(), "int64": pa.int64(), "bool": pa.bool_()}


@pytest.fixture(scope="module")
def image_demos(tmp_path_factory):
    """Two short pick-place-v3 episodes (failures kept: 12 and 9 steps) with 32x32 corner2 images."""
    from devices.scripted import ScriptedExpert
    from teleop.collect import record_headless

    out = tmp_path_factory.mktemp("lerobot_images")
    for seed, steps in ((300, 12), (310, 9)):
        record_headless(ScriptedExpert("pick-place-v3"), task="pick-place-v3", episodes=1, out=out, seed=seed,
                        cameras=("corner2",), image_size=32, keep_failures=True, max_steps=steps, progress=False)
    return out


def _export(capsys, *args):
    code = main(["export", "--format", "lerobot", "--quiet", *map(str, args)])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def _numpy_stats(values):
    v = np.asarray(values, dtype=np.float64).reshape(len(values), -1)
    stats = {"min": v.min(0), "max": v.max(0), "mean": v.mean(0), "std": v.std(0), "count": [len(v)]}
    stats.update({k: np.quantile(v, q, axis=0) for k, q in QUANTILES.items()})
    return stats


def _assert_stats(actual: dict, expected: dict, where: str):
    assert set(actual) == STAT_KEYS, where
    for key, value in expected.items():
        np.testing.assert_allclose(np.asarray(actual[key], dtype=np.float64), np.asarray(value), rtol=1e-9,
                                   atol=1e-12, err_msg=f"{where} {key}")


def _expected_columns(episodes):
    """The data file's columns, rebuilt from the episode files."""
    cols = {k: [] for k in ("observation.state", "action", "next.reward", "next.success", "next.done", "timestamp",
                            "frame_index", "episode_index", "index", "task_index")}
    start = 0
    for i, e in enumerate(episodes):
        t = e.num_steps
        cols["observation.state"].append(e.state.astype(np.float32))
        cols["action"].append(e.action.astype(np.float32))
        cols["next.reward"].append(e.reward.astype(np.float32))
        cols["next.success"].append(e.success)
        cols["next.done"].append(np.arange(t) == t - 1)
        cols["timestamp"].append((np.arange(t) / FPS).astype(np.float32))
        cols["frame_index"].append(np.arange(t))
        cols["episode_index"].append(np.full(t, i))
        cols["index"].append(np.arange(start, start + t))
        cols["task_index"].append(np.zeros(t, dtype=np.int64))
        start += t
    return {k: np.concatenate(v) for k, v in cols.items()}


def _check_layout(out, episodes, task):
    """Everything the state columns and the metadata promise; returns (info, data table, episodes table)."""
    info = json.loads((out / "meta/info.json").read_text())
    n, total = len(episodes), sum(e.num_steps for e in episodes)
    assert info["codebase_version"] == "v3.0" and info["robot_type"] == "sawyer" and info["fps"] == FPS
    assert (info["total_episodes"], info["total_frames"], info["total_tasks"]) == (n, total, 1)
    assert info["splits"] == {"train": f"0:{n}"}
    assert info["chunks_size"] == 1000 and info["data_files_size_in_mb"] > 0 and info["video_files_size_in_mb"] > 0
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    feats = info["features"]
    assert feats["observation.state"]["shape"] == [39] and len(feats["observation.state"]["names"]) == 39
    assert feats["action"]["shape"] == [4] and feats["action"]["dtype"] == "float32"

    # Every column is declared, every declared non-video feature is a column, with its dtype and shape.
    data = pq.read_table(out / "data/chunk-000/file-000.parquet")
    declared = {k: ft for k, ft in feats.items() if ft["dtype"] != "video"}
    assert set(data.column_names) == set(declared)
    for key, ft in declared.items():
        for name in ("dtype", "shape", "names"):
            assert name in ft, (key, name)
        arrow_type = data.schema.field(key).type
        if ft["shape"] == [1]:
            assert arrow_type == ARROW[ft["dtype"]], key
        else:
            assert pa.types.is_fixed_size_list(arrow_type) and arrow_type.value_type == ARROW[ft["dtype"]], key
            assert [arrow_type.list_size] == ft["shape"] == [len(ft["names"])], key
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert declared[key]["shape"] == [1]
    assert declared["timestamp"]["dtype"] == "float32" and declared["index"]["dtype"] == "int64"

    # Values against the episode files.
    expected = _expected_columns(episodes)
    names = feats["observation.state"]["names"]
    env_names = feats["observation.environment_state"]["names"]
    assert env_names[:3] == ["obj_x", "obj_y", "obj_z"] and env_names[-3:] == ["goal_x", "goal_y", "goal_z"]
    expected["observation.environment_state"] = expected["observation.state"][:, [names.index(m) for m in env_names]]
    assert set(expected) == set(declared)
    for key, values in expected.items():
        column = data.column(key).combine_chunks()
        actual = (column.flatten().to_numpy().reshape(total, -1) if pa.types.is_fixed_size_list(column.type)
                  else column.to_numpy(zero_copy_only=False))
        np.testing.assert_array_equal(actual.reshape(values.shape), values, err_msg=key)
    np.testing.assert_array_equal(expected["timestamp"], (expected["frame_index"] / FPS).astype(np.float32))
    parquet = pq.ParquetFile(out / "data/chunk-000/file-000.parquet")
    assert [parquet.metadata.row_group(i).num_rows for i in range(parquet.num_row_groups)] == \
        [e.num_steps for e in episodes]  # one row group per episode

    # meta/episodes: lengths and index ranges agree with the data file.
    eps = pq.read_table(out / "meta/episodes/chunk-000/file-000.parquet").to_pylist()
    assert [r["episode_index"] for r in eps] == list(range(n))
    start = 0
    for row, e in zip(eps, episodes):
        assert row["length"] == e.num_steps and row["tasks"] == [task]
        assert (row["dataset_from_index"], row["dataset_to_index"]) == (start, start + e.num_steps)
        assert (row["data/chunk_index"], row["data/file_index"]) == (0, 0)
        rows = expected["episode_index"] == row["episode_index"]
        assert np.flatnonzero(rows).tolist() == list(range(start, start + e.num_steps))
        for key in declared:
            got = {s: row[f"stats/{key}/{s}"] for s in STAT_KEYS}
            _assert_stats(got, _numpy_stats(expected[key][rows]), f"episode {row['episode_index']} {key}")
        start += e.num_steps

    # meta/stats.json: numpy over every frame.
    stats = json.loads((out / "meta/stats.json").read_text())
    assert set(stats) == set(feats)
    for key, values in expected.items():
        _assert_stats(stats[key], _numpy_stats(values), key)

    # meta/tasks.parquet: index = the task string (as pandas writes it), column task_index.
    tasks = pq.read_table(out / "meta/tasks.parquet")
    pandas_meta = json.loads(tasks.schema.metadata[b"pandas"])
    (index_column,) = pandas_meta["index_columns"]
    assert tasks.column(index_column).to_pylist() == [task] and tasks.column("task_index").to_pylist() == [0]
    sources = json.loads((out / "meta/teleop_sources.json").read_text())
    assert [s["seed"] for s in sources["episodes"]] == [e.seed for e in episodes]
    return info, data, eps


def test_lerobot_export_of_state_demos_matches_the_episode_files(pick_place_demos, tmp_path, capsys):
    out = tmp_path / "lerobot"
    code, stdout, stderr = _export(capsys, pick_place_demos, out)
    assert code == 0, stderr
    episodes = [read_episode(p) for p in episode_files(pick_place_demos)]
    total = sum(e.num_steps for e in episodes)
    assert f"exported 6 pick-place-v3 episodes ({total} frames)" in stdout and "videos: none" in stdout
    info, _, _ = _check_layout(out, episodes, "pick-place-v3")
    assert info["video_path"] is None and not (out / "videos").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["lerobot"]  # no temporary folder left
    try:
        import pandas  # LeRobot reads tasks.parquet with pandas: the task string must come back as the index
    except ImportError:
        return
    tasks = pandas.read_parquet(out / "meta/tasks.parquet")
    assert list(tasks.index) == ["pick-place-v3"] and int(tasks.loc["pick-place-v3"].task_index) == 0


def test_lerobot_export_with_images_writes_one_video_per_camera(image_demos, tmp_path):
    from teleop.datasets.lerobot import export_lerobot
    from teleop.video import read_video

    out = tmp_path / "lerobot"
    result = export_lerobot([image_demos], out)
    assert result.video_keys == ["observation.images.corner2"] and result.episodes == 2
    episodes = [read_episode(p, images=True) for p in episode_files(image_demos)]
    info, data, eps = _check_layout(out, episodes, "pick-place-v3")
    key = "observation.images.corner2"
    feature = info["features"][key]
    assert feature["dtype"] == "video" and feature["shape"] == [32, 32, 3]
    assert feature["names"] == ["height", "width", "channels"]
    assert feature["info"]["video.fps"] == FPS and feature["info"]["video.codec"] == "h264"
    assert feature["info"]["video.height"] == 32 and feature["info"]["has_audio"] is False
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert key not in data.column_names

    frames = np.concatenate([e.images["corner2"] for e in episodes])
    video = read_video(out / f"videos/{key}/chunk-000/file-000.mp4")
    assert video.shape == frames.shape == (21, 32, 32, 3)
    assert np.abs(video.astype(float) - frames).mean() < 8  # H.264 is lossy; the same pictures in order
    start = 0
    for row, e in zip(eps, episodes):
        assert (row[f"videos/{key}/chunk_index"], row[f"videos/{key}/file_index"]) == (0, 0)
        assert row[f"videos/{key}/from_timestamp"] == pytest.approx(start / FPS)
        assert row[f"videos/{key}/to_timestamp"] == pytest.approx((start + e.num_steps) / FPS)
        _assert_image_stats({s: row[f"stats/{key}/{s}"] for s in STAT_KEYS}, e.images["corner2"])
        start += e.num_steps
    _assert_image_stats(json.loads((out / "meta/stats.json").read_text())[key], frames)


def _assert_image_stats(actual, frames):
    """Per channel over every pixel, scaled to [0, 1], shape (3, 1, 1); count = frames."""
    pixels = frames.reshape(-1, 3).astype(np.float64) / 255
    expected = {"min": pixels.min(0), "max": pixels.max(0), "mean": pixels.mean(0), "std": pixels.std(0)}
    expected.update({k: np.quantile(pixels, q, axis=0) for k, q in QUANTILES.items()})
    assert set(actual) == STAT_KEYS and actual["count"] == [len(frames)]
    for name, value in expected.items():
        assert np.asarray(actual[name]).shape == (3, 1, 1), name
        np.testing.assert_allclose(np.asarray(actual[name]).reshape(3), value, rtol=1e-9, atol=1e-12, err_msg=name)


def test_lerobot_export_refuses_bad_input_and_writes_nothing(pick_place_demos, tmp_path, capsys):
    from devices.scripted import ScriptedExpert
    from teleop.collect import record_headless

    def refused(*args, says):
        code, _, stderr = _export(capsys, *args)
        assert code == 2 and says in stderr, stderr
        lines = stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), stderr
        return stderr

    out = tmp_path / "out"
    (tmp_path / "empty").mkdir()
    refused(tmp_path / "empty", out, says="holds no episode files")

    mixed = tmp_path / "mixed"
    (mixed / "pick").mkdir(parents=True)
    shutil.copy(episode_files(pick_place_demos)[0], mixed / "pick" / "episode_000000.hdf5")
    record_headless(ScriptedExpert("push-v3"), task="push-v3", episodes=1, out=mixed / "push", seed=5,
                    keep_failures=True, max_steps=5, progress=False)
    refused(mixed, out, says="--task")

    (tmp_path / "a_file").write_text("not a folder")
    refused(pick_place_demos, tmp_path / "a_file" / "out", says="cannot write")
    refused(pick_place_demos, tmp_path / "a_file", says="already exists")
    refused(pick_place_demos, tmp_path / "x.hdf5", says="output folder")
    refused(pick_place_demos, pick_place_demos, out, says="same seed")  # the same episodes twice
    refused("--valid-fraction", "0.2", pick_place_demos, out, says="robomimic only")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "empty", "mixed"]  # no out, no temporary

    code, stdout, stderr = _export(capsys, "--task", "push-v3", mixed, out)
    assert code == 0 and "exported 1 push-v3 episodes (5 frames)" in stdout, stderr
    assert json.loads((out / "meta/info.json").read_text())["total_frames"] == 5


def test_a_failure_while_writing_leaves_nothing_under_the_final_name(image_demos, tmp_path, monkeypatch):
    from teleop.datasets import lerobot
    from teleop.errors import ToolkitError

    def disk_full(self, frames):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lerobot._VideoFile, "append", disk_full)
    out = tmp_path / "out"
    with pytest.raises(ToolkitError, match="cannot write .*No space left on device"):
        lerobot.export_lerobot([image_demos], out)
    assert list(tmp_path.iterdir()) == []


def test_corrections_export_an_intervention_column(pick_place_demos, tmp_path, capsys):
    """Demos and correction episodes together: `intervention` is the person's steps of a correction and
    every step of a demo (LeRobot's DAgger recordings carry the same flag)."""
    from teleop.episode import write_episode

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    files = episode_files(pick_place_demos)
    shutil.copy(files[0], mixed / "episode_000000.hdf5")
    correction = read_episode(files[1])
    correction.intervention = np.arange(correction.num_steps) >= 20
    correction.policy_action = correction.action.copy()
    write_episode(mixed / "episode_000001.hdf5", correction)
    out = tmp_path / "lerobot"
    code, _, stderr = _export(capsys, mixed, out)
    assert code == 0, stderr
    info = json.loads((out / "meta/info.json").read_text())
    assert info["features"]["intervention"] == {"dtype": "bool", "shape": [1], "names": None}
    table = pq.read_table(out / "data/chunk-000/file-000.parquet")
    flags = np.asarray(table.column("intervention").to_pylist())
    first = read_episode(files[0]).num_steps
    assert flags[:first].all() and np.array_equal(flags[first:], correction.intervention)
