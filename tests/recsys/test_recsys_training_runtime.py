"""A training process hands the memory of a freed tensor back to the system.

TensorFlow's oneDNN CPU allocator (on by default on x86) pools freed tensors and keeps
them resident; ``recsys.prepare_training_runtime`` keeps it off for ``recsys train``.
Each case runs in a fresh interpreter: the setting only counts before TensorFlow is
imported, and this process imported it long ago.
"""

from __future__ import annotations

import os

import recsys
from tests.fresh_interpreter import json_printed_by

_FREE_A_TABLE = """
import gc, json
import psutil
import recsys
recsys.prepare_training_runtime()
import tensorflow as tf
rss = lambda: psutil.Process().memory_info().rss
before = rss()
table = tf.Variable(tf.zeros([1_000_000, 64]))  # 256 MB, as a million users' id table
held = rss()
del table
gc.collect()
print(json.dumps({"held": held - before, "freed": held - rss()}))
"""


def test_a_training_process_returns_a_freed_table_to_the_system() -> None:
    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    found = json_printed_by(_FREE_A_TABLE, env)
    assert found["held"] > 200 * 2**20  # the table was resident
    assert found["freed"] > 0.8 * found["held"]  # and is not once it is gone


def test_an_explicit_onednn_setting_wins(monkeypatch) -> None:
    monkeypatch.setenv("TF_ENABLE_ONEDNN_OPTS", "1")
    recsys.prepare_training_runtime()
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "1"
    monkeypatch.delenv("TF_ENABLE_ONEDNN_OPTS")
    recsys.prepare_training_runtime()
    assert os.environ["TF_ENABLE_ONEDNN_OPTS"] == "0"
