"""The topics, services and timers of a configured ``planner_node``: made together at
``configure``, destroyed together at ``cleanup`` (the lifecycle's model, as ros2_control)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import Twist
from rclpy.clock import Clock, ClockType
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from diffuser_ros.nodes.planner_inputs import PlannerInputs

# The outputs a controller on the robot listens to: reliable; ~/engaged latched.
ENGAGED_QOS = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                         durability=DurabilityPolicy.TRANSIENT_LOCAL)


@dataclass
class PlannerInterfaces:
    state_sub: object
    action_pub: object
    trajectory_pub: object
    engaged_pub: object
    diagnostics_pub: object
    tick_timer: object
    entities: list = field(default_factory=list)  # everything, to destroy

    @classmethod
    def create(cls, node, settings, control_period: float, inputs: PlannerInputs, *,
               on_estop: Callable, on_reset: Callable, on_tick: Callable,
               on_diagnostics: Callable) -> PlannerInterfaces:
        """Create them on ``node`` from its settings (:class:`PlannerNodeSettings`)."""
        reliability = ReliabilityPolicy.RELIABLE if settings.qos_reliability == "reliable" \
            else ReliabilityPolicy.BEST_EFFORT
        state_qos = QoSProfile(depth=settings.qos_depth, reliability=reliability)
        if settings.state_input == "joint_states":
            state_sub = node.create_subscription(JointState, settings.state_topic,
                                                 inputs.joint_state, state_qos)
        else:
            state_sub = node.create_subscription(Float64MultiArray, settings.observation_topic,
                                                 inputs.observation, state_qos)
        subs = [node.create_subscription(Twist, settings.cmd_vel_topic, inputs.cmd_vel, 10),
                # Volatile: matches `ros2 topic pub` (volatile) and latched publishers alike.
                node.create_subscription(JointTrajectory, settings.goal_topic, inputs.goal, 1)]
        services = [node.create_service(SetBool, "~/estop", on_estop),
                    node.create_service(Trigger, "~/reset", on_reset)]
        # Wall-clock timers: they keep running when simulation time stands still (lockstep).
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        tick = node.create_timer(control_period, on_tick, clock=steady)
        diagnostics_timer = node.create_timer(settings.diagnostics_period, on_diagnostics,
                                              clock=steady)
        made = cls(state_sub,
                   node.create_publisher(Float64MultiArray, settings.action_topic, 10),
                   node.create_publisher(JointTrajectory, "~/planned_trajectory", 1),
                   node.create_publisher(Bool, "~/engaged", ENGAGED_QOS),
                   node.create_publisher(DiagnosticArray, "/diagnostics", 10), tick)
        made.entities = [state_sub, *subs, made.action_pub, made.trajectory_pub,
                         made.engaged_pub, made.diagnostics_pub, *services, tick,
                         diagnostics_timer]
        made.engaged_pub.publish(Bool(data=False))
        return made

    def destroy(self, node) -> None:
        for entity in self.entities:
            for destroy in (node.destroy_timer, node.destroy_subscription,
                            node.destroy_publisher, node.destroy_service):
                try:
                    if destroy(entity):
                        break
                except (TypeError, AttributeError):
                    continue
        self.entities = []
