"""Batch collection sessions: a plan file, a spawn pool, several operators, resume after any stop.

``plan`` reads the TOML plan; ``session`` holds the state (seed range, spawn pool, lock, resume);
``run`` works through it (the scripted expert headless); ``live`` runs it through the live window
for a human device; ``report`` writes status, report and plots; ``cli`` the ``teleop session`` commands.

Imports: the recording core and ``teleop.live``; never ``teleop.datasets``.
"""
