"""What the evaluation CLIs (``diffuser-ros-evaluate``, ``-tolerance``, ``-commands``) share:
seed and integer lists, the rollout options, the planner they load and file fingerprints."""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

from diffuser_ros.robots import DEFAULT_ROBOT, ROBOTS, Robot, env_robot, robot, robot_for_env


def parse_seeds(text: str) -> list[int]:
    """``"0-19"`` → 0..19 inclusive; ``"0,3,7-9"`` → [0, 3, 7, 8, 9]. Order kept, no repeats."""
    return parse_int_list(text, "seed")


def parse_int_list(text: str, what: str) -> list[int]:
    """A list of integers >= 0 written as ``parse_seeds`` reads it; errors name ``what``."""
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        try:
            if "-" in part:
                lo, hi = (int(x) for x in part.split("-", 1))
                if hi < lo:
                    raise ValueError
                seeds.extend(range(lo, hi + 1))
            else:
                seeds.append(int(part))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"bad {what} list {text!r}: use e.g. '0-19' or '0,3,7-9'") from None
    if not seeds or any(s < 0 for s in seeds):
        raise argparse.ArgumentTypeError(f"bad {what} list {text!r}: need {what}s >= 0")
    return list(dict.fromkeys(seeds))


def add_env_argument(p: argparse.ArgumentParser) -> None:
    """``--robot`` (or its environment, ``--env-id``): the robot the episodes run on. Resolved
    by :func:`resolve_robot`."""
    p.add_argument("--robot", choices=sorted(ROBOTS), default=None,
                   help="the robot entry the episodes run on (default: the one --model-path was "
                        f"trained on, else {DEFAULT_ROBOT.name}); its shipped model is the "
                        "default --model-path")
    p.add_argument("--env-id", default=None,
                   help="the same, by gymnasium id (e.g. Walker2d-v5)")


def resolve_robot(args: argparse.Namespace, model_dest: str = "model_path") -> Robot:
    """Settle ``--robot`` / ``--env-id`` and the model path: a robot named on the command line
    wins; else the one the model was trained on; else the default robot. Without a model path,
    the robot's shipped model. Sets ``args.robot`` (name), ``args.env_id`` and the model path
    (``args.<model_dest>``); returns the entry. ``ValueError`` when both flags disagree."""
    from diffuser_ros.planning import default_model_path, model_env_id

    model = getattr(args, model_dest)
    named = [robot(args.robot)] if args.robot else []
    if args.env_id:
        named.append(env_robot(args.env_id))
    if len({r.name for r in named}) > 1:
        raise ValueError(f"--robot {args.robot} and --env-id {args.env_id} name different robots")
    trained_on = robot_for_env(model_env_id(model)) if model else None
    entry = named[0] if named else trained_on or DEFAULT_ROBOT
    if not model:
        setattr(args, model_dest, str(default_model_path(entry.name)))
    args.robot, args.env_id = entry.name, entry.env_id
    return entry


def rollout_parser(prog: str, doc: str) -> argparse.ArgumentParser:
    """The rollout CLIs' (tolerance, commands) parser: its description from the module doc,
    ``--model-path`` and ``--seeds``; :func:`add_rollout_arguments` adds the rest."""
    p = argparse.ArgumentParser(prog=prog, description=doc.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-path", default=None, help="planner folder (default: shipped model)")
    p.add_argument("--seeds", type=parse_seeds, default=list(range(10)),
                   help="evaluation seeds, e.g. 0-9")
    return p


def add_rollout_arguments(p: argparse.ArgumentParser) -> None:
    """The options the rollout CLIs (tolerance, commands) share: episodes, output, threads and
    the planner settings (the model's own, the preset's on top, then any given)."""
    p.add_argument("--max-steps", type=int, default=1000)
    add_env_argument(p)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--torch-threads", type=int, default=None)
    p.add_argument("--no-progress", action="store_true")
    add_planner_arguments(p)


def add_planner_arguments(p: argparse.ArgumentParser, title: str = "") -> None:
    """``--preset`` and a flag per planner setting (:func:`planner_config` reads them)."""
    from diffuser_ros.planning import PRESETS, PlannerConfig
    from diffuser_ros.settings import add_arguments

    g = p.add_argument_group(title or "planner settings: the model's own (its planner.json "
                             "defaults), the preset's on top, then any given here")
    g.add_argument("--preset", choices=("",) + tuple(sorted(PRESETS)), default="",
                   help="named settings on top of the model's own ('' (default): none, the "
                        "settings the model was evaluated with)")
    add_arguments(g, PlannerConfig)


def planner_config(args: argparse.Namespace, model_path: str | Path):
    """The planner settings of a run: the model's own (its planner.json defaults, what its card
    reports), the preset's on top, then the command-line settings. ``CheckpointError`` when the
    model's metadata cannot be read."""
    from diffuser_ros.planning import PlannerConfig, model_defaults, preset
    from diffuser_ros.settings import given_arguments

    overrides = given_arguments(args, PlannerConfig)
    overrides.setdefault("seed", 0)  # reproducible unless asked otherwise (-1 = random)
    return preset(args.preset, base=model_defaults(model_path), **overrides)


def load_cli_planner(args: argparse.Namespace):
    """``(planner, config, model path)`` for the rollout CLIs (``--model-path``, ``--preset``
    and the planner settings, ``--torch-threads``)."""
    from diffuser_ros.planning import load_planner, set_cpu_threads

    if args.torch_threads is not None:
        set_cpu_threads(args.torch_threads)
    resolve_robot(args)
    config = planner_config(args, args.model_path)
    return load_planner(args.model_path, config=config), config, args.model_path


def fingerprint(path: str | Path) -> str:
    """sha256 (16 hex digits) of a file or of every file in a folder; the name for a Hub id."""
    path = Path(path)
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else \
        [path] if path.is_file() else []
    if not files:
        return f"name:{path}"
    for f in files:
        h.update(str(f.relative_to(path) if path.is_dir() else f.name).encode())
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]
