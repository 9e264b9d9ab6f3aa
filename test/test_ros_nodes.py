"""The planner node and the Hopper simulator over real DDS (loopback, per-run domain id).

All nodes of a test share one rclpy Context (module fixture) and one executor spun on a
background thread; a ``probe`` node plays the robot / operator. Waits are predicates with
timeouts; the tiny random model and 2-step plans keep every test short.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="rclpy (ROS 2) is not installed")

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus  # noqa: E402
from rcl_interfaces.srv import SetParameters  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy  # noqa: E402
from sensor_msgs.msg import JointState  # noqa: E402
from std_msgs.msg import Bool, Float64MultiArray, String  # noqa: E402
from std_srvs.srv import SetBool, Trigger  # noqa: E402
from trajectory_msgs.msg import JointTrajectory  # noqa: E402

from diffuser_ros.nodes.planner_node import (  # noqa: E402
    PLANNER_NODE_PARAMETERS,
    PlannerNode,
    StartupError,
)
from diffuser_ros.nodes.sim_node import (  # noqa: E402
    KICK_PERIOD_S,
    START_TIME_NS,
    SimNode,
    SimStartupError,
    make_env,
)
from diffuser_ros.robots import HOPPER, WALKER2D  # noqa: E402

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[1]
TIMEOUT = 20.0
# Planner settings that keep one plan at a few tens of milliseconds on a busy 2-core CPU.
FAST = {"preset": "", "device": "cpu", "seed": 0, "n_candidates": 2, "n_denoise_steps": 2,
        "n_guide_steps": 1, "t_stopgrad": 0, "diagnostics_period": 0.2, "state_timeout": 30.0}
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                     durability=DurabilityPolicy.TRANSIENT_LOCAL)
QPOS = np.array([0.0, 1.25, 0.01, -0.02, 0.03, 0.01])
QVEL = np.array([0.1, -0.2, 12.0, 0.3, -15.0, 0.05])   # two velocities beyond the +-10 clip


def wait_until(predicate, timeout: float = TIMEOUT, what: str = "condition", every=None,
               period: float = 0.05):
    """Poll ``predicate`` until true; ``every()`` runs each ``period`` s (e.g. to re-publish)."""
    deadline = time.monotonic() + timeout
    next_call = 0.0
    while True:
        if predicate():
            return
        now = time.monotonic()
        if now > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        if every is not None and now >= next_call:
            every()
            next_call = now + period
        time.sleep(0.005)


class Collector:
    """Messages received on one topic (appended by the executor thread)."""

    def __init__(self, node: Node, msg_type, topic: str, qos=10):
        self.messages: list = []
        self.sub = node.create_subscription(msg_type, topic, self.messages.append, qos)

    def __len__(self) -> int:
        return len(self.messages)


class Harness:
    """One executor on a background thread spinning the nodes under test and a probe node."""

    def __init__(self, context):
        self.context = context
        self.executor = SingleThreadedExecutor(context=context)
        self.probe = Node("probe", context=context)
        self.nodes = [self.probe]
        self.executor.add_node(self.probe)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.02)

    def add(self, node: Node) -> Node:
        self.nodes.append(node)
        self.executor.add_node(node)
        return node

    def planner(self, model_dir, **params) -> PlannerNode:
        """A planner node, configured and activated (``autostart``) like the launch file does."""
        values = {**FAST, "model_path": str(model_dir), **params}
        node = self.add(PlannerNode(context=self.context, parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()]))
        node.autostart()
        return node

    def sim(self, node_name: str = "hopper_sim_node", **params) -> SimNode:
        values = {"max_episode_steps": 10, "planner_reset_service": "",
                  "controller_engaged_topic": "", **params}
        return self.add(SimNode(node_name, context=self.context, parameter_overrides=[
            Parameter(k, value=v) for k, v in values.items()]))

    def state_loop(self, node: PlannerNode):
        """Collect the planner's actions and a JointState publisher to it, once both are wired."""
        actions = Collector(self.probe, Float64MultiArray, "action")
        pub = self.probe.create_publisher(JointState, "joint_states", 10)
        wait_until(lambda: pub.get_subscription_count() > 0 and
                   self.probe.count_publishers("/action") > 0, what="discovery")
        return actions, pub

    def call(self, srv_type, name: str, request, timeout: float = TIMEOUT):
        client = self.probe.create_client(srv_type, name)
        wait_until(client.service_is_ready, timeout, f"service {name}")
        future = client.call_async(request)
        wait_until(future.done, timeout, f"answer from {name}")
        return future.result()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        for node in reversed(self.nodes):
            self.executor.remove_node(node)
            node.destroy_node()
        self.executor.shutdown()


@pytest.fixture(scope="module")
def context():
    ctx = rclpy.Context()
    rclpy.init(context=ctx)
    yield ctx
    rclpy.try_shutdown(context=ctx)


@pytest.fixture
def harness(context):
    h = Harness(context)
    yield h
    h.close()


def joint_state(probe: Node, qpos=QPOS, qvel=QVEL, stamp=None, names=HOPPER.joints) -> JointState:
    msg = JointState(name=list(names), position=list(map(float, qpos)),
                     velocity=list(map(float, qvel)))
    msg.header.stamp = stamp if stamp is not None else probe.get_clock().now().to_msg()
    return msg


def values_of(status: DiagnosticStatus) -> dict:
    return {kv.key: kv.value for kv in status.values}


def is_zero(msg: Float64MultiArray) -> bool:
    return len(msg.data) == 3 and not any(msg.data)


def plans(node: PlannerNode) -> int:
    return node.controller.status().plans


def status_of(node: PlannerNode):
    return node.controller.status()


# -- planner node -------------------------------------------------------------------------
def test_state_in_action_out_with_trajectory_and_diagnostics(harness, tiny_model_dir):
    node = harness.planner(tiny_model_dir)
    probe = harness.probe
    actions = Collector(probe, Float64MultiArray, "action")
    trajectories = Collector(probe, JointTrajectory, "/planner_node/planned_trajectory")
    diagnostics = Collector(probe, DiagnosticArray, "/diagnostics")
    pub = probe.create_publisher(JointState, "joint_states", 10)
    wait_until(lambda: pub.get_subscription_count() > 0 and
               probe.count_publishers("/action") > 0 and
               probe.count_publishers("/planner_node/planned_trajectory") > 0, what="discovery")

    state = joint_state(probe)
    pub.publish(state)
    wait_until(lambda: len(actions) >= 1 and len(trajectories) >= 1, what="action + trajectory")
    action = np.array(actions.messages[0].data)
    traj = trajectories.messages[0]
    # A JointTrajectory of the actuated joints, stamped with the state the plan started from,
    # one point per control period, the planned actions as effort.
    assert list(traj.joint_names) == ["thigh_joint", "leg_joint", "foot_joint"]
    assert traj.header.stamp == state.header.stamp and len(traj.points) == 8
    assert [p.time_from_start.nanosec for p in traj.points[:3]] == [0, 8_000_000, 16_000_000]
    # The plan starts at the joints' measured positions and (clipped) velocities ...
    np.testing.assert_allclose(traj.points[0].positions, QPOS[3:], rtol=0, atol=1e-12)
    np.testing.assert_allclose(traj.points[0].velocities, np.clip(QVEL[3:], -10, 10), rtol=0,
                               atol=1e-12)
    # ... and the published action is its first action, clipped to the bounds.
    assert action.shape == (3,) and np.all(np.abs(action) <= 1.0)
    np.testing.assert_array_equal(action, np.clip(traj.points[0].effort, -1.0, 1.0))
    assert len(actions) == 1 and plans(node) == 1

    def planner_status():
        for msg in diagnostics.messages:
            for status in msg.status:
                if status.name.startswith("planner_node") and \
                        values_of(status).get("plans") == "1":
                    return status
        return None

    wait_until(lambda: planner_status() is not None, what="diagnostics after one plan")
    values = values_of(planner_status())
    for key in ("latency_mean_ms", "latency_p95_ms", "latency_max_ms", "deadline_misses",
                "action_delay_mean_ms", "state_age_s", "best_value", "safe_actions",
                "lifecycle_state"):
        assert key in values
    # Every setting that can change at runtime is shown as it is in effect (guide_scale was not).
    runtime = [s.name for s in PLANNER_NODE_PARAMETERS if s.runtime]
    assert "guide_scale" in runtime and set(runtime) - {"preset"} <= set(values)
    assert values["guide_scale"] == "0.1" and values["n_candidates"] == "2"
    assert float(values["latency_max_ms"]) > 0 and math.isfinite(float(values["best_value"]))
    assert values["device"] == "cpu" and values["estop"] == "false"
    import torch

    # torch_threads 0 = auto: the diagnostics show the threads torch uses, not the 0.
    assert values["torch_threads"] == str(torch.get_num_threads()) != "0"
    assert planner_status().hardware_id == "cpu"


def test_observation_input_rejects_bad_arrays_and_keeps_answering(harness, tiny_model_dir):
    node = harness.planner(tiny_model_dir, state_input="observation")
    probe = harness.probe
    actions = Collector(probe, Float64MultiArray, "action")
    pub = probe.create_publisher(Float64MultiArray, "observation", 10)
    wait_until(lambda: pub.get_subscription_count() > 0 and
               probe.count_publishers("/action") > 0, what="discovery")
    good = Float64MultiArray(data=[0.1] * 11)
    pub.publish(good)
    wait_until(lambda: len(actions) == 1, what="first action")
    # One at a time: the state subscription keeps only the newest message (qos_depth 1).
    pub.publish(Float64MultiArray(data=[0.1] * 5))
    wait_until(lambda: status_of(node).rejected_states == 1,
               what="wrong-size observation rejected")
    pub.publish(Float64MultiArray(data=[0.1] * 10 + [math.nan]))
    wait_until(lambda: status_of(node).rejected_states == 2, what="NaN observation rejected")
    assert "non-finite" in values_of(node.diagnostics())["last_rejection"]
    pub.publish(good)
    wait_until(lambda: len(actions) == 2, what="action after the rejected ones")
    assert plans(node) == 2 and all(len(m.data) == 3 for m in actions.messages)


def test_bad_joint_states_never_reach_the_planner(harness, tiny_model_dir):
    node = harness.planner(tiny_model_dir)
    probe = harness.probe
    actions, pub = harness.state_loop(node)
    nan_pos = QPOS.copy()
    nan_pos[2] = math.nan
    inf_vel = QVEL.copy()
    inf_vel[4] = math.inf
    short = joint_state(probe)
    short.velocity = short.velocity[:4]
    bad_states = [joint_state(probe, qpos=nan_pos), joint_state(probe, qvel=inf_vel), short,
                  joint_state(probe, qpos=QPOS[:5], qvel=QVEL[:5], names=HOPPER.joints[:5])]
    for k, msg in enumerate(bad_states, start=1):  # one at a time (qos_depth 1)
        pub.publish(msg)
        wait_until(lambda k=k: status_of(node).rejected_states == k,
                   what=f"bad state {k} rejected")
    assert plans(node) == 0 and len(actions) == 0
    pub.publish(joint_state(probe))
    wait_until(lambda: len(actions) == 1, what="action for a good state")
    assert plans(node) == 1 and not is_zero(actions.messages[0])


def test_watchdog_publishes_zeros_once_the_state_goes_stale(harness, tiny_model_dir):
    # The safety decisions themselves are unit-tested on a fake clock (test_controller.py);
    # here: they reach the action topic. No deadline is tight: a loaded machine only waits longer.
    node = harness.planner(tiny_model_dir, state_timeout=0.3, control_period=0.02)
    probe = harness.probe
    actions, pub = harness.state_loop(node)
    pub.publish(joint_state(probe))
    wait_until(lambda: any(not is_zero(m) for m in actions.messages), what="planned action")
    first_planned = next(i for i, m in enumerate(actions.messages) if not is_zero(m))
    wait_until(lambda: sum(is_zero(m) for m in actions.messages[first_planned:]) >= 3,
               what="zeros after the state went stale")
    status = node.diagnostics()
    assert status.level == DiagnosticStatus.WARN and "old" in status.message
    # A state stamped 10 s ago is stale at once: not planned on.
    old = probe.get_clock().now().nanoseconds - 10 * 10**9
    pub.publish(joint_state(probe, stamp=rclpy.time.Time(nanoseconds=old).to_msg()))
    wait_until(lambda: float(values_of(node.diagnostics())["state_age_s"]) > 5,
               what="stale state seen")
    assert plans(node) == 1


def test_estop_stops_planning_and_release_resumes(harness, tiny_model_dir):
    node = harness.planner(tiny_model_dir, control_period=0.02)
    probe = harness.probe
    actions = Collector(probe, Float64MultiArray, "action")
    engaged = Collector(probe, Bool, "/planner_node/engaged", LATCHED)
    pub = probe.create_publisher(JointState, "joint_states", 10)

    def publish():
        pub.publish(joint_state(probe))

    wait_until(lambda: len(actions) >= 2, what="planned actions", every=publish)
    wait_until(lambda: len(engaged) > 0, what="the latched engaged flag")
    assert engaged.messages[-1].data is True
    response = harness.call(SetBool, "/planner_node/estop", SetBool.Request(data=True))
    assert response.success and "e-stop engaged" in response.message
    n_at_estop, plans_at_estop = len(actions), plans(node)
    wait_until(lambda: sum(is_zero(m) for m in actions.messages[n_at_estop:]) >= 5,
               what="zeros during e-stop", every=publish)
    first_zero = n_at_estop + next(i for i, m in enumerate(actions.messages[n_at_estop:])
                                   if is_zero(m))
    assert all(is_zero(m) for m in actions.messages[first_zero:])
    assert plans(node) - plans_at_estop <= 1
    assert engaged.messages[-1].data is False  # the robot is told to hold
    status = node.diagnostics()
    assert status.level == DiagnosticStatus.WARN and values_of(status)["estop"] == "true"

    response = harness.call(SetBool, "/planner_node/estop", SetBool.Request(data=False))
    assert response.success
    n_release, plans_release = len(actions), plans(node)
    wait_until(lambda: any(not is_zero(m) for m in actions.messages[n_release:]),
               what="planned action after release", every=publish)
    assert plans(node) > plans_release and engaged.messages[-1].data is True


def test_parameters_validated_and_applied_between_plans(harness, tiny_model_dir):
    node = harness.planner(tiny_model_dir, control_period=0.05)
    probe = harness.probe
    actions = Collector(probe, Float64MultiArray, "action")
    pub = probe.create_publisher(JointState, "joint_states", 10)

    def ok(name, value):
        return node.set_parameters([Parameter(name, value=value)])[0]

    # Accepted: applied by the controller before its next plan.
    assert ok("n_candidates", 3).successful
    assert node.get_parameter("n_candidates").value == 3
    assert status_of(node).planner_config.n_candidates == 2
    wait_until(lambda: len(actions) >= 1, what="a plan", every=lambda: pub.publish(
        joint_state(probe)))
    assert status_of(node).planner_config.n_candidates == 3
    assert values_of(node.diagnostics())["n_candidates"] == "3"

    # Rejected with the reason, by the descriptor or by PlannerConfig.
    result = ok("n_candidates", 0)
    assert not result.successful and "out of range" in result.reason.lower()
    result = ok("sampler", "euler")
    assert not result.successful and "sampler must be one of" in result.reason
    result = ok("warm_start", True)  # warm_start_steps (4) > n_denoise_steps (2)
    assert not result.successful and "warm_start_steps (4) cannot exceed" in result.reason
    result = ok("n_denoise_steps", 50)
    assert not result.successful and "model's 20 diffusion steps" in result.reason
    result = ok("model_path", "/elsewhere")
    assert not result.successful  # read-only
    result = ok("execution", "teleport")
    assert not result.successful and "execution must be one of" in result.reason
    import torch

    if not torch.cuda.is_available():
        result = ok("device", "cuda")
        assert not result.successful and "CUDA is not available" in result.reason
    assert node.get_parameter("n_candidates").value == 3
    assert node.get_parameter("sampler").value == "ddpm"

    # A preset writes its values into the individual parameters.
    assert ok("preset", "realtime").successful
    assert node.get_parameter("n_candidates").value == 16
    assert node.get_parameter("warm_start").value is True
    wait_until(lambda: status_of(node).planner_config.n_candidates == 16, what="preset applied",
               every=lambda: pub.publish(joint_state(probe)))
    assert status_of(node).planner_config.warm_start

    # Controller settings apply at once.
    assert ok("control_period", 0.1).successful
    assert status_of(node).settings.control_period == 0.1
    assert values_of(node.diagnostics())["deadline_ms"] == "100.00"

    # The same over the parameter services, as `ros2 param set` does.
    def remote(name, value):
        request = SetParameters.Request(parameters=[Parameter(name, value=value)
                                                    .to_parameter_msg()])
        return harness.call(SetParameters, "/planner_node/set_parameters", request).results[0]

    assert remote("guide_scale", 0.05).successful
    assert node.get_parameter("guide_scale").value == 0.05
    result = remote("ddim_eta", 2.0)
    assert not result.successful and result.reason
    result = remote("seed", -2)
    assert not result.successful


def test_reset_service_restarts_the_noise_stream(harness, tiny_model_dir):
    node = harness.planner(tiny_model_dir, seed=7)
    probe = harness.probe
    actions, pub = harness.state_loop(node)

    def act() -> np.ndarray:
        n = len(actions)
        pub.publish(joint_state(probe))
        wait_until(lambda: len(actions) > n, what="action")
        return np.array(actions.messages[-1].data)

    first, second = act(), act()
    assert not np.array_equal(first, second)  # the noise stream moved on
    response = harness.call(Trigger, "/planner_node/reset", Trigger.Request())
    assert response.success
    np.testing.assert_array_equal(act(), first)
    assert values_of(node.diagnostics())["resets"] == "1"


def test_resent_state_gets_the_same_action_without_replanning(harness, tiny_model_dir):
    node = harness.planner(tiny_model_dir)
    probe = harness.probe
    actions, pub = harness.state_loop(node)
    msg = joint_state(probe)
    pub.publish(msg)
    wait_until(lambda: len(actions) == 1, what="action")
    pub.publish(msg)  # same stamp: e.g. a lockstep simulator re-sending its state
    wait_until(lambda: len(actions) == 2, what="re-sent action")
    assert actions.messages[0].data.tolist() == actions.messages[1].data.tolist()
    assert plans(node) == 1 and status_of(node).resent_states == 1


def test_missing_model_exits_nonzero_with_a_clear_message(tmp_path):
    missing = tmp_path / "no_such_model"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, "-m", "diffuser_ros.nodes.planner_node", "--ros-args",
         "-p", f"model_path:={missing}", "-p", "device:=cpu"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert str(missing) in proc.stderr and "cannot start" in proc.stderr
    assert "Traceback" not in proc.stderr
    # Reported once: the autostart's configure failure is the start-up error, not a second line.
    assert proc.stderr.count(str(missing)) == 1, proc.stderr
    assert "configure failed" not in proc.stderr


def test_corrupt_model_and_bad_settings_exit_nonzero(tiny_model_dir, tmp_path, capfd):
    import shutil

    from diffuser_ros.nodes import planner_node

    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_model_dir, corrupt)
    weights = corrupt / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(b"not a safetensors file")
    with pytest.raises(SystemExit) as info:
        planner_node.main(["planner_node", "--ros-args", "-p", f"model_path:={corrupt}",
                           "-p", "device:=cpu"])
    assert info.value.code == 1
    err = capfd.readouterr().err
    assert str(corrupt / "unet") in err and "Traceback" not in err

    with pytest.raises(SystemExit) as info:
        planner_node.main(["planner_node", "--ros-args", "-p", f"model_path:={tiny_model_dir}",
                           "-p", "device:=cpu", "-p", "n_denoise_steps:=50"])
    assert info.value.code == 1
    assert "model's 20 diffusion steps" in capfd.readouterr().err


def test_preset_is_the_base_and_explicit_parameters_win(harness, tiny_model_dir):
    node = harness.planner(tiny_model_dir, preset="realtime", n_candidates=3, n_denoise_steps=4)
    assert node.get_parameter("n_candidates").value == 3          # given: wins
    assert node.get_parameter("warm_start").value is True         # from the preset
    assert node.get_parameter("n_guide_steps").value == 1
    config = status_of(node).planner_config
    assert config.n_candidates == 3 and config.warm_start and config.seed == 0


def test_configure_errors_fail_the_transition_naming_the_cause(harness, tiny_model_dir, tmp_path):
    with pytest.raises(StartupError, match="not found"):
        harness.planner(tmp_path / "missing")
    with pytest.raises(StartupError, match="joint mapping gives 9"):
        harness.planner(tiny_model_dir, joint_names=["a", "b", "c", "d", "e"])
    with pytest.raises(Exception, match="sampler must be one of"):
        harness.planner(tiny_model_dir, sampler="euler")


def test_a_model_of_another_robot_is_refused_naming_both(harness, tiny_model_dir,
                                                         tiny_walker2d_model_dir):
    with pytest.raises(StartupError, match=r"trained on Walker2d-v5 \(robot 'walker2d'\) but "
                                           r"the node drives robot 'hopper'"):
        harness.planner(tiny_walker2d_model_dir)
    with pytest.raises(StartupError, match="trained on Hopper-v5"):
        harness.planner(tiny_model_dir, robot="walker2d")
    with pytest.raises(Exception, match="robot must be one of"):
        harness.planner(tiny_model_dir, robot="ant")


def test_lifecycle_by_hand_configure_activate_deactivate_cleanup(harness, tiny_model_dir,
                                                                 tmp_path):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    node = harness.planner(tiny_model_dir, autostart=False)
    probe = harness.probe
    actions = Collector(probe, Float64MultiArray, "action")
    engaged = Collector(probe, Bool, "/planner_node/engaged", LATCHED)

    def state() -> str:
        return harness.call(GetState, "/planner_node/get_state", GetState.Request()) \
            .current_state.label

    def change(transition: int) -> bool:
        request = ChangeState.Request(transition=Transition(id=transition))
        return harness.call(ChangeState, "/planner_node/change_state", request).success

    assert state() == "unconfigured" and node.controller is None
    assert change(Transition.TRANSITION_CONFIGURE) and state() == "inactive"
    pub = probe.create_publisher(JointState, "joint_states", 10)
    wait_until(lambda: pub.get_subscription_count() > 0, what="discovery")
    pub.publish(joint_state(probe))
    assert plans(node) == 0  # inactive: loaded, not answering
    assert change(Transition.TRANSITION_ACTIVATE) and state() == "active"
    wait_until(lambda: len(actions) >= 1, what="action once active",
               every=lambda: pub.publish(joint_state(probe)))
    assert engaged.messages[-1].data is True
    n = len(actions)
    assert change(Transition.TRANSITION_DEACTIVATE) and state() == "inactive"
    wait_until(lambda: any(is_zero(m) for m in actions.messages[n:]), what="safe action")
    assert engaged.messages[-1].data is False
    assert change(Transition.TRANSITION_CLEANUP) and state() == "unconfigured"
    assert node.controller is None and node.planner is None  # model released


def test_configure_by_hand_with_a_missing_model_fails_and_stays_unconfigured(harness, tmp_path):
    from lifecycle_msgs.msg import Transition
    from lifecycle_msgs.srv import ChangeState, GetState

    missing = tmp_path / "missing"
    node = harness.planner(missing, autostart=False)
    request = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE))
    assert not harness.call(ChangeState, "/planner_node/change_state", request).success
    assert str(missing) in node.configure_error
    label = harness.call(GetState, "/planner_node/get_state", GetState.Request()) \
        .current_state.label
    assert label == "unconfigured"


def test_without_clock_the_node_says_it_waits_for_clock(harness, tiny_model_dir):
    node = harness.planner(tiny_model_dir, use_sim_time=True)
    status = node.diagnostics()
    assert status.level == DiagnosticStatus.WARN
    assert "/clock" in status.message and "waiting for the clock" in status.message


# -- simulator ----------------------------------------------------------------------------
def test_lockstep_closed_loop_runs_episodes_and_resets_planner(harness, tiny_model_dir):
    planner = harness.planner(tiny_model_dir, use_sim_time=True)
    probe = harness.probe
    stats = Collector(probe, String, "episode_stats", QoSProfile(
        depth=100, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    sim = harness.sim(mode="lockstep", max_episode_steps=8, max_episodes=2,
                      planner_reset_service="planner_node/reset",
                      controller_engaged_topic="planner_node/engaged")
    wait_until(lambda: sim.finished, timeout=60, what="two episodes")
    wait_until(lambda: any(json.loads(m.data).get("summary") for m in stats.messages),
               what="summary on episode_stats")
    records = [json.loads(m.data) for m in stats.messages]
    episodes = [r for r in records if not r.get("summary")]
    summary = next(r for r in records if r.get("summary"))
    assert [e["episode"] for e in episodes] == [1, 2]
    assert [e["seed"] for e in episodes] == [0, 1]
    for e in episodes:
        assert e["reason"] in ("terminated", "truncated") and 1 <= e["length"] <= 8
        assert (e["length"] == 8) == (e["reason"] == "truncated")
    assert summary["episodes"] == 2 and summary["steps"] == sum(e["length"] for e in episodes)
    # Lockstep: exactly one plan per simulator step, and the planner was reset per episode.
    assert plans(planner) == summary["steps"]
    assert status_of(planner).resets == 1
    assert summary["rejected_actions"] == 0
    # Lockstep has no deadline: the world waited for every plan, so no action was late (before,
    # every plan counted as a miss against the 8 ms control period and /diagnostics said WARN).
    values = values_of(planner.diagnostics())
    assert values["deadline_misses"] == "0" and float(values["action_delay_mean_ms"]) == 0.0


def test_walker2d_closed_loop_through_the_generic_bridge(harness, tiny_walker2d_model_dir):
    """The same two nodes drive Walker2d: the robot entry gives the bridge's joints, the
    planner's joint mapping (``ros2 param get`` shows it), the action size and the planned
    trajectory's joints."""
    planner = harness.planner(tiny_walker2d_model_dir, robot="walker2d", use_sim_time=True)
    probe = harness.probe
    states = Collector(probe, JointState, "joint_states")
    actions = Collector(probe, Float64MultiArray, "action")
    trajectories = Collector(probe, JointTrajectory, "/planner_node/planned_trajectory")
    wait_until(lambda: probe.count_publishers("/planner_node/planned_trajectory") > 0,
               what="discovery")
    sim = harness.sim("walker2d_sim_node", env_id="Walker2d-v5", mode="lockstep",
                      max_episode_steps=6, max_episodes=1,
                      planner_reset_service="planner_node/reset",
                      controller_engaged_topic="planner_node/engaged")
    wait_until(lambda: sim.finished, timeout=60, what="one Walker2d episode")
    summary = sim.summary()
    assert summary["episodes"] == 1 and summary["rejected_actions"] == 0
    assert plans(planner) == summary["steps"] >= 1
    assert tuple(states.messages[0].name) == WALKER2D.joints
    assert {len(m.data) for m in actions.messages} == {WALKER2D.action_dim}
    assert all(np.all(np.abs(m.data) <= 1.0) for m in actions.messages)
    wait_until(lambda: len(trajectories) >= 1, what="a planned trajectory")
    assert tuple(trajectories.messages[0].joint_names) == WALKER2D.action_joints
    for name, expected in (("joint_names", WALKER2D.joints),
                           ("action_joints", WALKER2D.action_joints),
                           ("robot", "walker2d")):
        value = planner.get_parameter(name).value
        assert (tuple(value) if isinstance(expected, tuple) else value) == expected, name


def test_lockstep_estop_holds_the_simulation_without_counting_episodes(harness, tiny_model_dir):
    harness.planner(tiny_model_dir, use_sim_time=True, control_period=0.01)
    sim = harness.sim(mode="lockstep", max_episode_steps=1000, max_episodes=1,
                      controller_engaged_topic="planner_node/engaged")
    wait_until(lambda: sim.steps >= 3, what="the loop running")
    response = harness.call(SetBool, "/planner_node/estop", SetBool.Request(data=True))
    assert response.success
    wait_until(lambda: sim.held, what="simulation held")
    steps = sim.steps
    # The planner keeps publishing zeros at 100 Hz; none of them may step the held simulation.
    wait_until(lambda: sim.summary()["actions_while_held"] >= 20, what="zeros while held")
    assert sim.steps <= steps + 1 and not sim.finished and sim.results == []
    harness.call(SetBool, "/planner_node/estop", SetBool.Request(data=False))
    wait_until(lambda: sim.steps > steps + 3, what="the loop resuming after release")
    assert sim.results == []  # still the first episode


def test_lockstep_sends_a_controller_that_has_the_state_no_second_copy(harness):
    """Lockstep steps on every action, and an action does not say which state it answers: a
    second copy of a state the controller has would be answered too and step the loop twice.
    Held, the bridge sends nothing; engaged, the first state goes out once (to a subscriber
    matched before it went out: none is fresh), and one action steps once."""
    probe = harness.probe
    states = Collector(probe, JointState, "joint_states")
    engaged = probe.create_publisher(Bool, "planner_node/engaged", LATCHED)
    actions = probe.create_publisher(Float64MultiArray, "action", 10)
    sim = harness.sim(mode="lockstep", controller_engaged_topic="planner_node/engaged",
                      state_republish_period=2.0)
    wait_until(lambda: actions.get_subscription_count() > 0 and
               probe.count_publishers("/joint_states") > 0, what="discovery")
    assert sim.held and len(states) == 0
    engaged.publish(Bool(data=True))
    wait_until(lambda: len(states) >= 1, what="the first state")
    # No clock to inject into DDS: a fresh-subscriber re-send would come within one kick period,
    # a stalled-loop one only after state_republish_period.
    time.sleep(5 * KICK_PERIOD_S)
    assert len(states) == 1 and sim.steps == 0
    actions.publish(Float64MultiArray(data=[0.0, 0.0, 0.0]))
    wait_until(lambda: len(states) >= 2, what="the state after one step")
    assert sim.steps == 1 and states.messages[1].header.stamp != states.messages[0].header.stamp


def test_sim_rejects_bad_actions_and_resends_state(harness):
    sim = harness.sim(mode="lockstep")
    probe = harness.probe
    states = Collector(probe, JointState, "joint_states")
    pub = probe.create_publisher(Float64MultiArray, "action", 10)
    wait_until(lambda: len(states) >= 1, what="initial state")
    first = states.messages[0]
    assert list(first.name) == list(HOPPER.joints) and len(first.velocity) == 6
    assert first.header.stamp.sec * 10**9 + first.header.stamp.nanosec == START_TIME_NS
    wait_until(lambda: pub.get_subscription_count() > 0, what="discovery")
    n = len(states)
    pub.publish(Float64MultiArray(data=[0.1, math.nan, 0.0]))
    pub.publish(Float64MultiArray(data=[0.1, 0.2]))
    wait_until(lambda: sim.summary()["rejected_actions"] == 2 and len(states) >= n + 2,
               what="re-sent states")
    assert all(m.header.stamp == first.header.stamp for m in states.messages)
    assert sim.steps == 0
    pub.publish(Float64MultiArray(data=[0.1, 0.2, 0.3]))
    wait_until(lambda: states.messages[-1].header.stamp != first.header.stamp, what="a step")
    stamp = states.messages[-1].header.stamp
    assert stamp.sec * 10**9 + stamp.nanosec == START_TIME_NS + 8_000_000
    assert sim.steps == 1


def test_sim_reset_service_episode_stats_and_max_episodes(harness):
    gym = pytest.importorskip("gymnasium")
    sim = harness.sim(mode="lockstep", max_episodes=2, seed=5)
    probe = harness.probe
    states = Collector(probe, JointState, "joint_states")
    stats = Collector(probe, String, "episode_stats", QoSProfile(
        depth=100, reliability=ReliabilityPolicy.RELIABLE,
        durability=DurabilityPolicy.TRANSIENT_LOCAL))
    pub = probe.create_publisher(Float64MultiArray, "action", 10)
    wait_until(lambda: pub.get_subscription_count() > 0 and len(states) >= 1, what="discovery")
    for k in range(2):
        n = len(states)
        pub.publish(Float64MultiArray(data=[0.0, 0.0, 0.0]))
        wait_until(lambda n=n: len(states) > n, what=f"step {k + 1}")
    travelled = states.messages[-1].position[0] - states.messages[0].position[0]  # root x
    response = harness.call(Trigger, "/hopper_sim_node/reset", Trigger.Request())
    assert response.success
    wait_until(lambda: len(stats) >= 1, what="episode stats")
    first = json.loads(stats.messages[0].data)
    assert first["reason"] == "reset" and first["length"] == 2 and first["episode"] == 1
    assert first["speed_last_1s"] == pytest.approx(travelled / (2 * 0.008), abs=1e-3)
    # Episode 2 starts from the state gymnasium gives for seed + 1, time runs on.
    env = gym.make("Hopper-v5", disable_env_checker=True)
    env.reset(seed=6)
    expected_qpos = env.unwrapped.data.qpos.copy()
    env.close()
    wait_until(lambda: np.allclose(states.messages[-1].position, expected_qpos, atol=0),
               what="episode 2 initial state")
    stamp = states.messages[-1].header.stamp
    assert stamp.sec * 10**9 + stamp.nanosec == START_TIME_NS + 2 * 8_000_000
    response = harness.call(Trigger, "/hopper_sim_node/reset", Trigger.Request())
    assert response.success
    wait_until(lambda: sim.finished and len(stats) >= 3, what="summary after max_episodes")
    summary = json.loads(stats.messages[-1].data)
    assert summary["summary"] and summary["episodes"] == 2
    response = harness.call(Trigger, "/hopper_sim_node/reset", Trigger.Request())
    assert not response.success


def test_realtime_loop_starts_and_resumes_after_an_estop(harness, tiny_model_dir):
    # The held realtime simulator publishes no new state; without re-sending the one it holds,
    # the planner (mailbox empty, simulation time frozen) would never answer: a deadlock.
    harness.planner(tiny_model_dir, use_sim_time=True)
    sim = harness.sim(mode="realtime", max_episode_steps=100000,
                      controller_engaged_topic="planner_node/engaged")
    wait_until(lambda: sim.steps >= 10, what="the realtime loop starting")
    harness.call(SetBool, "/planner_node/estop", SetBool.Request(data=True))
    wait_until(lambda: sim.held, what="held during the e-stop")
    steps = sim.steps
    harness.call(SetBool, "/planner_node/estop", SetBool.Request(data=False))
    wait_until(lambda: sim.steps > steps + 10, what="the loop resuming after release")


def test_sim_realtime_steps_on_a_timer_and_zeroes_a_stale_action(harness):
    sim = harness.sim(mode="realtime", action_timeout=0.3, max_episode_steps=1000)
    probe = harness.probe
    states = Collector(probe, JointState, "joint_states")
    pub = probe.create_publisher(Float64MultiArray, "action", 10)
    wait_until(lambda: pub.get_subscription_count() > 0, what="discovery")
    pub.publish(Float64MultiArray(data=[0.5, -0.5, 0.25]))
    wait_until(lambda: len(states) >= 5, what="states on the timer")
    stamps = [m.header.stamp.sec * 10**9 + m.header.stamp.nanosec for m in states.messages]
    assert all((b - a) % 8_000_000 == 0 and b > a for a, b in zip(stamps, stamps[1:]))
    wait_until(lambda: not sim.applied_action.any(), what="zero action after action_timeout")


def test_realtime_sim_is_held_until_the_controller_is_engaged_and_acts(harness):
    # Before: the simulator stepped from start-up on zero actions, so episodes ran out before
    # the planner's first plan arrived.
    sim = harness.sim(mode="realtime", max_episode_steps=1000,
                      controller_engaged_topic="planner_node/engaged")
    probe = harness.probe
    engaged = probe.create_publisher(Bool, "planner_node/engaged", LATCHED)
    actions = probe.create_publisher(Float64MultiArray, "action", 10)
    wait_until(lambda: actions.get_subscription_count() > 0, what="discovery")
    actions.publish(Float64MultiArray(data=[0.1, 0.1, 0.1]))  # not engaged yet: ignored
    wait_until(lambda: sim.summary()["actions_while_held"] >= 1, what="action while held")
    engaged.publish(Bool(data=True))
    wait_until(lambda: sim.controller_engaged, what="engaged")
    assert sim.steps == 0 and sim.held  # engaged, but no action yet
    actions.publish(Float64MultiArray(data=[0.1, 0.1, 0.1]))
    wait_until(lambda: sim.steps >= 3, what="stepping after the first action")
    engaged.publish(Bool(data=False))  # e-stop / deactivation: held again
    wait_until(lambda: sim.held, what="held again")
    steps = sim.steps
    wait_until(lambda: sim.summary()["actions_while_held"] >= 5, what="actions while held",
               every=lambda: actions.publish(Float64MultiArray(data=[0.1, 0.1, 0.1])))
    assert sim.steps == steps and sim.results == []


def test_record_video_fails_clearly_without_offscreen_rendering(harness, tmp_path):
    try:
        env = make_env("Hopper-v5", 10, (64, 48))
    except SimStartupError as exc:
        assert "MUJOCO_GL" in str(exc)  # says which GL back-end failed / what to install
        with pytest.raises(SimStartupError, match="MUJOCO_GL"):
            harness.sim(record_video=str(tmp_path / "run.gif"))
        pytest.skip(f"off-screen rendering unavailable here (clear error checked): {exc}")
    env.close()
    video = tmp_path / "run.gif"
    sim = harness.sim(record_video=str(video), max_episodes=1, max_episode_steps=3,
                      video_width=64, video_height=48)
    pub = harness.probe.create_publisher(Float64MultiArray, "action", 10)
    wait_until(lambda: sim.finished, what="episode", every=lambda: pub.publish(
        Float64MultiArray(data=[0.0, 0.0, 0.0])))
    assert video.is_file() and video.stat().st_size > 0


# -- runner -------------------------------------------------------------------------------
@pytest.mark.parametrize("executor", ["single", "multi"])
def test_demo_runner_runs_episodes_and_exits_zero(tiny_model_dir, capsys, executor):
    from diffuser_ros import demo

    code = demo.main(["--model-path", str(tiny_model_dir), "--episodes", "2", "--mode",
                      "lockstep", "--device", "cpu", "--seed", "0", "--max-episode-steps", "6",
                      "--executor", executor, "--preset", "",
                      "--ros-args", "-p", "n_candidates:=2",
                      "-p", "n_denoise_steps:=2", "-p", "n_guide_steps:=1"])
    out = capsys.readouterr().out
    assert code == 0
    assert "episode 1: return" in out and "episode 2: return" in out
    assert "summary (lockstep): 2 episodes" in out and "decisions/s" in out
    assert "n_candidates=2" in out and "seed=0" in out


def test_walker2d_demo_uses_its_config_bridge_and_joints(tiny_walker2d_model_dir, capsys):
    """--robot walker2d: config/walker2d.yaml, walker2d_sim_node on Walker2d-v5, six actions."""
    from diffuser_ros import demo

    code = demo.main(["--robot", "walker2d", "--model-path", str(tiny_walker2d_model_dir),
                      "--episodes", "1", "--mode", "lockstep", "--device", "cpu", "--seed", "0",
                      "--max-episode-steps", "5", "--preset", "", "--ros-args",
                      "-p", "n_candidates:=2", "-p", "n_denoise_steps:=2"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "config/walker2d.yaml" in out and "summary (lockstep): 1 episodes" in out


def test_demo_simulator_in_its_own_process_gives_the_same_episodes(tiny_model_dir, capfd):
    """--sim-process separate (realtime's default) runs sim_node as a child process and follows
    it over DDS: in lockstep its episodes are the in-process ones, number for number; a child
    that cannot start fails the demo."""
    from diffuser_ros import demo

    flags = ["--model-path", str(tiny_model_dir), "--episodes", "2", "--mode", "lockstep",
             "--device", "cpu", "--seed", "5", "--max-episode-steps", "6", "--preset", "",
             "--progress-period", "0"]
    planner = ["-p", "n_candidates:=2", "-p", "n_denoise_steps:=2"]
    outputs = {}
    for where in ("same", "separate"):
        assert demo.main(["--sim-process", where, *flags, "--ros-args", *planner]) == 0, where
        outputs[where] = capfd.readouterr().out
    assert "in its own process" in outputs["separate"]
    episodes = {w: [line for line in out.splitlines() if line.startswith(("episode ", "summary"))]
                for w, out in outputs.items()}
    assert len(episodes["same"]) == 3 and episodes["separate"] == episodes["same"]
    # The child refuses a parameter: the demo says so and exits 1.
    assert demo.main(["--sim-process", "separate", *flags, "--ros-args", *planner,
                      "-p", "state_republish_period:=0.0"]) == 1
    assert "hopper_sim_node exited with code 1" in capfd.readouterr().err


def test_demo_runner_missing_model_exits_one(tmp_path, capsys):
    from diffuser_ros import demo

    assert demo.main(["--model-path", str(tmp_path / "nothing"), "--device", "cpu"]) == 1
    assert "cannot start" in capsys.readouterr().err


# -- shutdown -----------------------------------------------------------------------------
def _start_planner_process(model_dir, tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    params = {**FAST, "model_path": str(model_dir), "state_timeout": 0.01,
              "control_period": 0.001}  # no state: the safety tick publishes zeros at 1 kHz
    args = [a for k, v in params.items() for a in ("-p", f"{k}:={v if v != '' else chr(34) * 2}")]
    return subprocess.Popen([sys.executable, "-m", "diffuser_ros.nodes.planner_node",
                             "--ros-args", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.parametrize("signals", [("SIGINT",), ("SIGTERM",), ("SIGINT", "SIGINT")])
def test_signals_shut_the_node_down_cleanly_while_it_publishes(harness, tiny_model_dir,
                                                               tmp_path, signals):
    # Before: rclpy's handler invalidated the context while the safety tick published, so the
    # node often died with RCLError (exit 1), and a second Ctrl-C aborted it (exit -6).
    import signal as signal_module

    actions = Collector(harness.probe, Float64MultiArray, "action")
    proc = _start_planner_process(tiny_model_dir, tmp_path)
    try:
        wait_until(lambda: sum(is_zero(m) for m in actions.messages) >= 50 or
                   proc.poll() is not None, timeout=60, what="the node publishing zeros")
        for name in signals:
            proc.send_signal(getattr(signal_module, name))
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "RCLError" not in err and "shutting down" in err


def test_demo_prints_its_summary_when_interrupted(tiny_model_dir):
    import signal as signal_module

    env = {**os.environ, "PYTHONPATH": str(REPO), "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "diffuser_ros.demo", "--model-path", str(tiny_model_dir),
         "--episodes", "0", "--device", "cpu", "--progress-period", "0.2", "--ros-args",
         "-p", "n_candidates:=2", "-p", "n_denoise_steps:=2", "-p", "warm_start:=false"],
        cwd=REPO, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = []
        for line in proc.stdout:  # progress lines while the episode runs
            lines.append(line)
            if "return so far" in line:
                break
        proc.send_signal(signal_module.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    out = "".join(lines) + out
    assert proc.returncode == 0, err
    assert "interrupted (SIGINT)" in out and "summary (" in out and "decisions/s" in out
    assert "Traceback" not in err


def test_cmd_vel_commands_the_speed_and_bad_commands_are_refused(harness, tiny_command_model_dir):
    from geometry_msgs.msg import Twist, Vector3

    node = harness.planner(tiny_command_model_dir)
    probe = harness.probe
    actions, pub = harness.state_loop(node)
    cmd_vel = probe.create_publisher(Twist, "cmd_vel", 10)
    wait_until(lambda: cmd_vel.get_subscription_count() > 0, what="cmd_vel discovery")
    assert values_of(node.diagnostics())["command_speed"] == "none"
    cmd_vel.publish(Twist(linear=Vector3(x=2.5)))
    wait_until(lambda: node.controller.command() == 2.5, what="the command")
    pub.publish(joint_state(probe))
    wait_until(lambda: len(actions) >= 1, what="an action planned for the command")
    values = values_of(node.diagnostics())
    assert values["command_speed"] == "2.500" and 0 <= float(values["command_age_s"]) <= 2.0
    assert values["command_timeout"] == "2.0" and values["command_weight"] == "100.0"
    # Outside the speeds the command value was trained for (1-4 m/s): refused, the command in
    # effect stays (the next valid one, sent after it, arrives after it was handled).
    cmd_vel.publish(Twist(linear=Vector3(x=9.0)))
    cmd_vel.publish(Twist(linear=Vector3(x=3.0)))
    wait_until(lambda: node.controller.command() == 3.0, what="the next valid command")
    pub.publish(joint_state(probe))
    wait_until(lambda: len(actions) >= 2, what="still answering states")


def test_cmd_vel_without_a_command_value_is_refused_and_planning_goes_on(harness,
                                                                         tiny_model_dir):
    from geometry_msgs.msg import Twist, Vector3

    node = harness.planner(tiny_model_dir)
    probe = harness.probe
    actions, pub = harness.state_loop(node)
    cmd_vel = probe.create_publisher(Twist, "cmd_vel", 10)
    wait_until(lambda: cmd_vel.get_subscription_count() > 0, what="cmd_vel discovery")
    cmd_vel.publish(Twist(linear=Vector3(x=2.0)))
    pub.publish(joint_state(probe))
    wait_until(lambda: len(actions) >= 1, what="an action")
    assert node.controller.command() is None


def test_goal_topic_constrains_every_plan_and_an_empty_goal_clears_it(harness, tiny_model_dir):
    from builtin_interfaces.msg import Duration
    from trajectory_msgs.msg import JointTrajectoryPoint

    node = harness.planner(tiny_model_dir)
    probe = harness.probe
    trajectories = Collector(probe, JointTrajectory, "/planner_node/planned_trajectory")
    goals = probe.create_publisher(JointTrajectory, "/planner_node/goal", LATCHED)
    pub = probe.create_publisher(JointState, "joint_states", 10)
    wait_until(lambda: pub.get_subscription_count() > 0 and goals.get_subscription_count() > 0
               and probe.count_publishers("/planner_node/planned_trajectory") > 0,
               what="discovery")
    # thigh at -0.3 rad and the forward velocity (rootx) at 1.5 m/s, 7 control steps ahead
    point = JointTrajectoryPoint(positions=[-0.3, math.nan], velocities=[math.nan, 1.5],
                                 time_from_start=Duration(nanosec=56_000_000))
    goals.publish(JointTrajectory(joint_names=["thigh_joint", "rootx"], points=[point]))
    wait_until(lambda: node.controller.status().constraints == 2, what="the goal")
    assert values_of(node.diagnostics())["goal_constraints"] == "2"
    pub.publish(joint_state(probe))
    wait_until(lambda: len(trajectories) >= 1, what="a plan")
    assert trajectories.messages[-1].points[7].positions[0] == pytest.approx(-0.3, abs=1e-9)
    # A goal the observation cannot hold (root x position is not observed): refused, kept.
    bad = JointTrajectoryPoint(positions=[1.0], time_from_start=Duration(nanosec=16_000_000))
    goals.publish(JointTrajectory(joint_names=["rootx"], points=[bad]))
    goals.publish(JointTrajectory())  # then an empty goal clears it
    wait_until(lambda: node.controller.status().constraints == 0, what="the goal cleared")
    pub.publish(joint_state(probe))
    wait_until(lambda: len(trajectories) >= 2, what="a plan without the goal")
    assert trajectories.messages[-1].points[7].positions[0] != pytest.approx(-0.3, abs=1e-6)


def test_malformed_states_commands_and_goals_never_make_a_bad_action(harness,
                                                                     tiny_command_model_dir):
    """Property test over DDS: whatever arrives on joint_states, cmd_vel and ~/goal, every
    action on /action is finite and within the bounds, and the next good state is planned on."""
    from builtin_interfaces.msg import Duration
    from geometry_msgs.msg import Twist, Vector3
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st
    from trajectory_msgs.msg import JointTrajectoryPoint

    node = harness.planner(tiny_command_model_dir, execution="time_indexed")
    probe = harness.probe
    actions, states = harness.state_loop(node)
    cmd_vel = probe.create_publisher(Twist, "cmd_vel", 10)
    goals = probe.create_publisher(JointTrajectory, "/planner_node/goal", 10)
    wait_until(lambda: cmd_vel.get_subscription_count() > 0 and
               goals.get_subscription_count() > 0, what="discovery")
    absurd = st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 1e30, 1e6, -1e6])
    value = st.one_of(absurd, st.floats(-3.0, 3.0))
    joints = st.lists(st.sampled_from(list(HOPPER.joints) + ["unknown_joint"]), min_size=0,
                      max_size=7)

    @st.composite
    def messages(draw):
        topic = draw(st.sampled_from(["joint_states", "cmd_vel", "goal"]))
        if topic == "joint_states":
            qpos, qvel = QPOS.copy(), QVEL.copy()
            (qpos if draw(st.booleans()) else qvel)[draw(st.integers(0, 5))] = draw(absurd)
            if draw(st.booleans()):
                return states, joint_state(probe, qpos, qvel)
            names = draw(joints)
            return states, joint_state(probe, qpos=[draw(value) for _ in names],
                                       qvel=[draw(value) for _ in names], names=names)
        if topic == "cmd_vel":
            return cmd_vel, Twist(linear=Vector3(x=draw(value)))
        names = draw(joints)
        point = JointTrajectoryPoint(positions=[draw(value) for _ in names],
                                     time_from_start=Duration(nanosec=draw(st.integers(
                                         0, 200_000_000))))
        return goals, JointTrajectory(joint_names=names, points=[point])

    @settings(max_examples=12, deadline=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(burst=st.lists(messages(), min_size=1, max_size=8))
    def flood(burst):
        for publisher, msg in burst:
            handled = status_of(node).rejected_states + plans(node)
            publisher.publish(msg)
            if publisher is states:  # one at a time: the subscription keeps the newest only
                wait_until(lambda h=handled: status_of(node).rejected_states + plans(node) > h,
                           what="the state handled")
        goals.publish(JointTrajectory())  # clear any goal that was accepted
        before = plans(node)
        states.publish(joint_state(probe))
        wait_until(lambda: plans(node) > before, what="a plan on the next good state",
                   every=lambda: states.publish(joint_state(probe)), period=0.5)

    flood()
    assert len(actions) > 0
    for msg in actions.messages:
        action = np.asarray(msg.data)
        assert action.shape == (3,) and np.isfinite(action).all(), action
        assert (np.abs(action) <= 1.0).all(), action
    status = status_of(node)
    assert status.rejected_states > 0 and status.discarded_plans == 0
