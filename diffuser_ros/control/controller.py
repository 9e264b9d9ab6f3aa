"""``RecedingHorizonController``: what action goes out now (rclpy-free).

The control logic of ``planner_node``, apart from ROS, so that every decision is testable with a
fake clock and the closed-loop evaluator and the node drive one implementation:

* a one-slot **mailbox** holding the newest valid state (planning never works through a backlog);
  a state re-sent with the stamp of the one being planned on is dropped, one re-sent after it was
  answered gets the same action again without a second plan (a lockstep simulator that lost it);
* the **planning cycle** ``begin`` → ``compute`` → ``finish`` (:meth:`run_once` runs all three;
  :meth:`start` runs them on a worker thread). Pending settings and resets are applied in
  ``begin``, never mid-plan. The evaluator's deterministic latency model calls ``finish`` ``d``
  control steps after ``begin``;
* the **safety decision** (:meth:`tick`, every control period): e-stop, inactive, no state or a
  state older than ``state_timeout`` → the safe action (zeros);
* **execution** of the newest plan between plans (``execution``): ``hold`` publishes its first
  action once (the robot holds it, a forward command controller); ``time_indexed`` publishes, at
  every tick, the plan's action for the control step elapsed since the state it started from;
  ``tracking`` runs a feedback ``tracker(measured state, plan's predicted next state)`` at every
  tick (e.g. :class:`~diffuser_ros.control.tracking.ModelInverseDynamics`); a plan that has run
  out is dropped and the safe action goes out;
* **commands and goals**: a speed command (:meth:`set_command`, the node's ``cmd_vel``) is
  planned for until ``command_timeout`` after it arrived, with a speed loop (``command_gain``)
  trimming the planner's steady bias; goal constraints (:meth:`set_constraints`) are inpainted
  into every plan until replaced;
* **statistics**: planning latency, action delay (how long after the state was measured its
  action went out, on the same clock: zero in lockstep, where the world waits), deadline misses
  against ``control_period``, rejected states, safe actions, resets.

Time is injected: ``clock()`` returns the current time in integer nanoseconds on the same base as
the state stamps (the node passes its ROS clock, simulation time with ``use_sim_time``). A clock
at 0 means "not started" (ROS simulation time before the first ``/clock``).

Thread safety: ``offer``/``tick``/settings calls come from the node's executor, the planning cycle
from the worker; the output callback ``emit`` is always called under one lock, so once
:meth:`set_estop` has returned, no planned action follows.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from diffuser_ros.control.speed_loop import SpeedLoop
from diffuser_ros.latency import LatencyWindow
from diffuser_ros.settings import check_fields, setting

LOG = logging.getLogger(__name__)

EXECUTIONS = ("hold", "time_indexed", "tracking")
OK, WARN, ERROR = 0, 1, 2  # health levels (the values of diagnostic_msgs/DiagnosticStatus)


@dataclass(frozen=True)
class ControllerSettings:
    """Timing, safety and execution of the receding-horizon loop (ROS parameters of the node)."""

    state_timeout: float = setting(
        0.5, "A state older than this (stamp vs the node clock; simulation time with "
        "use_sim_time) or none for this long makes the controller publish the safe action "
        "(zeros).", range=(1e-3, 3600.0), unit="s")
    control_period: float = setting(
        0.008, "Control period: the safety tick's rate, the deadline an action's delay is "
        "counted against, and the step of time-indexed execution (Hopper-v5: 0.008).",
        range=(1e-4, 10.0), unit="s")
    execution: str = setting(
        "hold", "Between plans: 'hold' = publish each plan's first action once (the robot holds "
        "it); 'time_indexed' = every control period, publish the plan's action for the steps "
        "elapsed since its state; 'tracking' = every control period, the action that takes the "
        "measured state to the plan's predicted next state (robot-model inverse dynamics). "
        "Both drop a plan that has run out (safe action).", choices=EXECUTIONS)
    predict_ahead: int = setting(
        0, "Latency compensation: plan from the state the newest plan predicts this many control "
        "steps after the measured one (when it covers it), so the new plan starts where the "
        "robot will be when it arrives; 0 = plan from the measured state.", range=(0, 1000))
    command_timeout: float = setting(
        2.0, "A speed command is in effect this long after it was received; then the planner "
        "plans for the learned return again (a 1 Hz `ros2 topic pub` keeps it alive).",
        range=(1e-3, 1e6), unit="s")
    command_gain: float = setting(
        1.0, "Integral gain of a speed loop around the planner: it plans for the command plus "
        "command_gain x the integral of (command - measured speed), within the commandable "
        "range, which trims a steady bias of the planner away; 0 plans for the command as "
        "given.", range=(0.0, 100.0), unit="1/s")
    latency_window: int = setting(100, "Number of recent plans the latency statistics cover.",
                                  range=(1, 100000), runtime=False)

    def __post_init__(self) -> None:
        check_fields(self)

    @property
    def control_period_ns(self) -> int:
        return int(round(self.control_period * 1e9))


@dataclass(frozen=True)
class Command:
    """One action handed to the output. ``kind``: ``plan`` (a fresh plan's action), ``repeat``
    (a re-sent state answered again), ``step`` (time-indexed execution) or ``safe`` (zeros)."""

    action: np.ndarray
    kind: str
    stamp_ns: int | None = None   # stamp of the state the action answers
    reason: str = ""              # why a safe action
    plan: object | None = None    # the Plan, for kind 'plan'


@dataclass
class ControllerStatus:
    """A snapshot of the controller for diagnostics and tests."""

    active: bool
    estop: bool
    level: int
    message: str
    plans: int
    latency: dict
    delay: dict
    rejected_states: int
    last_rejection: str
    resent_states: int
    safe_actions: int
    resets: int
    state_age: float | None
    best_value: float
    command: float | None      # the speed command in effect (None: none)
    planned_command: float | None  # the speed the last plan was for (with command_gain)
    command_age: float | None  # seconds since it was received
    constraints: int           # constrained trajectory entries (a goal) in effect
    settings: ControllerSettings
    planner_config: object
    warm_start_shift: int


@dataclass(frozen=True)
class SpeedCommand:
    """A commanded forward speed (m/s) and when it was received (clock ns)."""

    speed: float
    received_ns: int


@dataclass
class _State:
    observation: np.ndarray
    stamp_ns: int
    key: int | None  # the sender's stamp, used to spot re-sent states (None: no stamp)


@dataclass
class Job:
    """A plan in the making: the state it starts from and the warm-start shift it uses."""

    state: _State
    warm_start_shift: int
    command: float | np.ndarray | None = None  # the speed planned for (None: the return alone)
    constraints: dict | None = None  # inpainting constraints {horizon index: (dims, values)}
    latency: float = math.nan


@dataclass
class _Pending:
    config: object | None = None
    reset: bool = False


@dataclass
class _ActivePlan:
    actions: np.ndarray       # [H, act] or [B, H, act]
    observations: np.ndarray  # [H, obs] or [B, H, obs]
    stamp_ns: int


@dataclass
class _Counters:
    rejected: int = 0
    last_rejection: str = ""
    resent: int = 0
    safe: int = 0
    resets: int = 0
    best_value: float = math.nan
    warm_start_shift: int = 0


class RecedingHorizonController:
    """Receding-horizon control around a planner with ``plan(obs, warm_start_shift=)``,
    ``configure(config)``, ``reset()``, ``config``, ``spec`` and ``schedule`` (a
    :class:`~diffuser_ros.planning.DiffusionPlanner`).

    ``emit(command)`` publishes; ``log(level, message)`` reports events (``logging`` levels);
    ``timer()`` measures planning latency (seconds, monotonic).
    """

    def __init__(self, planner, settings: ControllerSettings | None = None, *,
                 clock: Callable[[], int], emit: Callable[[Command], None],
                 log: Callable[[int, str], None] | None = None,
                 timer: Callable[[], float] = time.perf_counter,
                 tracker: Callable[[np.ndarray, np.ndarray], np.ndarray] | None = None):
        self.planner = planner
        self._settings = settings or ControllerSettings()
        self._clock = clock
        self._emit_fn = emit
        self._log = log or (lambda level, message: LOG.log(level, message))
        self._timer = timer
        self._tracker = tracker
        if self._settings.execution == "tracking" and tracker is None:
            raise ValueError("execution 'tracking' needs a tracker")
        self._latest: _State | None = None  # the newest valid state, planned on or not
        self._cv = threading.Condition()
        self._output_lock = threading.RLock()
        self._settings_lock = threading.Lock()
        self._newest: _State | None = None
        self._newest_stamp_ns: int | None = None
        self._in_progress_key: int | None = None
        self._answered: tuple[int, np.ndarray] | None = None
        self._last_plan_stamp_ns: int | None = None
        self._active_plan: _ActivePlan | None = None
        self._pending = _Pending()
        self._active = False
        self._estop = False
        self._safe_reason = ""
        self._no_state_since_ns: int | None = None
        self._action_shape: tuple[int, ...] = (planner.spec.action_dim,)
        self._counters = _Counters()
        self._latency = LatencyWindow(self._settings.latency_window)
        self._delay = LatencyWindow(self._settings.latency_window,
                                    deadline=self._settings.control_period)
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._command: SpeedCommand | None = None
        self._constraints: dict | None = None
        self._speed_loop = SpeedLoop()
        self._planned_command: float | None = None

    # -- lifecycle --------------------------------------------------------------------------
    @property
    def active(self) -> bool:
        return self._active

    def activate(self) -> None:
        """Start answering states; the no-state timeout counts from now."""
        with self._output_lock:
            self._active = True
            self._no_state_since_ns = None
            self._safe_reason = ""
        with self._cv:
            self._newest = None
            self._newest_stamp_ns = None

    def deactivate(self) -> None:
        """Stop planning and publish the safe action once; states offered meanwhile are dropped."""
        with self._output_lock:
            self._active = False
            self._active_plan = None
            self._emit_safe("controller deactivated")
        with self._cv:
            self._newest = None
        self.request_reset()

    def start(self) -> None:
        """Run the planning cycle on a worker thread (idempotent)."""
        if self._worker is not None and self._worker.is_alive():
            return
        self._stop.clear()
        self._worker = threading.Thread(target=self._run, name="diffusion_planner", daemon=True)
        self._worker.start()

    def stop(self, timeout: float = 60.0) -> None:
        """Stop the worker after the plan in flight (if any)."""
        self._stop.set()
        with self._cv:
            self._cv.notify_all()
        worker, self._worker = self._worker, None
        if worker is not None and worker is not threading.current_thread():
            worker.join(timeout)

    # -- inputs -----------------------------------------------------------------------------
    def offer(self, observation, stamp_ns: int | None = None) -> bool:
        """Offer a state measured at ``stamp_ns`` (None: now, unstamped). Returns False (and
        counts a rejection) when it is not finite or has the wrong size."""
        obs = np.asarray(observation, dtype=np.float64)
        dim = self.planner.spec.observation_dim
        if obs.shape[-1:] != (dim,) or obs.ndim > 2 or obs.size == 0:
            self.reject(f"state has shape {list(obs.shape)}, the model expects [{dim}]")
            return False
        if not np.isfinite(obs).all():
            self.reject("state has non-finite values (NaN/Inf)")
            return False
        key = stamp_ns if stamp_ns else None
        stamp = stamp_ns if stamp_ns else self._clock()
        with self._cv:
            self._newest_stamp_ns = stamp
            if key is not None and key == self._in_progress_key:
                self._counters.resent += 1
                return True  # the state being planned on, sent again: its action is coming
            self._newest = _State(obs, stamp, key)
            self._latest = self._newest
            self._action_shape = obs.shape[:-1] + (self.planner.spec.action_dim,)
            self._cv.notify()
        return True

    def reject(self, reason: str) -> None:
        """Count a state the adapter could not even turn into an observation."""
        self._counters.rejected += 1
        self._counters.last_rejection = reason

    def set_command(self, speed: float | None) -> None:
        """Command a forward speed (m/s) from now on, for ``command_timeout`` seconds; ``None``
        cancels. ``ValueError`` (the command in effect unchanged) when the planner cannot plan
        for it: not finite, outside the speeds its command value was trained on, or no command
        value."""
        if speed is None:
            self._command = None
            return
        speed = float(speed)
        if not math.isfinite(speed):
            raise ValueError(f"commanded speed must be finite, got {speed}")
        span = self.command_range
        if span is None:
            raise ValueError("the model has no command value (command_value/): it cannot plan "
                             "for a speed command")
        if not span[0] <= speed <= span[1]:
            raise ValueError(f"commanded speed {speed:.3f} m/s is outside the speeds the model's "
                             f"command value was trained for [{span[0]:.2f}, {span[1]:.2f}] m/s")
        self._command = SpeedCommand(speed, self._clock())

    def set_constraints(self, constraints: dict | None) -> None:
        """Inpainting constraints ``{horizon index: (observation dims, values)}`` for every plan
        from now on (a goal; ``None`` or empty clears). ``ValueError`` (the ones in effect
        unchanged) when the planner cannot take them."""
        if constraints:
            self.planner.check_constraints(constraints)
        self._constraints = dict(constraints) if constraints else None

    @property
    def constraints(self) -> dict | None:
        return self._constraints

    @property
    def command_range(self) -> tuple[float, float] | None:
        """The commandable speeds (m/s), or None when the planner has no command value."""
        spec = getattr(self.planner, "command_spec", None)
        return None if spec is None else tuple(spec.speed_range)

    def command(self) -> float | None:
        """The speed command in effect now (None: none, or it timed out)."""
        command = self._command
        if command is None:
            return None
        age = self._age(command.received_ns, self._clock())
        return command.speed if age <= self._settings.command_timeout else None

    # -- settings ---------------------------------------------------------------------------
    @property
    def settings(self) -> ControllerSettings:
        return self._settings

    def check_config(self, config) -> None:
        """``ValueError`` unless the planner's model can take ``config``."""
        from diffuser_ros.planning.device import resolve_device

        config.validate(self.planner.schedule.num_train_timesteps)
        resolve_device(config.device)

    def request_config(self, config) -> None:
        """Validate planner settings now; apply them before the next plan."""
        self.check_config(config)
        with self._settings_lock:
            self._pending.config = config

    def update_settings(self, **changes) -> ControllerSettings:
        """Change controller settings (validated); they apply at once."""
        new = replace(self._settings, **changes)
        if new.latency_window != self._settings.latency_window:
            raise ValueError("latency_window cannot change while running")
        if new.execution == "tracking" and self._tracker is None:
            raise ValueError("execution 'tracking' needs a tracker (none was given)")
        self._settings = new
        self._delay.deadline = new.control_period
        return new

    def request_reset(self) -> None:
        """Forget the warm start (and re-seed the noise) before the next plan: a new episode."""
        with self._settings_lock:
            self._pending.reset = True

    def set_estop(self, engaged: bool) -> None:
        """Engage: publish the safe action now and plan no more. Release: plan again from the
        next fresh state, without the (now stale) warm start."""
        with self._output_lock:
            was, self._estop = self._estop, bool(engaged)
            if engaged:
                self._active_plan = None
                self._emit_safe("e-stop engaged")
        if was and not engaged:
            self.request_reset()

    @property
    def estop(self) -> bool:
        return self._estop

    @property
    def has_tracker(self) -> bool:
        """Whether ``execution: tracking`` is available."""
        return self._tracker is not None

    # -- planning cycle ---------------------------------------------------------------------
    def run_once(self, timeout: float | None = 0.0) -> bool:
        """Wait up to ``timeout`` s for a state, then plan on it and publish. True if planned."""
        job = self.begin(timeout)
        if job is None:
            return False
        try:
            self.finish(job, self.compute(job))
        finally:
            with self._cv:
                self._in_progress_key = None
        return True

    def begin(self, timeout: float | None = 0.0) -> Job | None:
        """Take the newest state and decide whether to plan on it (None: not now)."""
        with self._cv:
            if self._newest is None and timeout != 0.0:
                self._cv.wait(timeout)
            state, self._newest = self._newest, None
            if state is None:
                return None
            if not self._active or self._estop:
                return None
            if self._age(state.stamp_ns, self._clock()) > self._settings.state_timeout:
                return None  # stale before we could start: tick() publishes the safe action
            answered = self._answered
            if state.key is not None and answered is not None and state.key == answered[0]:
                with self._output_lock:  # answer a re-sent state again, without re-planning
                    if self._active and not self._estop:
                        self._counters.resent += 1
                        self._emit(Command(answered[1], "repeat", state.key))
                return None
            self._in_progress_key = state.key
        state = self._predicted(state)
        shift = self._apply_pending(state.stamp_ns)
        return Job(state, shift, self._command_to_plan(state), self._constraints)

    def _command_to_plan(self, state: _State):
        """The command, trimmed by the speed loop (``command_gain``)."""
        command = self.command()
        gain = self._settings.command_gain
        if command is None or not gain:
            self._speed_loop.reset()
            self._planned_command = command
            return command
        planned = self._speed_loop.planned(
            command, state.observation[..., self.planner.spec.speed_index], state.stamp_ns,
            gain, self.command_range)
        self._planned_command = float(np.mean(planned))
        return planned

    def _predicted(self, state: _State) -> _State:
        """With ``predict_ahead``: the newest plan's predicted state that many steps later."""
        ahead = self._settings.predict_ahead
        plan = self._active_plan
        if not ahead or plan is None:
            return state
        period = self._settings.control_period_ns
        stamp = state.stamp_ns + ahead * period
        k = (stamp - plan.stamp_ns) // period
        if not 0 <= k < plan.observations.shape[-2] or \
                plan.observations.shape[:-2] != state.observation.shape[:-1]:
            return state
        return _State(np.array(plan.observations[..., k, :]), stamp, state.key)

    def compute(self, job: Job):
        """Plan from the job's state (the expensive part; no lock held)."""
        started = self._timer()
        plan = self.planner.plan(job.state.observation, job.constraints,
                                 warm_start_shift=job.warm_start_shift, command=job.command)
        job.latency = self._timer() - started
        return plan

    def finish(self, job: Job, plan) -> bool:
        """Publish the plan's action (unless e-stopped or deactivated meanwhile). True if sent."""
        self._latency.add(job.latency)
        self._last_plan_stamp_ns = job.state.stamp_ns
        self._counters.best_value = float(np.mean(plan.best_value))
        with self._output_lock:
            if self._estop or not self._active:
                return False  # e-stop or deactivation while planning: drop the plan
            now = self._clock()
            self._delay.add(max(now - job.state.stamp_ns, 0) * 1e-9)
            action = np.asarray(plan.action, dtype=np.float64)
            self._active_plan = _ActivePlan(np.asarray(plan.best_actions),
                                            np.asarray(plan.best_observations),
                                            job.state.stamp_ns)
            if self._settings.execution != "hold":
                action = self._executed_action(now) if now else action
                if action is None:
                    self._emit_safe("the plan ran out before it arrived")
                    return False
            self._answered = (job.state.key, action) if job.state.key is not None else None
            self._emit(Command(action, "plan", job.state.stamp_ns, plan=plan))
        return True

    def _apply_pending(self, stamp_ns: int) -> int:
        with self._settings_lock:
            pending, self._pending = self._pending, _Pending()
        if pending.config is not None:
            before = self.planner.config
            try:
                self.planner.configure(pending.config)
            except ValueError as exc:  # validated already; e.g. a device vanished
                self._log(logging.ERROR, f"could not apply planner settings: {exc}")
            else:
                changed = {k: v for k, v in pending.config.to_dict().items()
                           if getattr(before, k) != v}
                self._log(logging.INFO, f"applied planner settings {changed}")
        if pending.reset:
            self._speed_loop.reset()  # a new episode: the speed loop starts afresh
            self.planner.reset()
            self._counters.resets += 1
            self._last_plan_stamp_ns = None
        # Warm start: shift the previous plan by the control steps that really passed since the
        # state it started from (in real time, states arrive while a plan is computed).
        shift = 1
        if self._last_plan_stamp_ns is not None:
            elapsed = stamp_ns - self._last_plan_stamp_ns
            shift = max(1, int(round(elapsed / self._settings.control_period_ns)))
        self._counters.warm_start_shift = shift
        return shift

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.run_once(timeout=0.25)
            except Exception as exc:  # noqa: BLE001 - the controller must survive a failed plan
                if self._stop.is_set():
                    break
                self._log(logging.ERROR, f"planning failed: {exc!r}")

    # -- safety and execution ---------------------------------------------------------------
    def tick(self) -> Command | None:
        """Every control period: publish the safe action or the time-indexed plan step when due;
        returns what was published (None: nothing, the held action stands)."""
        now = self._clock()
        with self._output_lock:
            if not self._active:
                return None
            if self._estop:
                return self._emit_safe("e-stop engaged")
            reason = self._stale_reason(now)
            if reason is None:  # clock not started: no time has passed
                return None
            if reason:
                self._active_plan = None
                return self._emit_safe(reason)
            self._safe_reason = ""
            if self._settings.execution != "hold" and self._active_plan is not None:
                action = self._executed_action(now)
                if action is None:
                    self._active_plan = None
                    return self._emit_safe("the newest plan has run out")
                return self._emit(Command(action, "step", self._active_plan.stamp_ns))
        return None

    def _stale_reason(self, now: int) -> str | None:
        """'' when the newest state is fresh, the reason when it is not, None if time is 0."""
        if now == 0:
            return None
        timeout = self._settings.state_timeout
        stamp = self._newest_stamp_ns
        if stamp is None:
            if self._no_state_since_ns is None:
                self._no_state_since_ns = now
            waited = (now - self._no_state_since_ns) * 1e-9
            return f"no state received for {waited:.2f} s" if waited > timeout else ""
        age = self._age(stamp, now)
        if age > timeout:
            if math.isinf(age):
                return "state stamp is ahead of the clock (clocks disagree)"
            return f"state is {age:.3f} s old"
        return ""

    def _executed_action(self, now: int) -> np.ndarray | None:
        """The time-indexed or tracked action for ``now`` (None: the plan has run out)."""
        plan = self._active_plan
        period = self._settings.control_period_ns
        horizon = plan.actions.shape[-2]
        if self._settings.execution == "tracking":
            latest = self._latest
            k = max((latest.stamp_ns - plan.stamp_ns) // period, 0)
            if k + 1 >= horizon:
                return None
            return np.asarray(self._tracker(latest.observation,
                                            plan.observations[..., k + 1, :]), dtype=np.float64)
        k = max((now - plan.stamp_ns) // period, 0)
        if k >= horizon:
            return None
        return np.clip(plan.actions[..., k, :], self.planner.spec.action_low,
                       self.planner.spec.action_high)

    def _age(self, stamp_ns: int, now: int) -> float:
        if now == 0:  # simulation time before the first /clock: no time has passed yet
            return 0.0
        age = (now - stamp_ns) * 1e-9
        if age < -self._settings.state_timeout:
            return math.inf  # stamped in the future: clocks disagree
        return max(age, 0.0)

    def state_age(self) -> float | None:
        """Seconds since the newest state's stamp on the clock (None: no state yet)."""
        stamp = self._newest_stamp_ns
        return None if stamp is None else self._age(stamp, self._clock())

    def _emit_safe(self, reason: str) -> Command:
        self._safe_reason = reason
        self._counters.safe += 1
        return self._emit(Command(np.zeros(self._action_shape), "safe", reason=reason))

    def _emit(self, command: Command) -> Command:
        with self._output_lock:
            self._emit_fn(command)
        return command

    # -- status -----------------------------------------------------------------------------
    def status(self) -> ControllerStatus:
        latency, delay = self._latency.summary(), self._delay.summary()
        age = self.state_age()
        level, message = OK, "planning"
        if not self._active:
            level, message = WARN, "inactive: not planning"
        elif self._estop:
            level, message = WARN, "e-stop engaged: publishing the safe action"
        elif self._safe_reason:
            level, message = WARN, f"{self._safe_reason}: publishing the safe action"
        elif self._clock() == 0:
            level, message = WARN, "waiting for the clock to start"
        elif age is None:
            level, message = WARN, "waiting for the first state"
        elif delay["window"] and delay["mean"] > self._settings.control_period:
            level = WARN
            message = (f"actions go out {delay['mean'] * 1e3:.1f} ms after their state (mean), "
                       f"more than control_period ({self._settings.control_period * 1e3:.1f} ms)")
        c = self._counters
        command = self._command
        in_effect = self.command()
        return ControllerStatus(
            active=self._active, estop=self._estop, level=level, message=message,
            plans=latency["count"], latency=latency, delay=delay,
            rejected_states=c.rejected, last_rejection=c.last_rejection,
            resent_states=c.resent, safe_actions=c.safe, resets=c.resets, state_age=age,
            best_value=c.best_value, command=in_effect,
            planned_command=self._planned_command if in_effect is not None else None,
            command_age=None if command is None else self._age(command.received_ns, self._clock()),
            constraints=sum(len(d) for d, _ in (self._constraints or {}).values()),
            settings=self._settings,
            planner_config=self.planner.config, warm_start_shift=c.warm_start_shift)
