"""`teleop render`: images rendered from recorded MuJoCo states equal those recorded live, bit for bit.

Two scripted pick-place-v3 episodes are recorded with `teleop record --cameras corner2,gripperPOV`;
copies without their images get them back from `teleop render` and are compared with the originals.
"""

import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace

import h5py
import numpy as np
import pytest

from cli_helpers import ROOT, run_cli
from teleop.episode import episode_files, read_episode, write_episode

CAMERAS = ("corner2", "gripperPOV")
SIZE = 96


@pytest.fixture(scope="module")
def live(tmp_path_factory):
    """Two episodes recorded live with images, as a user records them."""
    out = tmp_path_factory.mktemp("render") / "live"
    res = run_cli("teleop.cli", "record", "--device", "scripted", "--task", "pick-place-v3", "--episodes", "2",
                  "--cameras", ",".join(CAMERAS), "--image-size", str(SIZE), "--out", str(out), "--quiet")
    assert res.returncode == 0, res.stderr
    assert len(episode_files(out)) == 2
    return out


@pytest.fixture(scope="module")
def stripped(live, tmp_path_factory):
    """The live episodes rewritten without their images (a state-only recording)."""
    out = tmp_path_factory.mktemp("render") / "stripped"
    out.mkdir()
    for path in episode_files(live):
        episode = read_episode(path)
        write_episode(out / path.name, replace(episode, images={}, attrs={**episode.attrs, "cameras": ""}))
    return out


def _copy(folder, target):
    shutil.copytree(folder, target)
    return target


def _snapshot(folder):
    """Every entry of a folder (hidden ones too) and a hash of its bytes."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


def _contents(path):
    """Every attr (value and stored type) and every dataset but the images (values, type, layout)."""
    attrs, datasets = {}, {}
    with h5py.File(path, "r") as f:
        for key in f.attrs:
            attrs[key] = (f.attrs[key], f.attrs.get_id(key).dtype, f.attrs.get_id(key).shape)

        def visit(name, obj):
            if isinstance(obj, h5py.Dataset) and not name.startswith("observations/images/"):
                datasets[name] = (obj[()], obj.dtype, obj.shape, obj.chunks, obj.compression)

        f.visititems(visit)
    return attrs, datasets


def _assert_same_except_images(before, after, *, cameras):
    attrs0, data0 = before
    attrs1, data1 = after
    assert set(data0) == set(data1)
    for name, (value, *layout) in data0.items():
        assert np.array_equal(value, data1[name][0]), name
        assert layout == list(data1[name][1:]), name
    assert set(attrs1) == set(attrs0) | {"cameras"}
    for key, (value, dtype, shape) in attrs0.items():
        if key == "cameras":
            continue
        assert np.array_equal(value, attrs1[key][0]), key
        assert (dtype, shape) == attrs1[key][1:], key
    assert attrs1["cameras"][0] == cameras


def _assert_images_equal_live(folder, live, cameras=CAMERAS):
    for path, original in zip(episode_files(folder), episode_files(live), strict=True):
        rendered = read_episode(path, images=list(cameras)).images
        recorded = read_episode(original, images=list(cameras)).images
        for camera in cameras:
            assert rendered[camera].shape == recorded[camera].shape
            assert np.array_equal(rendered[camera], recorded[camera]), f"{path.name} {camera}"


def test_render_equals_live_images_bit_for_bit_and_keeps_everything_else(live, stripped, tmp_path):
    data = _copy(stripped, tmp_path / "data")
    before = {p.name: _contents(p) for p in episode_files(data)}
    res = run_cli("teleop.cli", "render", str(data), "--cameras", ",".join(CAMERAS), "--image-size", str(SIZE),
                  "--jobs", "2", "--quiet")
    assert res.returncode == 0, res.stderr
    assert "rendered corner2, gripperPOV at 96x96 into 2 episodes" in res.stdout and "2 jobs" in res.stdout
    _assert_images_equal_live(data, live)
    for path in episode_files(data):
        _assert_same_except_images(before[path.name], _contents(path), cameras="corner2,gripperPOV")
    assert sorted(p.name for p in data.iterdir()) == ["episode_000000.hdf5", "episode_000001.hdf5"]  # no temporaries

    # Run again: every file already has the images; nothing is written.
    snapshot = _snapshot(data)
    res = run_cli("teleop.cli", "render", str(data), "--cameras", "gripperPOV,corner2", "--image-size", str(SIZE))
    assert res.returncode == 0, res.stderr
    assert "all 2 episodes already have gripperPOV, corner2 at 96x96: nothing to render" in res.stdout
    assert _snapshot(data) == snapshot


def test_a_killed_render_leaves_whole_files_and_a_rerun_finishes(live, stripped, tmp_path):
    data = _copy(stripped, tmp_path / "data")
    command = [sys.executable, "-m", "teleop.cli", "render", str(data), "--cameras", ",".join(CAMERAS),
               "--image-size", str(SIZE), "--jobs", "1", "--quiet"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = data / "episode_000000.hdf5"
    written = first.stat().st_mtime_ns
    deadline = time.time() + 60
    while first.stat().st_mtime_ns == written and process.poll() is None and time.time() < deadline:
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)  # as soon as the first file is replaced: mid-way through the second
    process.communicate()
    done = 0
    for path in episode_files(data):
        episode = read_episode(path, images=True)  # every file under a final name is whole
        assert sorted(episode.images) in ([], sorted(CAMERAS))
        done += bool(episode.images)
    assert done >= 1
    res = run_cli("teleop.cli", "render", str(data), "--cameras", ",".join(CAMERAS), "--image-size", str(SIZE),
                  "--quiet")
    assert res.returncode == 0, res.stderr
    if done < 2:
        assert "into 1 episode (" in res.stdout and "1 already had them" in res.stdout
    _assert_images_equal_live(data, live)
    assert not [p for p in data.iterdir() if p.name.startswith(".")]  # the killed write's temporary is replaced


def _main(capsys, *args):
    from teleop.cli import main

    code = main(["render", *map(str, args)])
    out, err = capsys.readouterr()
    return code, out, err


def test_another_size_needs_force(live, tmp_path, capsys):
    data = _copy(live, tmp_path / "data")
    snapshot = _snapshot(data)
    code, out, err = _main(capsys, data, "--cameras", "corner2", "--image-size", 64, "--quiet")
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")
    assert "96x96" in err and "--force" in err
    assert _snapshot(data) == snapshot

    before = {p.name: _contents(p) for p in episode_files(data)}
    code, out, err = _main(capsys, data, "--cameras", "corner2", "--image-size", 64, "--force", "--jobs", 1, "--quiet")
    assert code == 0, err
    for path in episode_files(data):
        episode = read_episode(path, images=True)
        assert episode.images["corner2"].shape[1:] == (64, 64, 3)
        _assert_same_except_images(before[path.name], _contents(path), cameras="corner2,gripperPOV")
    _assert_images_equal_live(data, live, cameras=("gripperPOV",))  # the other camera is carried over


@pytest.mark.parametrize("problem", ["unknown camera", "unknown camera in a worker", "size", "jobs", "empty folder", "not a folder",
                                     "damaged file"])
def test_bad_input_is_one_line_and_changes_nothing(problem, stripped, tmp_path, capsys):
    data = _copy(stripped, tmp_path / "data")
    args = [data, "--cameras", "corner2,gripperPOV", "--image-size", SIZE, "--jobs", 1, "--quiet"]
    expected = {"unknown camera": "unknown camera 'cornr2'", "unknown camera in a worker": "unknown camera 'cornr2'",
                "size": "--image-size 8", "jobs": "--jobs",
                "empty folder": "no episode files", "not a folder": "not a folder",
                "damaged file": "episode_000002.hdf5: not a readable episode file"}[problem]
    if problem.startswith("unknown camera"):
        args[2] = "corner2,cornr2"
        args[6] = 2 if problem.endswith("worker") else 1
    elif problem == "size":
        args[4] = 8
    elif problem == "jobs":
        args[6] = 0
    elif problem == "empty folder":
        (tmp_path / "empty").mkdir()
        args.insert(1, tmp_path / "empty")
    elif problem == "not a folder":
        args.insert(1, tmp_path / "missing")
    else:
        (data / "episode_000002.hdf5").write_bytes(b"not hdf5" * 100)
    snapshot = _snapshot(data)
    code, out, err = _main(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("error: ") and expected in err, err
    assert _snapshot(data) == snapshot
    assert not os.listdir(tmp_path / "empty") if problem == "empty folder" else True
