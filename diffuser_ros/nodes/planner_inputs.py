"""``PlannerInputs``: ROS messages in, controller calls out (the planner node's subscriptions).

Each callback turns a message into the controller's terms and leaves every judgement to it: a
state's plausibility (``offer``), a speed command (``set_command``), a goal (``set_constraints``).
What is refused is counted there and logged here, throttled, with the controller's reason.
"""

from __future__ import annotations

from geometry_msgs.msg import Twist
from rclpy.duration import Duration
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray
from trajectory_msgs.msg import JointTrajectory

from diffuser_ros.control.speed_loop import NEW_COMMAND
from diffuser_ros.nodes.observation import JointStateMapping

WARN_THROTTLE_S = 2.0


class PlannerInputs:
    """The callbacks of the state, ``cmd_vel`` and goal subscriptions."""

    def __init__(self, controller, mapping: JointStateMapping, logger) -> None:
        self.controller = controller
        self.mapping = mapping
        self.logger = logger

    def joint_state(self, msg: JointState) -> None:
        try:
            obs = self.mapping.observation(msg.name, msg.position, msg.velocity)
        except ValueError as exc:  # the message does not even map onto the joints
            self.controller.reject(str(exc))
            self._warn_rejected()
            return
        stamp = Time.from_msg(msg.header.stamp).nanoseconds
        if not self.controller.offer(obs, stamp or None):
            self._warn_rejected()

    def observation(self, msg: Float64MultiArray) -> None:
        if not self.controller.offer(msg.data):
            self._warn_rejected()

    def cmd_vel(self, msg: Twist) -> None:
        speed = msg.linear.x
        before = self.controller.command()
        try:
            self.controller.set_command(speed)
        except ValueError as exc:
            self.logger.warning(f"rejected cmd_vel: {exc}", throttle_duration_sec=WARN_THROTTLE_S)
            return
        if before is None or abs(before - speed) >= NEW_COMMAND:  # not every joystick jitter
            self.logger.info(f"commanded forward speed {speed:.3f} m/s (for "
                             f"{self.controller.settings.command_timeout} s after the last "
                             "cmd_vel)")

    def goal(self, msg: JointTrajectory) -> None:
        points = [(Duration.from_msg(pt.time_from_start).nanoseconds * 1e-9, pt.positions,
                   pt.velocities) for pt in msg.points]
        try:
            constraints = self.mapping.constraints(
                msg.joint_names, points, self.controller.settings.control_period) \
                if points else None
            self.controller.set_constraints(constraints)
        except ValueError as exc:
            self.logger.warning(f"rejected goal (the previous one stays): {exc}",
                                throttle_duration_sec=WARN_THROTTLE_S)
            return
        if constraints:
            self.logger.info("goal: " + "; ".join(
                f"step {h}: observation {list(dims)} = {list(map(float, values))}"
                for h, (dims, values) in sorted(constraints.items())))
        else:
            self.logger.info("goal cleared")

    def _warn_rejected(self) -> None:
        self.logger.warning(f"rejected state (not planned on): {self.controller.last_rejection}",
                            throttle_duration_sec=WARN_THROTTLE_S)
