"""``planner_node``: value-guided diffusion planning (Janner et al., 2022) as a managed ROS 2 node.

A thin adapter around :class:`~diffuser_ros.control.RecedingHorizonController`, which holds the
control logic (mailbox, planning thread, safety decision, execution, statistics); this module
maps ROS parameters, topics, services, timers and diagnostics onto it. Interfaces, parameters and
behaviour per mode: ``docs/ros.md``.

Lifecycle (``rclpy.lifecycle``, as ros2_control controllers):

* ``configure`` loads the model and warms it up (a missing or corrupt model fails the transition,
  naming the file), creates the interfaces and starts the planning thread;
* ``activate`` starts answering states (``~/engaged`` goes true);
* ``deactivate`` publishes the safe action once and stops answering (``~/engaged`` false);
* ``cleanup`` / ``shutdown`` stop the thread and release the model.

With ``autostart`` (the default) the node configures and activates itself at start-up, so
``ros2 run`` / ``ros2 launch`` start a working controller in one line; ``autostart:=false``
leaves it unconfigured for ``ros2 lifecycle set``.

Parameters: the planner settings (:class:`~diffuser_ros.planning.PlannerConfig`) take their
defaults from ``preset``; any value given explicitly (YAML, ``-p``) wins over the preset. Runtime
changes are validated in the on-set callback and applied by the controller between two plans.
"""

from __future__ import annotations

import dataclasses
import logging
import sys

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from geometry_msgs.msg import Twist
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from diffuser_ros.control import Command, ControllerSettings, RecedingHorizonController
from diffuser_ros.control.speed_loop import NEW_COMMAND
from diffuser_ros.nodes import planner_messages
from diffuser_ros.nodes.entry import run_node
from diffuser_ros.nodes.observation import HOPPER_JOINTS, JointStateMapping, check_observation
from diffuser_ros.nodes.parameters import (
    CONFIG_FIELDS,
    ParameterError,
    ParamSpec,
    coerce_config_value,
    declare_parameters,
    planner_config_specs,
    specs_from_settings,
)
from diffuser_ros.planning import (
    DEFAULT_PRESET,
    PRESETS,
    CheckpointError,
    PlannerConfig,
    default_model_path,
    load_planner,
    resolve_device,
    set_cpu_threads,
)

NODE_NAME = "planner_node"
STATE_INPUTS = ("joint_states", "observation")
RELIABILITIES = ("reliable", "best_effort")
WARN_THROTTLE_S = 2.0
HOPPER_ACTION_JOINTS = ("thigh_joint", "leg_joint", "foot_joint")
CONTROLLER_FIELDS = tuple(info.name for info in specs_from_settings(ControllerSettings))
_LOG_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
               logging.ERROR: "error"}

PRESET_SPEC = ParamSpec(
    "preset", DEFAULT_PRESET, "Base values of the planner settings: "
    + ", ".join(sorted(PRESETS)) + " or '' (the PlannerConfig defaults). At start-up every "
    "planner setting given explicitly wins over it; set at runtime, it writes its values into "
    "the settings.", choices=("",) + tuple(sorted(PRESETS)))

NODE_SPECS: list[ParamSpec] = [
    ParamSpec("autostart", True, "Configure and activate at start-up; false leaves the node "
              "unconfigured for 'ros2 lifecycle set'.", read_only=True),
    ParamSpec("model_path", "", "Planner checkpoint folder; '' = the shipped Hopper model "
              "(diffuser_ros/models/hopper).", read_only=True),
    ParamSpec("state_input", "joint_states", "Where the state comes from: 'joint_states' "
              "(sensor_msgs/JointState mapped by joint_names) or 'observation' (a flat "
              "std_msgs/Float64MultiArray).", read_only=True, choices=STATE_INPUTS),
    ParamSpec("state_topic", "joint_states", "JointState topic (state_input 'joint_states').",
              read_only=True),
    ParamSpec("observation_topic", "observation", "Float64MultiArray observation topic "
              "(state_input 'observation').", read_only=True),
    ParamSpec("action_topic", "action", "Float64MultiArray topic the actions go out on (a "
              "forward command controller's 'commands').", read_only=True),
    ParamSpec("cmd_vel_topic", "cmd_vel", "geometry_msgs/Twist topic whose linear.x commands "
              "the forward speed (m/s), for command_timeout; needs a model with a command "
              "value.", read_only=True),
    ParamSpec("goal_topic", "~/goal", "trajectory_msgs/JointTrajectory topic of goal "
              "constraints: each point's positions/velocities (NaN = free) are inpainted into "
              "every plan at horizon index time_from_start / control_period; an empty "
              "message clears the goal.", read_only=True),
    ParamSpec("qos_depth", 1, "History depth of the state subscription (1 = newest only).",
              read_only=True, int_range=(1, 1000)),
    ParamSpec("qos_reliability", "reliable", "Reliability of the state subscription.",
              read_only=True, choices=RELIABILITIES),
    ParamSpec("joint_names", list(HOPPER_JOINTS), "Joints, in observation order, read from the "
              "JointState by name.", read_only=True),
    ParamSpec("position_skip", 1, "Leading joints of joint_names whose positions are left out of "
              "the observation (Hopper-v5: 1, root x).", read_only=True, int_range=(0, 1000)),
    ParamSpec("velocity_clip", 10.0, "Joint velocities are clipped to +-velocity_clip (Hopper-v5: "
              "10); 0 disables.", read_only=True, float_range=(0.0, 1e9)),
    ParamSpec("action_joints", list(HOPPER_ACTION_JOINTS), "The joints the action's entries "
              "drive, in order (names of ~/planned_trajectory).", read_only=True),
    ParamSpec("diagnostics_period", 1.0, "Period of the /diagnostics status.", read_only=True,
              float_range=(0.01, 60.0), unit="s"),
    ParamSpec("torch_threads", 0, "CPU threads torch plans with (torch.set_num_threads, for "
              "the whole process); 0 = auto: one fewer than the machine's cores, leaving one "
              "to the simulator and DDS.", read_only=True, int_range=(0, 1024)),
]


def parameter_specs(preset_name: str = DEFAULT_PRESET) -> list[ParamSpec]:
    """Every parameter of the node, planner defaults taken from ``preset_name``."""
    return ([PRESET_SPEC] + planner_config_specs(preset_name)
            + specs_from_settings(ControllerSettings) + NODE_SPECS)


PLANNER_SPECS = parameter_specs()


class StartupError(RuntimeError):
    """The node cannot start; the message says why (logged without a traceback)."""


class PlannerNode(LifecycleNode):
    """Managed receding-horizon diffusion planner. ``node_kwargs`` go to ``LifecycleNode``."""

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.planner = None
        self.controller: RecedingHorizonController | None = None
        self.configure_error = ""
        self._interfaces: list = []
        self._engaged_pub = None
        self._sync_parameters: list[Parameter] = []
        try:
            preset_value = self.declare_parameter(
                PRESET_SPEC.name, PRESET_SPEC.default, PRESET_SPEC.descriptor()).value
            if preset_value not in PRESET_SPEC.choices:
                raise ParameterError(f"preset must be one of {list(PRESET_SPEC.choices)}, "
                                     f"got {preset_value!r}")
            self._p = {"preset": preset_value,
                       **declare_parameters(self, parameter_specs(preset_value)[1:])}
            self._config = PlannerConfig(**{n: self._p[n] for n in CONFIG_FIELDS})
            self._settings = ControllerSettings(**{n: self._p[n] for n in CONTROLLER_FIELDS})
            self._mapping = JointStateMapping(tuple(self._p["joint_names"]),
                                              self._p["position_skip"], self._p["velocity_clip"])
            resolve_device(self._config.device)
        except ParameterError:
            self.destroy_node()
            raise
        except ValueError as exc:
            self.destroy_node()
            raise StartupError(f"invalid parameter: {exc}") from None
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        # Says why nothing happens when simulation time never starts (no /clock).
        self._clock_check = self.create_timer(WARN_THROTTLE_S, self._check_clock, clock=steady)

    # -- start-up / shutdown ----------------------------------------------------------------
    def autostart(self) -> None:
        """configure + activate (raises StartupError with the reason when configure fails)."""
        if not self._p["autostart"]:
            self.get_logger().info("autostart is false: waiting for 'ros2 lifecycle set "
                                   f"{self.get_fully_qualified_name()} configure'")
            return
        if self.trigger_configure() != TransitionCallbackReturn.SUCCESS:
            raise StartupError(self.configure_error or "configure failed")
        if self.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            raise StartupError("activate failed")

    def shutdown(self) -> None:
        """The lifecycle shutdown transition (safe action out, worker stopped, model released)."""
        label = self.lifecycle_state
        if label in ("unconfigured", "inactive", "active"):
            self.trigger_shutdown()

    @property
    def lifecycle_state(self) -> str:
        """The current lifecycle state's label ('unconfigured', 'inactive', 'active', ...)."""
        return self._state_machine.current_state[1]

    def destroy_node(self) -> None:
        if self.controller is not None:
            self.controller.stop()
        super().destroy_node()

    # -- lifecycle transitions --------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except (CheckpointError, StartupError) as exc:
            self.configure_error = str(exc)
            self.get_logger().error(f"configure failed: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.controller.activate()
        self._engaged_pub.publish(Bool(data=not self.controller.estop))
        self.get_logger().info("active: answering states")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._engaged_pub.publish(Bool(data=False))
        self.controller.deactivate()
        self.get_logger().info("inactive: safe action published, not planning")
        return TransitionCallbackReturn.SUCCESS

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.controller is not None and self.controller.active:
            self.on_deactivate(state)
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def _configure(self) -> None:
        p = self._p
        model_path = p["model_path"] or str(default_model_path())
        threads = set_cpu_threads(p["torch_threads"])
        # Load with the checkpoint's architecture, then apply the ROS settings, so a setting the
        # model cannot take is reported as a parameter error, not as a corrupt checkpoint.
        self.planner = load_planner(model_path, device=self._config.device)  # CheckpointError
        try:
            self.planner.configure(self._config)
        except ValueError as exc:
            raise StartupError(f"invalid planner parameters for model {model_path}: {exc}") \
                from None
        spec = self.planner.spec
        if p["state_input"] == "joint_states" and \
                self._mapping.observation_dim != spec.observation_dim:
            raise StartupError(
                f"joint mapping gives {self._mapping.observation_dim} observation values "
                f"({len(self._mapping.joint_names)} joints, position_skip "
                f"{self._mapping.position_skip}) but model {model_path} expects "
                f"{spec.observation_dim}")
        if len(p["action_joints"]) != spec.action_dim:
            raise StartupError(f"action_joints names {len(p['action_joints'])} joints but model "
                               f"{model_path} has {spec.action_dim} actions")
        warmup = self._warm_up()
        tracker = self._make_tracker()
        if self._settings.execution == "tracking" and tracker is None:
            raise StartupError(f"execution 'tracking' needs the robot's MuJoCo model, and model "
                               f"{model_path} names no environment to take it from "
                               f"(env_id {spec.env_id!r})")
        self.controller = RecedingHorizonController(
            self.planner, self._settings, clock=lambda: self.get_clock().now().nanoseconds,
            emit=self._publish, log=self._log, tracker=tracker)
        self._joint_indices = planner_messages.joint_indices(
            list(p["action_joints"]), self._mapping, p["state_input"] == "joint_states")
        self._create_interfaces()
        self.controller.start()
        self.get_logger().info(
            f"model {model_path} ({spec.env_id or 'unknown env'}: {spec.observation_dim} obs, "
            f"{spec.action_dim} actions, horizon {spec.horizon}) on {self.planner.device} "
            f"(torch_threads {threads}); warm-up plan {warmup * 1e3:.0f} ms")
        self.get_logger().info(
            f"preset {p['preset']!r}: {_describe(self._config)}; state from "
            f"{self._state_sub.topic_name} ({p['state_input']}), actions on "
            f"{self._action_pub.topic_name}; {_describe(self._settings)}")

    def _make_tracker(self):
        """The robot-model inverse dynamics for ``execution: tracking`` (None: unavailable)."""
        if self._p["state_input"] != "joint_states":
            return None
        try:
            from diffuser_ros.control.tracking import ModelInverseDynamics

            return ModelInverseDynamics.for_planner(self.planner, self._mapping.position_skip)
        except Exception as exc:  # noqa: BLE001 - gymnasium/mujoco missing or env unknown
            self.get_logger().info(f"execution 'tracking' unavailable: {exc}")
            return None

    def _warm_up(self) -> float:
        """The first plan pays for lazy initialisation; not counted in the statistics."""
        clock = Clock(clock_type=ClockType.STEADY_TIME)
        start = clock.now()
        self.planner.plan(self.planner.normalizer.observation_mean)
        self.planner.reset()
        return (clock.now() - start).nanoseconds * 1e-9

    def _create_interfaces(self) -> None:
        p = self._p
        reliability = ReliabilityPolicy.RELIABLE if p["qos_reliability"] == "reliable" \
            else ReliabilityPolicy.BEST_EFFORT
        state_qos = QoSProfile(depth=p["qos_depth"], reliability=reliability)
        if p["state_input"] == "joint_states":
            self._state_sub = self.create_subscription(
                JointState, p["state_topic"], self._on_joint_state, state_qos)
        else:
            self._state_sub = self.create_subscription(
                Float64MultiArray, p["observation_topic"], self._on_observation, state_qos)
        self._action_pub = self.create_publisher(Float64MultiArray, p["action_topic"], 10)
        self._cmd_vel_sub = self.create_subscription(Twist, p["cmd_vel_topic"], self._on_cmd_vel,
                                                     10)
        # Volatile: matches `ros2 topic pub` (volatile) and latched publishers alike.
        self._goal_sub = self.create_subscription(JointTrajectory, p["goal_topic"],
                                                  self._on_goal, 1)
        self._trajectory_pub = self.create_publisher(JointTrajectory, "~/planned_trajectory", 1)
        self._engaged_pub = self.create_publisher(Bool, "~/engaged", QoSProfile(
            depth=1, reliability=ReliabilityPolicy.RELIABLE,
            durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        services = [self.create_service(SetBool, "~/estop", self._on_estop),
                    self.create_service(Trigger, "~/reset", self._on_reset)]
        # Wall-clock timers: they keep running when simulation time stands still (lockstep).
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._tick_timer = self.create_timer(self._settings.control_period, self._on_tick,
                                             clock=steady)
        timers = [self._tick_timer,
                  self.create_timer(p["diagnostics_period"], self._publish_diagnostics,
                                    clock=steady)]
        self._engaged_pub.publish(Bool(data=False))
        self._interfaces = [self._state_sub, self._cmd_vel_sub, self._goal_sub,
                            self._action_pub, self._trajectory_pub,
                            self._engaged_pub, self._diagnostics_pub, *services, *timers]

    def _release(self) -> None:
        """Stop the planning thread, destroy the interfaces and drop the model."""
        if self.controller is not None:
            self.controller.stop()
        for entity in self._interfaces:
            for destroy in (self.destroy_timer, self.destroy_subscription,
                            self.destroy_publisher, self.destroy_service):
                try:
                    if destroy(entity):
                        break
                except (TypeError, AttributeError):
                    continue
        self._interfaces = []
        self._engaged_pub = None
        self.controller = None
        if self.planner is not None:
            device = self.planner.device
            self.planner = None
            if device.type == "cuda":
                import torch

                torch.cuda.empty_cache()

    # -- inputs -----------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        try:
            obs = self._mapping.observation(msg.name, msg.position, msg.velocity)
        except ValueError as exc:
            self._reject(str(exc))
            return
        stamp = Time.from_msg(msg.header.stamp).nanoseconds
        self.controller.offer(obs, stamp or None)

    def _on_observation(self, msg: Float64MultiArray) -> None:
        try:
            obs = check_observation(msg.data, self.planner.spec.observation_dim)
        except ValueError as exc:
            self._reject(str(exc))
            return
        self.controller.offer(obs)

    def _on_cmd_vel(self, msg: Twist) -> None:
        speed = msg.linear.x
        before = self.controller.command()
        try:
            self.controller.set_command(speed)
        except ValueError as exc:
            self.get_logger().warning(f"rejected cmd_vel: {exc}",
                                      throttle_duration_sec=WARN_THROTTLE_S)
            return
        if before is None or abs(before - speed) >= NEW_COMMAND:  # not every joystick jitter
            self.get_logger().info(f"commanded forward speed {speed:.3f} m/s (for "
                                   f"{self.controller.settings.command_timeout} s after the "
                                   "last cmd_vel)")

    def _on_goal(self, msg: JointTrajectory) -> None:
        points = [(Duration.from_msg(pt.time_from_start).nanoseconds * 1e-9, pt.positions,
                   pt.velocities) for pt in msg.points]
        try:
            constraints = self._mapping.constraints(
                msg.joint_names, points, self.controller.settings.control_period) \
                if points else None
            self.controller.set_constraints(constraints)
        except ValueError as exc:
            self.get_logger().warning(f"rejected goal (the previous one stays): {exc}")
            return
        if constraints:
            self.get_logger().info(f"goal: {_describe_constraints(constraints)}")
        else:
            self.get_logger().info("goal cleared")

    def _reject(self, reason: str) -> None:
        self.controller.reject(reason)
        self.get_logger().warning(f"rejected state (not planned on): {reason}",
                                  throttle_duration_sec=WARN_THROTTLE_S)

    # -- outputs ----------------------------------------------------------------------------
    def _publish(self, command: Command) -> None:
        """The controller's output (called under its output lock)."""
        if not self.context.ok():
            return  # shutting down: nothing may be published any more
        self._action_pub.publish(Float64MultiArray(data=command.action.reshape(-1).tolist()))
        if command.kind == "plan" and self._trajectory_pub.get_subscription_count() > 0:
            self._trajectory_pub.publish(self.trajectory_message(command))

    def trajectory_message(self, command: Command) -> JointTrajectory:
        """The chosen plan as a JointTrajectory (see :func:`planner_messages.trajectory`)."""
        return planner_messages.trajectory(command, list(self._p["action_joints"]),
                                           self._joint_indices,
                                           self.controller.settings.control_period_ns)

    def _on_tick(self) -> None:
        command = self.controller.tick()
        if command is not None and command.kind == "safe":
            hint = ""
            if "clocks disagree" in command.reason:
                hint = (" (state stamps and node clock disagree: use use_sim_time:=true when "
                        "the state comes from a simulator publishing /clock)")
            if self.controller.active and not self.controller.estop:
                self.get_logger().warning(
                    f"{command.reason} (state_timeout {self.controller.settings.state_timeout} "
                    f"s): publishing the safe action{hint}",
                    throttle_duration_sec=WARN_THROTTLE_S)

    def _check_clock(self) -> None:
        if self.get_clock().now().nanoseconds == 0:
            self.get_logger().warning(
                "use_sim_time is true but no /clock has been received: simulation time is 0, so "
                "no state can be judged fresh or stale and nothing is published until a "
                "simulator publishes /clock (or set use_sim_time:=false)",
                throttle_duration_sec=10.0)

    def _log(self, level: int, message: str) -> None:
        getattr(self.get_logger(), _LOG_LEVELS.get(level, "info"))(message)

    # -- services ---------------------------------------------------------------------------
    def _on_estop(self, request: SetBool.Request, response: SetBool.Response):
        engaged = bool(request.data)
        if engaged:  # tell the robot first, then send the safe action
            self._engaged_pub.publish(Bool(data=False))
        self.controller.set_estop(engaged)
        if engaged:
            response.message = "e-stop engaged: publishing the safe action, planning stopped"
            self.get_logger().warning(response.message)
        else:
            self._engaged_pub.publish(Bool(data=self.controller.active))
            response.message = "e-stop released: planning resumes on the next fresh state"
            self.get_logger().info(response.message)
        response.success = True
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        self.controller.request_reset()
        response.success = True
        response.message = "planner reset (warm start dropped) before the next plan"
        self.get_logger().info("reset requested: new episode")
        return response

    # -- parameters -------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        """Validate (on-set); applied in the post-set callback and by the controller."""
        names = {p.name: p.value for p in params}
        changes = {n: v for n, v in names.items() if n in CONFIG_FIELDS}
        preset_name = names.get("preset")
        if preset_name:
            changes = {**PRESETS[preset_name], **changes}
        try:
            config = self._config.replace(**changes) if changes else self._config
            if self.controller is not None:
                self.controller.check_config(config)
            else:
                config.validate()
                resolve_device(config.device)
            settings = dataclasses.replace(self._settings, **{
                n: v for n, v in names.items() if n in CONTROLLER_FIELDS})
            if settings.execution == "tracking" and self.controller is not None and \
                    not self.controller.has_tracker:
                raise ValueError("execution 'tracking' is unavailable: no robot model (see the "
                                 "log at configure)")
        except (ValueError, TypeError) as exc:
            return SetParametersResult(successful=False, reason=str(exc))
        self._pending = (config, settings, [
            Parameter(n, value=coerce_config_value(n, getattr(config, n)))
            for n in PRESETS.get(preset_name or "", {}) if n not in names])
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, params: list[Parameter]) -> None:
        config, settings, sync = self._pending
        if config != self._config:
            self._config = config
            if self.controller is not None:
                self.controller.request_config(config)
        if settings != self._settings:
            self._settings = settings
            if self.controller is not None:
                self.controller.update_settings(**{n: getattr(settings, n)
                                                   for n in CONTROLLER_FIELDS
                                                   if n != "latency_window"})
                self._tick_timer.timer_period_ns = settings.control_period_ns
        for p in params:
            if p.name == "preset":
                self._p["preset"] = p.value
        if sync:  # show the preset's values in the individual parameters
            self.set_parameters(sync)

    # -- diagnostics ------------------------------------------------------------------------
    def diagnostics(self) -> DiagnosticStatus:
        """The node's current DiagnosticStatus (also published on /diagnostics)."""
        if self.controller is None:
            return DiagnosticStatus(level=DiagnosticStatus.WARN, name=self._diagnostics_name(),
                                    message=f"{self.lifecycle_state}: no model loaded")
        status = self.controller.status()
        return planner_messages.diagnostic_status(
            status, self._diagnostics_name(), str(self.planner.device), {
                "lifecycle_state": self.lifecycle_state,
                "state_input": self._p["state_input"],
                "torch_threads": self._p["torch_threads"],
                "preset": self._p["preset"]})

    def _diagnostics_name(self) -> str:
        return f"{self.get_name()}: diffusion planner"

    def _publish_diagnostics(self) -> None:
        msg = DiagnosticArray(status=[self.diagnostics()])
        msg.header.stamp = self.get_clock().now().to_msg()
        if self.context.ok():
            self._diagnostics_pub.publish(msg)


def _describe_constraints(constraints: dict) -> str:
    return "; ".join(f"step {h}: observation {list(dims)} = {list(map(float, values))}"
                     for h, (dims, values) in sorted(constraints.items()))


def _describe(settings) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.__dict__.items())


def main(args=None) -> None:
    """Entry point: spin a PlannerNode (autostarted); exits 1 with a one-line error when it
    cannot start."""
    run_node(args, PlannerNode, (CheckpointError, StartupError, ParameterError), NODE_NAME,
             start=PlannerNode.autostart)


if __name__ == "__main__":
    main(sys.argv)


__all__ = ["NODE_NAME", "PLANNER_SPECS", "PlannerNode", "StartupError", "main",
           "parameter_specs"]
