"""The latency benchmark runs end to end (figures are printed, never asserted)."""

from __future__ import annotations

import json

from diffuser_ros import benchmark


def test_benchmark_runs_reference_and_presets(tiny_model_dir, tmp_path, capsys):
    out = tmp_path / "bench.json"
    benchmark.main(["--model", str(tiny_model_dir), "--repeats", "2", "--warmup", "1",
                    "--devices", "cpu", "--presets", "quality,realtime", "--out", str(out)])
    results = json.loads(out.read_text())
    names = [v["variant"] for v in results["variants"]]
    assert names == ["diffusers ValueGuidedRLPipeline", "ours@quality", "ours@realtime"]
    for variant in results["variants"]:
        assert variant["calls"] == 2
        assert 0 < variant["p50_ms"] <= variant["p95_ms"] <= variant["p99_ms"] <= variant["max_ms"]
    table = capsys.readouterr().out
    assert "vs ref" in table and "ours@realtime" in table


def test_benchmark_times_planning_for_a_speed_command(tiny_command_model_dir, tmp_path):
    out = tmp_path / "bench.json"
    benchmark.main(["--model", str(tiny_command_model_dir), "--repeats", "2", "--warmup", "1",
                    "--devices", "cpu", "--no-reference", "--presets", "realtime",
                    "--command", "2.0", "--out", str(out)])
    names = [v["variant"] for v in json.loads(out.read_text())["variants"]]
    assert names == ["ours@realtime", "ours@realtime+cmd_vel 2"]
