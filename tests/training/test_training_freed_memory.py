"""training.freed_memory: free heap pages go back to the system, every few seconds of training."""

import numpy as np
import psutil

import training.freed_memory as freed
from training.freed_memory import ReleaseFreedMemory, release_freed_memory


def test_free_pages_between_live_blocks_go_back_to_the_system() -> None:
    """A heap fragmented as training leaves it (many freed blocks between a few live ones, below
    the size glibc maps on its own) holds its resident size until the trim hands the pages back."""
    process = psutil.Process()
    blocks = [np.ones(100_000 // 8) for _ in range(3000)]  # 100 KB each, 300 MB: from the heap, not mmap
    kept = blocks[::50]  # a live block every 5 MB: the heap's top cannot shrink
    del blocks
    before = process.memory_info().rss
    assert release_freed_memory() is True
    after = process.memory_info().rss
    print(f"resident {before >> 20} MB -> {after >> 20} MB")
    assert before - after > 150 << 20, (before, after)
    assert all(float(b[0]) == 1.0 for b in kept)


def test_the_callback_releases_every_few_seconds_and_at_each_epochs_end(monkeypatch) -> None:
    calls, now = [], [100.0]

    def release() -> bool:
        calls.append(now[0])
        return True

    monkeypatch.setattr(freed, "release_freed_memory", release)
    monkeypatch.setattr(freed.time, "monotonic", lambda: now[0])
    callback = ReleaseFreedMemory(every_s=10.0)
    for step in range(30):  # a step a second
        now[0] = 100.0 + step
        callback.on_train_batch_end(step)
    assert calls == [110.0, 120.0]
    callback.on_epoch_end(0)
    assert calls == [110.0, 120.0, 129.0]
