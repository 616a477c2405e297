"""The HTTP API: one router per resource, the dependencies routes get shared objects through, schemas and errors.

* :mod:`serving.api.deps`: ``Annotated[..., Depends()]`` aliases (settings, served version, retriever, ...);
* :mod:`serving.api.schemas` / :mod:`serving.api.requests`: response and request models;
* :mod:`serving.api.errors` / :mod:`serving.api.responses`: the one error shape and the JSON responses;
* :mod:`serving.api.routes`: recommendations, items, users (demo only), model, probes, the demo page.
"""
