"""Fixtures for the serving tests: one tiny trained model for the whole session,
version cloning/corruption helpers, in-process apps and real uvicorn processes."""

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

import recsys  # noqa: F401  (first: TF_USE_LEGACY_KERAS)

REPO = Path(__file__).resolve().parents[2]


def pytest_configure(config: pytest.Config) -> None:
    # starlette 1.x nudges towards httpx2 for its TestClient; httpx is what this project pins.
    config.addinivalue_line("filterwarnings", "ignore:Using `httpx` with `starlette.testclient`")


# --------------------------------------------------------------------------- the trained model


@pytest.fixture(scope="session")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """(model root, version): a tiny storefront model, trained and published once per session."""
    from training.config import TrainConfig
    from training.data.synthetic import generate_storefront
    from training.pipeline import run_pipeline

    root = tmp_path_factory.mktemp("trained_root")
    data = generate_storefront(items=300, users=200, interactions=6000, seed=1)
    result = run_pipeline(data, root, TrainConfig(epochs=2, batch_size=256), publish_version=True, verbose=0)
    assert result.version is not None
    assert (root / "LATEST").read_text().strip() == result.version
    return root, result.version


@pytest.fixture(scope="session")
def base_dir(trained: tuple[Path, str]) -> Path:
    root, version = trained
    return root / version


# --------------------------------------------------------------------------- versions: clone, corrupt, publish


@dataclass
class Versions:
    """A model root of its own, filled with clones of the trained version."""

    root: Path
    base: Path

    def next_name(self) -> str:
        names = [int(p.name) for p in self.root.iterdir() if p.is_dir() and p.name.isdigit()]
        return str(max([int(self.base.name)] + [n + 1 for n in names]))

    def clone(
        self, name: str | None = None, corrupt: Callable[[Path], object] | None = None, *, dirname: str | None = None
    ) -> str:
        """Copy the trained version under a new name (manifest ``version`` rewritten), then apply ``corrupt``."""
        name = name or self.next_name()
        dest = self.root / (dirname or name)
        shutil.copytree(self.base, dest)
        edit_manifest(dest, version=name)
        if corrupt is not None:
            corrupt(dest)
        return name

    def set_latest(self, text: str) -> None:
        from artifact.latest import write_latest

        write_latest(self.root, text)

    def publish_clone(self) -> str:
        """A new good version through training.publish.publish (staging dir, rename, LATEST)."""
        from training.publish import publish

        def write(staging: Path, version: str) -> None:
            shutil.copytree(self.base, staging, dirs_exist_ok=True)
            edit_manifest(staging, version=version)

        return publish(self.root, write, retain=1000)


def edit_manifest(vdir: Path, **changes: object) -> None:
    manifest = json.loads((vdir / "manifest.json").read_text())
    manifest.update(changes)
    (vdir / "manifest.json").write_text(json.dumps(manifest, indent=2))


@pytest.fixture
def versions(tmp_path: Path, base_dir: Path) -> Versions:
    root = tmp_path / "models"
    root.mkdir()
    return Versions(root=root, base=base_dir)


@pytest.fixture(scope="session")
def make_versions(base_dir: Path) -> Callable[[Path], Versions]:
    """``make_versions(root)``: a :class:`Versions` helper on any folder (e.g. a module-scoped one)."""
    return lambda root: Versions(root=Path(root), base=base_dir)


# --------------------------------------------------------------------------- in-process apps


def wait_until(predicate: Callable[[], bool], timeout: float = 60.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


@pytest.fixture(scope="session")
def make_client() -> Iterator[Callable[..., contextlib.AbstractContextManager]]:
    """``with make_client(root, **settings) as client:`` a TestClient with the lifespan running."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import ServiceSettings

    @contextlib.contextmanager
    def make(
        root: Path,
        *,
        wait_ready: bool = True,
        raise_server_exceptions: bool = True,
        execute: Callable[[list[Any]], list[Any]] | None = None,
        **overrides: Any,
    ) -> Iterator[TestClient]:
        """``execute``: the retriever's inference-thread step in place of ``execute_batch`` (a test
        holding, counting or failing it), given to the app's :class:`Retriever` before it starts."""
        from serving.retrieval.retriever import Retriever

        settings = ServiceSettings(model_root=root, **{"poll_interval_s": 0.1, **overrides})
        app = create_app(settings)
        if execute is not None:
            app.state.retriever = Retriever(settings, app.state.metrics, execute=execute)
        with TestClient(app, raise_server_exceptions=raise_server_exceptions) as client:
            if wait_ready:
                assert wait_until(lambda: client.get("/readyz").status_code == 200), client.get("/readyz").json()
            yield client

    yield make


@pytest.fixture(scope="session")
def client(trained: tuple[Path, str], make_client: Callable) -> Iterator:
    """The shared client on the trained root (never modified by any test)."""
    root, _ = trained
    with make_client(root, poll_interval_s=30) as c:
        yield c


# --------------------------------------------------------------------------- ground truth


@dataclass
class Truth:
    version: str
    emb: np.ndarray
    items: pd.DataFrame
    users: pd.DataFrame
    seen: dict[str, set[int]]
    query_inputs: list[dict]
    query_fn: Callable[..., Any]  # the SavedModel's serving signature
    _module: object = None  # the loaded SavedModel, kept alive while query_fn is used

    def query_vector(self, user_id: str | None = None, features: dict | None = None) -> np.ndarray:
        import tensorflow as tf

        row = None
        if user_id is not None:
            match = np.flatnonzero(self.users["user_id"].to_numpy() == user_id)
            row = int(match[0]) if len(match) else None
        tensors = {}
        for qi in self.query_inputs:
            name = qi["name"]
            if features and name in features:
                value = features[name]
            elif row is not None:
                value = self.users[name].iloc[row]
            elif name == "user_id" and user_id is not None:
                value = user_id
            else:
                value = qi["default"]
            dtype = tf.float32 if qi["dtype"] == "float32" else tf.string
            tensors[name] = tf.constant([value], dtype=dtype)
        return self.query_fn(**tensors)["embedding"].numpy()[0]

    def item_row(self, item_id: str) -> int:
        return int(np.flatnonzero(self.items["item_id"].to_numpy() == item_id)[0])


@pytest.fixture(scope="session")
def truth(base_dir: Path) -> Truth:
    import tensorflow as tf

    manifest = json.loads((base_dir / "manifest.json").read_text())
    seen = pd.read_parquet(base_dir / "seen.parquet")
    module = tf.saved_model.load(str(base_dir / "query_model"))
    t = Truth(
        version=manifest["version"],
        emb=np.load(base_dir / "item_embeddings.npy"),
        items=pd.read_parquet(base_dir / "items.parquet"),
        users=pd.read_parquet(base_dir / "users.parquet"),
        seen={u: set(int(r) for r in rows) for u, rows in zip(seen["user_id"], seen["item_rows"], strict=True)},
        query_inputs=manifest["query_inputs"],
        query_fn=module.signatures["serving_default"],
    )
    t._module = module  # keep alive
    return t


# --------------------------------------------------------------------------- real uvicorn processes


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``recsys serve`` in a subprocess on 127.0.0.1 and a free port."""

    def __init__(self, root: Path, log_path: Path, workers: int = 1, **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        environment = {k: v for k, v in os.environ.items() if not k.startswith("RECSYS_")}
        environment.update({"PYTHONPATH": str(REPO), "RECSYS_POLL_INTERVAL_S": "0.2", "RECSYS_LOG_LEVEL": "info", **env})
        self._log = open(log_path, "wb")  # noqa: SIM115  (the server's log, open for the process's life; closed in stop())
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "recsys.cli",
                "serve",
                "--model-root",
                str(root),
                "--port",
                str(self.port),
                "--workers",
                str(workers),
                "--host",
                "127.0.0.1",
            ],
            cwd=str(REPO),
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.url + path, timeout=10, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.post(self.url + path, timeout=10, **kw)

    def wait_ready(self, timeout: float = 120) -> None:
        def ready() -> bool:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                return self.get("/readyz").status_code == 200
            except httpx.HTTPError:
                return False

        assert wait_until(ready, timeout=timeout, interval=0.2), self.log()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self._log.closed:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


@pytest.fixture(scope="session")
def start_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[..., ServerProcess]]:
    """``start_server(root, workers=1, **RECSYS_env)``: a real server, stopped at the end of the session
    (or earlier with ``.stop()``)."""
    logs = tmp_path_factory.mktemp("server_logs")
    started: list[ServerProcess] = []

    def start(root: Path, workers: int = 1, **env: str) -> ServerProcess:
        server = ServerProcess(root, logs / f"server-{len(started)}.log", workers=workers, **env)
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
