"""Recorded datasets for act/ tests (besides tests/conftest.py's pick_place_demos)."""

import pytest


@pytest.fixture(scope="session")
def fixed_spawn_demos(tmp_path_factory):
    """Three pick-place-v3 episodes that all start from one spawn (the broken setup)."""
    from devices.scripted import ScriptedExpert
    from teleop.collect import record_headless

    out = tmp_path_factory.mktemp("fixed_spawn")
    record_headless(ScriptedExpert("pick-place-v3"), task="pick-place-v3", episodes=3, out=out, seed=7,
                    spawn="fixed", progress=False)
    return out


@pytest.fixture(scope="session")
def image_demos(tmp_path_factory):
    """Two short pick-place-v3 episodes with 32x32 corner2 images (failures kept: 12 steps each)."""
    from devices.scripted import ScriptedExpert
    from teleop.collect import record_headless

    out = tmp_path_factory.mktemp("images")
    record_headless(ScriptedExpert("pick-place-v3"), task="pick-place-v3", episodes=2, out=out, seed=300,
                    cameras=("corner2",), image_size=32, keep_failures=True, max_steps=12, progress=False)
    return out


@pytest.fixture(scope="session")
def push_demo(tmp_path_factory):
    from devices.scripted import ScriptedExpert
    from teleop.collect import record_headless

    out = tmp_path_factory.mktemp("push")
    record_headless(ScriptedExpert("push-v3"), task="push-v3", episodes=1, out=out, seed=0,
                    keep_failures=True, max_steps=20, progress=False)
    return out


@pytest.fixture(scope="session")
def long_demo_data(tmp_path_factory):
    """pick-place-v3: one 520-step episode (a slow demo, recorded with a longer step limit: the scripted expert
    succeeds, then holds until the limit) and two short ones (about 70 steps)."""
    from devices.scripted import ScriptedExpert
    from teleop.collect import record_headless

    out = tmp_path_factory.mktemp("long_demo")
    record_headless(ScriptedExpert("pick-place-v3"), task="pick-place-v3", episodes=1, out=out, seed=900,
                    max_steps=520, hold_steps=10_000, progress=False)
    record_headless(ScriptedExpert("pick-place-v3"), task="pick-place-v3", episodes=2, out=out, seed=910,
                    progress=False)
    return out
