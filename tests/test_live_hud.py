"""What the live window shows, checked on the pictures it draws (dummy video driver, real MuJoCo rendering).

Each test names the problem a new user met that it guards against. The pictures land in
tests/artifacts/ (gitignored) for a person to look at.
"""

from pathlib import Path

import numpy as np
import pytest

from teleop.live.hud import HudState, badges, hud_lines, prompt
from teleop.live.painter import MARGIN, PANEL_WIDTH, HudPainter, Layout, fit_text

ARTIFACTS = Path(__file__).parent / "artifacts"
SCENE_COLOUR = (10, 200, 30)


@pytest.fixture(scope="module")
def pygame_fonts():
    import pygame

    pygame.display.init()
    pygame.font.init()
    pygame.display.set_mode((64, 64))
    yield pygame
    pygame.display.quit()


def state(**changes) -> HudState:
    base = dict(task="pick-place-v3", episode=3, episodes=20, phase="recording", steps=240, control_hz=80.0,
                device="keyboard", device_status="connected", seed=1002, spawn_index=2, max_steps=2000, speed=0.5,
                hand_to_object=0.032, to_goal=0.12, view="operator", keys={"keep": "K", "discard": "Bksp",
                                                                          "reset": "N"})
    base.update(changes)
    return HudState(**base)


STATES = {
    "ready": state(phase="idle", steps=0),
    "recording": state(),
    "success": state(success=True, grasped=True),
    "paused": state(phase="paused"),
    "review, success": state(phase="review", success=True, end_reason="success"),
    "review, failed": state(phase="review", end_reason="step limit", keepable=False),
    "review, failed, keepable": state(phase="review", end_reason="step limit"),
    "device unplugged": state(device_lost=True, device_status="unplugged (plug it back in to resume)"),
    "notice": state(phase="idle", notice="not kept: the episode failed (failures are kept only with "
                                         "--keep-failures)"),
    "break": state(phase="idle", reminder="Break time: 25 min recorded. P: pause for a break"),
    "practice": state(practice=True, progress=("PRACTICE: nothing is saved",)),
}


def test_badges_and_prompts_stay_on_the_border_and_leave_the_middle_of_the_scene_clear(pygame_fonts):
    """Seen: PAUSED, SUCCESS and the review banner covered the middle, where the gripper and object are."""
    pg = pygame_fonts
    layout = Layout.default(560, inset=True, help_lines=6)
    painter = HudPainter(layout, view_name="operator", inset_name="gripperPOV", help_lines=("W/S: up/down",))
    painter.scene[:] = SCENE_COLOUR
    side = layout.scene
    middle = (slice(int(0.15 * side), int(0.85 * side)), slice(int(0.1 * side), int(0.9 * side)))
    sheet = []
    for name, hud in STATES.items():
        frame = painter.new_frame()
        painter.compose(frame, hud, 40.0)
        pixels = pg.surfarray.array3d(frame).swapaxes(0, 1)  # (height, width, 3)
        scene = pixels[:side, :side]
        assert np.all(scene[middle] == SCENE_COLOUR), f"{name}: something is drawn over the middle of the scene"
        assert np.any(scene != SCENE_COLOUR), f"{name}: nothing on the scene's border"
        sheet.append(pixels)
    ARTIFACTS.mkdir(exist_ok=True)
    import imageio.v3 as iio

    iio.imwrite(ARTIFACTS / "hud_states.png", np.concatenate([np.concatenate(sheet[i:i + 3], axis=1)
                                                             for i in range(0, 9, 3)], axis=0))


def test_a_scene_larger_than_the_render_size_is_rendered_small_and_scaled_up_to_fill_it(pygame_fonts):
    """Software GL's frame time grows with the pixels: the default window shows 560 px from a 400 px render."""
    pg = pygame_fonts
    layout = Layout.default(560, inset=True, help_lines=6)
    painter = HudPainter(layout, view_name="operator", inset_name="gripperPOV", help_lines=(), render_size=400)
    assert painter.render_side == 400 and painter.scene.shape == (400, 400, 3)
    painter.scene[:, :200] = (200, 0, 0)  # left half red, right half blue
    painter.scene[:, 200:] = (0, 0, 200)
    frame = painter.new_frame()
    painter.compose(frame, state(), 40.0)
    pixels = pg.surfarray.array3d(frame).swapaxes(0, 1)
    side = layout.scene
    assert side > 400
    row = pixels[side // 2]
    assert tuple(row[int(0.45 * side)]) == (200, 0, 0) and tuple(row[int(0.55 * side)]) == (0, 0, 200)
    assert tuple(row[side - 3]) == (0, 0, 200)  # the picture reaches the scene's right edge
    small = HudPainter(Layout.default(300, inset=False, help_lines=6), view_name="operator", inset_name=None,
                       help_lines=(), render_size=400)
    assert small.render_side == small.layout.scene  # a scene at or under the render size is drawn 1:1


def test_practice_never_says_rec():
    """Practice records nothing, so its running badge is not the red REC of a recording."""
    texts = [text for _, text, _ in badges(STATES["practice"])]
    assert "PRACTICE" in texts and not any(t.startswith("REC") for t in texts)
    assert any(t.startswith("REC") for _, t, _ in badges(STATES["recording"]))


def test_review_of_a_failure_says_failed_and_how_to_keep_it():
    """Seen: at the step limit the review did not say FAILED, and K kept the failure."""
    failed = STATES["review, failed"]
    assert ("top-right", "FAILED: step limit") in [(corner, text) for corner, text, _ in badges(failed)]
    text = prompt(failed)[0]
    assert "not kept without --keep-failures" in text and "Bksp: retry this spawn" in text
    assert "keep anyway" in prompt(STATES["review, failed, keepable"])[0]
    assert "keep" in prompt(STATES["review, success"])[0]
    assert "SUCCESS" in [text for _, text, _ in badges(STATES["review, success"])]


def test_the_hud_shows_speed_distances_the_goal_colour_and_the_view_the_keys_follow():
    texts = [text for text, _, _ in hud_lines(STATES["success"])]
    assert "speed 0.5x real time  ([/] to change)" in texts
    assert "hand-object 3.2 cm   to goal 12.0 cm   grasped" in texts
    assert "goal: the magenta ball" in texts
    assert "keys move the arm in the main view (operator)" in texts
    assert "step 240 of 2000 (3.0 s simulated)" in texts
    # reach's puck is not the task's: only the distance that decides success
    reach = [text for text, _, _ in hud_lines(state(task="reach-v3", object_used=False))]
    assert "to goal 12.0 cm" in reach and not any("hand-object" in text for text in reach)
    assert ("bottom-right", "speed 0.5x") in [(corner, text) for corner, text, _ in badges(STATES["recording"])]


def test_every_line_fits_the_panel_and_long_ones_are_shortened_not_cut(pygame_fonts):
    """Seen: the status line was cut at the window's edge ("READY - move or press record to s")."""
    from devices.actions import help_lines
    from devices.keyboard import bindings_help

    pg = pygame_fonts
    small = pg.font.Font(None, 19)
    room = PANEL_WIDTH - 2 * MARGIN
    pad_help = help_lines({"+x": "Left stick", "-x": "Left stick", "+y": "Left stick", "-y": "Left stick",
                           "+z": "Right stick", "-z": "Right stick", "gripper_toggle": "Cross",
                           "gripper_open": "L2", "gripper_close": "R2", "toggle_record": "Options", "keep": "R1",
                           "discard": "Share", "reset": "Triangle", "pause": "Square", "slower": "D-pad left",
                           "faster": "D-pad right", "mark_success": "Circle", "precision": "L1"})
    for text in bindings_help() + [t for t, _, large in hud_lines(STATES["success"]) if not large]:
        assert fit_text(small, text, room) == text, f"{text!r} does not fit the {room}-pixel panel"
    for text in pad_help:
        assert small.size(fit_text(small, text, room))[0] <= room
    long = "gamepad: connected: Sony Interactive Entertainment Wireless Controller (playstation layout)"
    shortened = fit_text(small, long, room)
    assert shortened.endswith("...") and small.size(shortened)[0] <= room


def test_the_scene_fills_the_window_and_the_window_can_be_resized():
    """Seen: a 400x400 scene in a 740x560 window with a large empty area."""
    first = Layout.default(560, inset=True, help_lines=6)
    assert first.scene == first.height and first.width == first.scene + PANEL_WIDTH
    assert first.inset >= 150 and first.inset_y + first.inset < first.help_y
    bigger = Layout.fit(1400, 950, inset=True, help_lines=6)
    assert bigger.scene == 950 and bigger.inset > first.inset
    narrow = Layout.fit(700, 900, inset=False, help_lines=6)
    assert narrow.scene == 700 - PANEL_WIDTH and narrow.inset == 0


# ------------------------------------------------------------------ the scene itself (MuJoCo)

@pytest.fixture(scope="module")
def scene_env():
    from teleop.env import TaskEnv
    from teleop.spawn import SpawnStream

    envs = {}

    def make(task, seed=4):
        env = envs.get(task) or envs.setdefault(task, TaskEnv(task))
        env.reset(SpawnStream(env.spawn_low, env.spawn_high, strategy="random", base_seed=seed)[0])
        return env

    yield make
    for env in envs.values():
        env.close()


def render_with_pose(env, camera="operator", size=400):
    from teleop.live.hud import Pose
    from teleop.live.render import SceneView

    view = SceneView(env, size, hidden_sites=env.target_site_names())
    data = env.data
    view.set_pose(Pose(data.qpos.copy(), data.mocap_pos.copy(), data.mocap_quat.copy(), env.goal_pos))
    image = view.render(camera).copy()
    return view, image


def pixel_at(view, camera, point, size=400):
    from teleop.cameras import project

    x, y = project(view.frame(camera), point, size, size)
    return int(round(y)), int(round(x))


def near_colour(image, yx, rgb, radius=3, tolerance=60):
    y, x = yx
    patch = image[max(0, y - radius):y + radius + 1, max(0, x - radius):x + radius + 1].reshape(-1, 3).astype(int)
    return bool(np.any(np.abs(patch - np.array(rgb)).max(axis=1) < tolerance))


def test_reach_goal_is_magenta_and_the_unused_puck_stays_red(scene_env):
    """Seen: in reach-v3 the goal and the unused puck were both red; nothing said which was the goal."""
    env = scene_env("reach-v3")
    view, image = render_with_pose(env)
    try:
        assert near_colour(image, pixel_at(view, "operator", env.goal_pos), (255, 51, 230))
        puck = pixel_at(view, "operator", env.object_pos + [0, 0, 0.01])
        assert near_colour(image, puck, (150, 20, 20), tolerance=90) and not near_colour(image, puck, (255, 51, 230))
        ARTIFACTS.mkdir(exist_ok=True)
        import imageio.v3 as iio

        iio.imwrite(ARTIFACTS / "reach_goal_colour.png", image)
    finally:
        view.close()


def test_a_yellow_spot_marks_where_the_gripper_would_land(scene_env):
    """Seen: depth along the line of sight could not be judged; the fingers closed in front of the puck."""
    from devices.base import Command
    from teleop.mapping import ActionMapper, view_basis

    env = scene_env("pick-place-v3")
    view, image = render_with_pose(env)
    try:
        below = view.surface_below(view.gripper)
        assert below == pytest.approx(0.0, abs=1e-3)  # above the bare table
        spot = np.array([*view.gripper[:2], below])
        assert near_colour(image, pixel_at(view, "operator", spot), (255, 217, 0))
    finally:
        view.close()
    # Bring the gripper over the puck: the spot lands on the puck's top, 4 cm above the table.
    mapper = ActionMapper("keyboard", "view")
    mapper.basis = view_basis(env, "operator")
    for _ in range(200):
        gap = mapper.stop._to_view @ (env.object_pos + [0, 0, 0.08] - env.hand_pos)
        env.step(mapper(Command(tuple(np.clip(gap * 30, -1, 1))), env.arm_state()))
    view, image = render_with_pose(env)
    try:
        assert np.linalg.norm(view.gripper[:2] - env.object_pos[:2]) < 0.01
        assert view.surface_below(view.gripper) == pytest.approx(0.04, abs=0.005)
        import imageio.v3 as iio

        iio.imwrite(ARTIFACTS / "gripper_marker_over_puck.png", image)
    finally:
        view.close()


def test_second_view_arrows_point_where_the_keys_move_the_gripper_in_that_picture(scene_env):
    """Seen: in the gripperPOV inset the motions did not follow the keys, and nothing said so."""
    from test_view_mapping import screen_motion

    from teleop.live.render import key_arrows
    from teleop.mapping import view_basis

    env = scene_env("pick-place-v3")
    basis = view_basis(env, "operator")
    view, _ = render_with_pose(env, camera="gripperPOV", size=200)
    try:
        arrows = dict(key_arrows(view, "gripperPOV", basis, ("D", "W"), 200))
    finally:
        view.close()

    def agrees(arrow, motion):
        a, m = np.asarray(arrow, float), np.asarray(motion, float)
        return a @ m / (np.linalg.norm(a) * np.linalg.norm(m)) > 0.9

    # The operator presses D / W (keys of the main view): the world slides under the gripper camera.
    mapper_basis = view_basis(env, "operator")
    d_motion = screen_motion(env, "gripperPOV", tuple(np.linalg.solve(view_basis(env, "gripperPOV"),
                                                                      mapper_basis[:, 0])))
    w_motion = screen_motion(env, "gripperPOV", tuple(np.linalg.solve(view_basis(env, "gripperPOV"),
                                                                      mapper_basis[:, 1])))
    assert agrees(arrows["D"], d_motion) and agrees(arrows["W"], w_motion)


@pytest.mark.parametrize("task", ["pick-place-v3", "door-open-v3"])
def test_views_leave_out_only_what_they_cannot_see(scene_env, task):
    """Frustum culling: the pictures are pixel-identical with and without it, and the wrist camera
    leaves out the arm it hangs from (most of the robot's triangles) in ordinary poses."""
    from teleop.live.hud import Pose
    from teleop.live.render import SceneView

    env = scene_env(task)
    view = SceneView(env, 160, inset_size=96, hidden_sites=env.target_site_names())
    everything = np.array([], dtype=int)
    rng = np.random.default_rng(1)
    culled_in_wrist_view = []
    try:
        # a few poses, the last far out at the workspace edge, where the arm's base enters the wrist view
        for pose_index, target in enumerate([None, (0.1, 0.6, 0.15), (-0.3, 0.5, 0.3), (-0.5, 0.4, 0.5)]):
            if target is not None:
                for _ in range(60):
                    hand = env.data.mocap_pos[0]
                    env.step(np.r_[np.clip((np.asarray(target) - hand) * 100, -1, 1), rng.uniform(-1, 1)])
            data = env.data
            view.set_pose(Pose(data.qpos.copy(), data.mocap_pos.copy(), data.mocap_quat.copy(), env.goal_pos))
            for camera, inset in (("operator", False), ("gripperPOV", True), ("corner", False)):
                culled = view.render(camera, inset=inset).copy()
                n_culled = view.culled
                cullable, view._cullable = view._cullable, everything
                try:
                    full = view.render(camera, inset=inset).copy()
                finally:
                    view._cullable = cullable
                assert np.array_equal(culled, full), f"{task} pose {pose_index} {camera}: culling changed the picture"
                if camera == "gripperPOV":
                    culled_in_wrist_view.append(n_culled)
    finally:
        view.close()
    assert max(culled_in_wrist_view) >= 8, culled_in_wrist_view
