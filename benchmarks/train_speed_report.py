"""The training-speed benchmark's figures and summary from its timed runs: examples per second
(median over epochs 2..N), time to each validation target, and the ratios to the tutorial."""

from __future__ import annotations

from typing import Any

from benchmarks.common import fmt_table, median

Target = tuple[float, str]  # (validation top-100 accuracy, why this target)


def time_to(values: list[float], seconds: list[float], target: float) -> tuple[float | None, int | None]:
    """(optimisation seconds, epoch) until ``values`` first reach ``target``; (None, None) if never."""
    total = 0.0
    for epoch, (v, s) in enumerate(zip(values, seconds, strict=True), 1):
        total += s
        if v >= target:
            return total, epoch
    return None, None


def variant_figures(runs: dict[str, list[dict[str, Any]]], targets: list[Target], n_fit: int) -> dict[str, Any]:
    """Per variant: examples/s and per CPU s, epoch times, time to each target, best validation figure."""
    per_variant: dict[str, Any] = {}
    for v, rs in runs.items():
        steady = [s for r in rs for s in r["epoch_seconds"][1:]]
        first = [r["epoch_seconds"][0] for r in rs]
        eps = n_fit / median(steady)
        to_targets = {}
        for target, why in targets:
            ttq = [time_to(r["val_top_100_accuracy"], r["epoch_seconds"], target) for r in rs]
            reached = [t for t, _ in ttq if t is not None]
            to_targets[f"{target:.4f}"] = {
                "target": target,
                "why": why,
                "seconds": median(reached) if len(reached) == len(rs) else None,
                "seconds_per_round": [t for t, _ in ttq],
                "epochs_per_round": [e for _, e in ttq],
            }
        best_val = max(max(r["val_top_100_accuracy"]) for r in rs)
        steady_cpu = [s for r in rs for s in r["epoch_cpu_seconds"][1:]]
        per_variant[v] = {
            "examples_per_second": eps,
            "examples_per_cpu_second": n_fit / median(steady_cpu),
            "epoch_cpu_seconds_measured": steady_cpu,
            "median_epoch_seconds": median(steady),
            "epoch_seconds_measured": steady,
            "first_epoch_seconds": first,
            "per_round_examples_per_second": [n_fit / median(r["epoch_seconds"][1:]) for r in rs],
            "time_to_targets": to_targets,
            "best_val_top_100_accuracy": best_val,
            "runs": rs,
        }
    return per_variant


def ratios_to_tutorial(per_variant: dict[str, Any]) -> dict[str, Any]:
    """Each variant's examples/s and time-to-target speed-up against the tutorial's (empty without it)."""
    ratios: dict[str, Any] = {}
    if "tutorial" in per_variant:
        base = per_variant["tutorial"]
        for v in per_variant:
            if v == "tutorial":
                continue
            pv = per_variant[v]
            ratios[v] = {
                "examples_per_second_ratio": pv["examples_per_second"] / base["examples_per_second"],
                "per_round_examples_per_second_ratio": [
                    a / b for a, b in zip(pv["per_round_examples_per_second"], base["per_round_examples_per_second"], strict=True)
                ],
                "time_to_target_speedup": {
                    key: (base["time_to_targets"][key]["seconds"] / t["seconds"])
                    if base["time_to_targets"][key]["seconds"] and t["seconds"]
                    else None
                    for key, t in pv["time_to_targets"].items()
                },
            }
    return ratios


def summary_md(
    per_variant: dict[str, Any], ratios: dict[str, Any], targets: list[Target], n_fit: int, dim: int, rounds: int, epochs: int
) -> str:
    """The markdown summary: the speed table, the time-to-target table, the validation curves."""
    summary_rows = []

    def reached_text(t: dict[str, Any]) -> str:
        if t["seconds"] is None:
            return f"not in {epochs} epochs"
        return f"{t['seconds']:.2f} s (epoch {','.join(str(e) for e in t['epochs_per_round'])})"

    target_rows = []
    for v, pv in per_variant.items():
        r = ratios.get(v, {})
        summary_rows.append(
            [
                v,
                pv["examples_per_second"],
                pv["examples_per_cpu_second"],
                pv["median_epoch_seconds"],
                median(pv["first_epoch_seconds"]),
                ", ".join(f"{x:,.0f}" for x in pv["per_round_examples_per_second"]),
                pv["best_val_top_100_accuracy"],
                r.get("examples_per_second_ratio", 1.0 if v == "tutorial" else None),
            ]
        )
        target_rows.append([v, *[reached_text(t) for t in pv["time_to_targets"].values()]])
    return "\n".join(
        [
            f"## Training speed, MovieLens 100K P1 fit split ({n_fit:,} examples), {dim}-d, {rounds} interleaved rounds × {epochs} epochs",
            "",
            fmt_table(
                [
                    "variant",
                    "examples/s (median, epochs 2..N)",
                    "examples per CPU s",
                    "epoch s",
                    "epoch 1 s",
                    "examples/s per round",
                    "best val top-100",
                    "ex/s ratio vs tutorial",
                ],
                summary_rows,
            ),
            "",
            "Optimisation seconds (epoch 1 included, validation passes excluded) until validation top-100 accuracy first reaches:",
            "",
            fmt_table(["variant", *[f"≥ {t:.4f}" for t, _ in targets]], target_rows),
            "",
            *[f"- {t:.4f}: {why}" for t, why in targets],
            "",
            "Validation top-100 accuracy per epoch (round 1): "
            + "; ".join(
                f"{v}: {', '.join(f'{x:.3f}' for x in pv['runs'][0]['val_top_100_accuracy'])}" for v, pv in per_variant.items()
            ),
        ]
    )
