"""``diffuser-ros-commands``: does the hopper hop at the speed it is commanded?

For every command schedule it runs the same seeds through the node's controller core (the
command set at each control step, as ``cmd_vel`` sets the node's) and writes ``commands.json``
(per schedule: return, full-length fraction, achieved speed per segment, the step response) and
``commands.png`` (commanded vs achieved forward speed over time). Finished schedules are kept, so
an interrupted run resumes::

    diffuser-ros-commands --seeds 0-9 --schedule none --schedule 2.2 --schedule 2.6 \\
        --schedule "2.2;2.8@500" --out docs/commands

A schedule is ``SPEED[@STEP][;SPEED@STEP...]``: the speed commanded from that control step
(0-based; the first entry starts at 0), or ``none`` for no command (the learned return alone).
Achieved speed is the forward velocity (observation ``speed_index``) averaged over a segment
after its first second (the take-off, or the change of command). The response time of a change
is the delay until the speed averaged over the next 0.5 s is within ``--tolerance`` of the new
command.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from diffuser_ros.control import ControllerSettings
from diffuser_ros.evaluation.cli import add_rollout_arguments, load_cli_planner, rollout_parser
from diffuser_ros.evaluation.closed_loop import controller_policy, run_episodes
from diffuser_ros.evaluation.report import mean_se, pyplot, save_figure, summarize
from diffuser_ros.evaluation.resume import ResultsFile
from diffuser_ros.robots import env_robot

SETTLE_S = 1.0    # speed is judged after the first second of a segment
WINDOW_S = 0.5    # averaging window of the step response (a hop is ~0.3 s)


@dataclass(frozen=True)
class CommandSchedule:
    """Commanded speed over control steps: ``segments`` of ``(first_step, speed or None)``."""

    segments: tuple[tuple[int, float | None], ...]

    @classmethod
    def parse(cls, text: str) -> CommandSchedule:
        text = text.strip()
        if text.lower() == "none":
            return cls(((0, None),))
        segments = []
        for i, part in enumerate(p.strip() for p in text.split(";")):
            speed_text, _, step_text = part.partition("@")
            try:
                speed = float(speed_text)
                step = int(step_text) if step_text else 0
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"bad schedule entry {part!r}: expected SPEED[@STEP], e.g. 2.2 or "
                    "2.2;2.8@500") from None
            if not math.isfinite(speed):
                raise argparse.ArgumentTypeError(f"schedule speed must be finite: {part!r}")
            if (i == 0) != (step == 0) or (segments and step <= segments[-1][0]):
                raise argparse.ArgumentTypeError(
                    f"schedule {text!r}: the first entry starts at step 0 and later ones at "
                    "increasing steps")
            segments.append((step, speed))
        return cls(tuple(segments))

    def __str__(self) -> str:
        if self.segments == ((0, None),):
            return "none"
        return ";".join(f"{s:g}" if k == 0 else f"{s:g}@{k}" for k, s in self.segments)

    def __call__(self, step: int) -> float | None:
        speed = self.segments[0][1]
        for first, value in self.segments:
            if step >= first:
                speed = value
        return speed


def segment_speeds(speeds: np.ndarray, schedule: CommandSchedule, length: int,
                   settle: int) -> list[float | None]:
    """Mean speed of each segment after its first ``settle`` steps (None: none left)."""
    bounds = [k for k, _ in schedule.segments] + [length]
    out = []
    for first, end in zip(bounds[:-1], bounds[1:]):
        part = speeds[first + settle:min(end, length)]
        out.append(float(part.mean()) if part.size else None)
    return out


def response_time(speeds: np.ndarray, change: int, target: float, window: int,
                  tolerance: float, dt: float, length: int) -> float | None:
    """Seconds from ``change`` until the mean speed over the next ``window`` steps is within
    ``tolerance`` of ``target`` (None: never, or the episode ended first)."""
    for k in range(change, length - window + 1):
        if abs(speeds[k:k + window].mean() - target) <= tolerance:
            return (k - change) * dt
    return None


def build_parser() -> argparse.ArgumentParser:
    p = rollout_parser("diffuser-ros-commands", __doc__)
    p.add_argument("--schedule", type=CommandSchedule.parse, action="append",
                   help="a command schedule (repeatable): SPEED[@STEP][;SPEED@STEP...] or none")
    p.add_argument("--tolerance", type=float, default=0.15,
                   help="speed band (m/s) for 'tracking' and the response time")
    p.add_argument("--settle-s", type=float, default=SETTLE_S,
                   help="seconds at the start of each segment left out of its achieved speed")
    p.add_argument("--latency", type=int, default=0,
                   help="plan latency in control steps (0: lockstep)")
    add_rollout_arguments(p)
    return p


def evaluate_schedule(planner, schedule: CommandSchedule, seeds, args, dt: float) -> dict:
    """Run one schedule over ``seeds``; the summary :func:`run` stores."""
    index = planner.spec.speed_index
    traces: list[list[float]] = []
    stepped = np.ones(len(seeds), dtype=bool)  # envs that took this step (live before it)

    def on_step(step, obs, actions, rewards, live, latency):
        traces.append(np.where(stepped, obs[:, index], np.nan).tolist())
        stepped[:] = live

    policy = controller_policy(planner, args.latency, ControllerSettings(),
                               command_schedule=schedule)
    start = time.perf_counter()
    episodes = run_episodes(policy, seeds, args.env_id, args.max_steps,
                            on_step=on_step, progress=not args.no_progress, desc=str(schedule))
    speeds = np.asarray(traces, dtype=np.float64).T  # [seeds, steps]; NaN after a fall
    settle, window = round(args.settle_s / dt), round(WINDOW_S / dt)
    summary = summarize(episodes, env_robot(args.env_id))
    segments = []
    for i, (first, command) in enumerate(schedule.segments):
        achieved = [segment_speeds(speeds[j], schedule, ep.length, settle)[i]
                    for j, ep in enumerate(episodes)]
        valid = [a for a in achieved if a is not None]
        seg = {"from_step": first, "command": command, "achieved": achieved}
        if valid:
            seg["achieved_mean"], seg["achieved_se"] = mean_se(valid)
            if command is not None:
                errors = [abs(a - command) for a in valid]
                seg["abs_error_mean"] = float(np.mean(errors))
                seg["within_tolerance_fraction"] = float(np.mean(
                    [e <= args.tolerance for e in errors]))
        if i > 0 and command is not None:
            times = [response_time(speeds[j], first, command, window, args.tolerance, dt,
                                   ep.length) for j, ep in enumerate(episodes)]
            seg["response_s"] = times
            seg["responded_within_1s_fraction"] = float(np.mean(
                [t is not None and t <= 1.0 for t in times]))
        segments.append(seg)
    mean_trace = [np.nanmean(c) if np.isfinite(c).any() else math.nan for c in speeds.T]
    summary.update(schedule=str(schedule), segments=segments,
                   lengths=[ep.length for ep in episodes],
                   wall_s=round(time.perf_counter() - start, 1),
                   mean_latency_ms=float(np.mean(policy.latencies_s)) * 1e3,
                   speed_trace_mean=[None if math.isnan(v) else round(float(v), 3)
                                     for v in mean_trace],
                   alive_trace=[int(n) for n in np.isfinite(speeds).sum(axis=0)])
    return summary


def run(args: argparse.Namespace) -> dict:
    planner, config, model = load_cli_planner(args)
    if planner.spec.speed_index is None:
        raise SystemExit(f"{model}: planner.json names no speed_index (forward velocity)")
    schedules = args.schedule or [CommandSchedule.parse("none")]
    dt = ControllerSettings().control_period
    args.out.mkdir(parents=True, exist_ok=True)
    settings_record = {"model": model, "config": config.to_dict(), "seeds": args.seeds,
                       "latency_steps": args.latency, "tolerance": args.tolerance,
                       "settle_s": args.settle_s,
                       "max_steps": args.max_steps, "env_id": args.env_id,
                       "control_period_s": dt, "device": str(planner.device)}
    results = ResultsFile(args.out / "commands.json", settings_record, sections=("schedules",))
    for schedule in schedules:
        key = str(schedule)
        if results.entry("schedules", key) is not None:
            continue
        summary = evaluate_schedule(planner, schedule, args.seeds, args, dt)
        results.put("schedules", key, summary)
        print(format_line(summary), flush=True)
    plot(results.data, args.out / "commands.png")
    return results.data


def format_line(summary: dict) -> str:
    parts = [f"{summary['schedule']:>12}: return {summary['return_mean']:7.1f} ± "
             f"{summary['return_se']:5.1f}, full length {summary['full_length_fraction']:.0%}"]
    for seg in summary["segments"]:
        if "achieved_mean" not in seg:
            continue
        text = f"speed {seg['achieved_mean']:.2f} ± {seg['achieved_se']:.2f}"
        if seg["command"] is not None:
            text += f" (command {seg['command']:g}, within band " \
                    f"{seg['within_tolerance_fraction']:.0%})"
        if "responded_within_1s_fraction" in seg:
            text += f", followed within 1 s {seg['responded_within_1s_fraction']:.0%}"
        parts.append(text)
    return "; ".join(parts)


def plot(results: dict, path: Path) -> Path | None:
    """Commanded (dashed) vs achieved speed over time: constant commands on the left, changes
    of command on the right (one panel when there are none)."""
    plt = pyplot()
    if plt is None:
        return None
    dt = results["settings"]["control_period_s"]
    parsed = {key: CommandSchedule.parse(key) for key in results["schedules"]}
    changes = [key for key, schedule in parsed.items() if len(schedule.segments) > 1]
    constant = [key for key in parsed if key not in changes]
    panels = [(keys, title) for keys, title in ((constant, "constant command"),
                                                (changes, "change of command")) if keys]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(6.5 * max(len(panels), 1), 4),
                             dpi=110, sharey=True, squeeze=False)
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (keys, title) in zip(axes[0], panels):
        for i, key in enumerate(keys):
            color = colors[i % len(colors)]
            trace = np.array([np.nan if v is None else v
                              for v in results["schedules"][key]["speed_trace_mean"]])
            t = np.arange(len(trace)) * dt
            # a 0.5 s running mean: the speed within a hop swings by ~1 m/s
            k = max(1, min(round(WINDOW_S / dt), len(trace)))
            smooth = np.convolve(np.nan_to_num(trace), np.ones(k) / k, mode="valid")
            ax.plot(t[k - 1:], smooth, color=color, label=key)
            if parsed[key].segments != ((0, None),):
                ax.step(t, [parsed[key](step) for step in range(len(t))], where="post",
                        color=color, linestyle="--", alpha=0.8)
        ax.set_xlabel("time (s)")
        ax.set_title(f"{title}: commanded (dashed), achieved (0.5 s mean, "
                     f"{len(results['settings']['seeds'])} seeds)", fontsize=9)
        ax.legend(fontsize=7, ncol=2, title="schedule (m/s@step)", title_fontsize=7)
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("forward speed (m/s)")
    return save_figure(fig, axes[0][-1], path)


def main(argv: list[str] | None = None) -> int:
    run(build_parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
