"""The simulator node's robot, apart from ROS: its robot entry's gymnasium env (optionally
rendering), the joint names it publishes, and the run of episodes it steps through. rclpy-free
(the node imports it; tests check it without ROS)."""

from __future__ import annotations

import collections
import math
import os
import time

import numpy as np

from diffuser_ros.rendering import (
    RenderingUnavailableError,
    VideoRecorder,
    make_render_env,
    prepare_headless_gl,
)
from diffuser_ros.robots import robot_for_env


class SimStartupError(RuntimeError):
    """The simulator cannot start (unknown env, rendering unavailable); the message says why."""


def make_env(env_id: str, max_episode_steps: int, render_size: tuple[int, int] | None = None,
             mass_scale: float = 1.0, friction_scale: float = 1.0):
    """The gymnasium env; with ``render_size`` it renders RGB frames or raises SimStartupError.

    A failed rendering probe is remembered by :func:`~diffuser_ros.rendering.make_render_env`
    (MuJoCo aborts the process when off-screen rendering is retried), so later calls fail fast.
    """
    robot = robot_for_env(env_id)
    if robot is None:
        raise SimStartupError(f"cannot create environment {env_id!r}: no robot entry runs it "
                              "(diffuser_ros.robots.ROBOTS)")
    if render_size is not None:
        prepare_headless_gl()  # before the first env imports mujoco and its GL back-end

    kwargs = {"max_episode_steps": max_episode_steps, "disable_env_checker": True,
              "mass_scale": mass_scale, "friction_scale": friction_scale}
    try:
        env = robot.make_env(**kwargs)
    except Exception as exc:  # noqa: BLE001 - gymnasium raises several error types
        hint = f" (MUJOCO_GL={os.environ['MUJOCO_GL']} is set: is its GL library installed?)" \
            if "MUJOCO_GL" in os.environ else ""
        raise SimStartupError(f"cannot create environment {env_id!r}: {exc}{hint}") from None
    if render_size is not None:
        env.close()  # the id is valid; now the same env with a renderer
        try:
            env = make_render_env(env_id, *render_size, **kwargs)
        except RenderingUnavailableError as exc:
            raise SimStartupError(f"record_video: {exc} Or leave record_video empty.") from None
    return env


def joint_layout(env) -> list[str]:
    """Joint names in qpos/qvel order, read from the env's MuJoCo model; only 1-DoF
    (hinge/slide) joints are supported."""
    import mujoco

    model = env.unwrapped.model
    names = []
    for j in range(model.njnt):
        if int(model.jnt_type[j]) not in (int(mujoco.mjtJoint.mjJNT_HINGE),
                                           int(mujoco.mjtJoint.mjJNT_SLIDE)) or \
                model.jnt_qposadr[j] != j or model.jnt_dofadr[j] != j:
            raise SimStartupError("only models whose joints are all 1-DoF (hinge/slide), in "
                                  "qpos order, are supported")
        names.append(mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j))
    return names


VIDEO_FPS = 30.0  # recorded frame rate (every 4th step of Hopper's 125 Hz)


def episodes_summary(results: list[dict]) -> dict:
    """Number, mean, spread and standard error of episodes' returns, their mean length and how
    many ran to their step limit (each result has ``return``, ``length`` and ``reason``, as the
    simulator's episode statistics): the one summary of a run of episodes."""
    returns = np.array([r["return"] for r in results], dtype=np.float64)
    lengths = np.array([r["length"] for r in results], dtype=np.float64)
    return {"episodes": len(results),
            "mean_return": float(returns.mean()) if returns.size else math.nan,
            "std_return": float(returns.std()) if returns.size else math.nan,
            "stderr_return": float(returns.std(ddof=1) / math.sqrt(returns.size))
            if returns.size > 1 else math.nan,
            "full_length": sum(r.get("reason") == "truncated" for r in results),
            "mean_length": float(lengths.mean()) if lengths.size else math.nan}


def summary_line(summary: dict) -> str:
    """``summary`` (:func:`episodes_summary`) as the figures a closed-loop result is quoted with:
    mean ± standard error of the return, and the episodes that ran their full length."""
    spread = (f" ± {summary['stderr_return']:.2f} (s.e.; std {summary['std_return']:.2f})"
              if summary["episodes"] > 1 else "")  # one episode has no spread to quote
    return (f"{summary['episodes']} episodes, mean return {summary['mean_return']:.2f}{spread}, "
            f"full length {summary['full_length']}/{summary['episodes']}, mean length "
            f"{summary['mean_length']:.1f}")


class SimulatedEpisodes:
    """A simulated robot through a run of episodes (rclpy-free): seeded resets (episode k gets
    ``seed + k``; ``seed`` < 0: unseeded), steps with the action clipped to the action space,
    the running return and length, the forward speed over the last second, each finished
    episode's statistics and the run's summary; with ``record_video``, a video of the run."""

    def __init__(self, env, seed: int, record_video: str = "") -> None:
        self.env = env
        self.seed = seed
        space = env.action_space
        self.action_dim = int(space.shape[0])
        self.action_low = np.asarray(space.low, dtype=np.float64)
        self.action_high = np.asarray(space.high, dtype=np.float64)
        self.dt = float(env.unwrapped.dt)
        self._speed_window = max(1, round(1.0 / self.dt))  # steps in one second
        self._video = None
        if record_video:
            try:
                self._video = VideoRecorder(record_video, 1.0 / self.dt, fps=VIDEO_FPS)
            except Exception as exc:  # noqa: BLE001 - bad suffix, no ffmpeg, unwritable path
                env.close()
                raise SimStartupError(f"cannot write video {record_video}: {exc}") from None
        self.episode = 0         # index of the current episode
        self.steps = 0           # steps of the whole run
        self.results: list[dict] = []
        self.reset()

    @property
    def recording(self) -> bool:
        return self._video is not None

    def close(self) -> None:
        """Finish the video (complete on disk when this returns) and close the env."""
        if self._video is not None:
            self._video.close()
            self._video = None
        if self.env is not None:
            self.env.close()
            self.env = None

    @property
    def episode_seed(self) -> int | None:
        return None if self.seed < 0 else self.seed + self.episode

    def reset(self) -> None:
        """Start the current episode afresh."""
        self.env.reset(seed=self.episode_seed)
        self.episode_return, self.length = 0.0, 0
        self._x = collections.deque([self._root_x()], maxlen=self._speed_window + 1)
        self._started = time.monotonic()
        self._frame()

    def step(self, action) -> str:
        """One step; ``'terminated'`` or ``'truncated'`` when it ended the episode, else ''."""
        action = np.clip(action, self.action_low, self.action_high).astype(np.float32)
        _, reward, terminated, truncated, _ = self.env.step(action)
        self.steps += 1
        self.episode_return += float(reward)
        self.length += 1
        self._x.append(self._root_x())
        self._frame()
        return "terminated" if terminated else "truncated" if truncated else ""

    def joint_state(self) -> tuple[list[float], list[float]]:
        """``(qpos, qvel)`` now, unclipped, in the joint order of :func:`joint_layout`."""
        data = self.env.unwrapped.data
        return data.qpos.tolist(), data.qvel.tolist()

    def forward_speed(self) -> float | None:
        """Mean forward speed over the last ``speed_window`` steps (None: no step yet)."""
        if len(self._x) < 2:
            return None
        return (self._x[-1] - self._x[0]) / ((len(self._x) - 1) * self.dt)

    def end_episode(self, reason: str, **extra) -> dict:
        """Record the current episode's statistics (``extra`` added) and move to the next."""
        speed = self.forward_speed()
        stats = {"episode": self.episode + 1, "return": round(self.episode_return, 6),
                 "length": self.length, "reason": reason,
                 "speed_last_1s": None if speed is None else round(speed, 4),
                 "seed": self.episode_seed, **extra,
                 "wall_time_s": round(time.monotonic() - self._started, 4)}
        self.results.append(stats)
        self.episode += 1
        return stats

    def summary(self) -> dict:
        """Mean and spread of the finished episodes' returns and lengths, and the run's steps."""
        return {**episodes_summary(self.results), "steps": self.steps}

    def _frame(self) -> None:
        if self._video is not None and self._video.due(self.steps):
            self._video.add(self.env.render())

    def _root_x(self) -> float:
        """The torso's forward position (root x, the first generalised coordinate)."""
        return float(self.env.unwrapped.data.qpos[0])
