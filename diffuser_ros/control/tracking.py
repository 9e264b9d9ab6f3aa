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

from diffuser_ros.control.robot_model import RobotModel
from diffuser_ros.robots import HOPPER, Robot


class ModelInverseDynamics:
    """``tracker(observations [B, obs], targets [B, obs]) -> actions [B, act]``.

    One control step of ``robot``'s :class:`~diffuser_ros.control.robot_model.RobotModel`,
    linearised in the action. ``weights`` [obs] scale the residual of each observation entry
    (e.g. 1 / the data's standard deviation, so positions and velocities count alike).
    """

    def __init__(self, robot: Robot = HOPPER, weights: np.ndarray | None = None,
                 probe: float = 0.01, iterations: int = 3):
        self.model = RobotModel(robot)
        self.low, self.high, self.nu = self.model.low, self.model.high, self.model.nu
        self.observation_dim = self.model.observation_dim
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
        robot = RobotModel.for_planner(planner).robot
        if position_skip is not None and position_skip != robot.position_skip:
            raise ValueError(f"position_skip {position_skip} does not match {robot.name}'s "
                             f"observation layout ({robot.position_skip})")
        return cls(robot, weights=1.0 / planner.normalizer.observation_std)

    def __call__(self, observations, targets) -> np.ndarray:
        obs = np.atleast_2d(np.asarray(observations, dtype=np.float64))
        tgt = np.atleast_2d(np.asarray(targets, dtype=np.float64))
        actions = np.zeros((obs.shape[0], self.nu))
        w, step = self.weights, self.model.step
        for b in range(obs.shape[0]):
            # Gauss-Newton on the action: contacts make the step non-linear in it.
            action = np.zeros(self.nu)
            for _ in range(self.iterations):
                base = step(obs[b], action)
                jac = np.empty((self.observation_dim, self.nu))
                for i in range(self.nu):
                    probe = action.copy()
                    probe[i] += self.probe
                    jac[:, i] = (step(obs[b], probe) - base) / self.probe
                delta, *_ = np.linalg.lstsq(jac * w[:, None], (tgt[b] - base) * w, rcond=None)
                action = np.clip(action + delta, self.low, self.high)
            actions[b] = action
        return actions if np.ndim(observations) > 1 else actions[0]
