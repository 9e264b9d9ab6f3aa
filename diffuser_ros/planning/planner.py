"""``DiffusionPlanner``: receding-horizon planning with a value-guided diffusion model.

Usage::

    planner = load_planner("path/to/model")            # or DiffusionPlanner(unet, value, ...)
    planner.reset()                                     # at the start of every episode
    action = planner.select_action(observation)         # [obs_dim] -> [action_dim]
    plan = planner.plan(observations)                   # [B, obs_dim] -> Plan with B batches
    plan = planner.plan(observation, command=1.8)       # plan for a forward speed (m/s)

``plan`` samples ``n_candidates`` trajectories per observation in one batch (several robots or
evaluation environments share one forward pass), ranks them by value (with ``prefer_healthy``,
first by how long they stay in the robot's healthy range) and returns the first action of each
best plan, un-normalised and clipped to the action bounds.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from diffusers import DDPMScheduler, UNet1DModel

from diffuser_ros.planning.compiled import CompiledLoop, check_backend
from diffuser_ros.planning.config import PlannerConfig
from diffuser_ros.planning.device import resolve_device
from diffuser_ros.planning.models import check_horizon
from diffuser_ros.planning.normalizer import GaussianNormalizer
from diffuser_ros.planning.objective import CommandSpec, Objective
from diffuser_ros.planning.sampler import Conditioning, GuideSettings, guided_sample
from diffuser_ros.planning.schedule import DiffusionSchedule, timestep_sequence
from diffuser_ros.robots import robot_for_env

LOG = logging.getLogger(__name__)

# {horizon index: (observation dims, raw observation values)}; values [C] or [B, C].
Constraints = Mapping[int, tuple[Sequence[int], np.ndarray]]


class PlanningError(RuntimeError):
    """A plan came out unusable (non-finite values); it was discarded, warm start included."""


@dataclass(frozen=True)
class PlannerSpec:
    """What a model plans over; stored with the checkpoint as planner metadata."""

    observation_dim: int
    action_dim: int
    horizon: int
    action_low: tuple[float, ...]
    action_high: tuple[float, ...]
    env_id: str = ""
    speed_index: int | None = None  # observation index of the forward velocity (commands)

    def __post_init__(self) -> None:
        if self.speed_index is not None and not 0 <= self.speed_index < self.observation_dim:
            raise ValueError(f"speed_index {self.speed_index} is not an observation index "
                             f"(< {self.observation_dim})")
        if len(self.action_low) != self.action_dim or len(self.action_high) != self.action_dim:
            raise ValueError("action bounds must have action_dim entries")
        if any(lo > hi for lo, hi in zip(self.action_low, self.action_high)):
            raise ValueError("action_low must not exceed action_high")

    @property
    def transition_dim(self) -> int:
        return self.action_dim + self.observation_dim


@dataclass(frozen=True)
class Plan:
    """Result of one planning call. Leading ``B`` is absent when one observation was given.

    All arrays are un-normalised numpy float64 (values float32): ``actions`` [B, N, H, action_dim],
    ``observations`` [B, N, H, obs_dim], ``values`` [B, N] (predicted return), ``best`` [B],
    ``action`` [B, action_dim] (first action of each best plan, clipped to the bounds),
    ``healthy_steps`` [B, N] (with ``prefer_healthy``: the leading planned states of each
    candidate within :meth:`DiffusionPlanner.healthy_bounds`).
    """

    action: np.ndarray
    actions: np.ndarray
    observations: np.ndarray
    values: np.ndarray
    best: np.ndarray
    warm_started: bool
    trajectory: torch.Tensor | None = None  # the best plans, normalised [B, D, H] (warm starts)
    # [B, N]: leading planned states within the healthy bounds (None: not ranked by them)
    healthy_steps: np.ndarray | None = None

    @property
    def best_actions(self) -> np.ndarray:
        return np.take_along_axis(self.actions, self._best_index(4), axis=-3).squeeze(-3)

    @property
    def best_observations(self) -> np.ndarray:
        return np.take_along_axis(self.observations, self._best_index(4), axis=-3).squeeze(-3)

    @property
    def best_value(self) -> np.ndarray:
        return np.take_along_axis(self.values, np.asarray(self.best)[..., None], axis=-1)[..., 0]

    def _best_index(self, ndim: int) -> np.ndarray:
        return np.asarray(self.best).reshape(np.shape(self.best) + (1,) * (ndim - 1))


class DiffusionPlanner:
    """Value-guided diffusion planner (Janner et al., 2022). Thread-safe: one plan at a time."""

    def __init__(self, unet: UNet1DModel, value_function: UNet1DModel, scheduler: DDPMScheduler,
                 normalizer: GaussianNormalizer, spec: PlannerSpec,
                 config: PlannerConfig | None = None, command_value: UNet1DModel | None = None,
                 command_spec: CommandSpec | None = None):
        if normalizer.observation_dim != spec.observation_dim or \
                normalizer.action_dim != spec.action_dim:
            raise ValueError(f"normaliser dims ({normalizer.observation_dim} obs, "
                             f"{normalizer.action_dim} act) do not match the planner spec "
                             f"({spec.observation_dim} obs, {spec.action_dim} act)")
        for name, model in (("unet", unet), ("value_function", value_function)):
            if model.config.in_channels != spec.transition_dim:
                raise ValueError(f"{name} has {model.config.in_channels} input channels but the "
                                 f"spec needs {spec.transition_dim} (actions + observations)")
        if (command_value is None) != (command_spec is None):
            raise ValueError("command_value and command_spec come together")
        if command_value is not None:
            if command_value.config.in_channels != spec.transition_dim + 1:
                raise ValueError(f"command_value has {command_value.config.in_channels} input "
                                 f"channels but needs {spec.transition_dim + 1} (actions + "
                                 "observations + the command)")
            if spec.speed_index is None:
                raise ValueError("a command value needs the spec's speed_index")
            command_value = command_value.eval().requires_grad_(False)
        check_horizon(spec.horizon, tuple(unet.config.block_out_channels))
        self.spec = spec
        self.command_spec = command_spec
        self._command_value = command_value
        self.normalizer = normalizer
        self._act_low = np.asarray(spec.action_low, dtype=np.float32)
        self._act_high = np.asarray(spec.action_high, dtype=np.float32)
        self.schedule = DiffusionSchedule(scheduler)
        self._lock = threading.RLock()
        self._unet = unet.eval().requires_grad_(False)
        self._value = value_function.eval().requires_grad_(False)
        self.device = torch.device("cpu")
        self.config = PlannerConfig()
        self.configure(config or PlannerConfig())

    # -- networks ---------------------------------------------------------------------------
    @property
    def unet(self) -> UNet1DModel:
        """The trajectory denoiser (eval mode, no gradients, on :attr:`device`)."""
        return self._unet

    @property
    def value_function(self) -> UNet1DModel:
        """The return predictor that guides and ranks the plans (eval mode, on :attr:`device`)."""
        return self._value

    @property
    def command_value(self) -> UNet1DModel | None:
        """The command-conditioned value function (``None``: the model has none)."""
        return self._command_value

    def objective(self, command=None, n_candidates: int = 1) -> Objective:
        """What guides and ranks the samples: the value function, or with ``command`` (one speed
        per robot) the weighted command terms of the config (eager networks)."""
        networks = (self._unet, self._value, self._command_value)
        return self._objective(networks, self.check_command(command, np.size(command)),
                               n_candidates)

    @property
    def coefficients(self):
        """The sampler's schedule constants for the configured step sequence."""
        return self._coefficients

    def use_coefficients(self, coefficients) -> None:
        """Sample with these schedule constants (same fields and steps as :attr:`coefficients`)
        until the next :meth:`configure`: e.g. another implementation's float32 constants, to
        compare with it bit for bit."""
        if type(coefficients) is not type(self._coefficients) or \
                len(coefficients.timesteps) != len(self._coefficients.timesteps):
            raise ValueError("coefficients must match the configured step sequence")
        with self._lock:
            self._coefficients = coefficients

    # -- settings ---------------------------------------------------------------------------
    def configure(self, config: PlannerConfig) -> None:
        """Apply new settings (validated against the model first); takes effect between plans."""
        config.validate(self.schedule.num_train_timesteps)
        check_backend(config.backend)
        with self._lock:
            self._loops: dict = {}  # compiled loops by shape (backend), rebuilt for new settings
            device = resolve_device(config.device)
            first_time = not hasattr(self, "_generator")
            # Compared before self.device changes: compiled networks are specialised to their
            # device (CUDA graphs on CUDA), so a move must rebuild them.
            moved = device != self.device
            needs_reset = first_time or moved or config.seed != self.config.seed
            if moved:
                self._unet.to(device)
                self._value.to(device)
                if self._command_value is not None:
                    self._command_value.to(device)
                self.device = device
            if config.compile != self.config.compile or moved or first_time:
                self._compiled = None
            self.config = config
            sequence = timestep_sequence(self.schedule.num_train_timesteps, config.n_denoise_steps)
            self._coefficients = self.schedule.coefficients(
                sequence, config.sampler, config.ddim_eta, device=self.device)
            self._guide = GuideSettings(config.n_guide_steps, config.guide_scale,
                                        config.t_stopgrad, config.scale_grad_by_std)
            self._timestep_cache: dict[tuple[int, int], list[torch.Tensor]] = {}
            if needs_reset:  # keep the episode's noise stream and warm start otherwise
                self.reset()

    def reset(self) -> None:
        """Forget the previous plan (warm start) and re-seed the noise (when ``seed`` >= 0)."""
        with self._lock:
            self._previous: torch.Tensor | None = None
            self._generator = torch.Generator(device=self.device)
            if self.config.seed >= 0:
                self._generator.manual_seed(self.config.seed)
            else:
                self._generator.seed()

    # -- planning ---------------------------------------------------------------------------
    def select_action(self, observation, constraints: Constraints | None = None,
                      command=None) -> np.ndarray:
        """The action to execute now: ``[action_dim]`` (or ``[B, action_dim]`` for a batch)."""
        return self.plan(observation, constraints, command=command).action

    def plan(self, observation, constraints: Constraints | None = None,
             generator: torch.Generator | None = None,
             noise: torch.Tensor | None = None, warm_start_shift: int = 1,
             command=None, warm_start="previous") -> Plan:
        """Plan from ``observation`` ([obs_dim] or [B, obs_dim], raw units).

        ``constraints`` adds inpainting conditions ``{horizon_index: (obs_dims, values)}`` on top
        of the current observation at index 0 (e.g. a goal at ``horizon - 1``).
        ``generator`` overrides the planner's own noise generator for this call; ``noise``
        supplies every random draw explicitly: ``[S + 1, B, N, H, D]`` (or ``[S + 1, N, H, D]``
        for one observation), ``noise[0]`` the initial sample (or the warm-start re-noising) and
        ``noise[k + 1]`` the noise of step k, S being the number of steps this call runs.
        ``warm_start_shift``: control steps elapsed since the state the previous plan started
        from; a warm start shifts that plan by as many steps (1 when every state is planned on).
        ``command``: the commanded forward speed (m/s; a number, or ``[B]``), planned for with
        the command terms of the objective (``command_weight``, ``speed_cost_weight``); ``None``
        plans for the learned return alone.
        ``warm_start`` (with ``config.warm_start``): ``"previous"`` = this planner's previous
        plan; a :class:`Plan` = that plan (e.g. the newest one delivered while others are still
        being computed); ``None`` = start cold.
        Raises ``ValueError`` for input it cannot plan from (see :meth:`check_observation`,
        :meth:`check_command`, :meth:`check_constraints`) and :class:`PlanningError` when the
        plan came out non-finite (then nothing of it is kept: the next call starts cold).
        """
        obs = self.check_observation(observation)
        single = obs.ndim == 1
        obs = np.atleast_2d(obs)
        command = self.check_command(command, obs.shape[0])
        if isinstance(warm_start_shift, bool) or not isinstance(warm_start_shift, int) or \
                warm_start_shift < 0:
            raise ValueError(f"warm_start_shift must be an integer >= 0, got {warm_start_shift!r}")
        if isinstance(warm_start, Plan):
            warm_start = warm_start.trajectory
        elif warm_start is not None and warm_start != "previous":
            raise ValueError(f"warm_start must be 'previous', a Plan or None, got {warm_start!r}")
        with self._lock:
            previous = self._previous if isinstance(warm_start, str) else warm_start
            return self._plan(obs, single, constraints, generator, noise, warm_start_shift,
                              command, previous)

    def _plan(self, obs: np.ndarray, single: bool, constraints, generator, noise,
              shift: int, command: np.ndarray | None, previous: torch.Tensor | None) -> Plan:
        cfg, spec = self.config, self.spec
        n_env, n_cand = obs.shape[0], cfg.n_candidates
        batch, horizon = n_env * n_cand, spec.horizon
        conditioning = self._conditioning(obs, constraints, n_env, n_cand)

        warm = cfg.warm_start and previous is not None and previous.shape[0] == n_env
        n_total = len(self._coefficients.timesteps)
        first = n_total - cfg.warm_start_steps if warm else 0
        coefficients = _slice_coefficients(self._coefficients, first)
        n_steps = n_total - first

        noise = self._noise(noise, generator, n_steps, n_env, n_cand, single)
        if warm:
            # Previous best plan shifted by the elapsed steps (last entry repeated), re-noised to
            # the level of the first step we run: x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) z.
            keep = previous[:, :, min(shift, horizon - 1):]
            shifted = torch.cat([keep, keep[:, :, -1:].expand(-1, -1, horizon - keep.shape[2])],
                                dim=2)
            x0 = shifted.repeat_interleave(n_cand, dim=0)
            x = coefficients.sqrt_alpha_bar[0] * x0 + \
                coefficients.sqrt_one_minus_alpha_bar[0] * noise[0]
        else:
            x = noise[0].clone()
        args = (x, conditioning, coefficients, self._guide, noise[1:],
                self._timesteps(batch, first))
        if cfg.backend != "torch" and command is None and self.device.type == "cpu" and warm:
            x, values = self._compiled_loop(*args)(x, noise[1:], conditioning)
            return self._result(x, values, obs, single, constraints, n_env, n_cand, warm)
        networks = self._networks()
        try:
            x, values = guided_sample(networks[0], self._objective(networks, command, n_cand),
                                      *args)
        except Exception as exc:  # noqa: BLE001 - compiler failures come in many types
            if networks[0] is self._unet:
                raise
            LOG.warning("torch.compile failed (%s); planning with eager models", exc)
            self._compiled = (self._unet, self._value, self._command_value)
            x, values = guided_sample(self._unet, self._objective(self._compiled, command, n_cand),
                                      *args)
        return self._result(x, values, obs, single, constraints, n_env, n_cand, warm)

    def _compiled_loop(self, x, conditioning, coefficients, guide, step_noise, timesteps):
        """The guided loop of this shape on ``config.backend`` (built at its first use)."""
        key = (tuple(x.shape), len(timesteps), tuple((h, tuple(c.tolist()))
                                                   for h, c, _ in conditioning.entries))
        loop = self._loops.get(key)
        if loop is None:
            loop = CompiledLoop(self._unet, Objective(self._value), x, conditioning, coefficients,
                                guide, step_noise, timesteps, self.config.backend,
                                torch.get_num_threads())
            self._loops[key] = loop
        return loop

    def _result(self, x, values, obs, single, constraints, n_env, n_cand, warm) -> Plan:
        """The sampled trajectories as a :class:`Plan` (un-normalised, the best ranked)."""
        spec = self.spec
        act_dim, horizon, dim = spec.action_dim, spec.horizon, spec.transition_dim
        x = x.view(n_env, n_cand, dim, horizon)
        values = values.view(n_env, n_cand)
        if not (torch.isfinite(x).all() and torch.isfinite(values).all()):
            self._previous = None  # never warm-start from a poisoned plan
            raise PlanningError("the plan has non-finite values (discarded, warm start dropped)")

        traj = x.transpose(2, 3).float().cpu().numpy()  # [B, N, H, D]
        traj = self.normalizer.unnormalize_transitions(traj.astype(np.float64))
        # Re-impose the conditions in raw units too, so conditioned entries equal the given
        # values exactly rather than up to float round-off of normalise/un-normalise.
        traj[:, :, 0, act_dim:] = obs[:, None, :]
        for h, (dims, goal) in (constraints or {}).items():
            goal = np.broadcast_to(np.asarray(goal, dtype=np.float64), (n_env, len(dims)))
            traj[:, :, h, act_dim + np.asarray(dims)] = goal[:, None, :]
        actions, observations = traj[..., :act_dim], traj[..., act_dim:]
        values_np = values.float().cpu().numpy()
        best_np, healthy = self._rank(values_np, observations)
        self._previous = x[torch.arange(n_env, device=x.device),
                           torch.as_tensor(best_np, device=x.device)].clone()
        first_action = np.clip(actions[np.arange(n_env), best_np, 0], self._act_low, self._act_high)
        first_action = first_action.astype(np.float64)
        result = Plan(first_action, actions, observations, values_np, best_np, warm,
                      self._previous, healthy)
        if single:
            result = Plan(result.action[0], result.actions[0], result.observations[0],
                          result.values[0], result.best[0], warm, self._previous,
                          None if healthy is None else healthy[0])
        return result

    def _rank(self, values: np.ndarray, observations: np.ndarray):
        """The best candidate of each robot ``[B]``, and each candidate's healthy steps
        ``[B, N]`` when ``prefer_healthy`` ranks by them first (else None): the highest value,
        among the candidates that stay healthy longest with ``prefer_healthy``."""
        bounds = self.healthy_bounds() if self.config.prefer_healthy else ()
        if not bounds:  # off, or no robot entry (or one without a healthy range)
            return values.argmax(axis=1), None
        healthy = self._robot().healthy_steps(observations, bounds)
        longest = healthy == healthy.max(axis=1, keepdims=True)
        return np.where(longest, values, -np.inf).argmax(axis=1), healthy

    # -- the checks of what enters a plan: one each, one wording ------------------------------
    def state_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """The plausible range of each observation entry: the model's data mean ± ``state_limit``
        standard deviations (its normaliser), widened to the velocity range the robot's
        observation clips to (every velocity the environment reports is in the data's range)
        and, for hinge angles, to [-pi, pi]: every angle is a pose the body can be pushed
        into. MuJoCo's joint limits are soft (in the Walker2d data the feet pass theirs by
        0.7 rad) and an angle's spread in the data can be narrow (Walker2d's knee: 0.13 rad
        std, yet 20 std from its mean in the data); refusing such a state would leave the
        robot on a held action, falling. Outside the range the model has seen nothing to plan
        from, and far outside it normalising would overflow float32."""
        mean, std = self.normalizer.observation_mean, self.normalizer.observation_std
        limit = self.config.state_limit
        low, high = mean - limit * std, mean + limit * std
        robot = self._robot()
        if robot is not None:
            angles = list(robot.hinge_positions)
            low[angles] = np.minimum(low[angles], -np.pi)
            high[angles] = np.maximum(high[angles], np.pi)
            if robot.velocity_clip > 0:
                velocities = slice(robot.observation_dim - len(robot.joints), None)
                low[velocities] = np.minimum(low[velocities], -robot.velocity_clip)
                high[velocities] = np.maximum(high[velocities], robot.velocity_clip)
        return low, high

    def healthy_bounds(self) -> tuple[tuple[int, float, float], ...]:
        """The (observation index, low, high) bounds ``prefer_healthy`` ranks by: the robot's
        healthy range, each bound narrowed to the data mean ± ``healthy_std`` standard
        deviations when that is set (empty: the model has no robot entry)."""
        robot = self._robot()
        if robot is None:
            return ()
        k = self.config.healthy_std
        mean, std = self.normalizer.observation_mean, self.normalizer.observation_std
        return tuple((i, max(low, mean[i] - k * std[i]) if k else low,
                      min(high, mean[i] + k * std[i]) if k else high)
                     for i, low, high in robot.healthy_entries())

    def observation_labels(self) -> tuple[str, ...]:
        """How errors name each observation entry (the robot's joint labels where known)."""
        robot = self._robot()
        if robot is not None:
            return robot.observation_labels
        return tuple(f"observation[{i}]" for i in range(self.spec.observation_dim))

    def _robot(self):
        """The robot entry of the model's environment (None: unknown, or another layout)."""
        robot = robot_for_env(self.spec.env_id)
        return robot if robot is not None and \
            robot.observation_dim == self.spec.observation_dim else None

    def check_observation(self, observation) -> np.ndarray:
        """``observation`` as float64 ``[obs_dim]`` or ``[B, obs_dim]``; ``ValueError`` naming
        the entry when it is not numeric, has the wrong shape, is not finite or lies outside
        :meth:`state_bounds`."""
        try:
            obs = np.asarray(observation, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"state is not numeric: {exc}") from None
        dim = self.spec.observation_dim
        if obs.ndim not in (1, 2) or obs.shape[-1] != dim or obs.size == 0:
            raise ValueError(f"state has shape {list(obs.shape)}; the model expects [{dim}] or "
                             f"[B, {dim}]")
        self._check_in_bounds(obs, np.arange(dim), "state")
        return obs

    def check_constraints(self, constraints: Constraints | None) -> None:
        """``ValueError`` unless ``constraints`` can condition a plan of one observation."""
        if constraints:
            self._conditioning(self.normalizer.observation_mean[None], constraints, 1, 1)

    def check_command(self, command, n_env: int = 1) -> np.ndarray | None:
        """The commanded speed(s) as ``[n_env]`` (None: no command); ``ValueError`` when it is
        not numeric or finite, not one per observation, outside the speeds the command value
        was trained for, or the model cannot plan for a speed at all."""
        if command is None:
            return None
        try:
            values = np.asarray(command, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"command is not numeric: {exc}") from exc
        if values.size == 1:
            values = np.repeat(values, n_env)
        if values.size != n_env:
            raise ValueError(f"command must be one speed or one per observation ({n_env}), got "
                             f"{np.shape(command)}")
        if not np.isfinite(values).all():
            raise ValueError(f"commanded speed must be finite, got {values.tolist()}")
        if self.spec.speed_index is None:
            raise ValueError("this model's spec names no forward-velocity index (speed_index): "
                             "it cannot plan for a speed command")
        if self.command_spec is None:
            if self.config.speed_cost_weight == 0:
                raise ValueError("the model has no command value (command_value/): it cannot "
                                 "plan for a speed command unless speed_cost_weight > 0")
            return values
        low, high = self.command_spec.speed_range
        outside = values[(values < low) | (values > high)]
        if outside.size:
            raise ValueError(f"commanded speed {outside[0]:.3f} m/s is outside the speeds the "
                             f"model's command value was trained for [{low:.2f}, {high:.2f}] m/s")
        return values

    def check_config(self, config: PlannerConfig) -> None:
        """``ValueError`` unless this model can plan with ``config`` (on its device)."""
        config.validate(self.schedule.num_train_timesteps)
        resolve_device(config.device)
        check_backend(config.backend)

    def _check_in_bounds(self, values: np.ndarray, dims: np.ndarray, what: str) -> None:
        """``values [..., len(dims)]`` of observation entries ``dims``: finite and plausible."""
        labels = self.observation_labels()
        finite = np.isfinite(values)
        if not finite.all():
            bad = [labels[d] for d in sorted({int(dims[i]) for i in np.argwhere(~finite)[:, -1]})]
            raise ValueError(f"{what} has non-finite values (NaN/Inf) in {', '.join(bad)}; "
                             "refusing to plan on it")
        low, high = (bound[dims] for bound in self.state_bounds())
        outside = np.argwhere((values < low) | (values > high))
        if outside.size:
            i = int(outside[0, -1])
            value = values[tuple(outside[0])]
            raise ValueError(
                f"{what} {labels[dims[i]]} = {value:.6g} is outside the plausible range "
                f"[{low[i]:.4g}, {high[i]:.4g}] (the model's data mean ± state_limit "
                f"{self.config.state_limit:g} std, widened to the robot's angle and velocity "
                f"ranges); refusing to plan on it")

    # -- helpers ----------------------------------------------------------------------------
    def _objective(self, networks, command: np.ndarray | None, n_cand: int) -> Objective:
        _, value, command_value = networks
        cfg = self.config
        objective = Objective(value)
        if command is None:
            return objective
        objective.value_weight = cfg.command_return_weight
        index = self.spec.speed_index
        objective.command = torch.as_tensor(command, dtype=torch.float32, device=self.device) \
            .repeat_interleave(n_cand)
        objective.command_value, objective.command_spec = command_value, self.command_spec
        objective.command_weight = cfg.command_weight
        objective.speed_cost_weight = cfg.speed_cost_weight
        objective.speed_channel = self.spec.action_dim + index
        objective.speed_mean = float(self.normalizer.observation_mean[index])
        objective.speed_std = float(self.normalizer.observation_std[index])
        return objective

    def _conditioning(self, obs: np.ndarray, constraints, n_env: int, n_cand: int) -> Conditioning:
        act_dim, obs_dim = self.spec.action_dim, self.spec.observation_dim
        norm_obs = torch.as_tensor(self.normalizer.normalize_observations(obs),
                                   dtype=torch.float32, device=self.device)
        entries = [(0, torch.arange(act_dim, act_dim + obs_dim, device=self.device),
                    norm_obs.repeat_interleave(n_cand, dim=0))]
        for h, (dims, values) in (constraints or {}).items():
            if not isinstance(h, (int, np.integer)) or not 0 < h < self.spec.horizon:
                raise ValueError(f"constraint timestep {h!r} is outside the horizon "
                                 f"(0, {self.spec.horizon}): index 0 is the current state")
            dims = np.asarray(dims, dtype=np.int64).reshape(-1)
            if dims.size == 0 or (dims < 0).any() or (dims >= obs_dim).any() or \
                    len(set(dims.tolist())) != dims.size:
                raise ValueError(f"constraint at {h}: dims must be distinct observation indices in "
                                 f"[0, {obs_dim}), got {dims.tolist()}")
            vals = np.asarray(values, dtype=np.float64)
            if vals.ndim == 1:
                vals = np.broadcast_to(vals, (n_env, vals.shape[0]))
            if vals.shape != (n_env, dims.size):
                raise ValueError(f"constraint at {h}: values must have shape [{dims.size}] or "
                                 f"[{n_env}, {dims.size}], got {np.shape(values)}")
            self._check_in_bounds(vals, dims, f"constraint at {h}:")
            norm = (vals - self.normalizer.observation_mean[dims]) / \
                self.normalizer.observation_std[dims]
            entries.append((int(h), torch.as_tensor(dims + act_dim, device=self.device),
                            torch.as_tensor(norm, dtype=torch.float32, device=self.device)
                            .repeat_interleave(n_cand, dim=0)))
        return Conditioning(entries)

    def _noise(self, noise, generator, n_steps: int, n_env: int, n_cand: int,
               single: bool) -> torch.Tensor:
        """Every random draw of one call as ``[S + 1, B * N, D, H]`` (channel-first)."""
        horizon, dim = self.spec.horizon, self.spec.transition_dim
        expected = (n_steps + 1, n_env, n_cand, horizon, dim)
        if noise is None:
            gen = generator or self._generator
            noise = torch.randn(expected, generator=gen, device=gen.device, dtype=torch.float32)
        else:
            noise = torch.as_tensor(noise, dtype=torch.float32)
            if single and noise.dim() == 4:
                noise = noise.unsqueeze(1)
            if tuple(noise.shape) != expected:
                shown = expected[:1] + expected[2:] if single else expected
                raise ValueError(f"noise must have shape {list(shown)} (steps + 1, "
                                 f"{'' if single else 'B, '}N, H, D), got {list(noise.shape)}")
        noise = noise.to(self.device).reshape(n_steps + 1, n_env * n_cand, horizon, dim)
        return noise.transpose(2, 3)

    def _networks(self):
        """The U-Net and value function to run: eager, or compiled when ``config.compile``."""
        if not self.config.compile:
            return self._unet, self._value, self._command_value
        if self._compiled is None:
            # Fixed shapes per batch size; on CUDA "reduce-overhead" captures CUDA graphs.
            mode = "reduce-overhead" if self.device.type == "cuda" else None
            self._compiled = tuple(
                None if net is None else torch.compile(net, dynamic=False, mode=mode)
                for net in (self._unet, self._value, self._command_value))
        return self._compiled

    def _timesteps(self, batch: int, first: int) -> list[torch.Tensor]:
        key = (batch, first)
        if key not in self._timestep_cache:
            self._timestep_cache[key] = [
                torch.full((batch,), int(t), dtype=torch.long, device=self.device)
                for t in self._coefficients.timesteps[first:].tolist()]
        return self._timestep_cache[key]


def _slice_coefficients(coefficients, first: int):
    if first == 0:
        return coefficients
    return type(coefficients)(*(getattr(coefficients, f)[first:] for f in
                                coefficients.__dataclass_fields__))
