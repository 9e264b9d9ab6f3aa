"""Closed-loop evaluation: batched gymnasium rollouts, baselines (BC, the SAC behaviour policy),
D4RL-normalised scores, the results JSON and plot, and the ``diffuser-ros-evaluate`` CLI.

rclpy-free; the planner variants need only :mod:`diffuser_ros.planning`. stable-baselines3 is
imported only when the behaviour-policy variant runs.
"""

from diffuser_ros.data.d4rl_scores import (
    HOPPER_EXPERT_RETURN,
    HOPPER_RANDOM_RETURN,
    normalized_score,
)
from diffuser_ros.evaluation.bc import BCPolicy, train_bc
from diffuser_ros.evaluation.closed_loop import (
    EpisodeResult,
    Policy,
    bc_policy,
    planner_policy,
    render_episode,
    run_episodes,
    sb3_policy,
)
from diffuser_ros.evaluation.report import (
    format_table,
    plot_returns,
    summarize,
    write_json,
)
from diffuser_ros.rendering import RenderingUnavailableError, rendering_available

__all__ = [
    "HOPPER_EXPERT_RETURN",
    "HOPPER_RANDOM_RETURN",
    "BCPolicy",
    "EpisodeResult",
    "Policy",
    "RenderingUnavailableError",
    "bc_policy",
    "format_table",
    "normalized_score",
    "planner_policy",
    "plot_returns",
    "render_episode",
    "rendering_available",
    "run_episodes",
    "sb3_policy",
    "summarize",
    "train_bc",
    "write_json",
]
