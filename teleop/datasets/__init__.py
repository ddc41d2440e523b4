"""What is done with recorded episodes: inspect them, merge operators' sessions, export to other formats.

``inspect`` reports a folder's episodes and spawn diversity; ``merge`` combines sessions into one
dataset; ``robomimic`` writes robomimic's HDF5 layout; ``cli`` the ``teleop inspect | merge | export``
commands.

Imports: the recording core only (``teleop.episode``, ``teleop.env``, ...); never ``teleop.live`` or
``teleop.sessions``.
"""
