"""The simulator bridge in a process of its own, seen from the demo's process.

In ``realtime`` the bridge's 125 Hz timer must not wait for the GIL while the planner's threads
run Python (``docs/realtime.md``): ``diffuser-ros-demo`` then starts ``sim_node`` as a child
process, as ``ros2 launch`` does, and follows it over DDS. This class gives the demo the same
view of it as of an in-process :class:`~diffuser_ros.nodes.sim_node.SimNode`: each episode's
statistics and the run's summary (from the bridge's transient-local ``episode_stats``), and
whether it has finished or failed.
"""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import String

from diffuser_ros.simulation import episodes_summary

STOP_TIMEOUT_S = 15.0


def ros_argument(name: str, value: Any) -> list[str]:
    """``-p name:=value`` that the ROS command line reads back as the same type (it parses the
    value as YAML: strings go quoted, so ``""`` or ``"1"`` stay strings)."""
    if isinstance(value, bool):
        text = str(value).lower()
    elif isinstance(value, str):
        text = json.dumps(value)
    else:
        text = repr(value)
    return ["-p", f"{name}:={text}"]


class SimProcess:
    """``sim_node`` named ``node_name`` in a child process with the demo's parameter file, ROS
    arguments and its own parameter overrides; ``listener_context``: the demo's rclpy context,
    where a small node listens to the bridge's ``episode_stats_topic``."""

    def __init__(self, node_name: str, params_file: Path, ros_args: list[str],
                 overrides: Mapping[str, Any], listener_context, mode: str,
                 episode_stats_topic: str = "episode_stats") -> None:
        self.mode = mode
        self.episodes: list[dict] = []
        self._summary: dict | None = None
        self._listeners: list[Callable[[dict], None]] = []
        self.node = Node("diffuser_ros_demo_episodes", context=listener_context)
        self.node.create_subscription(
            String, episode_stats_topic, self._on_stats,
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        command = [sys.executable, "-m", "diffuser_ros.nodes.sim_node", "--ros-args",
                   "-r", f"__node:={node_name}", "--params-file", str(params_file), *ros_args]
        for name, value in overrides.items():
            command += ros_argument(name, value)
        self.process = subprocess.Popen(command)

    # -- what the demo reads ------------------------------------------------------------------
    def add_episode_listener(self, callback: Callable[[dict], None]) -> None:
        self._listeners.append(callback)

    @property
    def finished(self) -> bool:
        """The summary arrived (all episodes done)."""
        return self._summary is not None

    @property
    def failed(self) -> int | None:
        """The child's exit code when it ended without a summary (e.g. it could not start)."""
        code = self.process.poll()
        return code if code is not None and code != 0 and self._summary is None else None

    def summary(self) -> dict:
        """The bridge's own summary; before it came (interrupted), one from the episodes
        received, without the bridge's timing."""
        if self._summary is not None:
            return self._summary
        return {"summary": True, "mode": self.mode, **episodes_summary(self.episodes),
                "wall_time_s": 0.0, "steps_per_s": math.nan}

    def stop(self) -> int:
        """SIGINT to the child (its clean shutdown), SIGKILL past STOP_TIMEOUT_S; its exit code."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
        return self.process.wait()

    def destroy_node(self) -> None:
        self.node.destroy_node()

    def _on_stats(self, msg: String) -> None:
        stats = json.loads(msg.data)
        if stats.get("summary"):
            self._summary = stats
        else:
            self.episodes.append(stats)
        for callback in self._listeners:
            callback(dict(stats))
