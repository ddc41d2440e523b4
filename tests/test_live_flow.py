"""The live window's pure parts: episode flow, pacing, device settings."""

import pytest

from devices.base import Event
from teleop.live.flow import EpisodeFlow, Phase
from teleop.live.timing import DeadlineScheduler


def test_first_motion_starts_and_success_ends_after_the_hold():
    flow = EpisodeFlow(2, hold_steps=3)
    assert flow.decide([], moved=False).step is False and flow.phase == Phase.IDLE
    first = flow.decide([], moved=True)
    assert first.start and first.step and flow.phase == Phase.RECORDING
    flow.stepped(success=False, truncated=False)
    flow.stepped(success=True, truncated=False)  # first success at step 2
    for _ in range(2):
        flow.stepped(success=True, truncated=False)
    assert flow.phase == Phase.RECORDING  # hold not over yet: 4 < 2 + 3
    flow.stepped(success=True, truncated=False)
    assert flow.phase == Phase.REVIEW and flow.ended.success and flow.ended.steps == 5
    assert flow.decide([], moved=True).step is False  # review: motion does nothing
    kept = flow.decide([Event.KEEP], moved=False)
    assert kept.keep and kept.reset == "new" and flow.kept == 1 and flow.phase == Phase.IDLE


def test_discard_rerecords_the_same_spawn_and_reset_draws_a_new_one():
    flow = EpisodeFlow(5, hold_steps=0)
    flow.decide([Event.TOGGLE_RECORD], moved=False)
    assert flow.decide([Event.DISCARD], moved=False).reset == "same"
    flow.decide([Event.TOGGLE_RECORD], moved=False)
    assert flow.decide([Event.TOGGLE_RECORD], moved=False).step is False  # operator ended it
    assert flow.phase == Phase.REVIEW and not flow.ended.success
    assert flow.decide([Event.DISCARD], moved=False) .reset == "same" and flow.kept == 0
    assert flow.decide([Event.RESET], moved=False).reset == "new"


def test_pause_freezes_and_resumes_where_it_was():
    flow = EpisodeFlow(1, hold_steps=0)
    flow.decide([], moved=True)
    assert flow.decide([Event.PAUSE], moved=True).step is False and flow.phase == Phase.PAUSED
    assert flow.decide([], moved=True).step is False
    flow.decide([Event.PAUSE], moved=False)
    assert flow.phase == Phase.RECORDING and flow.decide([], moved=False).step


def test_device_lost_freezes_until_the_device_is_back():
    flow = EpisodeFlow(1, hold_steps=0)
    flow.decide([], moved=True)
    assert flow.decide([Event.DEVICE_LOST], moved=False, device_present=False).step is False
    assert flow.device_lost and flow.phase == Phase.RECORDING
    assert flow.decide([], moved=True, device_present=False).step is False
    assert flow.decide([], moved=True, device_present=True).step is False  # the reconnect tick
    assert not flow.device_lost and flow.decide([], moved=True).step


def test_keeping_the_last_episode_quits_and_quit_drops_nothing_kept():
    flow = EpisodeFlow(1, hold_steps=0)
    flow.decide([Event.TOGGLE_RECORD], moved=False)
    last = flow.decide([Event.KEEP], moved=False)  # KEEP while recording: end and keep at once
    assert last.keep and last.quit and flow.phase == Phase.DONE
    other = EpisodeFlow(3, hold_steps=0)
    assert other.decide([Event.QUIT], moved=False).quit and not other.decide([], moved=False).keep


def test_scripted_auto_mode_keeps_successes_and_replaces_failures():
    flow = EpisodeFlow(3, hold_steps=0, auto=True)
    assert flow.decide([], moved=False).start
    flow.stepped(success=False, truncated=True)
    assert flow.decide([], moved=False).reset == "new" and flow.kept == 0
    flow.decide([], moved=False)
    flow.stepped(success=True, truncated=False)
    assert flow.decide([], moved=False).keep


def test_scheduler_skips_and_counts_missed_deadlines_without_bunching():
    now = [0.0]
    scheduler = DeadlineScheduler(0.01, spin_s=0.0, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    deadline, woke = scheduler.wait()
    assert deadline == pytest.approx(0.01) and woke == pytest.approx(0.01)
    now[0] = 0.0451  # the loop stalled for 3.5 periods
    deadline, _ = scheduler.wait()
    # 0.02 and 0.03 are skipped as missed; 0.04 passed less than a period ago: served late, not skipped.
    assert scheduler.missed == 2 and deadline == pytest.approx(0.04)
    assert scheduler.wait()[0] == pytest.approx(0.05) and scheduler.missed == 2


def test_settings_flags_are_saved_per_device_and_reloaded(tmp_path, monkeypatch):
    from teleop.live.device_settings import SettingsError, resolve, settings_path

    monkeypatch.setenv("TELEOP_CONFIG_DIR", str(tmp_path))
    settings, saved = resolve("spacemouse", sensitivity=0.5, invert="y,x")
    assert saved == settings_path() == tmp_path / "devices.toml"
    assert (settings.sensitivity, settings.invert_x, settings.invert_y, settings.invert_z) == (0.5, True, True, False)
    again, saved = resolve("spacemouse")
    assert again == settings and saved is None
    assert resolve("keyboard")[0].sensitivity == 1.0  # other devices keep their own
    (tmp_path / "devices.toml").write_text("[keyboard]\nsensitivity = 'fast'\n")
    with pytest.raises(SettingsError, match="devices.toml.*keyboard.*must be a number"):
        resolve("keyboard")
    (tmp_path / "devices.toml").write_text("[keyboard\n")
    with pytest.raises(SettingsError, match="not valid TOML.*delete"):
        resolve("keyboard")
    (tmp_path / "devices.toml").unlink()
    with pytest.raises(SettingsError, match="unknown axis 'w'"):
        resolve("gamepad", invert="w", save=False)


def test_inverted_sensitive_mapping_moves_the_other_way_and_scaled():
    import numpy as np

    from devices.base import Command
    from teleop.mapping import ActionMapper, ControlSettings

    basis = np.eye(3)
    plain = ActionMapper("keyboard", "view", basis)(Command((0.5, 0.5, 0.0)))
    tuned = ActionMapper("keyboard", "view", basis, ControlSettings(sensitivity=0.5, invert_x=True))(
        Command((0.5, 0.5, 0.0)))
    assert plain[:2].tolist() == [0.5, 0.5] and tuned[:2].tolist() == [-0.25, 0.25]


def test_every_unkept_reset_says_why_and_sessions_drop_failed_keeps():
    flow = EpisodeFlow(2, hold_steps=0)
    flow.decide([Event.TOGGLE_RECORD], moved=False)
    assert flow.decide([Event.DISCARD], moved=False).dropped == "discarded"
    assert flow.decide([Event.RESET], moved=False).dropped == "skipped"
    flow.decide([Event.TOGGLE_RECORD], moved=False)
    kept = flow.decide([Event.KEEP], moved=False)  # a plain recording keeps what the operator keeps
    assert kept.keep and not kept.dropped and flow.kept == 1

    session = EpisodeFlow(2, hold_steps=0, keep_failures=False)
    session.decide([Event.TOGGLE_RECORD], moved=False)
    refused = session.decide([Event.KEEP], moved=False)  # no success: not written, logged as failed
    assert not refused.keep and refused.dropped == "failed" and refused.reset == "new" and session.kept == 0
    session.decide([], moved=True)
    session.stepped(success=True, truncated=False)
    assert session.phase == Phase.REVIEW
    assert session.decide([Event.KEEP], moved=False).keep and session.kept == 1


def test_step_while_paused_runs_one_step_per_press_and_can_start_the_episode():
    flow = EpisodeFlow(1, hold_steps=0)
    flow.decide([Event.PAUSE], moved=False)  # paused before anything was recorded
    first = flow.decide([Event.STEP], moved=False)
    assert first.start and first.step and flow.phase == Phase.PAUSED  # the recording starts with that step
    flow.stepped(success=False, truncated=False)
    assert flow.decide([], moved=True).step is False  # motion alone does nothing while paused
    again = flow.decide([Event.STEP], moved=False)
    assert again.step and not again.start and flow.phase == Phase.PAUSED
    flow.stepped(success=False, truncated=False)
    flow.decide([Event.PAUSE], moved=False)
    assert flow.phase == Phase.RECORDING and flow.steps == 2
    recording = EpisodeFlow(1, hold_steps=0)
    recording.decide([], moved=True)
    recording.decide([Event.PAUSE], moved=False)
    assert recording.decide([Event.STEP], moved=False).step and recording.phase == Phase.PAUSED


def test_a_failure_is_not_kept_by_keep_or_enter_unless_failures_are_kept():
    for event in (Event.KEEP, Event.TOGGLE_RECORD):
        flow = EpisodeFlow(1, hold_steps=0, keep_failures=False)
        flow.decide([], moved=True)
        flow.stepped(success=False, truncated=True)  # the step limit
        assert flow.phase == Phase.REVIEW and flow.ended.reason == "step limit" and not flow.keepable
        refused = flow.decide([event], moved=False)
        assert not refused.keep and not refused.quit and refused.dropped == "failed" and flow.kept == 0
    kept = EpisodeFlow(1, hold_steps=0, keep_failures=True)
    kept.decide([], moved=True)
    kept.stepped(success=False, truncated=True)
    assert kept.keepable and kept.decide([Event.KEEP], moved=False).keep
    marked = EpisodeFlow(1, hold_steps=0, keep_failures=False)
    marked.decide([], moved=True)
    marked.decide([Event.MARK_SUCCESS], moved=False)  # the operator's word counts as success
    assert marked.keepable and marked.decide([Event.KEEP], moved=False).keep


def test_speed_steps_through_the_range_and_stays_inside_it():
    from teleop.live.pace import SPEED_RANGE, next_speed

    assert next_speed(0.5, faster=True) == 0.7 and next_speed(0.5, faster=False) == 0.35
    assert next_speed(SPEED_RANGE[1], faster=True) == SPEED_RANGE[1]
    assert next_speed(SPEED_RANGE[0], faster=False) == SPEED_RANGE[0]
    assert next_speed(0.42, faster=True) == 0.5  # a value set by --speed joins the ladder


def test_timing_line_without_any_measurement_says_so_instead_of_nan():
    from teleop.live.timing import LoopStats

    line = LoopStats().format()
    assert "nan" not in line and "no input reached the simulator" in line


def test_scheduler_period_can_change_on_the_fly():
    now = [0.0]

    def sleep(seconds):  # a fake clock: sleeping moves it on (the spin's sleep(0) by a tick)
        now[0] += max(seconds, 1e-4)

    scheduler = DeadlineScheduler(0.0125, clock=lambda: now[0], sleep=sleep)
    scheduler.wait()
    scheduler.set_period(0.025)  # half speed
    start = now[0]
    deadline, _ = scheduler.wait()
    assert deadline == pytest.approx(start + 0.025)
