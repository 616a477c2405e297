"""Id <-> row lookups for a whole catalog, without a Python object per id.

A dict of a million ``str`` ids costs about 160 MiB and its objects slow every
full garbage collection. :class:`IdIndex` keeps the ids as one Arrow string
array (row -> id, a few bytes per id) and a sorted fixed-width byte copy with
its row order (id -> row by binary search: ``bisect`` for one id, which keeps
the interpreter lock, ``numpy.searchsorted`` for a list). When the
longest id would make that copy large, or an id is empty or ends in a NUL byte
(which fixed-width bytes cannot hold), it falls back to a plain dict.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# sorted fixed-width copy used while it stays under this many bytes; a dict above
MAX_SORTED_BYTES = 256 << 20


class DuplicateIdError(ValueError):
    """The ids are not unique."""


def _fixed_width(arr: pa.Array, width: int, chunk_bytes: int = 8 << 20) -> np.ndarray:
    """The ids' UTF-8 bytes as numpy ``S{width}`` (NUL-padded), straight from Arrow's buffers.

    No Python object per id (``to_numpy`` of a binary column makes a million
    ``bytes`` under the interpreter lock, a stall of the event loop while a new
    version loads); padding goes in slices of about ``chunk_bytes``."""
    arr = pc.cast(arr, pa.large_binary())
    n = len(arr)
    _, offsets_buf, data_buf = arr.buffers()
    offsets = np.frombuffer(offsets_buf, dtype=np.int64, count=n + 1, offset=arr.offset * 8)
    data = np.frombuffer(data_buf, dtype=np.uint8) if data_buf is not None else np.zeros(0, dtype=np.uint8)
    lengths = np.diff(offsets)
    if n and bool((lengths == width).all()):  # every id as long as the longest: the bytes are the array
        return data[offsets[0] : offsets[0] + n * width].view(f"S{width}").copy()
    out = np.zeros((n, width), dtype=np.uint8)
    cols = np.arange(width, dtype=np.int64)
    step = max(1, chunk_bytes // width)
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        inside = cols[None, :] < lengths[lo:hi, None]
        out[lo:hi][inside] = data[(offsets[lo:hi, None] + cols[None, :])[inside]]
    return out.view(f"S{width}").reshape(n)


class IdIndex:
    """Rows ``0..n-1`` named by unique string ids."""

    def __init__(self, ids: Iterable[str] | pa.Array | pa.ChunkedArray, *, max_sorted_bytes: int = MAX_SORTED_BYTES) -> None:
        arr = ids if isinstance(ids, (pa.Array, pa.ChunkedArray)) else pa.array(list(ids), type=pa.large_string())
        if isinstance(arr, pa.ChunkedArray):
            arr = arr.combine_chunks() if arr.num_chunks else pa.array([], type=pa.large_string())
        if not (pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type)):
            arr = pc.cast(arr, pa.large_string())
        if arr.null_count:
            raise ValueError("ids must not be null")
        self._ids: pa.Array = arr
        n = len(arr)
        widths = pc.binary_length(arr)
        width = max(1, int(pc.max(widths).as_py() or 0)) if n else 1
        # fixed-width bytes cannot tell "" or a trailing NUL from padding: those catalogs use the dict
        awkward = n > 0 and (int(pc.min(widths).as_py()) == 0 or bool(pc.any(pc.ends_with(arr, "\x00")).as_py()))
        self._dict: dict[str, int] | None = None
        self._sorted: np.ndarray | None = None
        self._order: np.ndarray | None = None
        self._inverse: np.ndarray | None = None
        if width * n > max_sorted_bytes or awkward:
            table = {v: i for i, v in enumerate(arr.to_pylist())}
            if len(table) != n:
                raise DuplicateIdError("duplicate ids")
            self._dict = table
            return
        raw = _fixed_width(arr, width)
        order = np.argsort(raw, kind="stable")
        ordered = raw[order]
        if n > 1 and bool(np.any(ordered[1:] == ordered[:-1])):
            raise DuplicateIdError("duplicate ids")
        index_type = np.int32 if n < 2**31 else np.int64
        order = order.astype(index_type)
        inverse = np.empty(n, dtype=index_type)  # row -> position in the sorted copy
        inverse[order] = np.arange(n, dtype=index_type)
        for arr_ in (ordered, order, inverse):
            arr_.flags.writeable = False
        self._sorted, self._order, self._inverse = ordered, order, inverse

    def __len__(self) -> int:
        return len(self._ids)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        """The ids in row order (materialised in chunks)."""
        step = 65_536
        for start in range(0, len(self._ids), step):
            chunk: list[str] = self._ids.slice(start, step).to_pylist()
            yield from chunk

    def _probe(self, key: str) -> bytes | None:
        """``key`` as the sorted copy holds it; None when no id can match (empty, too long, NUL-ended)."""
        assert self._sorted is not None
        probe = key.encode("utf-8", "surrogatepass")
        if not probe or len(probe) > self._sorted.dtype.itemsize or probe.endswith(b"\x00"):
            return None
        return probe

    def get(self, key: str) -> int | None:
        """The row of ``key``, or None."""
        if self._dict is not None:
            return self._dict.get(key)
        assert self._sorted is not None and self._order is not None
        probe = self._probe(key)
        if probe is None:
            return None
        # bisect, not numpy.searchsorted: numpy lets go of the interpreter lock, and on the event
        # loop getting it back from the busy inference thread can cost milliseconds
        pos = bisect.bisect_left(self._sorted, probe)
        if pos < len(self._sorted) and self._sorted[pos] == probe:
            return int(self._order[pos])
        return None

    def rows(self, keys: Sequence[str]) -> np.ndarray:
        """Rows of ``keys`` (int64; -1 for an unknown id), vectorised for long lists."""
        if self._dict is not None:
            return np.asarray([self._dict.get(k, -1) for k in keys], dtype=np.int64)
        assert self._sorted is not None and self._order is not None
        if not len(keys) or not len(self._sorted):
            return np.full(len(keys), -1, dtype=np.int64)
        probes = [self._probe(k) for k in keys]
        wanted = np.asarray([p is not None for p in probes], dtype=bool)
        probe = np.asarray([p or b"" for p in probes], dtype=self._sorted.dtype)
        pos = np.minimum(np.searchsorted(self._sorted, probe), len(self._sorted) - 1)
        hit = wanted & (self._sorted[pos] == probe)
        return np.where(hit, self._order[pos], -1).astype(np.int64)

    def ids(self, rows: np.ndarray | Sequence[int]) -> list[str]:
        """The ids of ``rows``, in order."""
        rows = np.asarray(rows, dtype=np.int64)
        if not len(rows):
            return []
        if self._sorted is not None and self._inverse is not None:
            # numpy and str.decode hold the interpreter lock (Arrow's take lets go of it)
            encoded: list[bytes] = self._sorted[self._inverse[rows]].tolist()
            return [b.decode("utf-8", "surrogatepass") for b in encoded]
        taken: list[str] = self._ids.take(pa.array(rows)).to_pylist()
        return taken
