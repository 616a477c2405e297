"""Single machine or TensorFlow multi-worker training, decided by TF_CONFIG.

TensorFlow's own ``TFConfigClusterResolver`` reads the ``TF_CONFIG`` cluster
description (that is TensorFlow's contract, not a setting of ours). With more
than one worker the trainer runs under ``MultiWorkerMirroredStrategy`` and only
the chief publishes.
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf


@dataclass
class Cluster:
    resolver: tf.distribute.cluster_resolver.ClusterResolver | None
    task_type: str | None
    task_id: int
    num_workers: int

    @property
    def is_distributed(self) -> bool:
        return self.num_workers > 1

    @property
    def is_chief(self) -> bool:
        """The chief publishes: the 'chief' task, or worker 0 when there is none."""
        if not self.is_distributed or self.task_type in (None, "chief"):
            return True
        has_chief = "chief" in (self.resolver.cluster_spec().as_dict() if self.resolver else {})
        return self.task_type == "worker" and self.task_id == 0 and not has_chief

    def strategy(self) -> tf.distribute.Strategy | None:
        """MultiWorkerMirroredStrategy for a cluster; None (the default strategy) otherwise."""
        if not self.is_distributed:
            return None
        return tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=self.resolver)


def cluster_from_environment() -> Cluster:
    resolver = tf.distribute.cluster_resolver.TFConfigClusterResolver()
    spec = resolver.cluster_spec().as_dict()
    workers = sum(len(v) for k, v in spec.items() if k in ("chief", "worker"))
    if workers <= 1:
        return Cluster(resolver=None, task_type=None, task_id=0, num_workers=1)
    return Cluster(resolver=resolver, task_type=resolver.task_type, task_id=int(resolver.task_id or 0), num_workers=workers)
