"""Observation building from named joints (rclpy-free).

gymnasium's MuJoCo locomotion observation is ``qpos[position_skip:]`` followed by
``clip(qvel, ±velocity_clip)`` (Hopper-v5: root x excluded, 5 + 6 = 11 values; the robot entry in
:mod:`diffuser_ros.robots` says which). :class:`JointStateMapping` reproduces it from a
``sensor_msgs/JointState`` whose joints may arrive in any order. It only maps: whether the values
are fit to plan from is the planner's one check (``DiffusionPlanner.check_observation``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from diffuser_ros.robots import HOPPER


@dataclass(frozen=True)
class JointStateMapping:
    """``[positions of joint_names[position_skip:]] + [clip(velocities of joint_names)]``.

    ``velocity_clip`` <= 0 disables clipping. Only finite velocities are clipped, so an infinite
    one stays infinite for the planner's check to refuse, rather than becoming the bound.
    """

    joint_names: tuple[str, ...] = HOPPER.joints
    position_skip: int = HOPPER.position_skip
    velocity_clip: float = HOPPER.velocity_clip
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
        if self.velocity_clip > 0:
            qvel = np.where(np.isfinite(qvel),
                            np.clip(qvel, -self.velocity_clip, self.velocity_clip), qvel)
        return np.concatenate([qpos[self.position_skip:], qvel])

    def constraints(self, names: Sequence[str], points, control_period: float) -> dict:
        """Inpainting constraints ``{horizon_index: (observation dims, values)}`` from a goal
        trajectory: ``points`` of ``(time_from_start_s, positions, velocities)`` over the joints
        ``names`` (positions/velocities empty or one per name; NaN leaves an entry free). The
        horizon index is ``round(time / control_period)``. ``ValueError`` says what is wrong."""
        index = {n: i for i, n in enumerate(self.joint_names)}
        unknown = [n for n in names if n not in index]
        if unknown:
            raise ValueError(f"goal names joint(s) {unknown} that are not in joint_names "
                             f"{list(self.joint_names)}")
        n_positions = len(self.joint_names) - self.position_skip
        out: dict[int, tuple[list[int], list[float]]] = {}
        for time_s, positions, velocities in points:
            if not math.isfinite(time_s) or time_s <= 0:
                raise ValueError(f"goal point time_from_start must be > 0, got {time_s}")
            for kind, values in (("positions", positions), ("velocities", velocities)):
                if len(values) not in (0, len(names)):
                    raise ValueError(f"goal point has {len(values)} {kind} for {len(names)} "
                                     "joints (give none or one per joint)")
            h = int(round(time_s / control_period))
            dims, vals = out.setdefault(h, ([], []))
            for k, name in enumerate(names):
                j = index[name]
                if len(positions) and not math.isnan(positions[k]):
                    if j < self.position_skip:
                        raise ValueError(f"the position of {name} is not part of the "
                                         "observation (position_skip); it cannot be a goal")
                    dims.append(j - self.position_skip)
                    vals.append(float(positions[k]))
                if len(velocities) and not math.isnan(velocities[k]):
                    dims.append(n_positions + j)
                    vals.append(float(velocities[k]))
        return {h: (dims, np.asarray(vals)) for h, (dims, vals) in out.items() if dims}
