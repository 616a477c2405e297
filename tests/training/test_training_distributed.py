"""Two TensorFlow workers on loopback train one model together
(MultiWorkerMirroredStrategy from TF_CONFIG); only the chief publishes."""

import contextlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from artifact.latest import list_versions, read_latest
from training.distribute import cluster_from_environment


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def test_without_tf_config_training_is_single_machine(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    cluster = cluster_from_environment()
    assert not cluster.is_distributed and cluster.is_chief and cluster.strategy() is None


@pytest.mark.parametrize(("index", "chief"), [(0, True), (1, False)])
def test_worker_zero_is_the_chief(monkeypatch, index, chief):
    tf_config = {"cluster": {"worker": ["127.0.0.1:1", "127.0.0.1:2"]}, "task": {"type": "worker", "index": index}}
    monkeypatch.setenv("TF_CONFIG", json.dumps(tf_config))
    cluster = cluster_from_environment()
    assert cluster.is_distributed and cluster.num_workers == 2 and cluster.is_chief is chief


@pytest.mark.slow
def test_two_workers_train_one_model_and_publish_once(tmp_path):
    recsys_bin = shutil.which("recsys") or str(Path(sys.executable).parent / "recsys")
    ports = free_ports(2)
    workers = [f"127.0.0.1:{p}" for p in ports]
    root = tmp_path / "models"
    procs, logs = [], []
    with contextlib.ExitStack() as files:  # the workers' logs, read once they exit
        for index in range(2):
            env = {
                **os.environ,
                "TF_CONFIG": json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}),
            }
            log = files.enter_context(open(tmp_path / f"worker{index}.log", "w+"))
            logs.append(log)
            procs.append(
                subprocess.Popen(
                    [
                        recsys_bin,
                        "train",
                        "--data",
                        "synthetic",
                        "--items",
                        "300",
                        "--users",
                        "200",
                        "--interactions",
                        "6000",
                        "--epochs",
                        "2",
                        "--batch-size",
                        "256",
                        "--model-root",
                        str(root),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    env=env,
                )
            )
        codes = [p.wait(timeout=400) for p in procs]
        outputs = []
        for log in logs:
            log.seek(0)
            outputs.append(log.read())
    assert codes == [0, 0], outputs
    for out in outputs:  # both workers ran the epochs
        assert "Epoch 1/2" in out and "Epoch 2/2" in out
    # one preparation (the chief's), and each worker read its own half of its shards
    shares = [re.search(r"worker (\d) of 2 reads (\d+) of (\d+) shards", " ".join(out.split())) for out in outputs]
    assert all(shares), outputs
    assert [int(m.group(1)) for m in shares] == [0, 1]
    total = int(shares[0].group(3))
    assert total >= 8 and [int(m.group(2)) for m in shares] == [total - total // 2, total // 2]  # shards 0, 2, ... and 1, 3, ...
    assert "waiting for the chief's preparation" in outputs[1] or "using the run's preparation" in outputs[1]
    # raw_decode: TensorFlow may log after the summary at exit (a worker's coordination-service shutdown message)
    summaries = [json.JSONDecoder().raw_decode(out[out.rindex('{\n  "version"') :])[0] for out in outputs]
    assert summaries[0]["version"] is not None and summaries[1]["version"] is None
    assert list_versions(root) == [summaries[0]["version"]] == [read_latest(root)]
    # one model: the workers' synchronised replicas evaluate identically
    assert summaries[0]["evaluation"] == summaries[1]["evaluation"]
