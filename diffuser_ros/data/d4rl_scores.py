"""D4RL normalised scores, from a robot's reference returns (Hopper's by default).

numpy only and below both the data and the evaluation layers: dataset generation picks its
behaviour policy by a fraction of the expert return, the evaluation reports scores.
"""

from __future__ import annotations

import numpy as np

from diffuser_ros.robots import HOPPER

# D4RL reference returns for hopper (d4rl/infos.py: REF_MIN_SCORE / REF_MAX_SCORE), as the robot
# entry holds them.
HOPPER_RANDOM_RETURN = HOPPER.random_return
HOPPER_EXPERT_RETURN = HOPPER.expert_return


def normalized_score(episode_return, random_return: float = HOPPER_RANDOM_RETURN,
                     expert_return: float = HOPPER_EXPERT_RETURN):
    """D4RL normalised score: 0 = random policy, 100 = expert. Scalar in, float out;
    array in, array out."""
    r = np.asarray(episode_return, dtype=np.float64)
    score = 100.0 * (r - random_return) / (expert_return - random_return)
    return float(score) if score.ndim == 0 else score


def score_se(return_se: float, random_return: float = HOPPER_RANDOM_RETURN,
             expert_return: float = HOPPER_EXPERT_RETURN) -> float:
    """Standard error of the normalised score from that of the return (the score is affine)."""
    return return_se * 100.0 / (expert_return - random_return)


def return_for_score(score, random_return: float = HOPPER_RANDOM_RETURN,
                     expert_return: float = HOPPER_EXPERT_RETURN):
    """Inverse of :func:`normalized_score` (array in, array out)."""
    return np.asarray(score, dtype=np.float64) * (expert_return - random_return) / 100.0 + \
        random_return
