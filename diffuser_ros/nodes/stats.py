"""Planning-latency statistics over a sliding window (rclpy-free, thread-safe)."""

from __future__ import annotations

import threading
from collections import deque

import numpy as np


class LatencyWindow:
    """Mean, 95th percentile and maximum of the last ``size`` latencies, plus lifetime counts."""

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
        """``{count, deadline_misses, window, mean, p95, max, window_misses}`` (seconds)."""
        with self._lock:
            samples = np.array(self._samples, dtype=np.float64)
            out = {"count": self.count, "deadline_misses": self.deadline_misses,
                   "window": int(samples.size)}
        if samples.size:
            out.update(mean=float(samples.mean()), p95=float(np.percentile(samples, 95)),
                       max=float(samples.max()))
            if self.deadline is not None:
                out["window_misses"] = int((samples > self.deadline).sum())
        else:
            out.update(mean=float("nan"), p95=float("nan"), max=float("nan"), window_misses=0)
        return out
