"""Receding-horizon control around a diffusion planner, free of rclpy: the one implementation of
"what action goes out now" that ``planner_node``, the closed-loop evaluator and the demo drive.

``controller`` wires the parts: ``mailbox`` (the newest state), ``execution`` (hold,
time-indexed, tracking), ``safety`` (staleness, the action guard), ``output`` (the guarded
output), ``warm_start`` (what changes between plans), ``targets`` (speed command and
goal, with ``speed_loop``), ``status``; ``settings`` declares its ROS parameters; ``tracking`` is
the robot-model inverse dynamics the tracking execution uses.
"""

from diffuser_ros.control.controller import Job, RecedingHorizonController
from diffuser_ros.control.output import ControlOutput
from diffuser_ros.control.settings import EXECUTIONS, ControllerSettings
from diffuser_ros.control.status import ControllerStatus

__all__ = ["EXECUTIONS", "ControlOutput", "ControllerSettings", "ControllerStatus", "Job",
           "RecedingHorizonController"]
