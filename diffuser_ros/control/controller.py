"""``RecedingHorizonController``: what action goes out now (rclpy-free).

The control logic of ``planner_node`` apart from ROS, so that every decision is testable with a
fake clock and the closed-loop evaluator and the node drive one implementation. It wires small
parts, each in its own module: the ``mailbox`` (the newest checked state, re-sends); the
**planning cycle** ``begin`` → ``compute`` → ``finish`` (:meth:`run_once`; :meth:`start` runs
it on ``workers``), with settings and resets applied between plans (``warm_start``) and the plans
in flight (``in_flight``: start state, warm start, episode); an ``execution`` strategy (hold,
time-indexed, tracking); ``safety`` and the guarded ``output`` (e-stop, staleness, nothing
non-finite or out of bounds goes out); ``targets`` (speed command, goal); ``status``. The
evaluator's latency model calls ``finish`` ``d`` control steps after ``begin``.

Time is injected: ``clock()`` returns integer nanoseconds on the base of the state stamps (the
node's ROS clock; simulation time with ``use_sim_time``); 0 means "not started". ``emit`` is always
called under one lock, so once :meth:`set_estop` has returned, no planned action follows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import replace

import numpy as np

from diffuser_ros.control.execution import ActingPlans, ActivePlan, Tracker, make_execution
from diffuser_ros.control.in_flight import Job, PlansInFlight, PredictionError
from diffuser_ros.control.mailbox import State, StateMailbox
from diffuser_ros.control.output import ControlOutput, GuardedOutput
from diffuser_ros.control.safety import ActionGuard, Staleness
from diffuser_ros.control.settings import ControllerSettings
from diffuser_ros.control.status import ControllerStatus, Counters, snapshot
from diffuser_ros.control.targets import Targets
from diffuser_ros.control.warm_start import BetweenPlans
from diffuser_ros.control.workers import PlanningWorkers
from diffuser_ros.latency import LatencyWindow
from diffuser_ros.planning.planner import PlanningError

LOG = logging.getLogger(__name__)


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
        self._plans = ActingPlans()  # acting now, and the newest one waiting for its step
        self._in_flight = PlansInFlight()
        self.prediction_error = PredictionError(planner.normalizer.observation_std)
        self._workers = PlanningWorkers(self.run_once, self._planners, self._log,
                                        self._mailbox.wake)

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
            self._active = False
            self._plans.clear()
            self._output.safe("controller deactivated")
        self._mailbox.clear()
        self.request_reset()

    def start(self) -> None:
        """Run the planning cycle on ``plans_in_flight`` worker threads, one planner each
        (idempotent); ``ValueError`` when there are fewer planners."""
        self._workers.start(self._settings.plans_in_flight)

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the workers after the plans in flight (if any)."""
        self._workers.stop(timeout)

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
        if key is not None:
            self.prediction_error.measured(key, obs)
        if not self._mailbox.put(State(obs, stamp_ns or self._clock(), key)):
            self._counters.resent += 1  # the state being planned on, again: its action is coming
        self._output.batch_shape = obs.shape[:-1]
        if key is not None:
            # The robot has reached this step: a plan made for it starts now, on the state's
            # arrival rather than at the next control tick (whose phase is the node's own).
            with self._output.lock:
                if self._active and not self._estop and self._plans.start_due(key):
                    self._send_acting(key, started=True)
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
        """Forget the warm start (and re-seed the noise) before the next plan: a new episode.
        The newest plan, and any still in flight, are for the old one: dropped (the executions
        that act every period would otherwise start the new episode on the old plan)."""
        with self._output.lock:
            self._plans.clear()
        self._in_flight.new_episode()
        self._between.request_reset()

    def set_estop(self, engaged: bool) -> None:
        """Engage: publish the safe action now and plan no more. Release: plan again from the
        next fresh state, without the (now stale) warm start."""
        with self._output.lock:
            was, self._estop = self._estop, bool(engaged)
            if engaged:
                self._plans.clear()
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
        if state is None:
            return None
        if not self._active or self._estop or \
                self._age(state.stamp_ns) > self._settings.state_timeout:
            self._mailbox.done()  # not planned on (a stale state: tick() sends the safe action)
            return None
        answer = self._mailbox.answer_to(state)
        if answer is not None:  # re-sent after it was answered: the same action, no new plan
            self._mailbox.done()
            with self._output.lock:
                if self._active and not self._estop:
                    self._counters.resent += 1
                    self._output.send(answer, "repeat", state.key)
                    # A plan waiting for its step has just had its first action sent (a robot
                    # that waited for it, e.g. lockstep): it acts now and is not started again.
                    self._plans.start_now()
            return None
        settings, measured_ns = self._settings, state.stamp_ns
        if settings.predict_ahead and self._in_flight.has_delivered:
            # Not the episode's first plan: the robot waits for that one (the simulator bridge
            # holds each episode until its first action), so no time passes to predict over.
            state = self._predicted(state, settings.predict_ahead)
        shift, reset = self._between.apply(state.stamp_ns, settings.control_period_ns)
        if reset:
            self.targets.new_episode()
        speed = self.targets.speed_to_plan(state, self._clock(), settings.command_timeout,
                                           settings.command_gain)
        job = Job(state, shift, speed, self.targets.constraints, measured_ns=measured_ns)
        if settings.plans_in_flight > 1:  # never warm-start from a plan still being computed
            self._in_flight.warm_start(job, settings.control_period_ns)
        self._in_flight.begun(job)
        return job

    def _predicted(self, state: State, ahead: int) -> State:
        """Where the robot will be ``ahead`` periods after ``state`` (robot model, committed
        actions: :class:`~diffuser_ros.control.in_flight.PlansInFlight`)."""
        period = self._settings.control_period_ns
        actions = self._in_flight.committed_actions(self._plans, self._execution,
                                                    state.stamp_ns, ahead, period,
                                                    self._output.safe_action())
        predicted = State(self._robot_model.predict(state.observation, actions),
                          state.stamp_ns + ahead * period, state.key)
        self.prediction_error.predicted(predicted.stamp_ns, predicted.observation)
        return predicted

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
        current = self._in_flight.ended(job)
        with self._output.lock:
            if self._estop or not self._active or not current:
                return False  # e-stop, deactivation or a new episode while planning: dropped
            newest = self._plans.newest
            if newest is not None and job.state.stamp_ns < newest.stamp_ns:
                self._counters.late += 1  # a newer plan is out already: this one is stale
                return False
            if plan is None:
                self._discard_plan(job.failure)
                return False
            now = self._clock()
            self._delay.add(max(now - job.measured_ns, 0) * 1e-9)  # from the measurement
            self._counters.best_value = float(np.mean(plan.best_value))
            new = ActivePlan(np.asarray(plan.action), np.asarray(plan.best_actions),
                             np.asarray(plan.best_observations), job.state.stamp_ns, plan)
            self._in_flight.delivered(job, plan)
            # Planned from a predicted state for a step still to come: the action for now is
            # out already, and tick() starts this plan at its step.
            later = job.state.stamp_ns > job.measured_ns and 0 < now < job.state.stamp_ns
            self._plans.deliver(new, later)
            if later:
                self._mailbox.answered(job.state, new.first_action)
                return True
            action, failure = self._execute(now) if now else (new.first_action, "")
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
                self._plans.clear()
                return self._output.safe(reason)
            self._output.safe_reason = ""
            if self._plans.start_due(now):
                return self._send_acting(now, started=True)
            if not self._execution.every_period or self._plans.acting is None:
                return None
            return self._send_acting(now, started=False)

    def _send_acting(self, now: int, started: bool) -> ControlOutput:
        """The acting plan's action for ``now``: ``started``, the first of a plan made for this
        step (kind 'plan'); else a step between plans."""
        plan = self._plans.acting
        action, failure = self._execute(now)
        if failure:
            return self._discard_plan(failure)
        if action is None:
            self._plans.clear()
            return self._output.safe("the newest plan has run out")
        if started:
            return self._output.send(action, "plan", plan.stamp_ns, plan.plan)
        return self._output.send(action, "step", plan.stamp_ns)

    def _execute(self, now: int) -> tuple[np.ndarray | None, str]:
        """The strategy's action for ``now`` (None: the plan has run out), or why it failed."""
        try:
            return self._execution.action(self._plans.acting, now, self._mailbox.latest,
                                          self._settings.control_period_ns), ""
        except (ArithmeticError, ValueError) as exc:  # e.g. a tracker that cannot solve
            return None, f"execution '{self._execution.name}' failed: {exc}"

    def _discard_plan(self, why: str) -> ControlOutput:
        self._plans.clear()
        return self._output.discard(why)

    def _age(self, stamp_ns: int) -> float:
        return Staleness.age(stamp_ns, self._clock(), self._settings.state_timeout)

    def state_age(self) -> float | None:
        """Seconds since the newest state's stamp on the clock (None: no state yet)."""
        stamp = self._mailbox.latest_stamp_ns
        return None if stamp is None else self._age(stamp)

    # -- status -----------------------------------------------------------------------------
    def status(self) -> ControllerStatus:
        now = self._clock()
        return snapshot(self, now, self.state_age(), self._counters, self._output,
                        self._between, self._latency.summary(), self._delay.summary())
