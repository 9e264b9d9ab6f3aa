"""One latency summary for the planner node's window, the evaluation and the benchmark."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffuser_ros.benchmark import summarize
from diffuser_ros.evaluation.closed_loop import latency_stats
from diffuser_ros.latency import LatencyWindow, summarize_latencies


def test_latency_window_statistics_and_deadline_misses():
    window = LatencyWindow(size=4, deadline=0.05)
    assert math.isnan(window.summary()["mean"])
    for seconds in (0.01, 0.02, 0.03, 0.06, 0.10):
        window.add(seconds)
    s = window.summary()
    assert s["count"] == 5 and s["window"] == 4 and s["deadline_misses"] == 2
    assert s["mean"] == pytest.approx(np.mean([0.02, 0.03, 0.06, 0.10]))
    assert s["max"] == 0.10 and 0.06 < s["p95"] <= 0.10
    assert s["window_misses"] == 2


def test_latency_window_without_deadline_counts_no_misses():
    window = LatencyWindow(size=2)
    assert window.add(10.0) is False
    assert window.summary()["window_misses"] == 0 and window.deadline_misses == 0


def test_summarize_latencies_units_percentiles_and_empty():
    s = summarize_latencies([0.001, 0.002, 0.003, 0.004])
    assert s["count"] == 4 and s["mean"] == pytest.approx(0.0025) and s["max"] == 0.004
    ms = summarize_latencies([0.001, 0.002, 0.003, 0.004], percentiles=(50, 99), unit="ms")
    assert set(ms) == {"count", "mean_ms", "p50_ms", "p99_ms", "max_ms"}
    assert ms["p50_ms"] == pytest.approx(2.5) and ms["max_ms"] == pytest.approx(4.0)
    empty = summarize_latencies([])
    assert empty["count"] == 0 and all(math.isnan(empty[k]) for k in ("mean", "p95", "max"))
    with pytest.raises(ValueError, match="unit"):
        summarize_latencies([0.1], unit="us")


def test_evaluation_and_benchmark_keys_come_from_the_same_summary():
    assert latency_stats([0.01, 0.03]) == {"n_calls": 2, "mean_ms": pytest.approx(20.0),
                                           "p95_ms": pytest.approx(29.0),
                                           "max_ms": pytest.approx(30.0)}
    # JSON has no NaN: the evaluation stores None when nothing was timed.
    assert latency_stats([]) == {"n_calls": 0, "mean_ms": None, "p95_ms": None, "max_ms": None}
    bench = summarize(np.array([0.01, 0.03]))
    assert bench["calls"] == 2 and bench["hz"] == pytest.approx(50.0)
    assert bench["p50_ms"] <= bench["p95_ms"] <= bench["p99_ms"] <= bench["max_ms"]
