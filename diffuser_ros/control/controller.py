"""``RecedingHorizonController``: what action goes out now (rclpy-free).

The control logic of ``planner_node`` apart from ROS, so that every decision is testable with a
fake clock and the closed-loop evaluator and the node drive one implementation. It wires small
parts, each in its own module:

* :class:`~diffuser_ros.control.mailbox.StateMailbox` — the newest checked state, and re-sends;
* the **planning cycle** ``begin`` → ``compute`` → ``finish`` (:meth:`run_once` runs all three,
  :meth:`start` on a worker thread). Pending planner settings and resets apply in ``begin``, never
  mid-plan; the warm start shifts by the control steps that really passed. The evaluator's
  latency model calls ``finish`` ``d`` control steps after ``begin``;
* an **execution strategy** (:mod:`~diffuser_ros.control.execution`: hold, time-indexed,
  tracking) — the action the newest plan gives, when it arrives and at each control tick;
* **safety** (:mod:`~diffuser_ros.control.safety`) — e-stop, inactive, no state or a stale one →
  the safe action; every action passes the :class:`ActionGuard` (finite, within bounds) or a
  safe action goes out instead, with the reason;
* :class:`~diffuser_ros.control.targets.Targets` — the speed command and goal;
* **status** (:mod:`~diffuser_ros.control.status`) — counters, latency and action delay.

Time is injected: ``clock()`` returns integer nanoseconds on the base of the state stamps (the
node's ROS clock; simulation time with ``use_sim_time``); 0 means "not started". ``emit`` is always
called under one lock, so once :meth:`set_estop` has returned, no planned action follows.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from diffuser_ros.control.execution import ActivePlan, Tracker, make_execution
from diffuser_ros.control.mailbox import State, StateMailbox
from diffuser_ros.control.output import ControlOutput, GuardedOutput
from diffuser_ros.control.safety import ActionGuard, Staleness
from diffuser_ros.control.settings import ControllerSettings
from diffuser_ros.control.status import ControllerStatus, Counters, health
from diffuser_ros.control.targets import Targets
from diffuser_ros.control.warm_start import BetweenPlans
from diffuser_ros.latency import LatencyWindow
from diffuser_ros.planning.planner import PlanningError

LOG = logging.getLogger(__name__)


@dataclass
class Job:
    """A plan in the making: its start state, warm-start shift, speed and goal."""

    state: State
    warm_start_shift: int
    command: float | np.ndarray | None = None
    constraints: dict | None = None
    latency: float = math.nan
    failure: str = ""  # why planning produced nothing usable
    warm_start: object = False  # a delivered Plan to warm-start from (None: cold; False: the
    #                             planner's own previous plan, with one plan in flight)


class RecedingHorizonController:
    """Receding-horizon control around a :class:`~diffuser_ros.planning.DiffusionPlanner`.

    ``emit(output)`` publishes; ``log(level, message)`` reports events (``logging`` levels);
    ``timer()`` measures planning latency (seconds, monotonic); ``tracker`` enables
    ``execution: tracking``; ``robot_model`` (``predict(observation, actions)``, e.g.
    :class:`~diffuser_ros.control.robot_model.RobotModel`) enables ``predict_ahead``;
    ``spare_planners`` (copies of ``planner``) let :meth:`start` run ``plans_in_flight`` worker
    threads, one planner each.
    """

    def __init__(self, planner, settings: ControllerSettings | None = None, *,
                 clock: Callable[[], int], emit: Callable[[ControlOutput], None],
                 log: Callable[[int, str], None] | None = None,
                 timer: Callable[[], float] = time.perf_counter, tracker: Tracker | None = None,
                 robot_model=None, spare_planners=()):
        self.planner = planner
        self._planners = [planner, *spare_planners]
        self._tracker, self._robot_model = tracker, robot_model
        self._settings = settings or ControllerSettings()
        self._check_means(self._settings)
        self._execution = make_execution(self._settings.execution, tracker)
        self._clock, self._timer = clock, timer
        self._log = log or (lambda level, message: LOG.log(level, message))
        self._mailbox = StateMailbox()
        self._output = GuardedOutput(emit, ActionGuard(planner.spec.action_low,
                                                       planner.spec.action_high),
                                     self._log, timer)
        self._staleness = Staleness()
        self.targets = Targets(planner)
        self._counters = Counters()
        self._latency = LatencyWindow(self._settings.latency_window)
        self._delay = LatencyWindow(self._settings.latency_window,
                                    deadline=self._settings.control_period)
        self._between = BetweenPlans(self._planners, self._log)
        self._active = self._estop = False
        self._active_plan: ActivePlan | None = None
        self._delivered, self._delivered_stamp = None, 0  # the newest delivered Plan
        self._in_flight: dict[int, int] = {}  # job id -> stamp its plan starts acting at
        self._in_flight_lock = threading.Lock()
        self._workers: list[threading.Thread] = []
        self._stop = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._active

    def activate(self) -> None:
        """Start answering states; the no-state timeout counts from now."""
        with self._output.lock:
            self._active, self._output.safe_reason = True, ""
            self._staleness.restart()
        self._mailbox.clear(forget_stamp=True)

    def deactivate(self) -> None:
        """Stop planning and publish the safe action once; states offered meanwhile are dropped."""
        with self._output.lock:
            self._active, self._active_plan = False, None
            self._output.safe("controller deactivated")
        self._mailbox.clear()
        self.request_reset()

    def start(self) -> None:
        """Run the planning cycle on ``plans_in_flight`` worker threads, one planner each
        (idempotent); ``ValueError`` when there are fewer planners."""
        if any(worker.is_alive() for worker in self._workers):
            return
        count = self._settings.plans_in_flight
        if count > len(self._planners):
            raise ValueError(f"plans_in_flight {count} needs {count} planners, "
                             f"got {len(self._planners)}")
        self._stop.clear()
        self._workers = [threading.Thread(target=self._run, args=(planner,), daemon=True,
                                          name=f"diffusion_planner_{i}")
                         for i, planner in enumerate(self._planners[:count])]
        for worker in self._workers:
            worker.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the workers after the plans in flight (if any)."""
        self._stop.set()
        self._mailbox.wake()
        workers, self._workers = self._workers, []
        for worker in workers:
            if worker is not threading.current_thread():
                worker.join(timeout)

    # -- inputs -----------------------------------------------------------------------------
    def offer(self, observation, stamp_ns: int | None = None) -> bool:
        """Offer a state measured at ``stamp_ns`` (None: now, unstamped). False (a rejection
        counted, :attr:`last_rejection` says why) when the planner cannot plan from it."""
        try:
            obs = self.planner.check_observation(observation)
        except ValueError as exc:
            self.reject(str(exc))
            return False
        key = stamp_ns or None
        if not self._mailbox.put(State(obs, stamp_ns or self._clock(), key)):
            self._counters.resent += 1  # the state being planned on, again: its action is coming
        self._output.batch_shape = obs.shape[:-1]
        return True

    def reject(self, reason: str) -> None:
        """Count a state refused (also one the adapter could not turn into an observation)."""
        self._counters.rejected += 1
        self._counters.last_rejection = reason

    @property
    def last_rejection(self) -> str:
        return self._counters.last_rejection

    def set_command(self, speed: float | None) -> None:
        """Command a forward speed (m/s) for ``command_timeout`` s; ``None`` cancels.
        ``ValueError`` (the command in effect unchanged) when the planner cannot plan for it."""
        self.targets.set_command(speed, self._clock())

    def command(self) -> float | None:
        """The speed command in effect now (None: none, or it timed out)."""
        return self.targets.command(self._clock(), self._settings.command_timeout)

    def set_constraints(self, constraints: dict | None) -> None:
        """Goal constraints ``{horizon index: (observation dims, values)}`` for every plan from
        now on (``None`` or empty clears); ``ValueError`` leaves the ones in effect."""
        self.targets.set_constraints(constraints)

    # -- settings ---------------------------------------------------------------------------
    @property
    def settings(self) -> ControllerSettings:
        return self._settings

    def request_config(self, config) -> None:
        """Check planner settings now (``ValueError``); apply them before the next plan."""
        self._between.request_config(config)

    def check_settings(self, **changes) -> ControllerSettings:
        """The settings with ``changes``, or ``ValueError`` naming what this controller cannot
        take (a range, a read-only setting, an execution it lacks the means for)."""
        new = replace(self._settings, **changes)
        for fixed in ("latency_window", "plans_in_flight"):
            if getattr(new, fixed) != getattr(self._settings, fixed):
                raise ValueError(f"{fixed} cannot change while running")
        self._check_means(new)
        return new

    def _check_means(self, settings: ControllerSettings) -> None:
        """``ValueError`` when ``settings`` need what this controller was not given."""
        make_execution(settings.execution, self._tracker)
        if settings.predict_ahead and self._robot_model is None:
            raise ValueError("predict_ahead needs a robot model to predict with, and none is "
                             "available")

    def update_settings(self, **changes) -> ControllerSettings:
        """Change controller settings (checked by :meth:`check_settings`); they apply at once."""
        new = self.check_settings(**changes)
        with self._output.lock:
            self._settings = new
            self._execution = make_execution(new.execution, self._tracker)
            self._delay.deadline = new.control_period
        return new

    def request_reset(self) -> None:
        """Forget the warm start (and re-seed the noise) before the next plan: a new episode."""
        self._between.request_reset()

    def set_estop(self, engaged: bool) -> None:
        """Engage: publish the safe action now and plan no more. Release: plan again from the
        next fresh state, without the (now stale) warm start."""
        with self._output.lock:
            was, self._estop = self._estop, bool(engaged)
            if engaged:
                self._active_plan = None
                self._output.safe("e-stop engaged")
        if was and not engaged:
            self.request_reset()

    @property
    def estop(self) -> bool:
        return self._estop

    # -- planning cycle ---------------------------------------------------------------------
    def run_once(self, timeout: float | None = 0.0, planner=None) -> bool:
        """Wait up to ``timeout`` s for a state, then plan on it (with ``planner``, default the
        controller's) and publish. True if planned."""
        job = self.begin(timeout)
        if job is None:
            return False
        try:
            self.finish(job, self.compute(job, planner))
        finally:
            self._mailbox.done()
        return True

    def begin(self, timeout: float | None = 0.0) -> Job | None:
        """Take the newest state and decide whether to plan on it (None: not now)."""
        state = self._mailbox.take(timeout)
        if state is None or not self._active or self._estop:
            return None
        if self._age(state.stamp_ns) > self._settings.state_timeout:
            return None  # stale before we could start: tick() publishes the safe action
        answer = self._mailbox.answer_to(state)
        if answer is not None:  # re-sent after it was answered: the same action, no new plan
            with self._output.lock:
                if self._active and not self._estop:
                    self._counters.resent += 1
                    self._output.send(answer, "repeat", state.key)
            return None
        settings = self._settings
        if settings.predict_ahead:
            state = self._predicted(state, settings.predict_ahead)
        shift, reset = self._between.apply(state.stamp_ns, settings.control_period_ns)
        if reset:
            self.targets.new_episode()
            self._delivered = None
        speed = self.targets.speed_to_plan(state, self._clock(), settings.command_timeout,
                                           settings.command_gain)
        job = Job(state, shift, speed, self.targets.constraints)
        if settings.plans_in_flight > 1:  # never warm-start from a plan still being computed
            job.warm_start = self._delivered
            if self._delivered is not None:
                job.warm_start_shift = max(1, round(
                    (state.stamp_ns - self._delivered_stamp) / settings.control_period_ns))
        with self._in_flight_lock:
            self._in_flight[id(job)] = state.stamp_ns
        return job

    def _predicted(self, state: State, ahead: int) -> State:
        """Where the robot will be ``ahead`` periods after ``state``: the robot model stepped
        under the actions committed until then. Those are what the execution sends from the
        newest plan; from the moment a plan still in flight starts acting, they are unknown and
        estimated by the newest plan's own actions for those steps."""
        period = self._settings.control_period_ns
        with self._in_flight_lock:
            arrival = min(self._in_flight.values(), default=None)
        plan, safe = self._active_plan, self._output.safe_action()
        actions = []
        for k in range(ahead):
            at = state.stamp_ns + k * period
            action = None
            if plan is not None:
                action = plan.action_at(at, period) if arrival is not None and at >= arrival \
                    else self._execution.planned_action(plan, at, period)
            actions.append(safe if action is None else action)
        observation = self._robot_model.predict(state.observation, np.stack(actions))
        return State(observation, state.stamp_ns + ahead * period, state.key)

    def compute(self, job: Job, planner=None):
        """Plan from the job's state (the expensive part; no lock held) with ``planner`` (default
        the controller's). None: the planner refused or discarded the plan (``job.failure``)."""
        started = self._timer()
        try:
            plan = (planner or self.planner).plan(job.state.observation, job.constraints,
                                     warm_start_shift=job.warm_start_shift, command=job.command,
                                     **({} if job.warm_start is False else
                                        {"warm_start": job.warm_start}))
        except (PlanningError, ValueError) as exc:
            plan, job.failure = None, str(exc)
        job.latency = self._timer() - started
        return plan

    def finish(self, job: Job, plan) -> bool:
        """Publish the plan's action (unless e-stopped or deactivated meanwhile). True if sent."""
        self._latency.add(job.latency)
        self._between.planned_from(job.state.stamp_ns)
        with self._in_flight_lock:
            self._in_flight.pop(id(job), None)
        with self._output.lock:
            if self._estop or not self._active:
                return False  # e-stop or deactivation while planning: drop the plan
            if self._active_plan is not None and job.state.stamp_ns < self._active_plan.stamp_ns:
                self._counters.late += 1  # a newer plan is out already: this one is stale
                return False
            if plan is None:
                self._discard_plan(job.failure)
                return False
            now = self._clock()
            self._delay.add(max(now - job.state.stamp_ns, 0) * 1e-9)
            self._counters.best_value = float(np.mean(plan.best_value))
            self._active_plan = ActivePlan(np.asarray(plan.action), np.asarray(plan.best_actions),
                                           np.asarray(plan.best_observations), job.state.stamp_ns)
            self._delivered, self._delivered_stamp = plan, job.state.stamp_ns
            action, failure = self._execute(now) if now else (self._active_plan.first_action, "")
            if failure:
                self._discard_plan(failure)
                return False
            if action is None:
                self._output.safe("the plan ran out before it arrived")
                return False
            sent = self._output.send(action, "plan", job.state.stamp_ns, plan)
            if sent.kind != "plan":
                return False
            self._mailbox.answered(job.state, sent.action)
            return True

    def _run(self, planner) -> None:
        while not self._stop.is_set():
            try:
                self.run_once(timeout=0.25, planner=planner)
            except Exception as exc:  # noqa: BLE001 - the controller must survive a failed plan
                if self._stop.is_set():
                    break
                self._log(logging.ERROR, f"planning failed: {exc!r}")

    # -- safety and execution ---------------------------------------------------------------
    def tick(self) -> ControlOutput | None:
        """Every control period: publish the safe action or the executed plan step when due;
        returns what was published (None: nothing, the held action stands)."""
        now = self._clock()
        with self._output.lock:
            if not self._active:
                return None
            if self._estop:
                return self._output.safe("e-stop engaged")
            reason = self._staleness.reason(self._mailbox.latest_stamp_ns, now,
                                            self._settings.state_timeout)
            if reason is None:  # clock not started: no time has passed
                return None
            if reason:
                self._active_plan = None
                return self._output.safe(reason)
            self._output.safe_reason = ""
            plan = self._active_plan
            if not self._execution.every_period or plan is None:
                return None
            action, failure = self._execute(now)
            if failure:
                return self._discard_plan(failure)
            if action is None:
                self._active_plan = None
                return self._output.safe("the newest plan has run out")
            return self._output.send(action, "step", plan.stamp_ns)

    def _execute(self, now: int) -> tuple[np.ndarray | None, str]:
        """The strategy's action for ``now`` (None: the plan has run out), or why it failed."""
        try:
            return self._execution.action(self._active_plan, now, self._mailbox.latest,
                                          self._settings.control_period_ns), ""
        except (ArithmeticError, ValueError) as exc:  # e.g. a tracker that cannot solve
            return None, f"execution '{self._execution.name}' failed: {exc}"

    def _discard_plan(self, why: str) -> ControlOutput:
        self._active_plan = None
        return self._output.discard(why)

    def _age(self, stamp_ns: int) -> float:
        return Staleness.age(stamp_ns, self._clock(), self._settings.state_timeout)

    def state_age(self) -> float | None:
        """Seconds since the newest state's stamp on the clock (None: no state yet)."""
        stamp = self._mailbox.latest_stamp_ns
        return None if stamp is None else self._age(stamp)

    # -- status -----------------------------------------------------------------------------
    def status(self) -> ControllerStatus:
        latency, delay = self._latency.summary(), self._delay.summary()
        now, age, c, out = self._clock(), self.state_age(), self._counters, self._output
        timeout = self._settings.command_timeout
        level, message = health(active=self._active, estop=self._estop,
                                safe_reason=self._output.safe_reason, clock_started=now != 0,
                                state_age=age, delay=delay,
                                control_period=self._settings.control_period)
        command = self.targets.command(now, timeout)
        return ControllerStatus(
            active=self._active, estop=self._estop, level=level, message=message,
            plans=latency["count"], latency=latency, delay=delay,
            rejected_states=c.rejected, last_rejection=c.last_rejection,
            resent_states=c.resent, safe_actions=out.safe_count, discarded_plans=out.discarded,
            last_discard=out.last_discard, late_plans=c.late, resets=self._between.resets,
            state_age=age,
            best_value=c.best_value, command=command,
            planned_command=self.targets.planned_speed if command is not None else None,
            command_age=self.targets.command_age(now, timeout),
            constraints=self.targets.constrained_entries, settings=self._settings,
            planner_config=self.planner.config, warm_start_shift=self._between.shift)
