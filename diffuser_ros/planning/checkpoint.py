"""Planner checkpoints: one folder, diffusers-native where diffusers has a format.

::

    model/
      unet/             UNet1DModel.save_pretrained  (config.json + safetensors)
      value_function/   UNet1DModel.save_pretrained
      scheduler/        DDPMScheduler.save_pretrained (scheduler_config.json)
      normalizer.json   per-dimension Gaussian statistics
      planner.json      dims, horizon, action bounds, env id, forward-velocity index,
                        default planner settings
      command_value/    optional: UNet1DModel value of tracking a commanded speed
      command.json      its reward, discount, command normalisation and the data's speeds

The ``unet/``, ``value_function/`` and ``scheduler/`` folders have the layout of the published
Hopper checkpoint, so such a folder (plus ``normalizer.json`` and ``planner.json``, or a
normaliser and spec passed in) loads here. A Hub repo id works where there is internet.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import DDPMScheduler, UNet1DModel

from diffuser_ros.planning.config import PlannerConfig
from diffuser_ros.planning.device import resolve_device
from diffuser_ros.planning.normalizer import GaussianNormalizer
from diffuser_ros.planning.objective import COMMAND_SPEC_FILE, COMMAND_VALUE_DIR, CommandSpec
from diffuser_ros.planning.planner import DiffusionPlanner, PlannerSpec
from diffuser_ros.robots import DEFAULT_ROBOT

FORMAT_VERSION = 1
REQUIRED_FILES = (
    "unet/config.json",
    "value_function/config.json",
    "scheduler/scheduler_config.json",
)
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "diffusion_pytorch_model.bin")


def default_model_path(robot: str = DEFAULT_ROBOT.name) -> Path:
    """The model shipped inside the package for the robot entry named ``robot``
    (``diffuser_ros/models/<robot>``; found the same way for pip, editable and colcon installs,
    since it is package data)."""
    return Path(__file__).resolve().parents[1] / "models" / robot


def model_env_id(path: str | Path) -> str:
    """The environment a local planner folder was trained on (its planner.json ``env_id``); ''
    when the folder does not say or cannot be read (loading it reports why)."""
    try:
        return str(json.loads((Path(path) / "planner.json").read_text()).get("env_id", ""))
    except (OSError, ValueError, AttributeError):
        return ""


class CheckpointError(ValueError):
    """A checkpoint folder is missing a file or holds a corrupt one; the message names it."""


def model_defaults(path: str | Path) -> PlannerConfig:
    """The settings a planner folder was evaluated with (its planner.json ``defaults``; field
    defaults for any it does not name): what :func:`load_planner` plans with unless given a
    config. :class:`CheckpointError` when the folder's metadata is missing or corrupt."""
    _check_folder(path)
    return _defaults(read_metadata(path)[2], path)


def _check_folder(path: str | Path) -> None:
    """A local folder, or what can only be a Hub repo id (``owner/name``)."""
    if Path(path).exists() and not Path(path).is_dir():
        raise CheckpointError(f"model path {path} is a file; expected a checkpoint folder")
    if not Path(path).exists() and (str(path).startswith((".", "/", "~")) or
                                    str(path).count("/") != 1):
        raise CheckpointError(f"model folder not found: {path}")


def _defaults(meta: dict, path: str | Path) -> PlannerConfig:
    try:
        return PlannerConfig.from_dict(meta.get("defaults", {}))
    except (ValueError, TypeError) as exc:
        raise CheckpointError(f"corrupt default settings in {path}/planner.json: "
                              f"{exc}") from exc


def save_planner(path: str | Path, unet: UNet1DModel, value_function: UNet1DModel,
                 scheduler: DDPMScheduler, normalizer: GaussianNormalizer, spec: PlannerSpec,
                 defaults: PlannerConfig | None = None, extra: dict | None = None,
                 dtype: torch.dtype | None = None) -> Path:
    """Write a planner folder. ``dtype=torch.float16`` halves the weights on disk."""
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    for name, model in (("unet", unet), ("value_function", value_function)):
        original = next(model.parameters()).dtype
        if dtype is not None:
            model.to(dtype)
        model.save_pretrained(path / name, safe_serialization=True)
        model.to(original)
    scheduler.save_pretrained(path / "scheduler")
    normalizer.save(path / "normalizer.json")
    meta = {
        "format_version": FORMAT_VERSION,
        "env_id": spec.env_id,
        "observation_dim": spec.observation_dim,
        "action_dim": spec.action_dim,
        "horizon": spec.horizon,
        "action_low": list(spec.action_low),
        "action_high": list(spec.action_high),
        "speed_index": spec.speed_index,
        "defaults": (defaults or PlannerConfig()).to_dict(),
        **(extra or {}),
    }
    (path / "planner.json").write_text(json.dumps(meta, indent=2))
    return path


def write_command_value(path: str | Path, command_value: UNet1DModel, spec: CommandSpec,
                        speed_index: int, training: dict | None = None) -> Path:
    """Add a command value (and its ``command.json``) to the planner folder ``path``, and record
    the forward-velocity index in its ``planner.json``."""
    path = Path(path)
    meta_file = path / "planner.json"
    meta = json.loads(meta_file.read_text())
    if not 0 <= speed_index < int(meta["observation_dim"]):
        raise ValueError(f"speed_index {speed_index} is not an observation index")
    command_value.save_pretrained(path / COMMAND_VALUE_DIR, safe_serialization=True)
    spec.save(path)
    meta["speed_index"] = int(speed_index)
    if training is not None:
        meta["command_value_training"] = training
    meta_file.write_text(json.dumps(meta, indent=2))
    return path


def _resolve(path: str | Path, relative: str) -> Path:
    """Local file inside the folder, or downloaded from the Hub when ``path`` is a repo id."""
    local = Path(path)
    if local.is_dir():
        return local / relative
    try:
        from huggingface_hub import hf_hub_download

        return Path(hf_hub_download(str(path), relative))
    except Exception as exc:  # noqa: BLE001 - any failure means "not found" to the user
        raise CheckpointError(f"model '{path}' is neither a local folder nor a reachable Hub "
                              f"repo (fetching {relative} failed: {exc})") from exc


def read_metadata(path: str | Path) -> tuple[GaussianNormalizer, PlannerSpec, dict]:
    """The normaliser, spec and raw planner.json of a checkpoint folder."""
    meta_file = _resolve(path, "planner.json")
    norm_file = _resolve(path, "normalizer.json")
    for f in (meta_file, norm_file):
        if not f.is_file():
            raise CheckpointError(f"checkpoint file missing: {f}")
    try:
        meta = json.loads(meta_file.read_text())
        spec = PlannerSpec(
            observation_dim=int(meta["observation_dim"]), action_dim=int(meta["action_dim"]),
            horizon=int(meta["horizon"]), action_low=tuple(map(float, meta["action_low"])),
            action_high=tuple(map(float, meta["action_high"])), env_id=meta.get("env_id", ""),
            speed_index=meta.get("speed_index"))
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"corrupt planner metadata {meta_file}: {exc!r}") from exc
    try:
        normalizer = GaussianNormalizer.load(norm_file)
    except (ValueError, KeyError, TypeError) as exc:
        raise CheckpointError(f"corrupt normaliser {norm_file}: {exc}") from exc
    return normalizer, spec, meta


def _load_model(path: str | Path, subfolder: str, device: torch.device) -> UNet1DModel:
    folder = Path(path) / subfolder
    if Path(path).is_dir():
        config = folder / "config.json"
        if not config.is_file():
            raise CheckpointError(f"checkpoint file missing: {config}")
        if not any((folder / w).is_file() for w in WEIGHT_FILES):
            raise CheckpointError(f"checkpoint weights missing: {folder / WEIGHT_FILES[0]}")
        try:
            json.loads(config.read_text())
        except ValueError as exc:
            raise CheckpointError(f"corrupt model config {config}: {exc}") from exc
    try:
        model = UNet1DModel.from_pretrained(str(path), subfolder=subfolder,
                                            torch_dtype=torch.float32)
    except Exception as exc:  # noqa: BLE001 - safetensors/diffusers raise many types
        raise CheckpointError(f"could not load {folder} (corrupt or incompatible weights): "
                              f"{exc}") from exc
    # Weights come back as views into the safetensors buffer, which can be unaligned: CPU kernels
    # then take other code paths and results differ in the last bits from a freshly built model.
    # Fresh, aligned copies make a loaded planner bit-identical to the one that was saved.
    with torch.no_grad():
        for tensor in list(model.parameters()) + list(model.buffers()):
            tensor.data = tensor.data.clone()
    return model.to(device)


def load_planner(path: str | Path, config: PlannerConfig | None = None,
                 normalizer: GaussianNormalizer | None = None,
                 spec: PlannerSpec | None = None, **overrides) -> DiffusionPlanner:
    """Load a planner folder (or Hub repo id).

    ``config`` replaces the checkpoint's default settings; ``overrides`` change single fields
    of whichever applies. ``normalizer``/``spec`` are needed only for folders without
    ``normalizer.json``/``planner.json`` (e.g. the published Hopper checkpoint, whose
    statistics come from its D4RL dataset). Raises :class:`CheckpointError` naming the missing
    or corrupt file.
    """
    _check_folder(path)
    meta: dict = {}
    if normalizer is None or spec is None:
        file_norm, file_spec, meta = read_metadata(path)
        normalizer = normalizer or file_norm
        spec = spec or file_spec
    if config is None:
        config = _defaults(meta, path)
    if overrides:
        config = config.replace(**overrides)
    device = resolve_device(config.device)
    sched_file = _resolve(path, "scheduler/scheduler_config.json")
    if not sched_file.is_file():
        raise CheckpointError(f"checkpoint file missing: {sched_file}")
    try:
        scheduler = DDPMScheduler.from_config(json.loads(sched_file.read_text()))
    except ValueError as exc:
        raise CheckpointError(f"corrupt scheduler config {sched_file}: {exc}") from exc
    unet = _load_model(path, "unet", device)
    value_function = _load_model(path, "value_function", device)
    command_value = command_spec = None
    if Path(path, COMMAND_VALUE_DIR).is_dir():  # optional; absent from older folders
        command_value = _load_model(path, COMMAND_VALUE_DIR, device)
        try:
            command_spec = CommandSpec.load(path)
        except FileNotFoundError as exc:
            raise CheckpointError(f"checkpoint file missing: {Path(path, COMMAND_SPEC_FILE)}") \
                from exc
        except (ValueError, KeyError, TypeError) as exc:
            raise CheckpointError(f"corrupt {Path(path, COMMAND_SPEC_FILE)}: {exc!r}") from exc
    try:
        return DiffusionPlanner(unet, value_function, scheduler, normalizer, spec, config,
                                command_value, command_spec)
    except ValueError as exc:
        raise CheckpointError(f"checkpoint {path} is inconsistent: {exc}") from exc
