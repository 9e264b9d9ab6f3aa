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

import logging
import sys

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from rclpy.clock import Clock, ClockType
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import SetBool, Trigger
from trajectory_msgs.msg import JointTrajectory

from diffuser_ros.control import ControllerSettings, ControlOutput, RecedingHorizonController
from diffuser_ros.nodes import planner_messages
from diffuser_ros.nodes.entry import run_node
from diffuser_ros.nodes.node_settings import (
    PlannerNodeSettings,
    RobotSettings,
    planner_node_parameters,
    robot_controller_defaults,
    robot_node_defaults,
)
from diffuser_ros.nodes.observation import JointStateMapping
from diffuser_ros.nodes.parameters import ParameterError, ParameterHandler
from diffuser_ros.nodes.planner_inputs import PlannerInputs
from diffuser_ros.nodes.planner_interfaces import PlannerInterfaces
from diffuser_ros.nodes.planner_setup import StartupError, load_model
from diffuser_ros.planning import (
    PRESETS,
    CheckpointError,
    PlannerConfig,
    resolve_device,
)

NODE_NAME = "planner_node"
WARN_THROTTLE_S = 2.0
_LOG_LEVELS = {logging.DEBUG: "debug", logging.INFO: "info", logging.WARNING: "warning",
               logging.ERROR: "error"}

# Every parameter of the node (settings groups of nodes/node_settings.py), shipped defaults.
PLANNER_NODE_PARAMETERS = planner_node_parameters()


class PlannerNode(LifecycleNode):
    """Managed receding-horizon diffusion planner. ``node_kwargs`` go to ``LifecycleNode``."""

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self.planner = None
        self.controller: RecedingHorizonController | None = None
        self.configure_error = ""
        self._io: PlannerInterfaces | None = None  # topics, services, timers once configured
        self._torch_threads = 0  # set at configure: the threads torch actually uses
        self._autostarting = False
        # The parameters: declared once from the settings groups, validated and applied here.
        self.parameter_handler = ParameterHandler(self)
        try:
            robot = self.parameter_handler.declare(RobotSettings).robot
            own = self.parameter_handler.declare(PlannerNodeSettings, robot_node_defaults(robot))
            self.parameter_handler.declare(PlannerConfig, PRESETS.get(own.preset))
            self.parameter_handler.declare(ControllerSettings, robot_controller_defaults(robot))
            self._mapping = JointStateMapping(tuple(own.joint_names), own.position_skip,
                                              own.velocity_clip)
            resolve_device(self._config.device)
        except ParameterError:
            self.destroy_node()
            raise
        except ValueError as exc:
            self.destroy_node()
            raise StartupError(f"invalid parameter: {exc}") from None
        self.parameter_handler.bind(check=self._check_parameters, apply=self._apply_parameters,
                                    implied=_preset_values)
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
        self._autostarting = True  # a failure is reported once, by the caller (cannot start)
        try:
            configured = self.trigger_configure() == TransitionCallbackReturn.SUCCESS
        finally:
            self._autostarting = False
        if not configured:
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
            if not self._autostarting:  # else autostart raises it: one report, not two
                self.get_logger().error(f"configure failed: {exc}")
            self._release()
            return TransitionCallbackReturn.FAILURE
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.controller.activate()
        self._io.engaged_pub.publish(Bool(data=not self.controller.estop))
        self.get_logger().info("active: answering states")
        return TransitionCallbackReturn.SUCCESS

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._io.engaged_pub.publish(Bool(data=False))
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
        own = self.parameter_handler.get(PlannerNodeSettings)
        model = load_model(own, self._config, self._mapping,  # CheckpointError, StartupError
                           self._settings.plans_in_flight,
                           self.parameter_handler.get(RobotSettings).robot)
        self.planner, self._torch_threads, spec = model.planner, model.torch_threads, \
            model.planner.spec
        if model.tracker is None:
            self.get_logger().info("execution 'tracking' and predict_ahead unavailable: "
                                   f"{model.tracker_note}")
        try:
            self.controller = RecedingHorizonController(
                self.planner, self._settings, clock=lambda: self.get_clock().now().nanoseconds,
                emit=self._publish, log=self._log, tracker=model.tracker,
                robot_model=model.robot_model, spare_planners=model.spare_planners)
        except ValueError as exc:  # e.g. execution 'tracking' without the robot's model
            raise StartupError(f"{exc} (model {model.path}, env_id {spec.env_id!r})") from None
        self._joint_indices = planner_messages.joint_indices(
            list(own.action_joints), self._mapping, own.state_input == "joint_states")
        self._create_interfaces()
        self.controller.start()
        self.get_logger().info(
            f"model {model.path} ({spec.env_id or 'unknown env'}: {spec.observation_dim} obs, "
            f"{spec.action_dim} actions, horizon {spec.horizon}) on {self.planner.device} "
            f"(torch_threads {model.torch_threads}); warm-up plan {model.warm_up_s * 1e3:.0f} ms")
        self.get_logger().info(
            f"preset {own.preset!r}: {_describe(self._config)}; state from "
            f"{self._io.state_sub.topic_name} ({own.state_input}), actions on "
            f"{self._io.action_pub.topic_name}; {_describe(self._settings)}")

    def _create_interfaces(self) -> None:
        self._io = PlannerInterfaces.create(
            self, self.parameter_handler.get(PlannerNodeSettings), self._settings.control_period,
            PlannerInputs(self.controller, self._mapping, self.get_logger()),
            on_estop=self._on_estop, on_reset=self._on_reset, on_tick=self._on_tick,
            on_diagnostics=self._publish_diagnostics)

    def _release(self) -> None:
        """Stop the planning thread, destroy the interfaces and drop the model."""
        if self.controller is not None:
            self.controller.stop()
        if self._io is not None:
            self._io.destroy(self)
            self._io = None
        self.controller = None
        if self.planner is not None:
            device = self.planner.device
            self.planner = None
            if device.type == "cuda":
                import torch

                torch.cuda.empty_cache()

    # -- outputs ----------------------------------------------------------------------------
    def _publish(self, output: ControlOutput) -> None:
        """The controller's output (called under its output lock)."""
        if self._io is None or not self.context.ok():
            return  # shutting down: nothing may be published any more
        self._io.action_pub.publish(Float64MultiArray(data=output.action.reshape(-1).tolist()))
        if output.kind == "plan" and self._io.trajectory_pub.get_subscription_count() > 0:
            self._io.trajectory_pub.publish(self.trajectory_message(output))

    def trajectory_message(self, output: ControlOutput) -> JointTrajectory:
        """The chosen plan as a JointTrajectory (see :func:`planner_messages.trajectory`)."""
        return planner_messages.trajectory(output, list(self._p["action_joints"]),
                                           self._joint_indices,
                                           self.controller.settings.control_period_ns)

    def _on_tick(self) -> None:
        output = self.controller.tick()
        if output is not None and output.kind == "safe":
            hint = ""
            if "clocks disagree" in output.reason:
                hint = (" (state stamps and node clock disagree: use use_sim_time:=true when "
                        "the state comes from a simulator publishing /clock)")
            if self.controller.active and not self.controller.estop:
                self.get_logger().warning(
                    f"{output.reason} (state_timeout {self.controller.settings.state_timeout} "
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
            self._io.engaged_pub.publish(Bool(data=False))
        self.controller.set_estop(engaged)
        if engaged:
            response.message = "e-stop engaged: publishing the safe action, planning stopped"
            self.get_logger().warning(response.message)
        else:
            self._io.engaged_pub.publish(Bool(data=self.controller.active))
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
    @property
    def _p(self) -> dict:
        """The node's own settings in effect (:class:`PlannerNodeSettings`), name -> value."""
        return vars(self.parameter_handler.get(PlannerNodeSettings))

    @property
    def _config(self) -> PlannerConfig:
        return self.parameter_handler.get(PlannerConfig)

    @property
    def _settings(self) -> ControllerSettings:
        return self.parameter_handler.get(ControllerSettings)

    def _check_parameters(self, new) -> None:
        """On-set, after the settings validated themselves: what only the node knows (the
        model's limits, device availability, a tracker for 'tracking'). Raises ValueError."""
        config = new[PlannerConfig]
        if config != self._config:
            if self.controller is not None:
                self.controller.planner.check_config(config)
            else:
                resolve_device(config.device)
        if self.controller is not None:
            self.controller.check_settings(**{
                n: v for n, v in vars(new[ControllerSettings]).items() if n != "latency_window"})

    def _apply_parameters(self, old, new) -> None:
        """Post-set: planner settings go to the controller (applied between two plans),
        controller settings at once."""
        if self.controller is None:
            return
        if new[PlannerConfig] != old[PlannerConfig]:
            self.controller.request_config(new[PlannerConfig])
        settings = new[ControllerSettings]
        if settings != old[ControllerSettings]:
            self.controller.update_settings(**{
                n: v for n, v in vars(settings).items() if n != "latency_window"})
            self._io.tick_timer.timer_period_ns = settings.control_period_ns

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
                "torch_threads": self._torch_threads,
                "preset": self._p["preset"]})

    def _diagnostics_name(self) -> str:
        return f"{self.get_name()}: diffusion planner"

    def _publish_diagnostics(self) -> None:
        msg = DiagnosticArray(status=[self.diagnostics()])
        msg.header.stamp = self.get_clock().now().to_msg()
        if self.context.ok():
            self._io.diagnostics_pub.publish(msg)


def _preset_values(given: dict) -> dict:
    """The values a ``preset`` set at runtime writes into the planner settings."""
    return dict(PRESETS.get(given.get("preset") or "", {}))


def _describe(settings) -> str:
    return ", ".join(f"{k}={v}" for k, v in settings.__dict__.items())


def main(args=None) -> None:
    """Entry point: spin a PlannerNode (autostarted); exits 1 with a one-line error when it
    cannot start."""
    run_node(args, PlannerNode, (CheckpointError, StartupError, ParameterError), NODE_NAME,
             start=PlannerNode.autostart)


if __name__ == "__main__":
    main(sys.argv)


__all__ = ["NODE_NAME", "PLANNER_NODE_PARAMETERS", "PlannerNode", "StartupError", "main"]
