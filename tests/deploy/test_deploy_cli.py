"""The commands written in the deployment files are valid ``recsys`` invocations.

Each command (docker-compose.yml services, the Dockerfile's CMD, the Kubernetes
Deployment/CronJob/Job after ``$(VAR)`` expansion) is checked against the real
command line in ``recsys.cli``: ``recsys <subcommand> --help`` through typer's
CliRunner, then a parse of the exact arguments by click (unknown options, bad
values and missing required parameters fail), under the container's environment.

The checks against the real CLI skip only while the module ``recsys.cli`` does
not exist; the same checks run always against a stand-in CLI built from the
documented contract, which tests the checking itself.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Annotated

import pytest
import typer

from tests.deploy.deploy_support import (
    KUSTOMIZATIONS,
    CliNotWritten,
    ToolMissing,
    check_recsys_args,
    cli_usage_errors,
    compose_service_command,
    container_env,
    k8s_expand,
    load_cli,
    one,
    pod_template,
    read_dockerfile,
    render_kustomization,
    run_pod_command,
)


def contract_cli() -> types.ModuleType:
    """A stand-in ``recsys.cli`` with the options docs/CONTRACTS.md and the brief name."""
    app = typer.Typer()

    @app.command()
    def train(
        model_root: Annotated[Path, typer.Option("--model-root", envvar="RECSYS_MODEL_ROOT")],
        data: Annotated[str, typer.Option("--data")] = "synthetic",
        epochs: Annotated[int, typer.Option("--epochs")] = 3,
        seed: Annotated[int, typer.Option("--seed")] = 0,
        items: Annotated[int, typer.Option("--items")] = 1000,
        users: Annotated[int, typer.Option("--users")] = 1000,
        interactions: Annotated[int, typer.Option("--interactions")] = 50000,
    ) -> None:
        raise AssertionError("never run")

    @app.command()
    def serve(
        model_root: Annotated[Path, typer.Option("--model-root", envvar="RECSYS_MODEL_ROOT")],
        host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port")] = 8000,
        workers: Annotated[int, typer.Option("--workers")] = 1,
    ) -> None:
        raise AssertionError("never run")

    @app.command("update-catalog")
    def update_catalog(
        items: Annotated[Path, typer.Option("--items", envvar="RECSYS_CATALOG_ITEMS")],
        model_root: Annotated[Path, typer.Option("--model-root", envvar="RECSYS_MODEL_ROOT")],
        base: Annotated[str | None, typer.Option("--base")] = None,
    ) -> None:
        raise AssertionError("never run")

    module = types.ModuleType("recsys.cli")
    module.__dict__.update(app=app, main=lambda: app())
    return module


# ---------------------------------------------------- the commands to check


def compose_commands() -> list[tuple[str, list[str], dict[str, str]]]:
    out = []
    for service in ("trainer", "retrain", "api", "catalog-update"):
        argv, env = compose_service_command(service)
        assert argv[0] == "recsys", (service, argv)
        out.append((f"compose:{service}", argv[1:], env))
    return out


def dockerfile_command() -> tuple[str, list[str], dict[str, str]]:
    _, stages = read_dockerfile()
    final = stages[-1]
    assert final.required("ENTRYPOINT").exec_form() == ["recsys"]
    env = {k: v for k, v in final.env().items() if k != "PATH"}
    cmd = final.required("CMD").exec_form()
    assert cmd is not None, "the image's CMD in exec (JSON) form"
    return ("Dockerfile:CMD", cmd, env)


def k8s_commands(overlay: str, tmp_path: Path) -> list[tuple[str, list[str], dict[str, str]]]:
    try:
        docs = render_kustomization(KUSTOMIZATIONS[overlay])
    except ToolMissing as exc:
        pytest.skip(str(exc))
    out = []
    api = pod_template(one(docs, "Deployment", "recsys-api"))["spec"]["containers"][0]
    env = container_env(api, docs)
    assert "command" not in api, "the image's ENTRYPOINT (recsys) runs"
    out.append((f"{overlay}:Deployment", [k8s_expand(a, env) for a in api["args"]], env))

    cron = pod_template(one(docs, "CronJob", "recsys-retrain"))["spec"]["containers"][0]
    env = container_env(cron, docs)
    proc, called = run_pod_command(cron, env, tmp_path / "cron")
    assert proc.returncode == 0 and called is not None, proc.stderr
    out.append((f"{overlay}:CronJob", called["argv"], env))

    catalog = pod_template(one(docs, "CronJob", "recsys-catalog-update"))["spec"]["containers"][0]
    env = container_env(catalog, docs)
    proc, called = run_pod_command(catalog, env, tmp_path / "catalog")
    assert proc.returncode == 0 and called is not None, proc.stderr
    out.append((f"{overlay}:CronJob catalog-update", called["argv"], env))

    job = one(docs, "Job", "recsys-train-dist")
    worker = pod_template(job)["spec"]["containers"][0]
    env = container_env(worker, docs)
    env.update(JOB_NAME=job["metadata"]["name"], JOB_COMPLETION_INDEX="0")
    proc, called = run_pod_command(worker, env, tmp_path / "job")
    assert proc.returncode == 0 and called is not None, proc.stderr
    out.append((f"{overlay}:Job", called["argv"], env))
    return out


def check_all(commands: list[tuple[str, list[str], dict[str, str]]], *, stand_in: bool = False) -> None:
    for where, args, env in commands:
        try:
            params = check_recsys_args(args, env)
        except cli_usage_errors() as exc:
            raise AssertionError(f"{where}: `recsys {' '.join(args)}` does not parse: {exc}") from exc
        if stand_in:  # the real CLI may name its parameters or read settings differently
            assert str(params["model_root"]) == "/models", (where, params)


# ------------------------------------------- against the documented contract


@pytest.fixture
def stand_in_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "recsys.cli", contract_cli())


def test_deployment_commands_match_the_documented_cli(stand_in_cli: None) -> None:
    check_all(compose_commands() + [dockerfile_command()], stand_in=True)


@pytest.mark.parametrize("overlay", list(KUSTOMIZATIONS))
def test_k8s_commands_match_the_documented_cli(stand_in_cli: None, overlay: str, tmp_path: Path) -> None:
    check_all(k8s_commands(overlay, tmp_path), stand_in=True)


def test_the_check_rejects_invalid_commands(stand_in_cli: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("RECSYS_MODEL_ROOT", raising=False)
    cases: list[tuple[list[str], dict[str, str], str]] = [
        (["serve", "--model-root", "/models", "--bogus", "1"], {}, "NoSuchOption"),
        (["serve", "--model-root", "/models", "--workers", "$(RECSYS_WORKERS)"], {}, "BadParameter"),
        (["serve"], {}, "MissingParameter"),
    ]
    for args, env, error in cases:
        with pytest.raises(cli_usage_errors()) as caught:
            check_recsys_args(args, env)
        assert caught.type.__name__ == error, (args, caught.value)
    with pytest.raises(AssertionError, match="nosuch"):
        check_recsys_args(["nosuch"])
    assert check_recsys_args(["serve"], env={"RECSYS_MODEL_ROOT": "/m"})["model_root"] == Path("/m")


# ------------------------------------------------------ against the real CLI


@pytest.fixture
def real_cli() -> None:
    try:
        load_cli()
    except CliNotWritten as exc:
        pytest.skip(f"recsys.cli cannot be imported yet ({exc})")


def test_deployment_commands_are_valid_recsys_invocations(real_cli: None) -> None:
    check_all(compose_commands() + [dockerfile_command()])


@pytest.mark.parametrize("overlay", list(KUSTOMIZATIONS))
def test_k8s_commands_are_valid_recsys_invocations(real_cli: None, overlay: str, tmp_path: Path) -> None:
    check_all(k8s_commands(overlay, tmp_path))
