"""``planner_node``: value-guided diffusion planning (Janner et al., 2022) as a ROS 2 node.

Receding horizon: every new state is planned from, and the first action of the best plan is
published. Topics, services and parameters are listed in ``docs/ros.md``.

Threading
---------
Planning runs on one dedicated **worker thread**; the executor (any, even single-threaded) only
runs the light callbacks: state subscription, watchdog, diagnostics, services and parameter
changes. The state callback stores the newest valid state in a one-slot mailbox and notifies the
worker, so planning always uses the newest state and never works through a backlog, and the
watchdog / e-stop keep their rate however long a plan takes (torch releases the GIL while it
computes). A worker thread rather than a MultiThreadedExecutor with callback groups keeps exactly
one plan in flight without re-entrancy reasoning and works whichever executor spins the node.

Settings changed at runtime are validated in the parameter callback (``PlannerConfig.replace`` +
the model's limits + device availability) and stashed; the worker applies them with
``planner.configure`` just before its next plan, never mid-plan. A device change moves the model
between two plans. ``~/reset`` and e-stop release likewise flag a ``planner.reset()`` for the
worker.

Output ordering: the worker publishes a planned action and the e-stop/watchdog publish zeros under
one lock; once ``~/estop`` has answered, no planned action follows.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from dataclasses import dataclass

import numpy as np
import rclpy
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from rcl_interfaces.msg import SetParametersResult
from rclpy.clock import Clock, ClockType
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, MultiArrayLayout
from std_srvs.srv import SetBool, Trigger

from diffuser_ros.nodes.entry import run_node
from diffuser_ros.nodes.observation import HOPPER_JOINTS, JointStateMapping, check_observation
from diffuser_ros.nodes.parameters import (
    CONFIG_FIELDS,
    ParameterError,
    ParamSpec,
    coerce_config_value,
    declare_parameters,
    planner_config_specs,
)
from diffuser_ros.nodes.stats import LatencyWindow
from diffuser_ros.planning import (
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

NODE_SPECS: list[ParamSpec] = [
    ParamSpec("preset", "realtime", "'' = use the individual planner parameters; a preset name "
              "(" + ", ".join(sorted(PRESETS)) + ") writes its values into them (at start-up it "
              "overrides them; at runtime it is applied on top of the current settings).",
              choices=("",) + tuple(sorted(PRESETS))),
    ParamSpec("model_path", "", "Planner checkpoint folder; '' = the shipped Hopper model "
              "(diffuser_ros/models/hopper).", read_only=True),
    ParamSpec("state_input", "joint_states", "Where the state comes from: 'joint_states' "
              "(sensor_msgs/JointState mapped by joint_names) or 'observation' (a flat "
              "std_msgs/Float64MultiArray).", read_only=True, choices=STATE_INPUTS),
    ParamSpec("state_topic", "joint_states", "JointState topic (state_input 'joint_states').",
              read_only=True),
    ParamSpec("observation_topic", "observation", "Float64MultiArray observation topic "
              "(state_input 'observation').", read_only=True),
    ParamSpec("action_topic", "action", "Float64MultiArray topic the first planned action is "
              "published on (a forward command controller's 'commands').", read_only=True),
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
    ParamSpec("state_timeout", 0.5, "A state older than this (stamp vs node clock; simulation "
              "time with use_sim_time) or none for this long makes the node publish zero actions.",
              float_range=(1e-3, 3600.0), unit="s"),
    ParamSpec("control_period", 0.008, "Control period: the watchdog's rate and the planning "
              "deadline counted in diagnostics (Hopper-v5: 0.008).",
              float_range=(1e-4, 10.0), unit="s"),
    ParamSpec("diagnostics_period", 1.0, "Period of the /diagnostics status.", read_only=True,
              float_range=(0.01, 60.0), unit="s"),
    ParamSpec("torch_threads", 0, "CPU threads torch plans with (torch.set_num_threads, for "
              "the whole process); 0 = auto: one fewer than the machine's cores, leaving one "
              "to the simulator and DDS.", read_only=True, int_range=(0, 1024)),
    ParamSpec("latency_window", 100, "Number of recent plans the latency statistics cover.",
              read_only=True, int_range=(1, 100000)),
]

PLANNER_SPECS: list[ParamSpec] = planner_config_specs() + NODE_SPECS


class StartupError(RuntimeError):
    """The node cannot start; the message says why (logged without a traceback)."""


@dataclass
class _State:
    observation: np.ndarray
    stamp_ns: int          # stamp on the node clock's time base
    key: int | None        # message stamp used to spot re-sent states (None: no stamp)


def config_from_parameters(values: dict) -> PlannerConfig:
    """The effective planner settings: the individual fields, overridden by ``preset``."""
    config = PlannerConfig(**{name: values[name] for name in CONFIG_FIELDS})
    if values.get("preset"):
        config = config.replace(**PRESETS[values["preset"]])
    return config


class PlannerNode(Node):
    """Receding-horizon diffusion planner. ``node_kwargs`` go to ``rclpy.node.Node``."""

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        try:
            self._setup()
        except BaseException:
            self.destroy_node()
            raise

    # -- start-up ---------------------------------------------------------------------------
    def _setup(self) -> None:
        try:
            p = declare_parameters(self, PLANNER_SPECS)
            config = config_from_parameters(p)
            self._mapping = JointStateMapping(tuple(p["joint_names"]), p["position_skip"],
                                              p["velocity_clip"])
        except ValueError as exc:
            raise StartupError(f"invalid parameter: {exc}") from None
        self._state_input = p["state_input"]
        self._state_timeout = float(p["state_timeout"])
        self._control_period = float(p["control_period"])
        self._preset = p["preset"]

        model_path = p["model_path"] or str(default_model_path())
        # Load with the checkpoint's architecture, then apply the ROS settings, so a setting the
        # model cannot take is reported as a parameter error, not as a corrupt checkpoint.
        try:
            resolve_device(config.device)
        except ValueError as exc:
            raise StartupError(f"invalid parameter device: {exc}") from None
        self._torch_threads = set_cpu_threads(p["torch_threads"])
        self.planner = load_planner(model_path, device=config.device)  # CheckpointError
        try:
            self.planner.configure(config)
        except ValueError as exc:
            raise StartupError(f"invalid planner parameters for model {model_path}: {exc}") \
                from None
        spec = self.planner.spec
        if self._state_input == "joint_states" and \
                self._mapping.observation_dim != spec.observation_dim:
            raise StartupError(
                f"joint mapping gives {self._mapping.observation_dim} observation values "
                f"({len(self._mapping.joint_names)} joints, position_skip "
                f"{self._mapping.position_skip}) but the model expects {spec.observation_dim}")
        self._config = config
        if self._preset:  # show the effective values in the individual parameters
            self.set_parameters([Parameter(n, value=coerce_config_value(n, getattr(config, n)))
                                 for n in PRESETS[self._preset]])

        # Warm-up: the first plan pays for lazy initialisation; not counted in the statistics.
        start = time.perf_counter()
        self.planner.plan(self.planner.normalizer.observation_mean)
        warmup = time.perf_counter() - start
        self.planner.reset()

        self._zero = Float64MultiArray(data=[0.0] * spec.action_dim)
        self._settings_lock = threading.Lock()
        self._pending_config: PlannerConfig | None = None
        self._reset_requested = False
        self._sync_parameters: list[Parameter] = []
        self._output_lock = threading.Lock()
        self._cv = threading.Condition()
        self._newest: _State | None = None
        self._newest_stamp_ns: int | None = None
        self._in_progress_key: int | None = None
        self._answered_key: int | None = None
        self._answered_msg: Float64MultiArray | None = None
        self._estop = False
        self._latency = LatencyWindow(p["latency_window"], deadline=self._control_period)
        self._last_value = math.nan
        self._rejected = 0
        self._safe_actions = 0
        self._resets = 0
        self._no_state_since_ns: int | None = None
        self._safe_reason = ""  # why zeros are being published ("" = they are not)

        # -- interfaces -----------------------------------------------------------------------
        reliability = ReliabilityPolicy.RELIABLE if p["qos_reliability"] == "reliable" \
            else ReliabilityPolicy.BEST_EFFORT
        state_qos = QoSProfile(depth=p["qos_depth"], reliability=reliability)
        if self._state_input == "joint_states":
            self._state_sub = self.create_subscription(
                JointState, p["state_topic"], self._on_joint_state, state_qos)
        else:
            self._state_sub = self.create_subscription(
                Float64MultiArray, p["observation_topic"], self._on_observation, state_qos)
        self._action_pub = self.create_publisher(Float64MultiArray, p["action_topic"], 10)
        self._trajectory_pub = self.create_publisher(
            Float64MultiArray, "~/planned_trajectory", 1)
        self._diagnostics_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self._estop_srv = self.create_service(SetBool, "~/estop", self._on_estop)
        self._reset_srv = self.create_service(Trigger, "~/reset", self._on_reset)
        # Wall-clock timers: they keep running when simulation time stands still (lockstep).
        steady = Clock(clock_type=ClockType.STEADY_TIME)
        self._watchdog = self.create_timer(self._control_period, self._on_watchdog, clock=steady)
        self._diagnostics_timer = self.create_timer(p["diagnostics_period"],
                                                    self._publish_diagnostics, clock=steady)
        self.add_on_set_parameters_callback(self._on_set_parameters)
        self.add_post_set_parameters_callback(self._after_set_parameters)

        topic = self._state_sub.topic_name
        self.get_logger().info(
            f"model {model_path} ({spec.env_id or 'unknown env'}: {spec.observation_dim} obs, "
            f"{spec.action_dim} actions, horizon {spec.horizon}) on {self.planner.device} "
            f"(torch_threads {self._torch_threads}); warm-up plan {warmup * 1e3:.0f} ms")
        self.get_logger().info(
            f"settings: {self._describe(config)}; state from {topic} ({self._state_input}), "
            f"actions on {self._action_pub.topic_name}, state_timeout {self._state_timeout} s, "
            f"control_period {self._control_period} s")
        self._worker = threading.Thread(target=self._run, name="diffusion_planner", daemon=True)
        self._worker.start()

    def destroy_node(self) -> None:
        self._stop.set()
        cv = getattr(self, "_cv", None)
        if cv is not None:
            with cv:
                cv.notify_all()
        if self._worker is not None and self._worker is not threading.current_thread():
            self._worker.join(timeout=60.0)
        super().destroy_node()

    # -- inputs -----------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        try:
            obs = self._mapping.observation(msg.name, msg.position, msg.velocity)
        except ValueError as exc:
            self._reject(str(exc))
            return
        key = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
        self._offer(obs, key if key > 0 else None)

    def _on_observation(self, msg: Float64MultiArray) -> None:
        try:
            obs = check_observation(msg.data, self.planner.spec.observation_dim)
        except ValueError as exc:
            self._reject(str(exc))
            return
        self._offer(obs, None)

    def _reject(self, reason: str) -> None:
        self._rejected += 1
        self.get_logger().warning(f"rejected state (not planned on): {reason}",
                               throttle_duration_sec=WARN_THROTTLE_S)

    def _offer(self, obs: np.ndarray, key: int | None) -> None:
        stamp_ns = key if key is not None else self.get_clock().now().nanoseconds
        with self._cv:
            self._newest_stamp_ns = stamp_ns
            if key is not None and key == self._in_progress_key:
                return  # the same state re-sent while we plan on it: its action is coming
            self._newest = _State(obs, stamp_ns, key)
            self._cv.notify()

    def state_age(self) -> float | None:
        """Seconds between the newest valid state's stamp and the node clock (None: no state).

        A stamp further in the future than ``state_timeout`` (clock reset, mismatched clocks)
        counts as infinitely old.
        """
        stamp = self._newest_stamp_ns
        return None if stamp is None else self._age(stamp)

    def _age(self, stamp_ns: int) -> float:
        now = self.get_clock().now().nanoseconds
        if now == 0:  # simulation time before the first /clock: no time has passed yet
            return 0.0
        age = (now - stamp_ns) * 1e-9
        if age < -self._state_timeout:
            return math.inf
        return max(age, 0.0)

    # -- worker -----------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            with self._cv:
                if self._newest is None:
                    self._cv.wait(timeout=0.25)
                state, self._newest = self._newest, None
                if state is not None:
                    self._in_progress_key = state.key
            if state is None:
                continue
            try:
                self._plan_and_publish(state)
            except Exception as exc:  # noqa: BLE001 - the node must survive a failed plan
                if self._stop.is_set() or not self.context.ok():
                    break
                self.get_logger().error(f"planning failed: {exc!r}",
                                        throttle_duration_sec=WARN_THROTTLE_S)
            finally:
                with self._cv:
                    self._in_progress_key = None

    def _plan_and_publish(self, state: _State) -> None:
        if self._estop:
            return
        if self._age(state.stamp_ns) > self._state_timeout:
            return  # stale before we could start: the watchdog publishes the safe action
        if state.key is not None and state.key == self._answered_key:
            # A state we already answered, sent again (e.g. a lockstep simulator that did not
            # get our action): send the same action again instead of planning twice.
            with self._output_lock:
                if not self._estop and self._answered_msg is not None:
                    self._action_pub.publish(self._answered_msg)
            return
        self._apply_pending()
        start = time.perf_counter()
        plan = self.planner.plan(state.observation)
        self._latency.add(time.perf_counter() - start)
        self._last_value = float(plan.best_value)
        msg = Float64MultiArray(data=plan.action.tolist())
        with self._output_lock:
            if self._estop:
                return  # e-stop engaged while planning: drop the plan
            self._action_pub.publish(msg)
            self._answered_key, self._answered_msg = state.key, msg
        if self._trajectory_pub.get_subscription_count() > 0:
            self._trajectory_pub.publish(trajectory_message(plan.best_actions,
                                                            plan.best_observations))

    def _apply_pending(self) -> None:
        with self._settings_lock:
            config, self._pending_config = self._pending_config, None
            reset, self._reset_requested = self._reset_requested, False
        if config is not None:
            before = self.planner.config
            try:
                self.planner.configure(config)
            except ValueError as exc:  # validated already; e.g. a device vanished
                self.get_logger().error(f"could not apply planner settings: {exc}")
            else:
                changed = {k: v for k, v in config.to_dict().items()
                           if getattr(before, k) != v}
                self.get_logger().info(f"applied planner settings {changed} "
                                       f"(device {self.planner.device})")
        if reset:
            self.planner.reset()
            self._resets += 1

    # -- safety -----------------------------------------------------------------------------
    def _publish_safe(self) -> None:
        with self._output_lock:
            self._action_pub.publish(self._zero)
        self._safe_actions += 1

    def _on_watchdog(self) -> None:
        now = self.get_clock().now().nanoseconds
        if self._estop:
            self._safe_reason = "e-stop engaged"
            self._publish_safe()
            return
        age = self.state_age()
        if age is None:
            if now == 0:  # simulation time that has not started: nothing to time out yet
                return
            if self._no_state_since_ns is None:
                self._no_state_since_ns = now
            waited = (now - self._no_state_since_ns) * 1e-9
            if waited <= self._state_timeout:
                return
            self._safe_reason = f"no state received for {waited:.2f} s"
        elif age > self._state_timeout:
            self._safe_reason = f"state is {age:.3f} s old"
        else:
            self._safe_reason = ""
            return
        self._publish_safe()
        hint = ""
        if age is not None and (math.isinf(age) or age > 1e6):
            hint = (" (state stamps and node clock disagree: use use_sim_time:=true when the "
                    "state comes from a simulator publishing /clock)")
        self.get_logger().warning(f"{self._safe_reason} (state_timeout {self._state_timeout} s): "
                               f"publishing zero actions{hint}",
                               throttle_duration_sec=WARN_THROTTLE_S)

    def _on_estop(self, request: SetBool.Request, response: SetBool.Response):
        with self._output_lock:
            was = self._estop
            self._estop = bool(request.data)
            if self._estop:
                self._action_pub.publish(self._zero)
        if request.data:
            response.message = "e-stop engaged: publishing zero actions, planning stopped"
            self.get_logger().warning(response.message)
        else:
            if was:
                with self._settings_lock:
                    self._reset_requested = True  # the warm-start plan is stale now
            response.message = "e-stop released: planning resumes on the next fresh state"
            self.get_logger().info(response.message)
        response.success = True
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        with self._settings_lock:
            self._reset_requested = True
        response.success = True
        response.message = "planner reset (warm start dropped) before the next plan"
        self.get_logger().info("reset requested: new episode")
        return response

    # -- parameters -------------------------------------------------------------------------
    def _on_set_parameters(self, params: list[Parameter]) -> SetParametersResult:
        changes = {p.name: p.value for p in params if p.name in CONFIG_FIELDS}
        names = {p.name: p.value for p in params}
        preset_name = names.get("preset")
        if preset_name is not None and preset_name != "" and preset_name not in PRESETS:
            return SetParametersResult(successful=False, reason=(
                f"unknown preset {preset_name!r}; use '' or one of {sorted(PRESETS)}"))
        for name in ("state_timeout", "control_period"):
            if name in names and not (isinstance(names[name], float) and names[name] > 0):
                return SetParametersResult(successful=False,
                                           reason=f"{name} must be a positive number of seconds")
        if preset_name:
            changes = {**PRESETS[preset_name], **changes}
        if changes:
            try:
                candidate = self._config.replace(**changes)
                candidate.validate(self.planner.schedule.num_train_timesteps)
                resolve_device(candidate.device)
            except (ValueError, TypeError) as exc:
                return SetParametersResult(successful=False, reason=str(exc))
            if candidate != self._config:
                self._config = candidate
                with self._settings_lock:
                    self._pending_config = candidate
            if preset_name:
                self._sync_parameters = [
                    Parameter(n, value=coerce_config_value(n, getattr(candidate, n)))
                    for n in PRESETS[preset_name] if n not in names]
        if "state_timeout" in names:
            self._state_timeout = names["state_timeout"]
        if "control_period" in names:
            self._control_period = names["control_period"]
        return SetParametersResult(successful=True)

    def _after_set_parameters(self, params: list[Parameter]) -> None:
        names = {p.name for p in params}
        if "control_period" in names:
            self._watchdog.timer_period_ns = int(self._control_period * 1e9)
            self._latency.deadline = self._control_period
        if "preset" in names:
            self._preset = self.get_parameter("preset").value
        sync, self._sync_parameters = self._sync_parameters, []
        if sync:  # show the preset's values in the individual parameters
            self.set_parameters(sync)

    # -- diagnostics ------------------------------------------------------------------------
    def diagnostics(self) -> DiagnosticStatus:
        """The node's current DiagnosticStatus (also published on /diagnostics)."""
        lat = self._latency.summary()
        age = self.state_age()
        level, message = DiagnosticStatus.OK, "planning"
        if self._estop:
            level, message = DiagnosticStatus.WARN, "e-stop engaged: publishing zero actions"
        elif self._safe_reason:
            level = DiagnosticStatus.WARN
            message = f"{self._safe_reason}: publishing zero actions"
        elif age is None:
            level, message = DiagnosticStatus.WARN, "waiting for the first state"
        elif lat["window"] and lat["mean"] > self._control_period:
            level = DiagnosticStatus.WARN
            message = (f"planning ({lat['mean'] * 1e3:.1f} ms mean) is slower than "
                       f"control_period ({self._control_period * 1e3:.1f} ms)")
        cfg = self.planner.config
        values = {
            "plans": lat["count"],
            "latency_mean_ms": _ms(lat["mean"]),
            "latency_p95_ms": _ms(lat["p95"]),
            "latency_max_ms": _ms(lat["max"]),
            "latency_window": lat["window"],
            "deadline_ms": _ms(self._control_period),
            "deadline_misses": lat["deadline_misses"],
            "deadline_misses_window": lat["window_misses"],
            "state_age_s": "none" if age is None else f"{age:.4f}",
            "state_input": self._state_input,
            "rejected_states": self._rejected,
            "safe_actions": self._safe_actions,
            "best_value": f"{self._last_value:.4f}",
            "estop": str(self._estop).lower(),
            "device": str(self.planner.device),
            "torch_threads": self._torch_threads,
            "resets": self._resets,
            "preset": self._preset,
            "n_candidates": cfg.n_candidates,
            "n_denoise_steps": cfg.n_denoise_steps,
            "sampler": cfg.sampler,
            "warm_start": str(cfg.warm_start).lower(),
        }
        return DiagnosticStatus(
            level=level, name=f"{self.get_name()}: diffusion planner", message=message,
            hardware_id=str(self.planner.device),
            values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])

    def _publish_diagnostics(self) -> None:
        msg = DiagnosticArray(status=[self.diagnostics()])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diagnostics_pub.publish(msg)

    def latency_summary(self) -> dict:
        return self._latency.summary()

    @staticmethod
    def _describe(config: PlannerConfig) -> str:
        return ", ".join(f"{k}={v}" for k, v in config.to_dict().items())


def trajectory_message(actions: np.ndarray, observations: np.ndarray) -> Float64MultiArray:
    """The chosen plan as a [horizon, action_dim + observation_dim] array (actions first)."""
    rows = np.concatenate([actions, observations], axis=-1)
    horizon, width = rows.shape
    layout = MultiArrayLayout(dim=[
        MultiArrayDimension(label="horizon", size=horizon, stride=horizon * width),
        MultiArrayDimension(label=f"action[{actions.shape[-1]}]+observation"
                            f"[{observations.shape[-1]}]", size=width, stride=width)])
    return Float64MultiArray(layout=layout, data=rows.reshape(-1).tolist())


def _ms(seconds: float) -> str:
    return "nan" if math.isnan(seconds) else f"{seconds * 1e3:.2f}"


def main(args=None) -> None:
    """Entry point: spin a PlannerNode; exits 1 with a one-line error when it cannot start."""
    run_node(args, PlannerNode, rclpy.spin, (CheckpointError, StartupError, ParameterError),
             NODE_NAME)


if __name__ == "__main__":
    main(sys.argv)


__all__ = ["NODE_NAME", "PLANNER_SPECS", "PlannerNode", "StartupError", "main",
           "trajectory_message"]
