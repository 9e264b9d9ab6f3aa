"""``sim_node``: the simulator bridge. A gymnasium MuJoCo locomotion environment that a robot
entry describes (:mod:`diffuser_ros.robots`: ``Hopper-v5``, ``Walker2d-v5``; parameter
``env_id``) as a ROS 2 robot. The launch files start it as ``<robot>_sim_node``; the
``hopper_sim_node`` executable is the same node under its Hopper name.

Publishes ``joint_states`` (the robot entry's joints; position = qpos, velocity = qvel, unclipped)
stamped with simulation time and ``/clock`` (simulation time starts at 1 s and runs on across
episodes); applies ``action`` (std_msgs/Float64MultiArray), clipped to the action space.

Modes (parameter ``mode``):

* ``lockstep`` — one env step per received action, then the next state is published. The loop is
  deterministic and planning latency is hidden. Until the first action arrives, the state is
  published again to a subscriber matched after it went out; afterwards whenever no action has
  come for ``max(state_republish_period, 3 x the slowest answer so far)``. So a planner that
  starts later, or an action lost to DDS discovery, never stalls the loop, while a planner that
  has the state is not sent it twice: it would answer each copy (the second with the same action,
  without re-planning), and each answer steps the loop.
* ``realtime`` — a wall timer steps at 1/dt (125 Hz for both robots) holding the last action;
  zeros once no action has arrived for ``action_timeout``.

Episodes reset automatically on termination or truncation (``max_episode_steps``); episode k is
seeded ``seed + k``. Each episode's statistics go to the log and, as a JSON string, to
``episode_stats`` (transient-local, so late subscribers get the history); after ``max_episodes``
(0 = unlimited) the node stops stepping and publishes a summary (``"summary": true``). At every new
episode the planner's ``planner_reset_service`` (Trigger) is called; in lockstep the first state of
the episode is published once it has answered (or after ``state_republish_period``), so the loop
matches an offline evaluation that calls ``planner.reset()`` per episode.
"""

from __future__ import annotations

import json
import math
import sys
import time

import numpy as np
from rclpy.clock import Clock as RosClock
from rclpy.clock import ClockType
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from rclpy.time import Time
from rosgraph_msgs.msg import Clock
from sensor_msgs.msg import JointState
from std_msgs.msg import Bool, Float64MultiArray, String
from std_srvs.srv import Trigger

from diffuser_ros.nodes.entry import run_node
from diffuser_ros.nodes.node_settings import SimulatorSettings
from diffuser_ros.nodes.parameters import ParameterError, declare_settings
from diffuser_ros.simulation import (
    SimStartupError,
    SimulatedEpisodes,
    joint_layout,
    make_env,
    summary_line,
)

NODE_NAME = "sim_node"
HOPPER_NODE_NAME = "hopper_sim_node"  # the name the hopper_sim_node executable gives it
WARN_THROTTLE_S = 2.0
KICK_PERIOD_S = 0.1
# Simulation time starts at 1 s: every stamp is then non-zero (a zero stamp means "unstamped",
# which a planner cannot use to recognise a re-sent state).
START_TIME_NS = 1_000_000_000


class SimNode(Node):
    """Simulator bridge of any robot entry's environment. ``node_kwargs`` go to
    ``rclpy.node.Node``."""

    def __init__(self, node_name: str = NODE_NAME, **node_kwargs):
        super().__init__(node_name, **node_kwargs)
        self._sim = None
        try:
            self._setup()
        except BaseException:
            self.destroy_node()
            raise

    def _setup(self) -> None:
        p = vars(declare_settings(self, SimulatorSettings))  # name -> value
        self._mode = p["mode"]
        self._seed = p["seed"]
        self._max_episodes = p["max_episodes"]
        self._action_timeout = p["action_timeout"]
        self._republish_period = p["state_republish_period"]
        render = (p["video_width"], p["video_height"]) if p["record_video"] else None
        env = make_env(p["env_id"], p["max_episode_steps"], render, p["mass_scale"],
                       p["friction_scale"])
        self._joint_names = joint_layout(env)
        # Simulation time = 1 s + steps of the whole run * dt.
        self._sim = SimulatedEpisodes(env, self._seed, p["record_video"])
        self._dt_ns = int(round(self._sim.dt * 1e9))
        self._env_id = p["env_id"]
        self._listeners = []
        self.finished = False
        self._rejected = 0
        self._action = np.zeros(self._sim.action_dim)
        self._last_action_time: float | None = None
        self._run_started: float | None = None
        self._run_ended: float | None = None
        # lockstep bookkeeping
        self._last_publish = time.monotonic()
        self._slowest_answer = 0.0   # longest time from a state to the action that answered it
        self._subscribers_at_publish = 0  # state subscribers matched at the last publish
        self._awaiting_reset = False
        self._reset_requested_at = 0.0
        # held until the controller is engaged (and, in realtime, has sent its first action)
        self._engaged: bool | None = None if p["controller_engaged_topic"] else True
        self._engaged_topic = p["controller_engaged_topic"]
        self._action_since_engaged = False
        self._held_actions = 0   # actions that arrived while held (not applied)
        self.finished_at: float | None = None

        self._state_pub = self.create_publisher(JointState, p["state_topic"], 10)
        self._clock_pub = self.create_publisher(Clock, "/clock", 10)
        self._stats_pub = self.create_publisher(
            String, p["episode_stats_topic"],
            QoSProfile(depth=100, reliability=ReliabilityPolicy.RELIABLE,
                       durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self._action_sub = self.create_subscription(
            Float64MultiArray, p["action_topic"], self._on_action, 10)
        self._reset_srv = self.create_service(Trigger, "~/reset", self._on_reset)
        if self._engaged_topic:
            self._engaged_sub = self.create_subscription(
                Bool, self._engaged_topic, self._on_engaged,
                QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE,
                           durability=DurabilityPolicy.TRANSIENT_LOCAL))
        self._planner_reset = self.create_client(Trigger, p["planner_reset_service"]) \
            if p["planner_reset_service"] else None
        steady = RosClock(clock_type=ClockType.STEADY_TIME)  # wall time, whatever use_sim_time
        if self._mode == "realtime":
            self._step_timer = self.create_timer(self._dt_ns * 1e-9, self._on_tick, clock=steady)
        else:
            self._step_timer = self.create_timer(KICK_PERIOD_S, self._on_kick, clock=steady)

        if self._engaged:  # else the first state goes out when the controller is engaged
            self._publish_state()
        self.get_logger().info(
            f"{self._env_id} ({self._mode}, dt {self._dt_ns * 1e-9:g} s, max_episode_steps "
            f"{p['max_episode_steps']}, max_episodes {self._max_episodes or 'unlimited'}, seed "
            f"{self._seed}): joints {self._joint_names} on {self._state_pub.topic_name}, "
            f"actions from {self._action_sub.topic_name}"
            + (f", recording {p['record_video']}" if self._sim.recording else ""))

    # -- public -----------------------------------------------------------------------------
    def add_episode_listener(self, callback) -> None:
        """``callback(stats: dict)`` after each episode and once with the final summary."""
        self._listeners.append(callback)

    @property
    def results(self) -> list[dict]:
        return list(self._sim.results)

    @property
    def held(self) -> bool:
        """True while the simulation waits for the controller (see controller_engaged_topic)."""
        if not self._engaged:
            return True
        return self._mode == "realtime" and not self._action_since_engaged

    def progress(self) -> dict:
        """The running episode: its number, steps and return so far, and the run's steps."""
        return {"episode": self._sim.episode + 1, "length": self._sim.length,
                "return": self._sim.episode_return, "steps": self._sim.steps, "held": self.held,
                "speed": self.forward_speed()}

    @property
    def controller_engaged(self) -> bool:
        """What the controller last said on controller_engaged_topic (True without one)."""
        return bool(self._engaged)

    @property
    def applied_action(self) -> np.ndarray:
        """Realtime mode: the action the step timer applies (held until the next one)."""
        return self._action.copy()

    @property
    def steps(self) -> int:
        """Steps simulated in the whole run."""
        return self._sim.steps

    @property
    def sim_time(self) -> float:
        return (START_TIME_NS + self._sim.steps * self._dt_ns) * 1e-9

    def forward_speed(self) -> float | None:
        """Mean forward speed over the last second of the episode (None: no step yet)."""
        return self._sim.forward_speed()

    def destroy_node(self) -> None:
        self._close_outputs()
        super().destroy_node()

    # -- stepping ---------------------------------------------------------------------------
    def _log_holding(self) -> None:
        self.get_logger().info(
            f"holding the simulation until the controller is engaged ({self._engaged_topic}; "
            "controller_engaged_topic:='' runs without)", throttle_duration_sec=5.0)

    def _on_engaged(self, msg: Bool) -> None:
        was, was_engaged = self.held, self._engaged
        self._engaged = bool(msg.data)
        if not self._engaged:
            self._action_since_engaged = False
        if self.held != was:
            self.get_logger().info(
                f"{'holding the simulation' if self.held else 'running'}: controller "
                f"{'engaged' if self._engaged else 'not engaged'} ({self._engaged_topic})")
        if self._engaged and not was_engaged and not self.finished:
            # Resume from where it stood. Only on the change: a state re-sent while the loop
            # runs would be answered twice, and lockstep would step twice.
            self._publish_state()

    def _on_action(self, msg: Float64MultiArray) -> None:
        if self.finished:
            return
        if not self._engaged or (self._mode == "realtime" and self._awaiting_reset):
            self._held_actions += 1
            return  # held: the controller is not engaged (e-stop, inactive) or not reset yet
        action = np.asarray(msg.data, dtype=np.float64)
        if action.shape != (self._sim.action_dim,) or not np.isfinite(action).all():
            self._rejected += 1
            self.get_logger().warning(
                f"rejected action {np.round(action, 4).tolist()}: expected {self._sim.action_dim} "
                "finite values; not stepping", throttle_duration_sec=WARN_THROTTLE_S)
            if self._mode == "lockstep":
                self._publish_state()  # keep the loop going
            return
        self._last_action_time = time.monotonic()
        self._action_since_engaged = True
        if self._mode == "realtime":
            self._action = action
            return
        self._slowest_answer = max(self._slowest_answer,
                                   self._last_action_time - self._last_publish)
        self._step(action)

    def _on_tick(self) -> None:
        if self.finished:
            return
        if self._awaiting_reset and \
                time.monotonic() - self._reset_requested_at >= self._republish_period:
            self._awaiting_reset = False  # no answer from the planner's reset: go on without
        if self.held:
            # Engaged but waiting for the first action: the controller needs a state to answer,
            # and the one published before it subscribed (or before an e-stop) may be lost.
            if self._engaged and time.monotonic() - self._last_publish >= KICK_PERIOD_S:
                self._publish_state()
            elif self._engaged is None:
                self._log_holding()
            return
        if self._last_action_time is None or \
                time.monotonic() - self._last_action_time > self._action_timeout:
            self._action = np.zeros(self._sim.action_dim)
        self._step(self._action)

    def _on_kick(self) -> None:
        """Lockstep: re-send the state when the loop has not started or has stalled."""
        if self.finished:
            return
        if self.held:
            if self._engaged is None:
                self._log_holding()
            return
        # A subscriber matched after the last publish never got that state. One that had it is
        # not sent it again: each copy is answered, and every answer steps the loop (an action
        # does not say which state it answers), so a second copy would step it twice.
        fresh_subscriber = (self._state_pub.get_subscription_count() >
                            self._subscribers_at_publish and self._last_action_time is None)
        patience = max(self._republish_period, 3.0 * self._slowest_answer)
        if fresh_subscriber or time.monotonic() - self._last_publish >= patience:
            self._awaiting_reset = False
            self._publish_state()

    def _step(self, action: np.ndarray) -> None:
        if self._run_started is None:
            self._run_started = time.monotonic()
        ended = self._sim.step(action)
        if ended:
            self._end_episode(ended)
        else:
            self._publish_state()

    def _end_episode(self, reason: str) -> None:
        stats = self._sim.end_episode(reason, sim_time=round(self.sim_time, 6))
        self._emit(stats)
        self.get_logger().info(
            f"episode {stats['episode']}: return {stats['return']:.2f}, length "
            f"{stats['length']}, {reason}")
        if self._max_episodes and self._sim.episode >= self._max_episodes:
            self._finish()
            return
        self._sim.reset()
        self._start_episode()

    def _start_episode(self) -> None:
        """Reset the planner (if its service is up), then publish the episode's first state."""
        if self._mode == "realtime" and self._engaged_topic:
            # Like the first episode: held until the controller answers this episode's first
            # state, rather than falling on an action meant for the last episode.
            self._action_since_engaged = False
            self._action = np.zeros(self._sim.action_dim)
        client = self._planner_reset
        if client is not None and client.service_is_ready():
            # Until the planner has answered, an action is for the last episode (realtime: it
            # would release the hold): wait for the answer, then publish the first state.
            self._awaiting_reset = True
            self._reset_requested_at = time.monotonic()  # gives up after the republish period
            episode = self._sim.episode
            client.call_async(Trigger.Request()).add_done_callback(
                lambda _f: self._after_planner_reset(episode))
            if self._mode == "lockstep":
                self._last_publish = time.monotonic()  # republish fallback if no answer
                return
        self._publish_state()

    def _after_planner_reset(self, episode: int) -> None:
        if self._awaiting_reset and episode == self._sim.episode and not self.finished:
            self._awaiting_reset = False
            self._publish_state()

    def _finish(self) -> None:
        self._run_ended = time.monotonic()
        self.finished_at = self._run_ended
        self._step_timer.cancel()
        self._close_outputs()  # the video is complete before anyone hears we are done
        self.finished = True
        summary = self.summary()
        self._emit(summary)
        self.get_logger().info(
            f"done: {summary_line(summary)}, {summary['steps_per_s']:.1f} steps/s")

    def summary(self) -> dict:
        end = self._run_ended or time.monotonic()
        wall = end - self._run_started if self._run_started is not None else 0.0
        return {"summary": True, "env_id": self._env_id, "mode": self._mode,
                **self._sim.summary(), "wall_time_s": round(wall, 4),
                "steps_per_s": self._sim.steps / wall if wall > 0 else math.nan,
                "rejected_actions": self._rejected, "actions_while_held": self._held_actions}

    # -- outputs ----------------------------------------------------------------------------
    def _publish_state(self) -> None:
        stamp = Time(nanoseconds=START_TIME_NS + self._sim.steps * self._dt_ns).to_msg()
        qpos, qvel = self._sim.joint_state()
        msg = JointState(name=self._joint_names, position=qpos, velocity=qvel)
        msg.header.stamp = stamp
        self._clock_pub.publish(Clock(clock=stamp))
        self._state_pub.publish(msg)
        # Counted after: one matched in between is taken to have it. Wrong, that costs a
        # state_republish_period; the other way round, a second copy (a double step).
        self._subscribers_at_publish = self._state_pub.get_subscription_count()
        self._last_publish = time.monotonic()

    def _emit(self, stats: dict) -> None:
        self._stats_pub.publish(String(data=json.dumps(stats)))
        for callback in self._listeners:
            callback(dict(stats))

    def _close_outputs(self) -> None:
        if self._sim is not None:
            self._sim.close()

    # -- services ---------------------------------------------------------------------------
    def _on_reset(self, request: Trigger.Request, response: Trigger.Response):
        if self.finished:
            response.success = False
            response.message = "all episodes done; not resetting"
            return response
        response.success = True
        response.message = f"episode {self._sim.episode + 1} ended (reset)"
        self._end_episode("reset")
        return response


def _done(node: SimNode) -> bool:
    """Finished, and the summary had half a second to reach its subscribers."""
    return node.finished_at is not None and time.monotonic() - node.finished_at > 0.5


def main(args=None, node_name: str = NODE_NAME) -> None:
    """Entry point: spin the simulator until ``max_episodes`` are done (or Ctrl-C)."""
    run_node(args, lambda: SimNode(node_name), (SimStartupError, ParameterError), node_name,
             done=_done)


def hopper_main(args=None) -> None:
    """The ``hopper_sim_node`` executable: the same bridge, named as before the bridge was
    generic (``ros2 run diffuser_ros hopper_sim_node`` keeps working)."""
    main(args, HOPPER_NODE_NAME)


if __name__ == "__main__":
    main(sys.argv)
