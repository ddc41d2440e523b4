"""Evaluation videos: overlays on rollout frames, and a contact sheet of final frames."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def annotate(frame: np.ndarray, *, step: int, success: bool, new_chunk: bool, label: str = "") -> np.ndarray:
    """Overlay the step, the success state and a marker on frames where a new action chunk was queried."""
    import cv2

    from teleop.video import caption

    out, scale, thickness = caption(frame, f"step {step:3d}" + (f"  {label}" if label else ""))
    h, w = out.shape[:2]
    if success:
        cv2.putText(out, "SUCCESS", (w - int(120 * scale) - 6, int(20 * scale) + 2), cv2.FONT_HERSHEY_SIMPLEX, scale,
                    (60, 220, 60), thickness, cv2.LINE_AA)
    if new_chunk:  # chunk boundary: the policy was queried at this step
        cv2.circle(out, (w - int(10 * scale) - 4, h - int(10 * scale) - 4), int(7 * scale) + 2, (255, 200, 0), -1)
    return out


def beside(frame: np.ndarray, views: dict[str, np.ndarray]) -> np.ndarray:
    """``frame`` (S, S, 3) with each of ``views`` (camera -> the image the policy got, any size) to its right,
    scaled to S x S with nearest-neighbour (pixels stay visible as the policy saw them) and named."""
    import cv2

    from teleop.video import caption

    side = frame.shape[0]
    panels = [frame]
    for name, image in views.items():
        big = cv2.resize(np.ascontiguousarray(image), (side, side), interpolation=cv2.INTER_NEAREST)
        panels.append(caption(big, f"policy sees: {name} {image.shape[1]}x{image.shape[0]}")[0])
    return np.ascontiguousarray(np.hstack(panels))


def contact_sheet(frames: list[np.ndarray], labels: list[str], path: str | Path, *, columns: int = 5) -> Path:
    """A grid PNG of frames (e.g. each episode's final frame) with a caption under each."""
    import cv2

    if not frames:
        raise ValueError("no frames for the contact sheet")
    h, w = frames[0].shape[:2]
    caption = 22
    rows = (len(frames) + columns - 1) // columns
    sheet = np.full((rows * (h + caption), columns * w, 3), 255, np.uint8)
    for i, (frame, label) in enumerate(zip(frames, labels)):
        r, c = divmod(i, columns)
        y, x = r * (h + caption), c * w
        sheet[y:y + h, x:x + w] = frame
        color = (0, 140, 0) if "success" in label else (200, 0, 0)
        cv2.putText(sheet, label, (x + 4, y + h + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.4, color, 1, cv2.LINE_AA)
    path = Path(path)
    cv2.imwrite(str(path), cv2.cvtColor(sheet, cv2.COLOR_RGB2BGR))
    return path
