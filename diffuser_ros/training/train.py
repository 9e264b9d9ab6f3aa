"""Train Diffuser's two networks on a D4RL-layout dataset and export a planner folder.

Three subcommands, so the two networks can train side by side (one process and core each)::

    diffuser-ros-train diffusion --dataset D.hdf5 --out RUN --steps 100000
    diffuser-ros-train value     --dataset D.hdf5 --out RUN --steps 100000
    diffuser-ros-train export    --out RUN --dest MODEL_FOLDER [--fp16]

Each run checkpoints every ``--checkpoint-every`` steps (model, EMA, optimiser, step, sampling
RNG) to ``RUN/<model>/checkpoint.pt`` and resumes from it when started again. Losses follow the
original: the diffusion model predicts x0 with the first action weighted x10 and the conditioned
first state re-imposed on both its input and output; the value function regresses the
discounted return of the window on noised windows at a uniform random diffusion step.
Training runs through HF Accelerate, so the same command scales to several GPUs
(``accelerate launch -m diffuser_ros.training.train ...``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
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
from diffuser_ros.planning.planner import PlannerSpec
from diffuser_ros.planning.schedule import DiffusionSchedule, make_scheduler
from diffuser_ros.training.sequences import SequenceDataset

LOG = logging.getLogger("diffuser_ros.train")
MODELS = ("diffusion", "value")


@dataclass(frozen=True)
class TrainConfig:
    """One network's training run. Defaults follow the released Diffuser locomotion config."""

    model: str = "diffusion"  # "diffusion" (temporal U-Net) or "value"
    horizon: int = 32
    channels: tuple[int, ...] = (32, 64, 128, 256)
    n_diffusion_steps: int = 20
    steps: int = 100_000
    batch_size: int = 32
    learning_rate: float = 2e-4
    ema_decay: float = 0.995
    ema_every: int = 10
    ema_start: int = 2000  # before this step the EMA copies the weights (original: 2000)
    action_weight: float = 10.0  # loss weight of the first action (diffusion model)
    discount: float = 0.997
    termination_penalty: float = -100.0
    max_episode_length: int = 1000
    checkpoint_every: int = 5000
    log_every: int = 100
    seed: int = 0
    device: str = "auto"
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ValueError(f"model must be one of {MODELS}, got {self.model!r}")
        check_horizon(self.horizon, self.channels)
        for name in ("steps", "batch_size", "ema_every", "checkpoint_every", "log_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not 0.0 < self.discount <= 1.0:
            raise ValueError("discount must be in (0, 1]")

    def architecture(self) -> dict:
        return {"model": self.model, "horizon": self.horizon, "channels": list(self.channels),
                "n_diffusion_steps": self.n_diffusion_steps}


class Trainer:
    """Trains one network; ``train_step`` is one optimiser step, checkpoints resume exactly."""

    def __init__(self, config: TrainConfig, dataset: SequenceDataset, run_dir: str | Path):
        from accelerate import Accelerator

        self.config = config
        self.dataset = dataset
        self.dir = Path(run_dir) / config.model
        self.dir.mkdir(parents=True, exist_ok=True)
        device = resolve_device(config.device)
        self.accelerator = Accelerator(cpu=device.type == "cpu")
        self.device = self.accelerator.device
        dim = dataset.act_dim + dataset.obs_dim
        torch.manual_seed(config.seed)
        build = build_unet if config.model == "diffusion" else build_value_function
        model = build(transition_dim=dim, block_out_channels=tuple(config.channels))
        # fused: one kernel for all tensors; on the CPU it is 3x faster than foreach (which loops
        # over tensors there) and the per-tensor loop costs ~15% of a small model's step.
        optimizer = torch.optim.Adam(model.parameters(), lr=config.learning_rate, fused=True)
        self.model, self.optimizer = self.accelerator.prepare(model, optimizer)
        self.ema = EMAModel(self.accelerator.unwrap_model(self.model).parameters(),
                            decay=config.ema_decay,
                            update_after_step=config.ema_start // config.ema_every)
        self.ema.to(self.device)
        schedule = DiffusionSchedule(make_scheduler(config.n_diffusion_steps))
        self.sqrt_ab = torch.sqrt(schedule.alphas_cumprod).float().to(self.device)
        self.sqrt_1m_ab = torch.sqrt(1.0 - schedule.alphas_cumprod).float().to(self.device)
        weights = torch.ones(config.horizon, dim)
        weights[0, : dataset.act_dim] = config.action_weight
        self.loss_weights = weights.T.contiguous().to(self.device)  # channel-first [D, H]
        self.generator = torch.Generator().manual_seed(config.seed)
        self.step = 0
        self.elapsed = 0.0

    # -- losses -----------------------------------------------------------------------------
    def sample_batch(self):
        """Window indices, diffusion steps and noise for one batch, from the run's own RNG."""
        cfg, gen = self.config, self.generator
        idx = torch.randint(len(self.dataset), (cfg.batch_size,), generator=gen)
        t = torch.randint(cfg.n_diffusion_steps, (cfg.batch_size,), generator=gen)
        windows, values = self.dataset.batch(idx.numpy())
        noise = torch.randn(windows.shape, generator=gen)
        return windows, values, t, noise

    def compute_loss(self, windows, values, t, noise) -> torch.Tensor:
        act_dim = self.dataset.act_dim
        x0 = windows.to(self.device).transpose(1, 2)  # [B, D, H]
        t = t.to(self.device)
        noise = noise.to(self.device).transpose(1, 2)
        x_t = self.sqrt_ab[t, None, None] * x0 + self.sqrt_1m_ab[t, None, None] * noise
        x_t[:, act_dim:, 0] = x0[:, act_dim:, 0]  # the current state is always known
        out = self.model(x_t, t).sample
        if self.config.model == "value":
            return torch.nn.functional.mse_loss(out.squeeze(-1), values.to(self.device))
        out = out.clone()
        out[:, act_dim:, 0] = x0[:, act_dim:, 0]  # conditioned entries carry no loss
        return ((out - x0) ** 2 * self.loss_weights).mean()

    def train_step(self, batch=None) -> float:
        """One optimiser step on ``batch`` (default: a fresh random batch); returns its loss."""
        self.model.train()
        loss = self.compute_loss(*(batch if batch is not None else self.sample_batch()))
        self.optimizer.zero_grad(set_to_none=True)
        self.accelerator.backward(loss)
        self.optimizer.step()
        self.step += 1
        if self.step % self.config.ema_every == 0:
            self.ema.step(self.accelerator.unwrap_model(self.model).parameters())
        return float(loss.detach())

    # -- checkpoints ------------------------------------------------------------------------
    @property
    def checkpoint_path(self) -> Path:
        return self.dir / "checkpoint.pt"

    def save_checkpoint(self) -> None:
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
            "normalizer": self.dataset.normalizer.to_dict(),
        }
        tmp = self.checkpoint_path.with_suffix(".tmp")
        torch.save(state, tmp)
        tmp.replace(self.checkpoint_path)  # a crash mid-write never corrupts the last checkpoint

    def load_checkpoint(self) -> bool:
        if not self.checkpoint_path.exists():
            return False
        state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        if state["architecture"] != self.config.architecture():
            raise ValueError(f"{self.checkpoint_path} was trained with {state['architecture']}, "
                             f"not {self.config.architecture()}; use another --out")
        self.accelerator.unwrap_model(self.model).load_state_dict(state["model"])
        self.ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.elapsed = float(state.get("elapsed", 0.0))
        self.generator.set_state(state["generator"])
        return True

    # -- loop -------------------------------------------------------------------------------
    def fit(self) -> None:
        cfg = self.config
        if self.load_checkpoint():
            LOG.info("%s: resumed at step %d", cfg.model, self.step)
        log_file = self.dir / "train.log"
        with log_file.open("a") as log, tqdm(total=cfg.steps, initial=self.step,
                                             desc=cfg.model, dynamic_ncols=True) as bar:
            running, start = [], time.perf_counter()
            while self.step < cfg.steps:
                running.append(self.train_step())
                bar.update(1)
                if self.step % cfg.log_every == 0:
                    mean = float(np.mean(running))
                    running = []
                    bar.set_postfix(loss=f"{mean:.4g}")
                    elapsed = self.elapsed + time.perf_counter() - start
                    log.write(json.dumps({"step": self.step, "loss": mean,
                                          "elapsed_s": round(elapsed, 1)}) + "\n")
                    log.flush()
                if self.step % cfg.checkpoint_every == 0 or self.step == cfg.steps:
                    self.elapsed += time.perf_counter() - start
                    start = time.perf_counter()
                    self.save_checkpoint()
        LOG.info("%s: finished %d steps in %.0f s", cfg.model, self.step, self.elapsed)


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


def export(run_dir: str | Path, dest: str | Path, env_id: str = "Hopper-v5",
           defaults: PlannerConfig | None = None, fp16: bool = False,
           extra: dict | None = None) -> Path:
    """Assemble the planner folder from the two runs' EMA weights."""
    import gymnasium as gym

    unet, unet_state = load_trained(run_dir, "diffusion")
    value, value_state = load_trained(run_dir, "value")
    if unet_state["normalizer"] != value_state["normalizer"]:
        raise ValueError("the diffusion and value runs used different normalisers (datasets?)")
    normalizer = GaussianNormalizer.from_dict(unet_state["normalizer"])
    env = gym.make(env_id)
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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    defaults = TrainConfig()
    for name in MODELS:
        p = sub.add_parser(name, help=f"train the {name} network (resumes from --out)")
        p.add_argument("--dataset", type=Path, required=True)
        p.add_argument("--out", type=Path, required=True)
        p.add_argument("--channels", default=",".join(map(str, defaults.channels)))
        p.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: default)")
        for f in dataclasses.fields(TrainConfig):
            if f.name in ("model", "channels", "extra"):
                continue
            p.add_argument(f"--{f.name.replace('_', '-')}", type=type(f.default), default=f.default)
    p = sub.add_parser("export", help="write the planner folder from both runs")
    p.add_argument("--out", type=Path, required=True, help="the training run folder")
    p.add_argument("--dest", type=Path, required=True)
    p.add_argument("--env-id", default="Hopper-v5")
    p.add_argument("--fp16", action="store_true", help="store weights in float16 (half size)")
    p.add_argument("--defaults", type=json.loads, default={},
                   help='default planner settings as JSON, e.g. \'{"n_candidates": 16}\'')
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    if args.command == "export":
        path = export(args.out, args.dest, args.env_id, PlannerConfig(**args.defaults), args.fp16)
        LOG.info("wrote %s", path)
        return
    if args.threads:
        torch.set_num_threads(args.threads)
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)
              if f.name not in ("model", "channels", "extra")}
    config = TrainConfig(model=args.command,
                         channels=tuple(int(c) for c in args.channels.split(",")), **values)
    data, _ = load_dataset(args.dataset)
    dataset = SequenceDataset(data, config.horizon, config.max_episode_length, config.discount,
                              config.termination_penalty)
    LOG.info("%d windows from %d episodes", len(dataset), len(dataset.episode_lengths))
    Trainer(config, dataset, args.out).fit()


if __name__ == "__main__":
    main()
