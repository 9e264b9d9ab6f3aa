"""Off-screen MuJoCo rendering settings shared by the evaluation's GIFs and the simulator node's
videos. Free of torch and rclpy so either side can import it cheaply."""

from __future__ import annotations

import os

# Camera of gymnasium's MuJoCo locomotion models that follows the robot's centre of mass.
# gymnasium >= 1.4 renders from a free, non-tracking camera unless a camera is named, and the
# hopper leaves the frame in about a second.
TRACKING_CAMERA = "track"


def prepare_headless_gl() -> None:
    """Headless machines need an off-screen GL: default to EGL (Mesa or a GPU driver) unless
    MUJOCO_GL is set or a display is there."""
    if "MUJOCO_GL" not in os.environ and not os.environ.get("DISPLAY"):
        os.environ["MUJOCO_GL"] = "egl"


def render_kwargs(width: int, height: int) -> dict:
    """``gym.make`` arguments for RGB frames of ``width`` × ``height`` from the tracking camera."""
    return {"render_mode": "rgb_array", "width": width, "height": height,
            "camera_name": TRACKING_CAMERA}
