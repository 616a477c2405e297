"""The micro-batcher: coalescing, bounds, per-job errors, off-loop execution."""

import asyncio
import threading
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.retrieval.batcher import BatcherClosed, MicroBatcher


def run(coro):
    return asyncio.run(coro)


def test_concurrent_submissions_share_one_call() -> None:
    batches: list[list[int]] = []

    def work(jobs: list[int]) -> list[int]:
        batches.append(list(jobs))
        return [j * 10 for j in jobs]

    async def go():
        b = MicroBatcher(work, max_wait_s=0.05, max_size=64)
        await b.start()
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(10)))
        finally:
            await b.stop()

    assert run(go()) == [i * 10 for i in range(10)]
    assert batches == [list(range(10))]


def test_batches_never_exceed_max_size() -> None:
    sizes: list[int] = []

    def work(jobs):
        sizes.append(len(jobs))
        return jobs

    async def go():
        b = MicroBatcher(work, max_wait_s=0.05, max_size=4, on_batch=lambda n: None)
        await b.start()
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(10)))
        finally:
            await b.stop()

    assert run(go()) == list(range(10))
    assert max(sizes) <= 4 and sum(sizes) == 10


def test_a_lone_request_does_not_wait_without_max_wait() -> None:
    async def go():
        b = MicroBatcher(lambda jobs: jobs, max_wait_s=0.0, max_size=64)
        await b.start()
        try:
            start = time.perf_counter()
            await b.submit(1)
            return time.perf_counter() - start
        finally:
            await b.stop()

    assert run(go()) < 0.5


def test_without_max_wait_batches_fill_while_the_thread_works() -> None:
    batches: list[list[int]] = []
    first_started = threading.Event()

    def work(jobs):
        batches.append(list(jobs))
        first_started.set()
        time.sleep(0.2 if len(batches) == 1 else 0)
        return jobs

    async def go():
        b = MicroBatcher(work, max_wait_s=0.0, max_size=64)
        await b.start()
        try:
            first = asyncio.ensure_future(b.submit(0))
            await asyncio.to_thread(first_started.wait, 5)
            rest = await asyncio.gather(*(b.submit(i) for i in range(1, 8)))  # queued while job 0 runs
            return [await first, *rest]
        finally:
            await b.stop()

    assert run(go()) == list(range(8))
    assert batches == [[0], list(range(1, 8))]


def test_max_wait_gathers_mates_that_arrive_later() -> None:
    batches: list[list[int]] = []

    def work(jobs):
        batches.append(list(jobs))
        return jobs

    async def late(i: int, b: MicroBatcher) -> int:
        await asyncio.sleep(0.05)
        return await b.submit(i)

    async def go():
        b = MicroBatcher(work, max_wait_s=5.0, max_size=4)
        await b.start()
        try:
            start = time.perf_counter()
            out = await asyncio.gather(b.submit(0), b.submit(1), late(2, b), late(3, b))
            return out, time.perf_counter() - start
        finally:
            await b.stop()

    out, elapsed = run(go())
    assert out == [0, 1, 2, 3] and batches == [[0, 1, 2, 3]]
    assert elapsed < 2.0  # dispatched when the batch was full, not after the whole wait


def test_stopping_fails_requests_gathered_but_not_yet_run() -> None:
    async def go():
        b = MicroBatcher(lambda jobs: jobs, max_wait_s=30.0, max_size=64)
        await b.start()
        pending = asyncio.ensure_future(b.submit(99))  # waits up to 30 s for mates
        await asyncio.sleep(0.05)
        assert not pending.done()
        start = time.perf_counter()
        await b.stop()
        with pytest.raises(BatcherClosed):
            await asyncio.wait_for(pending, 5)
        return time.perf_counter() - start

    assert run(go()) < 5


def test_stopping_fails_the_running_batch_and_waits_for_its_thread() -> None:
    gate = threading.Event()
    finished = threading.Event()

    def work(jobs):
        gate.wait(5)
        finished.set()
        return jobs

    async def go():
        b = MicroBatcher(work, max_wait_s=0, max_size=8)
        await b.start()
        running = asyncio.ensure_future(b.submit(1))
        await asyncio.sleep(0.05)
        stopping = asyncio.ensure_future(b.stop())
        with pytest.raises(BatcherClosed):
            await asyncio.wait_for(running, 5)
        assert not stopping.done()  # the thread is still inside run_batch
        gate.set()
        await asyncio.wait_for(stopping, 5)
        return finished.is_set()

    assert run(go())


def test_two_threads_run_two_batches_at_once() -> None:
    inside = 0
    most = 0
    lock = threading.Lock()
    both = threading.Barrier(2, timeout=5)

    def work(jobs):
        nonlocal inside, most
        with lock:
            inside += 1
            most = max(most, inside)
        both.wait()  # only returns when a second batch runs at the same time
        with lock:
            inside -= 1
        return jobs

    async def go():
        b = MicroBatcher(work, max_wait_s=0, max_size=2, threads=2)
        await b.start()
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(4)))
        finally:
            await b.stop()

    assert run(go()) == [0, 1, 2, 3]
    assert most == 2


def test_work_runs_off_the_event_loop_thread() -> None:
    threads: list[threading.Thread] = []

    def work(jobs):
        threads.append(threading.current_thread())
        time.sleep(0.05)  # blocking here must not block the loop
        return jobs

    async def go():
        b = MicroBatcher(work, max_wait_s=0, max_size=8)
        await b.start()
        try:
            ticks = 0

            async def ticker():
                nonlocal ticks
                for _ in range(10):
                    await asyncio.sleep(0.002)
                    ticks += 1

            await asyncio.gather(b.submit(1), ticker())
            return threading.current_thread(), ticks
        finally:
            await b.stop()

    loop_thread, ticks = run(go())
    assert threads and threads[0] is not loop_thread
    assert ticks == 10


def test_an_exception_result_fails_only_its_request() -> None:
    def work(jobs):
        return [ValueError(f"bad {j}") if j == 2 else j for j in jobs]

    async def go():
        b = MicroBatcher(work, max_wait_s=0.02, max_size=8)
        await b.start()
        try:
            return await asyncio.gather(*(b.submit(i) for i in range(4)), return_exceptions=True)
        finally:
            await b.stop()

    out = run(go())
    assert out[0] == 0 and out[1] == 1 and out[3] == 3
    assert isinstance(out[2], ValueError)


def test_a_crashing_batch_fails_its_requests_and_the_batcher_goes_on() -> None:
    calls = 0

    def work(jobs):
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        return jobs

    async def go():
        b = MicroBatcher(work, max_wait_s=0.0, max_size=8)
        await b.start()
        try:
            with pytest.raises(RuntimeError):
                await b.submit(1)
            return await b.submit(2)
        finally:
            await b.stop()

    assert run(go()) == 2


def test_abandoned_requests_are_skipped() -> None:
    seen: list[list[str]] = []
    gate = threading.Event()

    def work(jobs):
        seen.append(list(jobs))
        if jobs == ["first"]:
            gate.wait(2)
        return jobs

    async def go():
        b = MicroBatcher(work, max_wait_s=0.0, max_size=8)
        await b.start()
        try:
            first = asyncio.create_task(b.submit("first"))
            await asyncio.sleep(0.05)  # "first" is being worked on
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(b.submit("gave-up"), 0.05)
            later = asyncio.create_task(b.submit("later"))
            await asyncio.sleep(0.01)
            gate.set()
            return await first, await later
        finally:
            await b.stop()

    assert run(go()) == ("first", "later")
    assert ["gave-up"] not in seen and all("gave-up" not in batch for batch in seen)


def test_stopped_batcher_refuses_work() -> None:
    async def go():
        b = MicroBatcher(lambda jobs: jobs, max_wait_s=0, max_size=1)
        await b.start()
        await b.stop()
        with pytest.raises(BatcherClosed):
            await b.submit(1)

    run(go())


def test_concurrent_http_requests_are_coalesced(trained, make_client) -> None:
    root, version = trained
    with make_client(root, microbatch_max_wait_ms=20) as c:
        results = []

        def call(i: int) -> None:
            results.append(c.post("/v1/recommendations", json={"user_id": f"u{i:06d}", "k": 3}))

        threads = [threading.Thread(target=call, args=(i,)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert [r.status_code for r in results] == [200] * 24
        assert {r.json()["model_version"] for r in results} == {version}
        samples = {
            s.name: s.value
            for fam in text_string_to_metric_families(c.get("/metrics").text)
            for s in fam.samples
            if s.name.startswith("recsys_microbatch_size")
        }
        assert samples["recsys_microbatch_size_sum"] == 24
        assert samples["recsys_microbatch_size_count"] < 24, "concurrent requests should share model calls"
