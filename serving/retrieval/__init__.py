"""The retrieval path: a request becomes ranked answer items in named steps.

* :mod:`serving.retrieval.plan`: request -> :class:`~serving.retrieval.job.Job`, on the event loop
  (feature, filter and recent-item checks; lookups; raises :class:`~serving.retrieval.errors.InvalidQuery`);
* :mod:`serving.retrieval.execute`: a micro-batch of jobs in the inference thread (query tower,
  index search, the ranking kernel, and the full scan when the index's candidates run short);
* :mod:`serving.retrieval.answers`: answer items on the event loop, one call per batch;
* :mod:`serving.retrieval.retriever`: the facade the routes use (owns the micro-batcher,
  :mod:`serving.retrieval.batcher`).

Beside them: :mod:`~serving.retrieval.job` (``Job``, ``SearchPlan``), :mod:`~serving.retrieval.strategy`
(the ``Strategy`` enum the API schema shares), :mod:`~serving.retrieval.recent` (recent items as the
history input), :mod:`~serving.retrieval.errors`.
"""
