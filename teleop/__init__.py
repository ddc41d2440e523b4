"""Teleoperation and recording: from a device's command to an episode file.

The recording core sits at the top of this package: the MetaWorld environment with a fresh spawn
per episode (``env``, ``spawn``), the command-to-action mapping (``mapping``), the stepping loop and
recorder (``collect``, ``recorder``), the one definition of the episode file (``episode``), exact
replay and video (``replay``, ``video``). Three parts build on it, each a sub-package:

- ``teleop.live``: the live window a person records in (control loop, render thread, HUD, flow);
- ``teleop.sessions``: batch collection from a plan file, with several operators;
- ``teleop.datasets``: what is done with recorded episodes (inspect, merge, export formats).

Imports flow one way: ``devices`` <- the core <- ``live`` <- ``sessions``, and the core <- ``datasets``;
nothing here imports ``act``. ``teleop/cli.py`` (the ``teleop`` command) wires the parts together.
tests/test_import_direction.py checks it.
"""
