"""Observation building from named joints (rclpy-free).

For gymnasium ``Hopper-v5`` the observation is ``qpos[1:]`` (root x excluded) followed by
``clip(qvel, -10, 10)``: 5 + 6 = 11 values. :class:`JointStateMapping` reproduces that from a
``sensor_msgs/JointState`` whose joints may arrive in any order.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

HOPPER_JOINTS = ("rootx", "rootz", "rooty", "thigh_joint", "leg_joint", "foot_joint")


@dataclass(frozen=True)
class JointStateMapping:
    """``[positions of joint_names[position_skip:]] + [clip(velocities of joint_names)]``.

    ``velocity_clip`` <= 0 disables clipping. Values are checked for finiteness *before*
    clipping, so an infinite velocity is rejected rather than clipped to the bound.
    """

    joint_names: tuple[str, ...] = HOPPER_JOINTS
    position_skip: int = 1
    velocity_clip: float = 10.0
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        names = tuple(self.joint_names)
        object.__setattr__(self, "joint_names", names)
        if not names or any(not isinstance(n, str) or not n for n in names):
            raise ValueError(f"joint_names must be a non-empty list of names, got {list(names)}")
        if len(set(names)) != len(names):
            raise ValueError(f"joint_names has duplicates: {list(names)}")
        if isinstance(self.position_skip, bool) or not isinstance(self.position_skip, int) or \
                not 0 <= self.position_skip <= len(names):
            raise ValueError(f"position_skip must be an integer in [0, {len(names)}] (leading "
                             f"joints whose positions are left out), got {self.position_skip!r}")
        if not math.isfinite(self.velocity_clip):
            raise ValueError(f"velocity_clip must be finite (<= 0 disables), got "
                             f"{self.velocity_clip!r}")

    @property
    def observation_dim(self) -> int:
        return 2 * len(self.joint_names) - self.position_skip

    def observation(self, names: Sequence[str], positions: Sequence[float],
                    velocities: Sequence[float]) -> np.ndarray:
        """The observation from one JointState's fields; ``ValueError`` says what is wrong."""
        names = tuple(names)
        if len(positions) != len(names) or len(velocities) != len(names):
            raise ValueError(f"joint state has {len(names)} names but {len(positions)} positions "
                             f"and {len(velocities)} velocities")
        index = self._cache.get(names)
        if index is None:
            lookup = {n: i for i, n in enumerate(names)}
            missing = [n for n in self.joint_names if n not in lookup]
            if missing:
                raise ValueError(f"joint state lacks joint(s) {missing} (has {list(names)})")
            index = np.array([lookup[n] for n in self.joint_names], dtype=np.intp)
            if len(self._cache) < 16:
                self._cache[names] = index
        return self.from_arrays(np.asarray(positions, dtype=np.float64)[index],
                                np.asarray(velocities, dtype=np.float64)[index])

    def from_arrays(self, qpos, qvel) -> np.ndarray:
        """The observation from positions and velocities ordered as ``joint_names``."""
        qpos = np.asarray(qpos, dtype=np.float64).reshape(-1)
        qvel = np.asarray(qvel, dtype=np.float64).reshape(-1)
        if qpos.size != len(self.joint_names) or qvel.size != len(self.joint_names):
            raise ValueError(f"expected {len(self.joint_names)} positions and velocities, got "
                             f"{qpos.size} and {qvel.size}")
        bad = [self.joint_names[i] for i in range(qpos.size)
               if not (math.isfinite(qpos[i]) and math.isfinite(qvel[i]))]
        if bad:
            raise ValueError(f"non-finite position/velocity (NaN/Inf) for joint(s) {bad}")
        if self.velocity_clip > 0:
            qvel = np.clip(qvel, -self.velocity_clip, self.velocity_clip)
        return np.concatenate([qpos[self.position_skip:], qvel])


def check_observation(values: Sequence[float], dim: int) -> np.ndarray:
    """A flat observation as float64 ``[dim]``; ``ValueError`` for a wrong size or NaN/Inf."""
    obs = np.asarray(values, dtype=np.float64).reshape(-1)
    if obs.size != dim:
        raise ValueError(f"observation has {obs.size} values, the model expects {dim}")
    if not np.isfinite(obs).all():
        bad = np.flatnonzero(~np.isfinite(obs)).tolist()
        raise ValueError(f"observation has non-finite values (NaN/Inf) at index(es) {bad}")
    return obs
