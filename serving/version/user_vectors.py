"""Known users' query vectors, computed once at load when they fit the budget.

A known user's request then needs no TensorFlow call at all: its vector is a row of
the ``[num_users, dim]`` float32 array :func:`user_vectors` returns (read-only).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from serving.model import LoadedModel
from serving.version.errors import LoadError

DEFAULT_USER_VECTORS_MAX_BYTES = 512 << 20


def user_vectors(model: LoadedModel, max_bytes: int, pause: Callable[[], None], chunk: int = 4096) -> np.ndarray | None:
    """The query tower run over every known user, in chunks of ``chunk`` (``pause`` after each);
    None when ``num_users * dim * 4`` is over ``max_bytes`` (0: never)."""
    n, dim = len(model.users), model.embedding_dim
    if n == 0 or n * dim * 4 > max_bytes:
        return None
    out = np.empty((n, dim), dtype=np.float32)
    try:
        for start in range(0, n, chunk):
            columns = {qi.name: model.user_features[qi.name][start : start + chunk] for qi in model.query_inputs}
            out[start : start + chunk] = model.embed(columns)
            pause()
    except Exception as exc:
        message = f"query model of {model.version} failed on the known users: {type(exc).__name__}: {str(exc)[:300]}"
        raise LoadError("warmup_failed", message, model.version) from exc
    if not np.isfinite(out).all():
        raise LoadError("warmup_failed", "query model returned NaN or infinite embeddings for known users", model.version)
    out.flags.writeable = False
    return out
