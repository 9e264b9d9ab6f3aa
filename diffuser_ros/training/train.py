"""Train Diffuser's two networks on a D4RL-layout dataset and export a planner folder.

Three subcommands, so the two networks can train side by side (one process and core each)::

    diffuser-ros-train diffusion --dataset D.hdf5 --out RUN --steps 100000
    diffuser-ros-train value     --dataset D.hdf5 --out RUN --steps 100000
    diffuser-ros-train export    --out RUN --dest MODEL_FOLDER [--fp16]

``--steps`` counts optimiser steps (the original's ``n_train_steps``); each one averages the
gradient of ``--batch-size`` x ``--grad-accum`` x (number of processes) windows. The defaults,
32 x 2 in one process, are the original's 64 windows a step. Each run checkpoints every
``--checkpoint-every`` steps (model, EMA, optimiser, step, sampling RNG) to
``RUN/<model>/checkpoint.pt`` and resumes from it exactly when started again. Losses follow the
original: the diffusion model predicts x0 with the first action weighted x10 and the conditioned
first state re-imposed on both its input and output; the value function regresses the
discounted return of the window on noised windows at a uniform random diffusion step. The EMA
copies the weights every ``--ema-every`` steps before ``--ema-start`` and then averages them with a
flat ``--ema-decay``, as the original.

Training runs data-parallel through HF Accelerate: the same entry point runs in one process or
under ``accelerate launch --multi_gpu --num_processes N -m diffuser_ros.training.train ...`` (also
on CPUs, with gloo). All ranks draw the same global batch from one shared generator and each
trains on its own slice, so N processes are exactly one process on the union of their batches,
and one RNG state resumes them all. Only the main process writes the checkpoint, the log and
the progress bar.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from diffusers.training_utils import EMAModel
from tqdm import tqdm

from diffuser_ros.data.d4rl_io import load_dataset
from diffuser_ros.planning.checkpoint import save_planner
from diffuser_ros.planning.config import PlannerConfig
from diffuser_ros.planning.device import resolve_device
from diffuser_ros.planning.models import build_unet, build_value_function, check_horizon
from diffuser_ros.planning.normalizer import GaussianNormalizer
from diffuser_ros.planning.objective import CommandSpec, command_value_input
from diffuser_ros.planning.planner import PlannerSpec
from diffuser_ros.planning.schedule import DiffusionSchedule, make_scheduler
from diffuser_ros.robots import DEFAULT_ROBOT, env_robot
from diffuser_ros.settings import add_arguments, check_fields, given_arguments, setting
from diffuser_ros.training.sequences import CommandValueDataset, SequenceDataset

LOG = logging.getLogger("diffuser_ros.train")
MODELS = ("diffusion", "value", "command_value")
MIXED_PRECISION = ("no", "fp16", "bf16")


class ConstantDecayEMA(EMAModel):
    """diffusers' ``EMAModel`` with the original's flat decay.

    ``EMAModel`` ramps its decay as ``(1 + s) / (10 + s)`` (0.18 on its 20th update); the
    original Diffuser averages with a constant ``ema_decay`` from its first update on. The
    checkpoint layout stays ``EMAModel``'s, so ``load_trained`` and old checkpoints still load.
    """

    def get_decay(self, optimization_step: int = 0) -> float:
        return self.decay


@dataclass(frozen=True)
class TrainConfig:
    """One network's training run. Defaults follow the released Diffuser locomotion config; each
    setting is also a ``diffuser-ros-train`` flag (``--batch-size`` for ``batch_size``)."""

    model: str = setting("diffusion", "The network: 'diffusion' (temporal U-Net), 'value' or "
                         "'command_value' (the subcommand).", choices=MODELS)
    horizon: int = setting(32, "Planning horizon: steps per training window.",
                           range=(1, 100_000))
    channels: tuple[int, ...] = setting((32, 64, 128, 256), "U-Net block channels, "
                                        "comma-separated.")
    n_diffusion_steps: int = setting(20, "Diffusion steps of the noise schedule.",
                                     range=(1, 100_000))
    steps: int = setting(100_000, "Optimiser steps to train to (the original's n_train_steps).",
                         range=(1, 10**12))
    batch_size: int = setting(32, "Windows per forward pass and process (original: 32).",
                              range=(1, 10**9))
    grad_accum: int = setting(2, "Forward passes per optimiser step; windows a step = "
                              "batch-size x grad-accum x processes (default 32 x 2 = the "
                              "original's 64).", range=(1, 10**6))
    learning_rate: float = setting(2e-4, "Adam learning rate.", range=(0.0, 1e3))
    ema_decay: float = setting(0.995, "Flat EMA decay (the original's, no warm-up ramp).",
                               range=(0.0, 1.0))
    ema_every: int = setting(10, "Optimiser steps between EMA updates.", range=(1, 10**12))
    ema_start: int = setting(2000, "Optimiser step from which the EMA averages (before: copies "
                             "the weights; original: 2000).", range=(0, 10**12))
    mixed_precision: str = setting("no", "Accelerate's mixed precision (GPU; on the command "
                                   "line the default is accelerate launch's --mixed_precision, "
                                   "else no).", choices=MIXED_PRECISION)
    action_weight: float = setting(10.0, "Loss weight of the first action (diffusion model).",
                                   range=(0.0, 1e9))
    discount: float = setting(0.997, "Discount of the value targets, in (0, 1].",
                              range=(0.0, 1.0))
    termination_penalty: float = setting(-100.0, "Reward added at a terminal step.",
                                         range=(-1e9, 1e9))
    max_episode_length: int = setting(1000, "Episode length of the data (value targets).",
                                      range=(1, 10**9))
    speed_index: int = setting(5, "Command value: the forward-speed entry of the observation.",
                               range=(0, 100_000))
    command_low: float = setting(1.0, "Command value: the lowest commanded speed trained on "
                                 "(uniform).", range=(-1e3, 1e3), unit="m/s")
    command_high: float = setting(4.0, "Command value: the highest commanded speed trained on.",
                                  range=(-1e3, 1e3), unit="m/s")
    reward_width: float = setting(0.5, "Command value: width of the speed-tracking reward "
                                  "exp(-((v - command) / width)^2).", range=(1e-6, 1e3),
                                  unit="m/s")
    checkpoint_every: int = setting(5000, "Optimiser steps between checkpoints.",
                                    range=(1, 10**12))
    log_every: int = setting(100, "Optimiser steps between log lines.", range=(1, 10**12))
    seed: int = setting(0, "Seed of the weights and of the sampling generator.")
    device: str = setting("auto", "'auto' (CUDA when present, else CPU), 'cpu', 'cuda' or "
                          "'cuda:N'.")
    extra: dict = field(default_factory=dict)  # free-form, stored with the checkpoint

    def __post_init__(self) -> None:
        check_fields(self)
        check_horizon(self.horizon, self.channels)
        if not 0.0 < self.discount:
            raise ValueError("discount must be in (0, 1]")

    def architecture(self) -> dict:
        return {"model": self.model, "horizon": self.horizon, "channels": list(self.channels),
                "n_diffusion_steps": self.n_diffusion_steps}

    def target(self) -> dict:
        """The settings that define what a value network learns: a run resumed with others
        would silently mix two targets in one network."""
        if self.model == "diffusion":
            return {}
        return {"discount": self.discount, "termination_penalty": self.termination_penalty,
                "max_episode_length": self.max_episode_length}


class Trainer:
    """Trains one network, data-parallel over Accelerate's processes.

    ``train_step`` is one optimiser step over ``grad_accum`` micro-batches; ``step`` counts
    optimiser steps. Every rank draws the same global micro-batch (``batch_size`` x processes
    windows, diffusion steps and noise) from one shared generator and keeps its own slice, so the
    ranks train on different windows, N ranks equal one process with ``N x batch_size`` on the
    same stream, and one generator state resumes every rank exactly.
    """

    def __init__(self, config: TrainConfig, dataset: SequenceDataset, run_dir: str | Path):
        from accelerate import Accelerator

        self.config = config
        self.dataset = dataset
        self.command_spec = dataset.command_spec() if config.model == "command_value" else None
        self.dir = Path(run_dir) / config.model
        self.dir.mkdir(parents=True, exist_ok=True)
        device = resolve_device(config.device)
        self.accelerator = Accelerator(cpu=device.type == "cpu",
                                       gradient_accumulation_steps=config.grad_accum,
                                       mixed_precision=config.mixed_precision)
        self.device = self.accelerator.device
        self.rank = self.accelerator.process_index
        self.num_processes = self.accelerator.num_processes
        dim = dataset.act_dim + dataset.obs_dim
        torch.manual_seed(config.seed)
        if config.model == "diffusion":
            model = build_unet(transition_dim=dim, block_out_channels=tuple(config.channels))
        else:  # the command value takes the command as one more input channel
            extra = 1 if config.model == "command_value" else 0
            model = build_value_function(transition_dim=dim + extra,
                                         block_out_channels=tuple(config.channels))
        # fused: one kernel for all tensors; on the CPU it is 3x faster than foreach (which loops
        # over tensors there) and the per-tensor loop costs ~15% of a small model's step.
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=True)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.ema = ConstantDecayEMA(self.accelerator.unwrap_model(self.model).parameters(),
                                    decay=config.ema_decay)
        self.ema.to(self.device)
        schedule = DiffusionSchedule(make_scheduler(config.n_diffusion_steps))
        self.sqrt_ab = torch.sqrt(schedule.alphas_cumprod).float().to(self.device)
        self.sqrt_1m_ab = torch.sqrt(1.0 - schedule.alphas_cumprod).float().to(self.device)
        weights = torch.ones(config.horizon, dim)
        weights[0, : dataset.act_dim] = config.action_weight
        self.loss_weights = weights.T.contiguous().to(self.device)  # channel-first [D, H]
        # One generator, seeded alike on every rank: the global batch stream (see draw()).
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.elapsed = 0.0

    @property
    def windows_per_step(self) -> int:
        """Windows in one optimiser step, over all processes (the effective batch)."""
        return self.config.batch_size * self.config.grad_accum * self.num_processes

    # -- losses -----------------------------------------------------------------------------
    def draw(self) -> tuple[torch.Tensor, ...]:
        """This rank's window indices, diffusion steps and noise of one global micro-batch.

        Every rank draws the whole global micro-batch (in the order one process with
        ``batch_size x processes`` would) and keeps rows ``[rank x batch_size, (rank + 1) x
        batch_size)``: cheap next to the model, and the ranks' generators never diverge.
        """
        cfg, gen = self.config, self.generator
        n = cfg.batch_size * self.num_processes
        idx = torch.randint(len(self.dataset), (n,), generator=gen)
        t = torch.randint(cfg.n_diffusion_steps, (n,), generator=gen)
        shape = (n, self.dataset.horizon, self.dataset.act_dim + self.dataset.obs_dim)
        noise = torch.randn(shape, generator=gen)
        mine = slice(self.rank * cfg.batch_size, (self.rank + 1) * cfg.batch_size)
        if cfg.model != "command_value":
            return idx[mine], t[mine], noise[mine]
        low, high = self.dataset.command_range  # commands uniform over the trained range
        commands = low + (high - low) * torch.rand(n, generator=gen, dtype=torch.float64)
        return idx[mine], t[mine], noise[mine], commands[mine]

    def sample_batch(self):
        """This rank's windows, value targets, diffusion steps and noise for one micro-batch
        (and the commands, for the command value)."""
        idx, t, noise, *commands = self.draw()
        if commands:
            windows, values = self.dataset.command_batch(idx.numpy(), commands[0].numpy())
            return windows, values, t, noise, commands[0].float()
        windows, values = self.dataset.batch(idx.numpy())
        return windows, values, t, noise

    def compute_loss(self, windows, values, t, noise, commands=None) -> torch.Tensor:
        act_dim = self.dataset.act_dim
        x0 = windows.to(self.device).transpose(1, 2)  # [B, D, H]
        t = t.to(self.device)
        noise = noise.to(self.device).transpose(1, 2)
        x_t = self.sqrt_ab[t, None, None] * x0 + self.sqrt_1m_ab[t, None, None] * noise
        x_t[:, act_dim:, 0] = x0[:, act_dim:, 0]  # the current state is always known
        if commands is not None:
            x_t = command_value_input(x_t, commands.to(self.device), self.command_spec)
        out = self.model(x_t, t).sample
        if self.config.model != "diffusion":
            return torch.nn.functional.mse_loss(out.squeeze(-1), values.to(self.device))
        out = out.clone()
        out[:, act_dim:, 0] = x0[:, act_dim:, 0]  # conditioned entries carry no loss
        return ((out - x0) ** 2 * self.loss_weights).mean()

    def train_step(self, batches=None) -> float:
        """One optimiser step over ``grad_accum`` micro-batches; returns their mean loss.

        ``batches``: a list of ``grad_accum`` batches as ``sample_batch`` returns them (or one
        such batch when ``grad_accum`` is 1); default: fresh ones from the shared generator.
        Gradients average over the micro-batches (Accelerate divides each loss by
        ``grad_accum``) and over the ranks (DDP), as one step on all their windows together.
        """
        accum = self.config.grad_accum
        if batches is not None:
            if isinstance(batches[0], torch.Tensor):
                batches = [batches]
            if len(batches) != accum:
                raise ValueError(f"train_step takes grad_accum={accum} batches, "
                                 f"got {len(batches)}")
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        # Accelerate keeps the accumulation count and micro-step counter in process-wide state,
        # shared by every Accelerator of the process: set both for this trainer's step.
        self.accelerator.gradient_accumulation_steps = accum
        self.accelerator.step = 0
        losses = []
        for i in range(accum):
            with self.accelerator.accumulate(self.model):
                loss = self.compute_loss(*(batches[i] if batches is not None
                                           else self.sample_batch()))
                self.accelerator.backward(loss)  # / grad_accum; all-reduced on the last one
                self.optimizer.step()  # a no-op until the last micro-batch
                self.optimizer.zero_grad(set_to_none=True)
            losses.append(loss.detach())
        assert self.accelerator.sync_gradients, "the last micro-batch must step the optimiser"
        self._update_ema(self.step)
        self.step += 1
        return float(torch.stack(losses).mean())

    def _update_ema(self, step: int) -> None:
        """The original's schedule, at its 0-based step: every ``ema_every`` steps, copy the
        weights before ``ema_start``, afterwards average them with the flat ``ema_decay``."""
        if step % self.config.ema_every:
            return
        params = list(self.accelerator.unwrap_model(self.model).parameters())
        if step < self.config.ema_start:
            with torch.no_grad():
                for shadow, param in zip(self.ema.shadow_params, params):
                    shadow.copy_(param.detach())
        else:
            self.ema.step(params)

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.dir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
        """Write the checkpoint (main process only; every rank holds the same state)."""
        if not self.accelerator.is_main_process:
            return
        state = {
            "architecture": self.config.architecture(),
            "config": {k: (list(v) if isinstance(v, tuple) else v)
                       for k, v in dataclasses.asdict(self.config).items()},
            "model": self.accelerator.unwrap_model(self.model).state_dict(),
            "model_config": dict(self.accelerator.unwrap_model(self.model).config),
            "ema": self.ema.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "elapsed": self.elapsed,
            "generator": self.generator.get_state(),
            "num_processes": self.num_processes,
            "windows_per_step": self.windows_per_step,
            "normalizer": self.dataset.normalizer.to_dict(),
        }
        if self.command_spec is not None:
            state["command_spec"] = dataclasses.asdict(self.command_spec)
        if self.accelerator.scaler is not None:  # fp16 loss scale
            state["scaler"] = self.accelerator.scaler.state_dict()
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint_path)  # a crash mid-write never corrupts the last checkpoint

    def load_checkpoint(self) -> bool:
        if not self.checkpoint_path.exists():
            return False
        # on the CPU: Accelerate's multi-process CPU device is "cpu:0", which torch.load rejects
        state = torch.load(self.checkpoint_path, map_location="cpu", weights_only=False)
        if state["architecture"] != self.config.architecture():
            raise ValueError(f"{self.checkpoint_path} was trained with {state['architecture']}, "
                             f"not {self.config.architecture()}; use another --out")
        target = self.config.target()
        trained = {k: state.get("config", {}).get(k) for k in target}
        if trained != target:
            raise ValueError(f"{self.checkpoint_path} was trained with {trained}, not {target}; "
                             "use another --out")
        self.accelerator.unwrap_model(self.model).load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.ema.to(self.device)
        self.ema.decay = self.config.ema_decay
        self.optimizer.load_state_dict(state["optimizer"])
        if self.accelerator.scaler is not None and "scaler" in state:
            self.accelerator.scaler.load_state_dict(state["scaler"])
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.generator.set_state(state["generator"].cpu())
        saved = (state.get("num_processes", 1), state.get("windows_per_step"))
        if saved != (self.num_processes, self.windows_per_step) and saved[1] is not None:
            LOG.warning("%s: resuming a run of %d process(es) at %d windows a step with %d at %d: "
                        "it continues on another batch stream", self.config.model, *saved,
                        self.num_processes, self.windows_per_step)
        return True

    # -- loop -------------------------------------------------------------------------------
    def fit(self) -> None:
        cfg, acc = self.config, self.accelerator
        if self.load_checkpoint():
            LOG.info("%s: resumed at step %d", cfg.model, self.step)
        LOG.info("%s: %d process(es) x batch %d x %d accumulation = %d windows a step",
                 cfg.model, self.num_processes, cfg.batch_size, cfg.grad_accum,
                 self.windows_per_step)
        main = acc.is_main_process
        log = (self.dir / "train.log").open("a") if main else None
        first_step = self.step
        session_start = time.perf_counter()
        try:
            with tqdm(total=cfg.steps, initial=self.step, desc=cfg.model, dynamic_ncols=True,
                      disable=not main) as bar:
                running, start = [], time.perf_counter()
                while self.step < cfg.steps:
                    running.append(self.train_step())
                    bar.update(1)
                    if self.step % cfg.log_every == 0:
                        # the loss of the global batch: this rank's mean, averaged over ranks
                        local = torch.tensor(float(np.mean(running)), device=self.device)
                        mean = float(acc.reduce(local, reduction="mean"))
                        running = []
                        bar.set_postfix(loss=f"{mean:.4g}")
                        if main:
                            elapsed = self.elapsed + time.perf_counter() - start
                            log.write(json.dumps({"step": self.step, "loss": mean,
                                                  "elapsed_s": round(elapsed, 1)}) + "\n")
                            log.flush()
                    if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                        self.elapsed += time.perf_counter() - start
                        start = time.perf_counter()
                        acc.wait_for_everyone()
                        self.save_checkpoint()
                        acc.wait_for_everyone()
        finally:
            if log is not None:
                log.close()
        seconds = time.perf_counter() - session_start
        done = self.step - first_step
        LOG.info("%s: finished %d steps in %.0f s in all; this session %d steps in %.1f s, "
                 "%.1f windows/s", cfg.model, self.step, self.elapsed, done, seconds,
                 done * self.windows_per_step / max(seconds, 1e-9))


def load_trained(run_dir: str | Path, model: str, use_ema: bool = True):
    """The trained network (EMA weights by default) and its checkpoint dict."""
    from diffusers import UNet1DModel

    path = Path(run_dir) / model / "checkpoint.pt"
    if not path.is_file():
        raise FileNotFoundError(f"no {model} checkpoint at {path}; train it first")
    state = torch.load(path, map_location="cpu", weights_only=False)
    net = UNet1DModel.from_config(state["model_config"])
    net.load_state_dict(state["model"])
    if use_ema:
        ema = EMAModel(net.parameters())
        ema.load_state_dict(state["ema"])
        ema.copy_to(net.parameters())
    return net, state


def export(run_dir: str | Path, dest: str | Path, env_id: str = DEFAULT_ROBOT.env_id,
           defaults: PlannerConfig | None = None, fp16: bool = False,
           extra: dict | None = None) -> Path:
    """Assemble the planner folder from the two runs' EMA weights; the action bounds are those
    of the robot whose environment is ``env_id``."""
    unet, unet_state = load_trained(run_dir, "diffusion")
    value, value_state = load_trained(run_dir, "value")
    if unet_state["normalizer"] != value_state["normalizer"]:
        raise ValueError("the diffusion and value runs used different normalisers (datasets?)")
    normalizer = GaussianNormalizer.from_dict(unet_state["normalizer"])
    env = env_robot(env_id).make_env()
    spec = PlannerSpec(normalizer.observation_dim, normalizer.action_dim,
                       unet_state["architecture"]["horizon"],
                       tuple(float(x) for x in env.action_space.low),
                       tuple(float(x) for x in env.action_space.high), env_id)
    env.close()
    training = {"diffusion_steps": unet_state["step"], "value_steps": value_state["step"],
                "diffusion_train_seconds": round(unet_state["elapsed"]),
                "value_train_seconds": round(value_state["elapsed"]),
                "diffusion_config": unet_state["config"], "value_config": value_state["config"]}
    scheduler = make_scheduler(unet_state["config"]["n_diffusion_steps"])
    return save_planner(dest, unet, value, scheduler,
                        normalizer, spec, defaults, extra={"training": training, **(extra or {})},
                        dtype=torch.float16 if fp16 else None)


def export_command_value(run_dir: str | Path, dest: str | Path) -> Path:
    """Add ``command_value/`` and ``command.json`` to the planner folder ``dest``; its diffusion
    model, value function and normaliser stay as they are (they must match the run's)."""
    from diffuser_ros.planning.checkpoint import read_metadata, write_command_value

    net, state = load_trained(run_dir, "command_value")
    normalizer, spec, _ = read_metadata(dest)
    if GaussianNormalizer.from_dict(state["normalizer"]).to_dict() != normalizer.to_dict():
        raise ValueError(f"the command value was trained with another normaliser than {dest}'s; "
                         "train it with --normalizer pointing at that folder's normalizer.json")
    if state["architecture"]["horizon"] != spec.horizon:
        raise ValueError(f"horizon {state['architecture']['horizon']} != the planner's "
                         f"{spec.horizon}")
    return write_command_value(dest, net, CommandSpec(**state["command_spec"]),
                               speed_index=state["config"]["speed_index"],
                               training={"steps": state["step"],
                                         "train_seconds": round(state["elapsed"]),
                                         "config": state["config"]})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in MODELS:
        p = sub.add_parser(name, help=f"train the {name} network (resumes from --out)")
        p.add_argument("--dataset", type=Path, required=True)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--threads", type=int, default=0,
                       help="torch CPU threads per process (0: default)")
        add_arguments(p, TrainConfig, exclude=("model",))  # the subcommand is the model
        p.add_argument("--normalizer", type=Path, default=None,
                       help="normalizer.json to use instead of fitting one to the dataset (a "
                            "command value for an existing model must see its normalisation)")
    p = sub.add_parser("export", help="write the planner folder from both runs")
    p.add_argument("--out", type=Path, required=True, help="the training run folder")
    p.add_argument("--dest", type=Path, required=True)
    p.add_argument("--env-id", default=DEFAULT_ROBOT.env_id)
    p.add_argument("--fp16", action="store_true", help="store weights in float16 (half size)")
    p.add_argument("--defaults", type=json.loads, default={},
                   help='default planner settings as JSON, e.g. \'{"n_candidates": 16}\'')
    p = sub.add_parser("export-command-value",
                       help="add the command value of a run to an existing planner folder")
    p.add_argument("--out", type=Path, required=True, help="the training run folder")
    p.add_argument("--dest", type=Path, required=True, help="the planner folder")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    _warn_single_process_cpu_launch()
    if args.command == "export":
        from accelerate import PartialState

        state = PartialState(cpu=True)  # under a launcher, only the main process writes
        if state.is_main_process:
            path = export(args.out, args.dest, args.env_id, PlannerConfig(**args.defaults),
                          args.fp16)
            LOG.info("wrote %s", path)
        state.wait_for_everyone()
        return
    if args.command == "export-command-value":
        LOG.info("wrote %s", export_command_value(args.out, args.dest))
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    values = {"mixed_precision": os.environ.get("ACCELERATE_MIXED_PRECISION", "no"),
              **given_arguments(args, TrainConfig)}
    config = TrainConfig(**{**values, "model": args.command})
    data, _ = load_dataset(args.dataset)
    normalizer = GaussianNormalizer.load(args.normalizer) if args.normalizer else None
    if config.model == "command_value":
        dataset = CommandValueDataset(
            data, config.horizon, config.speed_index, (config.command_low, config.command_high),
            config.reward_width, config.discount, config.termination_penalty,
            config.max_episode_length, normalizer)
        LOG.info("forward speeds in the dataset: %s", json.dumps(dataset.speed_coverage))
    else:
        dataset = SequenceDataset(data, config.horizon, config.max_episode_length,
                                  config.discount, config.termination_penalty, normalizer)
    trainer = Trainer(config, dataset, args.out)
    if not trainer.accelerator.is_main_process:
        logging.getLogger().setLevel(logging.WARNING)  # one copy of the progress lines
    LOG.info("%d windows from %d episodes", len(dataset), len(dataset.episode_lengths))
    trainer.fit()


def _warn_single_process_cpu_launch() -> None:
    """``accelerate launch --cpu --num_processes N`` starts ONE process unless mpirun is set up
    (Accelerate's simple launcher): say so instead of silently training N times slower."""
    env = os.environ
    if (env.get("ACCELERATE_USE_CPU", "").lower() == "true" and "MASTER_ADDR" in env
            and not any(k in env for k in ("WORLD_SIZE", "OMPI_COMM_WORLD_SIZE", "PMI_SIZE",
                                           "MV2_COMM_WORLD_SIZE"))):
        LOG.warning("accelerate launch --cpu with several processes started only this one (it "
                    "needs mpirun); for data-parallel CPU training use `accelerate launch "
                    "--multi_gpu --num_processes N` with --device cpu (gloo), see "
                    "docs/training.md")


if __name__ == "__main__":
    main()
