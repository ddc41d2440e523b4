"""Running a session: the scripted expert headless, or a human device through the live window.

``teleop session run PLAN --out DIR`` ends up in :func:`run_session`; the
session itself (spawn pool, seed range, resume, lock) is ``teleop/session.py``.
"""

from __future__ import annotations

from pathlib import Path

from teleop.errors import ToolkitError
from teleop.sessions.plan import load_plan
from teleop.sessions.session import Session


def run_session(plan_path: str | Path, out: str | Path, *, operator: str | None = None,
                progress: bool = True, live_options: dict | None = None) -> Session:
    """``teleop session run``: work through the plan (or resume it); writes the report when it ends.

    A human device runs through the live window (:func:`teleop.sessions.live.run_in_window`);
    ``live_options`` go to it (window size, camera, a test's ``on_start`` hook). The operator quitting the window
    ends the run early; the session is then resumable (``session.done`` is False).
    """
    from teleop.sessions.report import write_report

    plan = load_plan(plan_path)
    pilots = plan.pilots()  # mode = "correct": every policy loaded and checked before the folder exists
    with Session.open(plan, out, operator=operator) as session:
        try:
            if plan.human:
                from teleop.sessions.live import run_in_window

                run_in_window(session, plan.device, pilots=pilots, **(live_options or {}))
            else:
                run_scripted(session, progress=progress, pilots=pilots)
        except KeyboardInterrupt:
            write_report(session.folder)  # a quit is an end too: report what is there
            raise
        write_report(session.folder)
    return session


def run_scripted(session: Session, *, progress: bool = True, pilots: dict | None = None) -> int:
    """Record every pending episode with MetaWorld's scripted expert, headless; with ``corrector`` the plan's
    policies drive and the simulated corrector takes over (mode = "correct"). Returns the number kept.

    ``pilots``: task -> the policy that drives (mode = "correct"; ``SessionPlan.pilots``)."""
    from devices.corrector import SimulatedCorrector
    from devices.scripted import ScriptedExpert
    from teleop.collect import _progress, record_episode
    from teleop.correction import Takeover
    from teleop.env import TaskEnv
    from teleop.mapping import ActionMapper
    from teleop.recorder import EpisodeBuffer

    plan = session.plan
    pilots = pilots or {}
    corrector = bool(pilots)
    wanted = {b.task: b.episodes for b in plan.tasks}
    total = sum(wanted.values())
    bar = _progress(total, f"session {plan.name}", progress)
    bar.update(sum(min(session.kept_count(b.task), b.episodes) for b in plan.tasks))
    current, env, device, kept = None, None, None, 0
    try:
        while (ticket := session.next_ticket()) is not None:
            if ticket.task != current:
                if env is not None:
                    device.close()
                    env.close()
                env = TaskEnv(ticket.task, cameras=plan.cameras, image_size=plan.image_size,
                              max_steps=plan.max_steps)
                device = SimulatedCorrector(ticket.task) if corrector else ScriptedExpert(ticket.task)
                device.connect()
                takeover = Takeover(world_frame=True) if corrector else None
                buffer = EpisodeBuffer(env, cameras=env.cameras, image_size=plan.image_size)
                mapper = ActionMapper(device.name, device.frame)
                current = ticket.task
            pilot = pilots.get(ticket.task)
            result, episode = record_episode(env, device, mapper, buffer, ticket.spawn, hold_steps=ticket.hold_steps,
                                             pilot=pilot, takeover=takeover, **session.identity())
            if pilot is not None:
                episode.attrs.update(mode="correct", policy=pilot.description, takeovers=takeover.stats.takeovers)
            if result.success:
                session.keep(ticket, episode)
                kept += 1
                bar.update(1)
            else:
                # The expert is deterministic: the same spawn would fail again, so retire it at once.
                session.discard(ticket, reason="failed", steps=result.steps, retry=False)
                failed = len(session.state["tasks"][ticket.task]["retired"])
                if failed > 2 * wanted[ticket.task] + 10:
                    who = "the policy with the simulated corrector" if corrector else "the scripted expert"
                    raise ToolkitError(f"{who} failed {failed} spawns of {ticket.task}: check the task"
                                       f"{' and the checkpoint' if corrector else ''}, or lower its episodes in the plan")
    finally:
        bar.close()
        if env is not None:
            device.close()
            env.close()
    return kept
