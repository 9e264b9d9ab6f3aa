"""Feedback at the control rate: follow the newest plan's predicted states with the robot model.

:class:`ModelInverseDynamics` answers "which action takes the robot from the measured state to the
plan's next state?" with one control step of the robot's MuJoCo model, linearised in the action by
finite differences (``1 + action_dim`` model steps, well under a millisecond for Hopper), solved by
weighted least squares and clipped to the action bounds. Run every control period on the measured
state, it closes the loop between plans that arrive tens of steps late, where replaying the plan's
own actions open loop does not (Diffuser follows its Maze2D plans with a tracking controller;
Decision Diffuser learns the same inverse dynamics from data).

rclpy-free; needs ``mujoco`` and ``gymnasium`` (the robot entry's environment holds the model).
"""

from __future__ import annotations

import numpy as np

from diffuser_ros.robots import HOPPER, Robot, robot_for_env


class ModelInverseDynamics:
    """``tracker(observations [B, obs], targets [B, obs]) -> actions [B, act]``.

    The model, its control step and action bounds are those of ``robot``'s environment; the
    observation is ``qpos[robot.position_skip:]`` followed by ``qvel`` (Hopper: root x left out,
    which the dynamics do not depend on). ``weights`` [obs] scale the residual of each
    observation entry (e.g. 1 / the data's standard deviation, so positions and velocities count
    alike).
    """

    def __init__(self, robot: Robot = HOPPER, weights: np.ndarray | None = None,
                 probe: float = 0.01, iterations: int = 3):
        import mujoco

        env = robot.make_env(disable_env_checker=True)
        unwrapped = env.unwrapped
        self._mujoco = mujoco
        self.model = unwrapped.model
        self.frame_skip = int(unwrapped.frame_skip)
        self.low = np.asarray(env.action_space.low, dtype=np.float64)
        self.high = np.asarray(env.action_space.high, dtype=np.float64)
        env.close()
        self.data = mujoco.MjData(self.model)
        self.position_skip = robot.position_skip
        self.nq, self.nv, self.nu = self.model.nq, self.model.nv, self.model.nu
        self.observation_dim = self.nq - self.position_skip + self.nv
        self.weights = np.ones(self.observation_dim) if weights is None else \
            np.asarray(weights, dtype=np.float64)
        if self.weights.shape != (self.observation_dim,):
            raise ValueError(f"weights must have {self.observation_dim} entries")
        self.probe = float(probe)
        self.iterations = int(iterations)

    @classmethod
    def for_planner(cls, planner, position_skip: int | None = None) -> ModelInverseDynamics:
        """The tracker of a planner's robot: the entry of the environment the planner was
        trained on (``spec.env_id``), residuals weighted by 1 / the data's standard deviations.
        ``position_skip``, when given (a caller's own observation layout), must be the robot's."""
        robot = robot_for_env(planner.spec.env_id) if planner.spec.env_id else None
        if robot is None:
            raise ValueError(f"the model's environment {planner.spec.env_id!r} (spec.env_id) is "
                             "no robot entry's: no robot model to track with")
        if position_skip is not None and position_skip != robot.position_skip:
            raise ValueError(f"position_skip {position_skip} does not match {robot.name}'s "
                             f"observation layout ({robot.position_skip})")
        return cls(robot, weights=1.0 / planner.normalizer.observation_std)

    def _step(self, observation: np.ndarray, action: np.ndarray) -> np.ndarray:
        mj, data = self._mujoco, self.data
        mj.mj_resetData(self.model, data)
        data.qpos[self.position_skip:] = observation[:self.nq - self.position_skip]
        data.qvel[:] = observation[self.nq - self.position_skip:]
        data.ctrl[:] = action
        mj.mj_step(self.model, data, nstep=self.frame_skip)
        return np.concatenate([data.qpos[self.position_skip:], data.qvel])

    def __call__(self, observations, targets) -> np.ndarray:
        obs = np.atleast_2d(np.asarray(observations, dtype=np.float64))
        tgt = np.atleast_2d(np.asarray(targets, dtype=np.float64))
        actions = np.zeros((obs.shape[0], self.nu))
        w = self.weights
        for b in range(obs.shape[0]):
            # Gauss-Newton on the action: contacts make the step non-linear in it.
            action = np.zeros(self.nu)
            for _ in range(self.iterations):
                base = self._step(obs[b], action)
                jac = np.empty((self.observation_dim, self.nu))
                for i in range(self.nu):
                    probe = action.copy()
                    probe[i] += self.probe
                    jac[:, i] = (self._step(obs[b], probe) - base) / self.probe
                delta, *_ = np.linalg.lstsq(jac * w[:, None], (tgt[b] - base) * w, rcond=None)
                action = np.clip(action + delta, self.low, self.high)
            actions[b] = action
        return actions if np.ndim(observations) > 1 else actions[0]
