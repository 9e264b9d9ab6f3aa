"""Receding-horizon control around a diffusion planner, free of rclpy: the one implementation of
"what action goes out now" that ``planner_node``, the closed-loop evaluator and the demo drive."""

from diffuser_ros.control.controller import (
    EXECUTIONS,
    Command,
    ControllerSettings,
    ControllerStatus,
    Job,
    RecedingHorizonController,
)

__all__ = ["EXECUTIONS", "Command", "ControllerSettings", "ControllerStatus", "Job",
           "RecedingHorizonController"]
