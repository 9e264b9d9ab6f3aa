"""Closed-loop evaluation: the policies it compares, and episodes of them on a robot's
environment (:func:`run_episodes`, several seeds side by side; :func:`render_episode`, one as a
video), both through :func:`diffuser_ros.rollout.roll_out`.

A policy is any callable ``policy(obs_batch [B, obs_dim]) -> actions [B, act_dim]``. The adapters
here (:func:`controller_policy`, :func:`sb3_policy`, :func:`bc_policy`) also time every call
(``latencies_s``) and reset per-episode state (the planner's warm start) when a run starts.

Batching is what makes evaluating the planner affordable on a CPU: ``B`` environments ×
``N`` candidates go through the networks in one forward pass, and at small batch the per-layer
overhead dominates, so ``B`` rows cost little more than one.

Seeds: evaluation uses small seeds (``0..19`` by default); the offline datasets are generated
with seeds from 10000 up and the behaviour policy's training-time evaluation uses 1000..1004, so
no evaluation episode starts from a state the planner saw in its training data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from diffuser_ros.latency import summarize_latencies
from diffuser_ros.rendering import VideoRecorder, make_render_env
from diffuser_ros.robots import DEFAULT_ROBOT, env_robot
from diffuser_ros.rollout import EpisodeResult, roll_out

# step index, observations [B, obs_dim] after the step, actions [B, act_dim] applied, rewards [B],
# live mask [B] (envs still running after the step), latency of the batched call in seconds.
StepCallback = Callable[[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, float], None]


# -- policies --------------------------------------------------------------------------------
class Policy:
    """Batched policy with per-call timing. Subclasses implement :meth:`act`."""

    name = "policy"

    def __init__(self) -> None:
        self.latencies_s: list[float] = []
        self.refused_states = 0   # live episodes' states the policy refused (planners only)
        self.last_refusal = ""    # why, for the newest one

    def act(self, obs_batch: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def reset(self) -> None:
        """Called at the start of every rollout (a new set of episodes)."""

    def __call__(self, obs_batch: np.ndarray) -> np.ndarray:
        start = time.perf_counter()
        actions = self.act(np.asarray(obs_batch, dtype=np.float64))
        self.latencies_s.append(time.perf_counter() - start)
        return actions

    def latency_stats(self) -> dict:
        """Mean / p95 / max of the batched call latency in milliseconds, and the call count."""
        return latency_stats(self.latencies_s)


def latency_stats(latencies_s: Sequence[float]) -> dict:
    """``{n_calls, mean_ms, p95_ms, max_ms}`` as the evaluation JSON stores it (None, not NaN,
    when there were no calls: JSON has no NaN)."""
    stats = summarize_latencies(latencies_s, unit="ms")
    n_calls = stats.pop("count")
    return {"n_calls": n_calls, **{k: v if n_calls else None for k, v in stats.items()}}


class FakeClock:
    """Integer-nanosecond clock the evaluation advances by one control period per env step."""

    def __init__(self) -> None:
        self.now = 0

    def __call__(self) -> int:
        return self.now


class ControllerPolicy(Policy):
    """The planner driven through the node's :class:`~diffuser_ros.control.
    RecedingHorizonController`, under a deterministic latency model: a plan started from the
    state at step t is delivered at step t + ``latency_steps``; until then the controller decides
    what is applied (the held action, time-indexed plan steps, or the safe action), exactly as
    the node does on a real clock. ``latency_steps`` 0 is lockstep (the world waits). The world
    also waits for an episode's first plan, as the simulator bridge holds each episode until its
    first action.
    With ``settings.plans_in_flight`` K > 1 a plan is started at every step while fewer than K
    are in flight (K planners side by side). ``robot_model`` enables ``predict_ahead``.
    ``command_schedule(step) -> speed or None`` commands a forward speed at each control step
    (0-based), as ``cmd_vel`` does the node's.
    """

    name = "planner"

    def __init__(self, planner, latency_steps: int = 0, settings=None, tracker=None,
                 command_schedule: Callable[[int], float | None] | None = None,
                 robot_model=None) -> None:
        super().__init__()
        from diffuser_ros.control import ControllerSettings

        if latency_steps < 0:
            raise ValueError(f"latency_steps must be >= 0, got {latency_steps}")
        self.planner = planner
        self.latency_steps = int(latency_steps)
        self.settings = settings or ControllerSettings()
        self.tracker = tracker
        self.robot_model = robot_model
        self.command_schedule = command_schedule
        self.reset()

    def reset(self) -> None:
        from diffuser_ros.control import RecedingHorizonController

        self.planner.reset()
        self.clock = FakeClock()
        self.commands: list = []
        self.controller = RecedingHorizonController(
            self.planner, self.settings, clock=self.clock, emit=self.commands.append,
            tracker=self.tracker, robot_model=self.robot_model)
        self.controller.activate()
        self._held: np.ndarray | None = None
        self._in_flight: list = []  # (due step, job, plan), oldest first
        self._step = 0
        self._seen: np.ndarray | None = None      # the previous call's states
        self._accepted: np.ndarray | None = None  # the newest accepted state of each row

    def act(self, obs_batch: np.ndarray) -> np.ndarray:
        period = self.settings.control_period_ns
        self._step += 1
        self.clock.now = self._step * period  # > 0: the clock has started
        if self.command_schedule is not None:
            self.controller.set_command(self.command_schedule(self._step - 1))
        self.controller.offer(self._plannable(obs_batch), self.clock.now)
        while self._in_flight and self._step >= self._in_flight[0][0]:
            _, job, plan = self._in_flight.pop(0)
            self.controller.finish(job, plan)
        if len(self._in_flight) < self.settings.plans_in_flight:  # a planner is free
            job = self.controller.begin()
            if job is not None:
                plan = self.controller.compute(job)
                if self.latency_steps == 0 or self._held is None:
                    # lockstep, or the episode's first plan: the robot waits for its first
                    # action, as the simulator bridge holds each episode until then
                    self.controller.finish(job, plan)
                else:
                    self._in_flight.append((self._step + self.latency_steps, job, plan))
        self.controller.tick()
        for command in self.commands:  # the robot holds the newest command
            self._held = command.action
        self.commands.clear()
        if self._held is None:
            return np.zeros((obs_batch.shape[0], self.planner.spec.action_dim))
        return np.asarray(self._held, dtype=np.float64)

    def _plannable(self, obs_batch: np.ndarray) -> np.ndarray:
        """The batch with each row the planner refuses replaced by that row's newest accepted
        state. The controller refuses a batch as a whole, so without this one episode's refused
        state would stall every episode beside it, an ended one's final state (kept in the
        batch) for the rest of the run. Refusals of live episodes (whose state changed since the
        previous call) are counted in ``refused_states``: an evaluation reports them."""
        refused = []
        for i, row in enumerate(obs_batch):
            try:
                self.planner.check_observation(row)
            except ValueError as exc:
                refused.append(i)
                if self._seen is None or not np.array_equal(row, self._seen[i]):
                    self.refused_states += 1
                    self.last_refusal = str(exc)
        self._seen = obs_batch.copy()
        if refused and self._accepted is not None:
            obs_batch = obs_batch.copy()
            obs_batch[refused] = self._accepted[refused]
        if not refused or self._accepted is not None:
            self._accepted = obs_batch.copy()
        return obs_batch


class CallablePolicy(Policy):
    """Wraps a plain ``fn(obs_batch) -> actions`` (BC MLP, SB3 predict, a test policy)."""

    def __init__(self, fn: Callable[[np.ndarray], np.ndarray], name: str = "policy") -> None:
        super().__init__()
        self.fn = fn
        self.name = name

    def act(self, obs_batch: np.ndarray) -> np.ndarray:
        return np.asarray(self.fn(obs_batch), dtype=np.float64)


def controller_policy(planner, latency_steps: int = 0, settings=None, tracker=None,
                      command_schedule=None, robot_model=None) -> ControllerPolicy:
    """The planner as the node runs it (its controller core), planning for the whole batch in one
    ``planner.plan`` call; ``latency_steps`` > 0 models a plan arriving that many steps late."""
    return ControllerPolicy(planner, latency_steps, settings, tracker=tracker,
                            command_schedule=command_schedule, robot_model=robot_model)


def bc_policy(bc) -> CallablePolicy:
    """Policy around a :class:`~diffuser_ros.evaluation.bc.BCPolicy` (or its file path)."""
    if isinstance(bc, (str, Path)):
        from diffuser_ros.evaluation.bc import BCPolicy

        bc = BCPolicy.load(bc)
    return CallablePolicy(bc, name="bc")


def sb3_policy(path: str | Path, deterministic: bool = True) -> CallablePolicy:
    """Policy around a stable-baselines3 SAC ``.zip`` (the behaviour policy)."""
    try:
        from stable_baselines3 import SAC
    except ImportError as exc:
        raise RuntimeError("the behaviour-policy variant needs stable-baselines3: "
                           "pip install '.[data]'") from exc
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"behaviour policy file not found: {path}")
    model = SAC.load(str(path), device="cpu")

    def predict(obs_batch: np.ndarray) -> np.ndarray:
        actions, _ = model.predict(obs_batch, deterministic=deterministic)
        return actions

    return CallablePolicy(predict, name="sb3")


# -- episodes --------------------------------------------------------------------------------
def run_episodes(policy_fn: Callable[[np.ndarray], np.ndarray], seeds: Sequence[int],
                 env_id: str = DEFAULT_ROBOT.env_id, max_steps: int = 1000,
                 on_step: StepCallback | None = None, progress: bool = True,
                 desc: str = "episodes", mass_scale: float = 1.0,
                 friction_scale: float = 1.0) -> list[EpisodeResult]:
    """Run one episode per seed, all envs side by side, until each terminates or truncates
    (or ``max_steps``). ``policy_fn`` is called once per step with every env's observation.
    ``mass_scale``/``friction_scale``: the simulated robot differs from its model
    (:meth:`~diffuser_ros.robots.Robot.make_env`).

    Finished envs stay in the batch with their final observation until every episode is over
    (see :func:`~diffuser_ros.rollout.roll_out`). Tradeoff: the tail of a run plans for rows
    nobody needs (up to ``B - 1`` wasted rows when one env outlives the others, at little cost
    while batching overhead dominates), but the result of a seed does not depend on when the
    other episodes end.
    """
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("run_episodes needs at least one seed")
    if max_steps < 1:
        raise ValueError(f"max_steps must be >= 1, got {max_steps}")
    robot = env_robot(env_id)
    hook = None if on_step is None else lambda step: on_step(
        step.index, step.next_observations, step.actions, step.rewards, step.live,
        step.latency_s)
    envs = []
    try:
        for _ in seeds:
            envs.append(robot.make_env(mass_scale=mass_scale, friction_scale=friction_scale))
        episodes = roll_out(envs, seeds, policy_fn, max_episode_steps=max_steps,
                            max_steps=max_steps, on_step=hook,
                            progress=desc if progress else None)
    finally:
        for env in envs:
            env.close()
    return [first for first, *_ in episodes]


def render_episode(policy_fn: Callable[[np.ndarray], np.ndarray], seed: int, path: str | Path,
                   env_id: str = DEFAULT_ROBOT.env_id, max_steps: int = 1000, width: int = 320,
                   height: int = 240, fps: float = 30.0) -> EpisodeResult:
    """Run one episode and write it as a GIF (Pillow) or MP4 (needs imageio-ffmpeg).

    Frames are sub-sampled to about ``fps`` (Hopper runs at 125 Hz; GIF players cap the rate);
    the last frame is always kept. Raises :class:`RenderingUnavailableError` naming what is
    missing.
    """
    env = make_render_env(env_id, width, height)
    try:
        with VideoRecorder(path, 1.0 / env.unwrapped.dt, fps=fps) as video:
            (episode,), = roll_out([env], [seed], policy_fn, max_episode_steps=max_steps,
                                   frames=video)
    finally:
        env.close()
    return episode
