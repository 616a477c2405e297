"""docker-compose.yml's own commands and environment, run as local processes in
compose order: trainer to completion, then api, a few requests, then the
retrain profile, and the api hot-swaps to the new version. The file cannot
drift from the code without this test failing."""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.deploy.deploy_support import compose_service_command

pytestmark = pytest.mark.slow

SMALL = {
    "TRAIN_ITEMS": "300",
    "TRAIN_USERS": "200",
    "TRAIN_INTERACTIONS": "6000",
    "TRAIN_EPOCHS": "2",
    "RECSYS_POLL_INTERVAL_S": "1",
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def local(argv: list[str]) -> list[str]:
    """The image's PATH has `recsys`; here it is beside this interpreter."""
    exe = shutil.which(argv[0]) or str(Path(sys.executable).parent / argv[0])
    return [exe, *argv[1:]]


def run_service(name: str, replace: dict[str, str]) -> subprocess.CompletedProcess:
    argv, env = compose_service_command(name, variables=SMALL, replace=replace)
    return subprocess.run(local(argv), env={**os.environ, **env}, capture_output=True, text=True, timeout=600)


def test_compose_stack_as_local_processes(tmp_path):
    port = free_port()
    replace = {"/models": str(tmp_path / "models"), "0.0.0.0": "127.0.0.1", "8000": str(port)}
    trainer = run_service("trainer", replace)
    assert trainer.returncode == 0, trainer.stderr[-3000:]
    first = (tmp_path / "models" / "LATEST").read_text().strip()

    argv, env = compose_service_command("api", variables=SMALL, replace=replace)
    api = subprocess.Popen(local(argv), env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    base = f"http://127.0.0.1:{port}"
    try:
        with httpx.Client(base_url=base, timeout=10) as client:
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline:
                try:
                    if client.get("/readyz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.5)
            else:
                pytest.fail("api never became ready")
            answer = client.post("/v1/recommendations", json={"user_id": "u000001", "k": 5})
            assert answer.status_code == 200
            assert answer.json()["model_version"] == first and len(answer.json()["items"]) == 5

            retrain = run_service("retrain", replace)
            assert retrain.returncode == 0, retrain.stderr[-3000:]
            second = (tmp_path / "models" / "LATEST").read_text().strip()
            assert int(second) > int(first)
            deadline = time.monotonic() + 120
            seen = first
            while time.monotonic() < deadline and seen != second:
                r = client.post("/v1/recommendations", json={"user_id": "u000001", "k": 5})
                assert r.status_code == 200
                seen = r.headers["x-model-version"]
                time.sleep(0.5)
            assert seen == second, "api did not hot-swap to the retrained version"
    finally:
        api.terminate()
        api.wait(timeout=30)
