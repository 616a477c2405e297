"""The training-speed figures from timed runs: examples/s over epochs 2..N, time to a validation
target (reached in every round or not at all), the ratios to the tutorial, and the summary."""

import pytest

from benchmarks.train_speed_report import ratios_to_tutorial, summary_md, time_to, variant_figures


def _run(epoch_s: list[float], val: list[float]) -> dict:
    return {"epoch_seconds": epoch_s, "epoch_cpu_seconds": [2 * s for s in epoch_s], "val_top_100_accuracy": val}


RUNS = {
    "tutorial": [_run([9.0, 4.0, 4.0, 4.0], [0.1, 0.2, 0.25, 0.31]), _run([9.0, 5.0, 5.0, 5.0], [0.1, 0.2, 0.3, 0.32])],
    "project_ids": [_run([3.0, 1.0, 1.0, 1.0], [0.2, 0.31, 0.33, 0.34]), _run([3.0, 2.0, 2.0, 2.0], [0.2, 0.3, 0.3, 0.3])],
}
TARGETS = [(0.30, "above popularity"), (0.34, "out of reach for the tutorial")]


def test_time_to_counts_every_epoch_until_the_target() -> None:
    assert time_to([0.1, 0.3, 0.4], [5.0, 2.0, 2.0], 0.3) == (7.0, 2)
    assert time_to([0.1, 0.2], [5.0, 2.0], 0.3) == (None, None)


def test_figures_and_ratios() -> None:
    per = variant_figures(RUNS, TARGETS, n_fit=1000)
    assert per["tutorial"]["examples_per_second"] == pytest.approx(1000 / 4.5)  # median of 4, 4, 4, 5, 5, 5
    assert per["project_ids"]["examples_per_second"] == pytest.approx(1000 / 1.5)
    assert per["tutorial"]["examples_per_cpu_second"] == pytest.approx(1000 / 9.0)
    assert per["tutorial"]["per_round_examples_per_second"] == pytest.approx([250.0, 200.0])
    t = per["tutorial"]["time_to_targets"]
    assert t["0.3000"]["seconds_per_round"] == [21.0, 19.0] and t["0.3000"]["seconds"] == pytest.approx(20.0)
    assert t["0.3400"]["seconds"] is None  # not reached in every round
    p = per["project_ids"]["time_to_targets"]
    assert p["0.3400"]["seconds_per_round"] == [6.0, None] and p["0.3400"]["seconds"] is None
    ratios = ratios_to_tutorial(per)
    assert set(ratios) == {"project_ids"}
    assert ratios["project_ids"]["examples_per_second_ratio"] == pytest.approx(3.0)
    assert ratios["project_ids"]["time_to_target_speedup"]["0.3000"] == pytest.approx(20.0 / 4.5)
    assert ratios["project_ids"]["time_to_target_speedup"]["0.3400"] is None
    assert ratios_to_tutorial({"project_ids": per["project_ids"]}) == {}


def test_summary_names_every_variant_and_target() -> None:
    per = variant_figures(RUNS, TARGETS, n_fit=1000)
    md = summary_md(per, ratios_to_tutorial(per), TARGETS, n_fit=1000, dim=32, rounds=2, epochs=4)
    assert "(1,000 examples), 32-d, 2 interleaved rounds × 4 epochs" in md
    assert "| tutorial | 222.2 |" in md and "| project_ids | 666.7 |" in md
    assert "| tutorial | 20.00 s (epoch 4,3) | not in 4 epochs |" in md and "not in 4 epochs" in md
    assert "- 0.3400: out of reach for the tutorial" in md
