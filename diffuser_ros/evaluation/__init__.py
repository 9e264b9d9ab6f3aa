"""Closed-loop evaluation of the planner and its baselines on a robot's environment.

* :mod:`~diffuser_ros.evaluation.closed_loop` — the policies compared (the planner through the
  node's controller core, BC, the SAC behaviour policy) and their episodes and videos, rolled
  out by :func:`diffuser_ros.rollout.roll_out`;
* :mod:`~diffuser_ros.evaluation.bc` — the behaviour-cloning baseline;
* :mod:`~diffuser_ros.evaluation.report` — D4RL-normalised summaries, the results JSON, the plot
  and the table;
* the CLIs ``diffuser-ros-evaluate`` (:mod:`~diffuser_ros.evaluation.evaluate`), ``-tolerance``
  (return against planning latency) and ``-commands`` (speed commands), with what they share in
  :mod:`~diffuser_ros.evaluation.cli` and :mod:`~diffuser_ros.evaluation.resume`.

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
    Policy,
    bc_policy,
    controller_policy,
    render_episode,
    run_episodes,
    sb3_policy,
)
from diffuser_ros.evaluation.report import format_table, plot_returns, summarize, write_json
from diffuser_ros.rendering import RenderingUnavailableError, rendering_available
from diffuser_ros.rollout import EpisodeResult

__all__ = [
    "HOPPER_EXPERT_RETURN",
    "HOPPER_RANDOM_RETURN",
    "BCPolicy",
    "EpisodeResult",
    "Policy",
    "RenderingUnavailableError",
    "bc_policy",
    "controller_policy",
    "format_table",
    "normalized_score",
    "plot_returns",
    "render_episode",
    "rendering_available",
    "run_episodes",
    "sb3_policy",
    "summarize",
    "train_bc",
    "write_json",
]
