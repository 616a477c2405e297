"""A trained model keeps what embedding and the export read, not its training state:
the optimizer's slots (twice the tables' memory) are freed when ``train`` returns."""

import weakref

import numpy as np
import tensorflow as tf

from training.config import TrainConfig
from training.data.synthetic import generate_storefront
from training.model import embed
from training.pipeline import default_spec
from training.prepared import prepare
from training.trainer import train


class _TrainingState(tf.keras.callbacks.Callback):
    """Weak references to the optimizer and its slot variables as training ends."""

    def on_train_end(self, logs: dict | None = None) -> None:
        optimizer = self.model.optimizer
        self.slots = [weakref.ref(v) for v in optimizer.variables if "iteration" not in v.name]
        self.optimizer = weakref.ref(optimizer)


def test_train_returns_a_model_without_its_optimizer_slots_that_still_embeds():
    data = generate_storefront(items=200, users=300, interactions=4000, seed=4)
    spec = default_spec(data.source, data, embedding_dim=8)
    prep = prepare(data, spec)
    rows = np.arange(len(prep.user_rows))
    state = _TrainingState()
    result = train(prep, spec, TrainConfig(epochs=1, batch_size=256), fit_rows=rows, verbose=0, extra_callbacks=[state])
    assert len(state.slots) >= 6  # two moments for each table and dense layer at least
    assert state.optimizer() is None
    assert [ref() for ref in state.slots] == [None] * len(state.slots)
    vectors = embed(result.model.candidate_tower, prep.item_inputs)
    assert vectors.shape == (prep.num_items, 8) and np.isfinite(vectors).all()
