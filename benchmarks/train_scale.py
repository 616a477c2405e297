"""Training speed against the number of ids: examples/s of the project's
trainer at a small catalog (the README's default run: 20K users, 5K items) and
a large one (1M users, 200K items), per optimizer, and each run's peak memory.

    python -m benchmarks.train_scale [--sizes 20000x5000x1000000,1000000x200000x5000000]
        [--optimizers adam,lazy_adam,adam_adagrad] [--steps 120] [--warmup 20]

Each (size, optimizer) runs in a process of its own (so its peak RSS is its
own): generated storefront data (``training.data.synthetic``, USERSxITEMSxINTERACTIONS),
``training.prepared.prepare`` with the product's default spec (ids, metadata,
the history feature), ``training.trainer.build_model`` (tables fitted on every
interaction: the sizes of the full run) and Keras fit on
the trainer's batches of 1,024 (``training.stream``: prepared shards through ``tf.data``) for ``--warmup`` +
``--steps`` steps. Examples/s = batch size / median step time over the steps
after the warm-up (graph tracing, the first shards read). The
figure is per step, so it does not depend on how many interactions there are,
only on the tables' sizes; the target is the large catalog within 1.5x of the
small one.

Memory: the process's peak RSS (data generation and preparation included),
and the tables apart: the model's variables and the optimizer's slots, in
bytes.
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS_DIR, child_json, fmt_table, load_average, machine_description, median, write_results
from benchmarks.common import log as _log

DEFAULT_SIZES = "20000x5000x1000000,1000000x200000x5000000"
DEFAULT_OPTIMIZERS = "adam,lazy_adam,adam_adagrad"


def log(msg: str) -> None:
    _log("train_scale", msg)


def _bytes(variables) -> int:
    return int(sum(v.shape.num_elements() * v.dtype.size for v in variables))


def _slots(optimizer) -> list:
    """The optimizer's variables (a property on Keras's optimizers, a method on the legacy ones)."""
    found = optimizer.variables
    return list(found() if callable(found) else found)


def measure(users: int, items: int, interactions: int, optimizer: str, steps: int, warmup: int, seed: int) -> dict[str, Any]:
    """One (size, optimizer): run in a fresh process (``--one``)."""
    import recsys

    recsys.prepare_training_runtime()  # as `recsys train` trains (before TensorFlow is imported)
    import numpy as np
    import tensorflow as tf

    from training.config import OptimizerKind, TrainConfig
    from training.data.synthetic import generate_storefront
    from training.optimizers import embedding_tables
    from training.pipeline import default_spec
    from training.prepared import prepare, sampling_probabilities
    from training.stream.inputs import examples_of, training_input
    from training.trainer import build_model

    t0 = time.perf_counter()
    data = generate_storefront(items=items, users=users, interactions=interactions, seed=seed)
    spec = default_spec(data.source, data)
    prep = prepare(data, spec)
    prepare_seconds = time.perf_counter() - t0
    config = TrainConfig(optimizer=OptimizerKind(optimizer), seed=seed)
    rows = np.arange(len(prep.user_rows))
    tf.keras.utils.set_random_seed(seed)
    t0 = time.perf_counter()
    model = build_model(prep, spec, config, rows)
    build_seconds = time.perf_counter() - t0
    stamps: list[float] = []

    class Clock(tf.keras.callbacks.Callback):
        def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
            stamps.append(time.perf_counter())

    with examples_of(prep, rows, None, seed) as source:  # the trainer's input: prepared shards through tf.data
        dataset, _ = training_input(
            prep, source, sampling_probabilities(prep.item_counts(rows)), config.batch_size, seed, tf.distribute.get_strategy()
        )
        t0 = time.perf_counter()
        model.fit(dataset.repeat(), epochs=1, steps_per_epoch=warmup + steps, callbacks=[Clock()], verbose=0)
        fit_seconds = time.perf_counter() - t0
    step_seconds = [b - a for a, b in zip(stamps[warmup - 1 : -1], stamps[warmup:], strict=True)]
    tables = embedding_tables(model.query_tower, model.candidate_tower)
    return {
        "users": users,
        "items": items,
        "interactions": len(prep.user_rows),
        "optimizer": optimizer,
        "batch_size": config.batch_size,
        "table_rows": {t.name: int(t.shape[0]) for t in tables},
        "steps_measured": len(step_seconds),
        "median_step_seconds": median(step_seconds),
        "examples_per_second": config.batch_size / median(step_seconds),
        "prepare_seconds": prepare_seconds,
        "build_seconds": build_seconds,
        "fit_seconds_with_warmup": fit_seconds,
        "trainable_bytes": _bytes(model.trainable_variables),
        "table_bytes": _bytes(tables),
        "optimizer_slot_bytes": _bytes(_slots(model.optimizer)),
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m benchmarks.train_scale", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--sizes", default=DEFAULT_SIZES, help="comma-separated USERSxITEMSxINTERACTIONS")
    ap.add_argument("--optimizers", default=DEFAULT_OPTIMIZERS, help="TrainConfig.optimizer values")
    ap.add_argument("--steps", type=int, default=120, help="timed steps per run")
    ap.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--out", type=Path, default=RESULTS_DIR)
    ap.add_argument("--one", help=argparse.SUPPRESS)  # USERSxITEMSxINTERACTIONS:OPTIMIZER, in a child process
    args = ap.parse_args(argv)
    if args.warmup < 1 or args.steps < 2:
        ap.error("--warmup must be >= 1 and --steps >= 2")
    if args.one:
        size, _, optimizer = args.one.partition(":")
        users, items, n = (int(x) for x in size.split("x"))
        print(json.dumps(measure(users, items, n, optimizer, args.steps, args.warmup, args.seed)))
        return 0
    started = time.perf_counter()
    machine = machine_description()
    sizes = [s for s in args.sizes.split(",") if s]
    optimizers = [o for o in args.optimizers.split(",") if o]
    runs: list[dict[str, Any]] = []
    for optimizer in optimizers:  # each optimizer's sizes back to back: their ratio sees the same load
        for size in sizes:
            args_one = ["--one", f"{size}:{optimizer}", "--steps", str(args.steps), "--warmup", str(args.warmup)]
            run = child_json("benchmarks.train_scale", [*args_one, "--seed", str(args.seed)], f"{size}:{optimizer}")
            run["load_average_after"] = load_average()
            runs.append(run)
            log(
                f"{size} {optimizer}: {run['examples_per_second']:,.0f} ex/s ({run['median_step_seconds'] * 1000:.1f} ms/step), "
                f"peak RSS {run['peak_rss_bytes'] / 2**30:.2f} GiB, load {run['load_average_after']}"
            )
    ratios = {}
    catalogs = [(int(u), int(i)) for u, i in (s.split("x")[:2] for s in (sizes[0], sizes[-1]))]
    for optimizer in optimizers:
        rate = {(r["users"], r["items"]): r["examples_per_second"] for r in runs if r["optimizer"] == optimizer}
        if len(sizes) > 1 and all(c in rate for c in catalogs):
            ratios[optimizer] = rate[catalogs[0]] / rate[catalogs[1]]
    rows = [
        [
            r["optimizer"],
            f"{r['users']:,} / {r['items']:,}",
            f"{r['interactions']:,}",
            r["examples_per_second"],
            r["median_step_seconds"] * 1000,
            r["table_bytes"] / 2**20,
            r["optimizer_slot_bytes"] / 2**20,
            r["peak_rss_bytes"] / 2**30,
            " ".join(str(x) for x in r["load_average_after"]),
        ]
        for r in runs
    ]
    summary = "\n".join(
        [
            f"## Training speed against the number of ids ({args.steps} timed steps of 1,024 after {args.warmup} warm-up steps)",
            "",
            fmt_table(
                [
                    "optimizer",
                    "users / items",
                    "interactions",
                    "examples/s",
                    "ms/step",
                    "tables MiB",
                    "optimizer slots MiB",
                    "peak RSS GiB",
                    "load after",
                ],
                rows,
            ),
            "",
            "Small-catalog examples/s over large-catalog examples/s (target <= 1.5): "
            + "; ".join(f"{o}: {x:.2f}x" for o, x in ratios.items()),
        ]
    )
    write_results(
        "train_scale",
        {"runs": runs, "slowdown_small_over_large": ratios, "target_slowdown": 1.5, "sizes": sizes, "optimizers": optimizers},
        summary,
        out_dir=args.out,
        machine=machine,
        started=started,
    )
    print(summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
