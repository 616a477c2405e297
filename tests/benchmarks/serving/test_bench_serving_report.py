"""The serving benchmark's medians over repeats and its check against the targets."""

from benchmarks.serving.measure import summarize
from benchmarks.serving.report import check_targets


def _run(rps: float, p99: float, failures: int = 0) -> dict:
    return {
        "rps": rps,
        "latency_ms": {"p50": p99 / 3, "p95": p99 / 1.5, "p99": p99},
        "failures": failures,
        "completed": 1000,
        "client_cpu_s": 0.1,
    }


def test_summaries_take_medians_and_check_targets():
    s = summarize([_run(100, 10), _run(300, 30), _run(200, 20, failures=1)])
    assert s["rps"] == 200 and s["p99_ms"] == 20 and s["failures"] == 1 and s["requests"] == 3000
    results = {
        "sizes": {
            "1000000": {
                "workers": [
                    {
                        "workers": 1,
                        "per_concurrency": {
                            "32": {"model": {"rps": 700.0, "p99_ms": 20.0, "failures": 0}, "ratio_to_http_ceiling": 0.7}
                        },
                        "memory_at_end": {"workers_rss": [1.2e9], "max_process_rss": 1.2e9},
                    },
                    {
                        "workers": 2,
                        "per_concurrency": {
                            "32": {"model": {"rps": 500.0, "p99_ms": 40.0, "failures": 3}, "ratio_to_http_ceiling": 0.4}
                        },
                        "memory_at_end": {"workers_rss": [1.6e9, 1.4e9], "max_process_rss": 1.6e9},
                    },
                ],
                "swap": [{"workers": 1, "load": {"failures": 0}, "new_version_answered": True}],
            }
        }
    }
    t = check_targets(results)
    assert t["workers=1"] == {
        "ratio_to_http_ceiling": 0.7,
        "ratio_ok": True,
        "p99_ms": 20.0,
        "p99_ok": True,
        "failures": 0,
        "failures_ok": True,
        "max_worker_rss_gib": round(1.2e9 / 2**30, 3),
        "rss_ok": True,
    }
    w2 = t["workers=2"]
    assert not (w2["ratio_ok"] or w2["p99_ok"] or w2["failures_ok"] or w2["rss_ok"])
    assert t["swap workers=1"] == {"failures": 0, "ok": True}
