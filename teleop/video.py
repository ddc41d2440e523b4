"""H.264 mp4 files that browsers play.

OpenCV's wheels cannot encode H.264; imageio-ffmpeg ships an ffmpeg with
libx264, so videos are written through it (yuv420p, even frame sides).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from teleop.errors import ToolkitError


VIDEO_FPS = 30.0
# Videos play the simulation at a quarter of real time by default: at MetaWorld's clock a 55-step
# pick-place lasts 0.7 s and the grasp is a blur; at 0.25 it takes 2.8 s and the fingers can be seen
# closing. The overlay says the speed.
VIDEO_SPEED = 0.25


def playback_steps(num_frames: int, speed: float, *, control_hz: float = 80.0, fps: float = VIDEO_FPS) -> list[int]:
    """Which of ``num_frames`` per-step frames each video frame shows, to play them at ``speed`` x real time.

    A video frame lasts 1/fps s, which at ``speed`` is ``speed * control_hz / fps`` control steps: below
    1 a step's frame repeats, above 1 frames are skipped. The last frame is always shown.
    """
    if not speed > 0:
        raise ToolkitError(f"video speed {speed}: must be above 0 (a fraction of real time, e.g. 0.25)")
    if num_frames <= 0:
        return []
    per_frame = speed * control_hz / fps
    count = int(np.ceil((num_frames - 1) / per_frame)) + 1
    steps = np.minimum(np.floor(np.arange(count) * per_frame).astype(int), num_frames - 1)
    steps[-1] = num_frames - 1
    return steps.tolist()


def speed_label(speed: float) -> str:
    return f"{speed:g}x speed"


def caption(frame: np.ndarray, text: str) -> tuple[np.ndarray, float, int]:
    """A copy of ``frame`` with ``text`` on a black bar along its top; also the font scale and
    thickness used, for callers that write more on the bar."""
    import cv2

    out = np.ascontiguousarray(np.array(frame, dtype=np.uint8))
    w = out.shape[1]
    scale = max(0.35, w / 640)
    thickness = max(1, int(round(scale * 2)))
    cv2.rectangle(out, (0, 0), (w, int(26 * scale) + 6), (0, 0, 0), -1)
    cv2.putText(out, text, (6, int(20 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, scale, (255, 255, 255), thickness,
                cv2.LINE_AA)
    return out, scale, thickness


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
