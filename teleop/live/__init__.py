"""The live window: a person records episodes with a keyboard, gamepad or SpaceMouse.

``window`` opens it and starts the threads; ``control_loop`` ticks the simulator on the main thread;
``render`` draws the scene on its own thread; ``hud`` is what the window shows; ``flow`` is the
keep / discard / pause state machine; ``timing`` the deadline scheduler; ``episode_source`` where
spawns come from and episodes go; ``device_settings`` the saved per-device feel; ``cli`` the
``teleop record`` options for it.

Imports: the recording core (``teleop.env``, ``teleop.recorder``, ...) and ``devices``; never
``teleop.sessions`` or ``teleop.datasets`` (sessions use the window, not the reverse).
"""
