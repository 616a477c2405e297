"""towers.lookup.IdLookup: the rows of Keras's StringLookup, in a table that goes with
the layer (a named table stays in TensorFlow's resource manager until the process exits)."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tests.fresh_interpreter import json_printed_by
from towers.lookup import IdLookup

_BUILD_AND_DROP = """
import gc, json
import numpy as np, psutil
import recsys
recsys.prepare_training_runtime()
import tensorflow as tf
from towers.lookup import IdLookup
from training.freed_memory import release_freed_memory
rss = lambda: psutil.Process().memory_info().rss
vocabulary = np.array([f"user-{i:07d}" for i in range(1_000_000)], dtype=object)
before, held = rss(), []
for _ in range(3):  # as a selection run, a refit, a third model
    layer = IdLookup(vocabulary=vocabulary, num_oov_indices=1, mask_token=None)
    rows = layer(tf.constant(["user-0000001", "user-0999999", "unknown"])).numpy().tolist()
    held.append(rss() - before)
    del layer
    gc.collect()
    release_freed_memory()
print(json.dumps({"rows": rows, "held": held, "left": rss() - before}))
"""


def test_a_dropped_lookup_of_a_million_ids_leaves_nothing_behind() -> None:
    figures = json_printed_by(_BUILD_AND_DROP)
    assert figures["rows"] == [2, 1_000_000, 0]
    one_table = figures["held"][0]
    assert one_table > 50 * 2**20  # a million ids: about 100 MB while held
    # a named table would stay: three of them, about 3 x one_table, after the third was dropped
    assert figures["left"] < 0.5 * one_table, figures


def test_the_rows_are_string_lookups_rows() -> None:
    vocabulary = np.array(["b", "a", "c"], dtype=object)
    words = tf.constant([["a", "zz", ""], ["c", "b", "a"]])
    for mask in (None, ""):
        ours = IdLookup(vocabulary=vocabulary, num_oov_indices=1, mask_token=mask)
        theirs = tf.keras.layers.StringLookup(vocabulary=vocabulary, num_oov_indices=1, mask_token=mask)
        assert ours(words).numpy().tolist() == theirs(words).numpy().tolist()
        assert ours.vocabulary_size() == theirs.vocabulary_size()


def test_a_saved_lookup_loads_with_its_rows(tmp_path) -> None:
    """What the published query SavedModel holds, loaded twice (a hot swap loads each version)."""
    module = tf.Module()
    module.lookup = IdLookup(vocabulary=np.array(["u1", "u2", "u3"], dtype=object), num_oov_indices=1, mask_token=None)
    module.rows = tf.function(module.lookup, input_signature=[tf.TensorSpec([None], tf.string)])
    tf.saved_model.save(module, str(tmp_path / "m"))
    for _ in range(2):
        loaded = tf.saved_model.load(str(tmp_path / "m"))
        assert loaded.rows(tf.constant(["u3", "u1", "x"])).numpy().tolist() == [3, 1, 0]
