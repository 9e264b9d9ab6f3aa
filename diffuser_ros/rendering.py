"""Off-screen MuJoCo rendering shared by the evaluation's GIFs and the simulator node's videos:
the tracking camera, the headless-GL default, a probed render env and a video writer. Free of
torch and rclpy so either side can import it cheaply."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from diffuser_ros.robots import DEFAULT_ROBOT, env_robot

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


class RenderingUnavailableError(RuntimeError):
    """Off-screen MuJoCo rendering (or the video writer) is not available here."""


# MuJoCo aborts the process when off-screen rendering is tried again after it failed once, so
# the first failure is remembered and raised again for every later attempt.
_render_failure: str | None = None


def make_render_env(env_id: str, width: int, height: int, **gym_kwargs):
    """The environment ``env_id`` (its robot entry's, ``gym_kwargs`` passed on) rendering
    ``width`` × ``height`` RGB frames from the tracking camera, checked by rendering one frame
    (after ``reset(seed=0)``).

    An ``env_id`` no robot entry runs raises ``ValueError``; anything that fails while making
    or probing the renderer raises :class:`RenderingUnavailableError` saying which MUJOCO_GL
    back-end failed and what to install.
    """
    global _render_failure
    robot = env_robot(env_id)  # a bad id is the caller's mistake, not a rendering failure
    if _render_failure is not None:
        raise RenderingUnavailableError(_render_failure)
    prepare_headless_gl()
    env = None
    try:
        env = robot.make_env(**render_kwargs(width, height), **gym_kwargs)
        env.reset(seed=0)
        frame = env.render()
        if frame is None or np.asarray(frame).ndim != 3:
            raise RuntimeError("render() returned no RGB frame")
    except Exception as exc:  # noqa: BLE001 - mujoco.FatalError, GL import errors, ...
        try:
            if env is not None:
                env.close()
        except Exception:  # noqa: BLE001, S110 - closing a half-made renderer may fail too
            pass
        _render_failure = (
            "off-screen MuJoCo rendering failed with "
            f"MUJOCO_GL={os.environ.get('MUJOCO_GL', 'glfw')} ({type(exc).__name__}: {exc}). "
            "Headless: install Mesa EGL (Debian: libegl1 libegl-mesa0) and set MUJOCO_GL=egl, "
            "or install libosmesa6 and set MUJOCO_GL=osmesa PYOPENGL_PLATFORM=osmesa; with a "
            "display use MUJOCO_GL=glfw.")
        raise RenderingUnavailableError(_render_failure) from None
    return env


def rendering_available(env_id: str = DEFAULT_ROBOT.env_id) -> tuple[bool, str]:
    """``(True, "")`` when an off-screen frame can be rendered, else ``(False, reason)``."""
    try:
        make_render_env(env_id, 64, 48).close()
    except RenderingUnavailableError as exc:
        return False, str(exc)
    return True, ""


class VideoRecorder:
    """Writes an env's frames to a ``.gif`` (Pillow) or ``.mp4`` (needs imageio-ffmpeg).

    ``rate`` is the env's step rate (Hopper: 125 Hz); only every ``every``-th step is kept so
    the video runs at about ``fps`` (GIF players cap the frame rate) in simulated time. Callers
    render only when :meth:`due` says so, since rendering is the expensive part. GIF frames are
    held in memory until :meth:`close` (Pillow writes the file in one go).
    """

    def __init__(self, path: str | Path, rate: float, fps: float = 30.0):
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".gif", ".mp4"):
            raise ValueError(f"video path must end in .gif or .mp4, got {path}")
        if suffix == ".mp4":
            try:
                import imageio_ffmpeg  # noqa: F401
            except ImportError as exc:
                raise RenderingUnavailableError("writing MP4 needs imageio-ffmpeg (pip install "
                                                "imageio-ffmpeg); use a .gif path instead") from exc
        import imageio.v2 as imageio

        self.path = path
        self.every = max(1, round(rate / fps))
        self.fps = rate / self.every
        self.frames = 0
        path.parent.mkdir(parents=True, exist_ok=True)
        # imageio >= 2.28 hands GIFs to Pillow, which takes a frame duration in ms (``fps`` is
        # deprecated and ignored) and loops only when asked; ffmpeg takes ``fps``.
        options = ({"duration": 1000.0 / self.fps, "loop": 0} if suffix == ".gif"
                   else {"fps": self.fps})
        self._writer = imageio.get_writer(path, **options)

    def due(self, step: int) -> bool:
        """Whether the frame after env step ``step`` (0 = the reset) belongs in the video."""
        return step % self.every == 0

    def add(self, frame) -> None:
        # A copy: renderers may reuse their buffer, and GIF frames are kept until close().
        self._writer.append_data(np.array(frame, dtype=np.uint8, copy=True))
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> VideoRecorder:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
