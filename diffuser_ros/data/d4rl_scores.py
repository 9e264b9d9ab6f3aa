"""D4RL normalised scores, from a robot entry's reference returns (Hopper's by default).

numpy only and below both the data and the evaluation layers: dataset generation picks its
behaviour policy by a fraction of the expert return, the evaluation reports scores.
"""

from __future__ import annotations

import numpy as np

from diffuser_ros.robots import DEFAULT_ROBOT, HOPPER, Robot

# D4RL reference returns for hopper (d4rl/infos.py: REF_MIN_SCORE / REF_MAX_SCORE), as the robot
# entry holds them.
HOPPER_RANDOM_RETURN = HOPPER.random_return
HOPPER_EXPERT_RETURN = HOPPER.expert_return


def normalized_score(episode_return, robot: Robot = DEFAULT_ROBOT):
    """D4RL normalised score of ``robot``: 0 = random policy, 100 = expert. Scalar in, float
    out; array in, array out."""
    r = np.asarray(episode_return, dtype=np.float64)
    score = 100.0 * (r - robot.random_return) / (robot.expert_return - robot.random_return)
    return float(score) if score.ndim == 0 else score


def score_se(return_se: float, robot: Robot = DEFAULT_ROBOT) -> float:
    """Standard error of the normalised score from that of the return (the score is affine)."""
    return return_se * 100.0 / (robot.expert_return - robot.random_return)


def return_for_score(score, robot: Robot = DEFAULT_ROBOT):
    """Inverse of :func:`normalized_score` (array in, array out)."""
    return np.asarray(score, dtype=np.float64) * (robot.expert_return - robot.random_return) \
        / 100.0 + robot.random_return
