"""The gap benchmark's summary (ratios per round against the ceiling) and its thread timing;
its variant servers are tested in tests/benchmarks/serving/test_bench_variants.py."""

import os
import sys

import pytest

from benchmarks import serving_gap


def test_summary_ratios_are_per_round_against_the_ceiling():
    def run(rps: float) -> dict:
        return {
            "rps": rps,
            "p99_ms": 10.0,
            "failures": 0,
            "loop_cpu_us_per_request": 200.0,
            "other_threads_cpu_us_per_request": 0.0,
            "loop_on_core": 0.9,
            "loop_run_queue": 0.02,
            "loop_blocked": 0.08,
        }

    rounds = {"ceiling": [run(4000), run(5000), run(2000)], "service": [run(2000), run(3000), run(1800)]}
    summary = serving_gap.summarize(rounds)
    assert summary["ceiling"]["ratio"] == 1.0
    assert summary["service"]["ratio_per_round"] == [0.5, 0.6, 0.9]
    assert summary["service"]["ratio"] == 0.6  # median of the per-round ratios, not of the rps medians (2000/4000)
    assert summary["service"]["rps"] == 2000
    md = serving_gap.summary_md(
        summary, {"items": 1000, "concurrency": 32, "rounds": 3, "duration_s": 6.0, "load_before": [0.1], "load_after": [0.2]}
    )
    assert "| service | 2,000 | 0.60 (0.50, 0.60, 0.90)" in md


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")
def test_thread_times_reads_this_process():
    t = serving_gap.thread_times(os.getpid())
    assert t["main_s"] > 0 and t["on_core_ns"] > 0 and t["run_queue_ns"] >= 0
