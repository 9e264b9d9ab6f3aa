"""The robots this package knows: one :class:`Robot` entry each (rclpy-free, torch-free).

A robot entry is the one place that knows an environment: its gymnasium id, the joints in
``qpos``/``qvel`` order, how the observation is laid out (``qpos[position_skip:]`` then
``clip(qvel, ±velocity_clip)``, as gymnasium's MuJoCo locomotion tasks), which observation entry
is the forward speed, the joints the action drives, the control period and the D4RL reference
returns, and its healthy range (the states its environment does not end the episode in). The
simulator, the evaluators, the tracker, the data pipeline and the nodes read it from
here; a second robot is a new entry in :data:`ROBOTS`, not edits across the package.

``gymnasium``/``mujoco`` are imported only when an environment or model is asked for.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Robot:
    """What the package needs to know about one simulated robot."""

    name: str                       # short name: launch argument, CLI ``--robot``, model folder
    env_id: str                     # gymnasium id
    joints: tuple[str, ...]         # JointState names in qpos/qvel order (1-DoF joints)
    action_joints: tuple[str, ...]  # the joints the action's entries drive, in order
    position_skip: int              # leading qpos entries left out of the observation (root x)
    slide_joints: tuple[str, ...]   # joints measured in metres; every other joint is a hinge (rad)
    velocity_clip: float            # the observation clips qvel to ±this (gymnasium: 10)
    speed_index: int                # observation index of the forward velocity (qvel[0])
    control_period: float           # seconds per environment step (frame_skip × timestep)
    random_return: float            # D4RL reference returns (d4rl/infos.py)
    expert_return: float
    # The environment's termination rule on observed joints: (joint, low, high), open bounds.
    # A state outside any of them ends the episode (a fall).
    healthy_ranges: tuple[tuple[str, float, float], ...] = ()

    def __post_init__(self) -> None:
        if not 0 <= self.position_skip <= len(self.joints):
            raise ValueError(f"{self.name}: position_skip must be in [0, {len(self.joints)}]")
        if not 0 <= self.speed_index < self.observation_dim:
            raise ValueError(f"{self.name}: speed_index is not an observation index")
        if not set(self.action_joints) <= set(self.joints):
            raise ValueError(f"{self.name}: action_joints must be among the joints")
        if not set(self.slide_joints) <= set(self.joints):
            raise ValueError(f"{self.name}: slide_joints must be among the joints")
        observed = self.joints[self.position_skip:]
        for joint, low, high in self.healthy_ranges:
            if joint not in observed or not low < high:
                raise ValueError(f"{self.name}: a healthy range needs an observed joint and "
                                 f"low < high, got {(joint, low, high)}")

    @property
    def observation_dim(self) -> int:
        return 2 * len(self.joints) - self.position_skip

    @property
    def action_dim(self) -> int:
        return len(self.action_joints)

    @property
    def hinge_positions(self) -> tuple[int, ...]:
        """Observation indices of the hinge joints' angles (the body's pitch included)."""
        observed = self.joints[self.position_skip:]
        return tuple(i for i, joint in enumerate(observed) if joint not in self.slide_joints)

    @property
    def observation_labels(self) -> tuple[str, ...]:
        """One label per observation entry, e.g. ``thigh_joint position``: how errors name an
        entry."""
        return tuple(f"{j} position" for j in self.joints[self.position_skip:]) + \
            tuple(f"{j} velocity" for j in self.joints)

    def healthy_entries(self) -> tuple[tuple[int, float, float], ...]:
        """:attr:`healthy_ranges` as (observation index, low, high)."""
        observed = self.joints[self.position_skip:]
        return tuple((observed.index(joint), low, high) for joint, low, high in
                     self.healthy_ranges)

    def healthy_steps(self, observations, entries=None) -> np.ndarray:
        """How many leading states of each sequence lie in the healthy range:
        ``observations [..., H, observation_dim]`` -> ``[...]`` (H: the sequence never leaves
        it, 0: its first state is already outside; H for a robot without healthy ranges).
        ``entries``: other (index, low, high) bounds than :meth:`healthy_entries`."""
        observations = np.asarray(observations)
        healthy = np.ones(observations.shape[:-1], dtype=bool)
        for index, low, high in self.healthy_entries() if entries is None else entries:
            value = observations[..., index]
            healthy &= (low < value) & (value < high)
        return np.cumprod(healthy, axis=-1).sum(axis=-1)

    def make_env(self, mass_scale: float = 1.0, friction_scale: float = 1.0, **kwargs):
        """``gymnasium.make`` of this robot's environment (``kwargs`` go to it). ``mass_scale``
        and ``friction_scale`` multiply every body's mass (and inertia) and every geom's sliding
        friction: a robot that differs from the controller's model of it."""
        import gymnasium as gym

        for name, scale in (("mass_scale", mass_scale), ("friction_scale", friction_scale)):
            if not 0 < scale < float("inf"):
                raise ValueError(f"{name} must be positive and finite, got {scale}")
        env = gym.make(self.env_id, **kwargs)
        if mass_scale != 1.0 or friction_scale != 1.0:
            model = env.unwrapped.model
            model.body_mass[:] *= mass_scale
            model.body_inertia[:] *= mass_scale
            model.geom_friction[:, 0] *= friction_scale
        return env


HOPPER = Robot(
    name="hopper", env_id="Hopper-v5",
    joints=("rootx", "rootz", "rooty", "thigh_joint", "leg_joint", "foot_joint"),
    action_joints=("thigh_joint", "leg_joint", "foot_joint"),
    position_skip=1, slide_joints=("rootx", "rootz"), velocity_clip=10.0, speed_index=5,
    control_period=0.008,
    random_return=-20.272305, expert_return=3234.3,
    # Hopper-v5 also ends on |qpos[2:], qvel| >= 100; the observation clips velocities to ±10,
    # so that part cannot be told from an observation.
    healthy_ranges=(("rootz", 0.7, float("inf")), ("rooty", -0.2, 0.2)))

WALKER2D = Robot(
    name="walker2d", env_id="Walker2d-v5",
    joints=("rootx", "rootz", "rooty", "thigh_joint", "leg_joint", "foot_joint",
            "thigh_left_joint", "leg_left_joint", "foot_left_joint"),
    action_joints=("thigh_joint", "leg_joint", "foot_joint",
                   "thigh_left_joint", "leg_left_joint", "foot_left_joint"),
    position_skip=1, slide_joints=("rootx", "rootz"), velocity_clip=10.0, speed_index=8,
    control_period=0.008,
    random_return=1.629008, expert_return=4592.3,
    healthy_ranges=(("rootz", 0.8, 2.0), ("rooty", -1.0, 1.0)))

ROBOTS: dict[str, Robot] = {robot.name: robot for robot in (HOPPER, WALKER2D)}
DEFAULT_ROBOT = HOPPER


def robot(name: str) -> Robot:
    """The entry called ``name``; ``ValueError`` lists the known ones."""
    try:
        return ROBOTS[name]
    except KeyError:
        raise ValueError(f"unknown robot {name!r}; known: {sorted(ROBOTS)}") from None


def robot_for_env(env_id: str) -> Robot | None:
    """The entry whose environment is ``env_id`` (None: no entry knows it)."""
    return next((r for r in ROBOTS.values() if r.env_id == env_id), None)


def env_robot(env_id: str) -> Robot:
    """The entry whose environment is ``env_id``, for callers that must make it: every
    environment the package steps is a robot's. ``ValueError`` lists the known ids."""
    found = robot_for_env(env_id)
    if found is None:
        known = sorted(r.env_id for r in ROBOTS.values())
        raise ValueError(f"no robot entry runs environment {env_id!r}; known: {known}")
    return found
