"""What is done with recorded episodes: inspect them, merge operators' sessions, export to other formats.

``inspect`` reports a folder's episodes and spawn diversity; ``merge`` combines sessions into one
dataset; ``robomimic`` writes robomimic's HDF5 layout and ``lerobot`` the LeRobotDataset v3.0 layout;
``metaworld_replay`` is the replay recipe with only h5py, MuJoCo and MetaWorld (it imports nothing of the
toolkit, so a reader can copy it); ``cli`` the ``teleop inspect | merge | export`` commands.

Imports: the recording core only (``teleop.episode``, ``teleop.env``, ...); never ``teleop.live`` or
``teleop.sessions``.
"""
