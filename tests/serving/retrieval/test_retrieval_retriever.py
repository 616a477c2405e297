"""The Retriever facade (serving/retrieval/retriever.py): its micro-batcher's lifecycle, the
answers it counts, ServiceStopping once stopped, and a cancelled caller's job marked abandoned."""

import asyncio
import threading

import pytest
from prometheus_client.parser import text_string_to_metric_families

from serving.metrics import ServiceMetrics
from serving.retrieval.errors import ServiceStopping
from serving.retrieval.execute import execute_batch
from serving.retrieval.plan import UserQuery
from serving.retrieval.retriever import Ranking, Retriever
from serving.retrieval.strategy import Strategy
from serving.settings import ServiceSettings


@pytest.fixture
def model(client):
    served = client.app.state.holder.model
    assert served is not None
    return served


def _answered(metrics: ServiceMetrics) -> dict[str, float]:
    from prometheus_client import generate_latest

    text = generate_latest(metrics.registry).decode()
    family = next(f for f in text_string_to_metric_families(text) if f.name == "recsys_recommendations")
    return {s.labels["strategy"]: s.value for s in family.samples if s.name.endswith("_total")}


def test_rank_answers_and_counts_by_strategy(model, tmp_path) -> None:
    metrics = ServiceMetrics()
    retriever = Retriever(ServiceSettings(model_root=tmp_path), metrics)

    async def run() -> list[Ranking]:
        await retriever.start()
        try:
            jobs = [retriever.plan(model, UserQuery(user_id="u000005", k=4)), retriever.plan(model, UserQuery(None, k=3))]
            jobs.append(retriever.plan_similar(model, 9, 2))
            return list(await asyncio.gather(*(retriever.rank(job) for job in jobs)))
        finally:
            await retriever.stop()

    personal, popular, similar = asyncio.run(run())
    assert personal.strategy is Strategy.PERSONAL and len(personal.items) == 4 and personal.ignored_item_ids is None
    assert popular.strategy is Strategy.POPULAR and len(popular.items) == 3
    assert similar.strategy is Strategy.SIMILAR and [i["rank"] for i in similar.items] == [1, 2]
    assert _answered(metrics) == {"personal": 1.0, "popular": 1.0, "similar": 1.0}


def test_a_stopped_retriever_raises_service_stopping(model, tmp_path) -> None:
    retriever = Retriever(ServiceSettings(model_root=tmp_path), ServiceMetrics())

    async def run() -> None:
        await retriever.start()
        await retriever.stop()
        await retriever.rank(retriever.plan(model, UserQuery(user_id="u000005", k=4)))

    with pytest.raises(ServiceStopping):
        asyncio.run(run())


def test_a_cancelled_caller_marks_its_job_abandoned(model, tmp_path) -> None:
    entered, release = threading.Event(), threading.Event()
    seen: list[list[bool]] = []

    def held(jobs):  # the inference thread holds the batch until the caller has given up
        entered.set()
        release.wait(30)
        seen.append([job.abandoned for job in jobs])
        return execute_batch(jobs)

    retriever = Retriever(ServiceSettings(model_root=tmp_path), ServiceMetrics(), execute=held)
    job = retriever.plan(model, UserQuery(user_id="u000005", k=4))

    async def run() -> None:
        await retriever.start()
        try:
            task = asyncio.create_task(retriever.rank(job))
            await asyncio.to_thread(entered.wait, 30)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            release.set()
        finally:
            await retriever.stop()

    asyncio.run(run())
    assert job.abandoned and seen == [[True]]
