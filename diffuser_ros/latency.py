"""Latency statistics: one summary (count, mean, percentiles, max) for the planner node's
sliding window, the evaluation's per-call timings and the benchmark.

Free of rclpy and torch so the nodes, the evaluation and the tests can all import it cheaply.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence

import numpy as np

# unit -> (factor from seconds, key suffix); the JSON outputs report milliseconds as ``*_ms``.
_UNITS = {"s": (1.0, ""), "ms": (1e3, "_ms")}


def summarize_latencies(seconds: Iterable[float], percentiles: Sequence[float] = (95,),
                        unit: str = "s") -> dict:
    """``{count, mean, p<q> for each q in percentiles, max}`` of latencies given in seconds.

    ``unit="ms"`` reports milliseconds under ``mean_ms``, ``p95_ms``, ... keys. The statistics
    of an empty sequence are NaN (``count`` is 0), so the values are always floats.
    """
    if unit not in _UNITS:
        raise ValueError(f"unit must be one of {sorted(_UNITS)}, got {unit!r}")
    scale, suffix = _UNITS[unit]
    values = np.fromiter(seconds, dtype=np.float64) * scale
    empty = values.size == 0
    out = {"count": int(values.size),
           f"mean{suffix}": float("nan") if empty else float(values.mean())}
    for q in percentiles:
        out[f"p{q:g}{suffix}"] = float("nan") if empty else float(np.percentile(values, q))
    out[f"max{suffix}"] = float("nan") if empty else float(values.max())
    return out


class LatencyWindow:
    """Mean, 95th percentile and maximum of the last ``size`` latencies, plus lifetime counts.

    Thread-safe: the planner node adds from its planning thread and reads from its diagnostics
    timer.
    """

    def __init__(self, size: int = 100, deadline: float | None = None):
        if size < 1:
            raise ValueError(f"window size must be >= 1, got {size}")
        self._samples: deque[float] = deque(maxlen=size)
        self._lock = threading.Lock()
        self.deadline = deadline
        self.count = 0
        self.deadline_misses = 0

    def add(self, seconds: float) -> bool:
        """Record one latency; True when it missed the deadline."""
        missed = self.deadline is not None and seconds > self.deadline
        with self._lock:
            self._samples.append(float(seconds))
            self.count += 1
            self.deadline_misses += int(missed)
        return missed

    def summary(self) -> dict:
        """``{count, deadline_misses, window, mean, p95, max, window_misses}`` (seconds).

        ``count`` and ``deadline_misses`` are lifetime counts; ``window`` is the number of
        samples the statistics cover; ``mean``/``p95``/``max`` are NaN while it is empty.
        """
        with self._lock:
            samples = np.array(self._samples, dtype=np.float64)
            count, misses = self.count, self.deadline_misses
        window = summarize_latencies(samples)
        deadline = self.deadline
        return {"count": count, "deadline_misses": misses, "window": window.pop("count"),
                **window,
                "window_misses": 0 if deadline is None else int((samples > deadline).sum())}
