"""``RobotModel``: the robot's own MuJoCo model, stepped from an observation (rclpy-free).

Two controller parts use it: the tracker (:class:`~diffuser_ros.control.tracking.
ModelInverseDynamics`, which action reaches the plan's next state) and the start-state prediction
(``predict_ahead``: where the robot will be when a new plan's first action is applied, so the plan
starts there). For a real robot, replace it with anything that has the same ``predict``.

The observation is ``qpos[position_skip:]`` followed by ``qvel`` (gymnasium MuJoCo locomotion;
Hopper: root x left out, which the dynamics do not depend on); :meth:`predict` clips velocities
as the robot's observation does, so a prediction reads like a measurement.
"""

from __future__ import annotations

import threading

import numpy as np

from diffuser_ros.robots import Robot, robot_for_env


class RobotModel:
    """One control step (``frame_skip`` MuJoCo steps) of ``robot``'s environment model.
    Thread-safe: planners in flight predict, and the tracker tracks, from several threads, and
    MuJoCo's data may be stepped by one at a time."""

    def __init__(self, robot: Robot) -> None:
        import mujoco

        env = robot.make_env(disable_env_checker=True)
        unwrapped = env.unwrapped
        self._mujoco = mujoco
        self.robot = robot
        self.model = unwrapped.model
        self.frame_skip = int(unwrapped.frame_skip)
        self.low = np.asarray(env.action_space.low, dtype=np.float64)
        self.high = np.asarray(env.action_space.high, dtype=np.float64)
        env.close()
        self.data = mujoco.MjData(self.model)
        self._lock = threading.Lock()
        self.position_skip = robot.position_skip
        self.nq, self.nv, self.nu = self.model.nq, self.model.nv, self.model.nu
        self.observation_dim = self.nq - self.position_skip + self.nv

    @classmethod
    def for_planner(cls, planner) -> RobotModel:
        """The model of the robot the planner was trained on (its ``spec.env_id``)."""
        robot = robot_for_env(planner.spec.env_id) if planner.spec.env_id else None
        if robot is None:
            raise ValueError(f"the model's environment {planner.spec.env_id!r} (spec.env_id) is "
                             "no robot entry's: no robot model to predict or track with")
        return cls(robot)

    def step(self, observation: np.ndarray, action: np.ndarray) -> np.ndarray:
        """The state one control step after ``observation`` under ``action`` (velocities not
        clipped)."""
        mj, data = self._mujoco, self.data
        with self._lock:
            mj.mj_resetData(self.model, data)
            data.qpos[self.position_skip:] = observation[:self.nq - self.position_skip]
            data.qvel[:] = observation[self.nq - self.position_skip:]
            data.ctrl[:] = action
            mj.mj_step(self.model, data, nstep=self.frame_skip)
            return np.concatenate([data.qpos[self.position_skip:], data.qvel])

    def predict(self, observation, actions) -> np.ndarray:
        """The observation after applying ``actions`` in turn: ``observation`` [obs] with
        ``actions`` [k, act], or [B, obs] with [k, B, act]; ``k`` = 0 returns it unchanged."""
        obs = np.array(observation, dtype=np.float64)
        actions = np.asarray(actions, dtype=np.float64)
        batch = obs.reshape(-1, obs.shape[-1])
        steps = actions.reshape(actions.shape[0], batch.shape[0], -1)
        for step in steps:
            step = np.clip(step, self.low, self.high)  # as the robot's driver clips them
            batch = np.stack([self.step(batch[b], step[b]) for b in range(batch.shape[0])])
        clip = self.robot.velocity_clip
        if clip > 0 and len(steps):
            velocities = slice(self.nq - self.position_skip, None)
            batch[:, velocities] = np.clip(batch[:, velocities], -clip, clip)
        return batch.reshape(obs.shape)
