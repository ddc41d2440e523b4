"""H.264 mp4 files that browsers play.

OpenCV's wheels cannot encode H.264; imageio-ffmpeg ships an ffmpeg with
libx264, so videos are written through it (yuv420p, even frame sides).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from teleop.errors import ToolkitError


class VideoWriter:
    """``with VideoWriter(path, fps) as video: video.append(frame)``; frames (H, W, 3) uint8."""

    def __init__(self, path: str | Path, fps: float = 30.0, *, quality: int = 23):
        self.path = Path(path)
        self.fps = fps
        self.quality = quality
        self._writer = None
        self._shape = None

    def append(self, frame: np.ndarray) -> None:
        frame = np.asarray(frame, dtype=np.uint8)
        if self._writer is None:
            self._open(frame.shape)
        elif frame.shape != self._shape:
            raise ValueError(f"frame shape {frame.shape} differs from the video's {self._shape}")
        h, w = self._shape[:2]
        frame = frame[: h - h % 2, : w - w % 2]  # yuv420p needs even sides
        self._writer.send(np.ascontiguousarray(frame))

    def _open(self, shape) -> None:
        import imageio_ffmpeg

        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ToolkitError(f"cannot write video {self.path}: {error.strerror or error}")
        h, w = shape[:2]
        self._shape = tuple(shape)
        self._writer = imageio_ffmpeg.write_frames(
            str(self.path), (w - w % 2, h - h % 2), fps=self.fps, codec="libx264", pix_fmt_in="rgb24",
            pix_fmt_out="yuv420p", quality=None, macro_block_size=1,
            output_params=["-crf", str(self.quality), "-movflags", "+faststart"])
        self._writer.send(None)  # start the encoder

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()
        return False


def video_info(path: str | Path) -> dict:
    """Codec, size, fps and frame count of a video, read back with ffmpeg."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = sum(1 for _ in reader)
    return {"codec": meta.get("codec"), "size": tuple(meta.get("size", ())), "fps": meta.get("fps"),
            "frames": frames}


def read_video(path: str | Path) -> np.ndarray:
    """All frames (N, H, W, 3) uint8."""
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    w, h = meta["size"]
    return np.stack([np.frombuffer(f, dtype=np.uint8).reshape(h, w, 3) for f in reader])
