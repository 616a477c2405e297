"""Offline checks of docker-compose.yml (no Docker engine).

* Schema: the file, interpolated the way Compose does, validates against the
  Compose Specification JSON schema vendored in compose_spec.json (from the PyPI
  wheel docker-compose==1.29.2; see its "$comment").
* Semantics: the trainer/api/retrain/loadtest wiring the deployment relies on.
* compose_service_command(): the helper the local smoke test uses.
* The api healthcheck command is run locally against a stub server.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import jsonschema
import pytest

from tests.deploy.deploy_support import (
    COMPOSE_SCHEMA,
    REPO,
    InterpolationError,
    ProbeServer,
    compose_service_command,
    interpolate,
    load_compose,
    load_compose_raw,
    patched_environ,
    run_probe,
    variable_references,
)

SCHEMA = json.loads(COMPOSE_SCHEMA.read_text())
VALIDATOR_CLS = jsonschema.validators.validator_for(SCHEMA)
EXAMPLE_VARIABLES = {
    "TRAIN_DATA": "movielens:/data/ml-100k",
    "TRAIN_DATA_DIR": "../shared/data",
    "API_PORT": "18000",
    "API_WORKERS": "2",
    "LOCUST_USERS": "20",
    "LOCUST_RUN_TIME": "30s",
}


def schema_errors(document: dict) -> list[str]:
    validator = VALIDATOR_CLS(SCHEMA)
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.absolute_path)))
    ]


# ------------------------------------------------------------------ the schema


def test_vendored_schema_is_the_compose_spec() -> None:
    VALIDATOR_CLS.check_schema(SCHEMA)
    assert SCHEMA["$schema"].startswith("http://json-schema.org/draft/2019-09")
    assert {"services", "volumes", "networks"} <= set(SCHEMA["properties"])
    assert SCHEMA["definitions"]["service"]["additionalProperties"] is False


@pytest.mark.parametrize("variables", [{}, EXAMPLE_VARIABLES], ids=["defaults", "example-env"])
def test_compose_file_validates_against_the_compose_spec(variables: dict) -> None:
    assert schema_errors(load_compose(variables=variables)) == []


def test_schema_validation_catches_mistakes() -> None:
    """Guards the check above against a schema that accepts anything."""
    good = load_compose()
    typo = copy.deepcopy(good)
    typo["services"]["api"]["healtcheck"] = typo["services"]["api"].pop("healthcheck")
    assert any("healtcheck" in e for e in schema_errors(typo))
    bad_condition = copy.deepcopy(good)
    bad_condition["services"]["api"]["depends_on"]["trainer"]["condition"] = "service_finished"
    assert schema_errors(bad_condition)


def test_every_variable_has_a_default() -> None:
    """`docker compose config` / `up` work with an empty environment."""
    missing = [name for name, op, _ in variable_references(load_compose_raw()) if op not in (":-", "-")]
    assert not missing, f"variables without a default: {missing}"


# --------------------------------------------------------------- interpolation


@pytest.mark.parametrize(
    ("text", "variables", "expected"),
    [
        ("${A:-x}", {}, "x"),
        ("${A:-x}", {"A": ""}, "x"),
        ("${A-x}", {"A": ""}, ""),
        ("${A-x}", {}, "x"),
        ("${A:-x}", {"A": "y"}, "y"),
        ("$A/${B}", {"A": "1", "B": "2"}, "1/2"),
        ("$$A and $${B}", {"A": "1"}, "$A and ${B}"),
        ("${A:+set}|${B+set}", {"A": "1", "B": ""}, "set|set"),
        ("${A}", {}, ""),
        ("port ${P:-8000}:8000", {}, "port 8000:8000"),
    ],
)
def test_interpolation(text: str, variables: dict, expected: str) -> None:
    assert interpolate(text, variables) == expected


def test_interpolation_required_variable() -> None:
    with pytest.raises(InterpolationError, match="need it"):
        interpolate("${A:?need it}", {})
    assert interpolate("${A?need it}", {"A": ""}) == ""


# ----------------------------------------------------------- service semantics


SERVICES = load_compose()["services"]


def test_trainer_is_a_one_shot_synthetic_training_into_the_models_volume() -> None:
    trainer = SERVICES["trainer"]
    argv, env = compose_service_command("trainer")
    assert argv == ["recsys", "train", "--data", "synthetic", "--model-root", "/models"]
    assert env["TF_USE_LEGACY_KERAS"] == "1"
    assert "models:/models" in trainer["volumes"]
    assert "./data:/data:ro" in trainer["volumes"], "optional data dir, read-only"
    assert trainer["restart"] == "no"
    assert trainer["healthcheck"] == {"disable": True}
    assert "profiles" not in trainer
    argv, _ = compose_service_command("trainer", variables={"TRAIN_DATA": "movielens:/data/ml-100k"})
    assert argv[argv.index("--data") + 1] == "movielens:/data/ml-100k"


def test_api_waits_for_the_trainer_and_serves_the_volume_read_only() -> None:
    api = SERVICES["api"]
    assert api["depends_on"] == {"trainer": {"condition": "service_completed_successfully"}}
    argv, env = compose_service_command("api")
    assert argv[:2] == ["recsys", "serve"]
    opts = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert opts == {"--model-root": "/models", "--host": "0.0.0.0", "--port": "8000", "--workers": "1"}
    assert env["RECSYS_MODEL_ROOT"] == "/models"
    assert api["volumes"] == ["models:/models:ro"]
    assert "/readyz" in " ".join(api["healthcheck"]["test"])
    limits = api["deploy"]["resources"]["limits"]
    assert float(limits["cpus"]) > 0 and limits["memory"]
    assert "profiles" not in api


@pytest.mark.parametrize("variables", [{}, EXAMPLE_VARIABLES], ids=["defaults", "example-env"])
def test_api_is_published_on_loopback_only_with_the_demo_off(variables: dict) -> None:
    """The host port is bound to 127.0.0.1 (a short "8000:8000" binds every interface),
    and the demo, whose routes list user ids and their histories, is off explicitly."""
    api = load_compose(variables=variables)["services"]["api"]
    port = variables.get("API_PORT", "8000")
    assert api["ports"] == [f"127.0.0.1:{port}:8000"]
    for entry in api["ports"]:
        host_ip, host_port, container_port = entry.split(":")
        assert host_ip == "127.0.0.1" and host_port == port and container_port == "8000"
    _, env = compose_service_command("api", variables=variables)
    assert env["RECSYS_DEMO_ENABLED"] == "false"

    from serving.settings import ServiceSettings

    with patched_environ({k: v for k, v in env.items() if k.startswith("RECSYS_")}):
        assert ServiceSettings().demo_enabled is False  # what the service makes of the environment
    assert ServiceSettings().demo_enabled is False  # and without it


def test_api_healthcheck_really_probes_readyz() -> None:
    test = SERVICES["api"]["healthcheck"]["test"]
    assert test[0] == "CMD"
    with ProbeServer() as server:
        argv = [a.replace("127.0.0.1:8000", f"127.0.0.1:{server.port}") for a in test[1:]]
        server.status["/readyz"] = 200
        assert run_probe(argv, {}) == 0
        server.status["/readyz"] = 503  # alive, no model loaded yet
        assert run_probe(argv, {}) != 0


def test_retrain_profile_publishes_into_the_same_volume() -> None:
    retrain = SERVICES["retrain"]
    assert retrain["profiles"] == ["retrain"]
    assert compose_service_command("retrain") == compose_service_command("trainer")
    assert "models:/models" in retrain["volumes"], "read-write: it publishes a new version"
    assert "depends_on" not in retrain


def test_catalog_update_profile_publishes_into_the_same_volume() -> None:
    service = SERVICES["catalog-update"]
    assert service["profiles"] == ["catalog-update"]
    argv, env = compose_service_command("catalog-update")
    assert argv == ["recsys", "update-catalog", "--model-root", "/models", "--items", "/data/items.csv"]
    assert env["RECSYS_MODEL_ROOT"] == "/models"
    assert "models:/models" in service["volumes"], "read-write: it publishes a new version"
    assert any(v.endswith(":/data:ro") for v in service["volumes"]), "the item table is read from the data folder"
    assert "depends_on" not in service


def test_loadtest_profile_runs_bounded_headless_locust_against_the_api() -> None:
    loadtest = SERVICES["loadtest"]
    assert loadtest["profiles"] == ["loadtest"]
    assert loadtest["depends_on"] == {"api": {"condition": "service_healthy"}}
    argv, _ = compose_service_command("loadtest")
    assert argv[0] == "locust" and "--headless" in argv
    opts = {a: argv[i + 1] for i, a in enumerate(argv[:-1]) if a.startswith("-")}
    assert opts["--host"] == "http://api:8000"
    assert 0 < int(opts["--users"]) <= 1000
    assert 0 < int(opts["--spawn-rate"]) <= int(opts["--users"])
    assert opts["--run-time"] == "60s"
    # the api lists no user ids (demo off): the known users are given
    user_ids = opts["--user-ids"].split(",")
    assert len(user_ids) >= 5 and all(u.startswith("u") and len(u) == 7 for u in user_ids)
    # The locustfile path inside the container maps to benchmarks/locustfile.py.
    container_path = opts["-f"]
    host_path = None
    for volume in loadtest["volumes"]:
        source, target, *_ = volume.split(":")
        if container_path.startswith(target.rstrip("/") + "/"):
            host_path = (REPO / source / container_path[len(target) + 1 :]).resolve()
    assert host_path == (REPO / "benchmarks" / "locustfile.py").resolve()
    assert loadtest["volumes"][0].endswith(":ro")


def test_named_models_volume() -> None:
    assert "models" in load_compose()["volumes"]


# ------------------------------------------------------ compose_service_command


def test_compose_service_command_maps_paths_and_merges_environment(tmp_path: Path) -> None:
    argv, env = compose_service_command(
        "api",
        variables={"API_WORKERS": "3", "RECSYS_POLL_INTERVAL_S": "1"},
        replace={"/models": str(tmp_path / "models")},
    )
    assert argv == [
        "recsys",
        "serve",
        "--model-root",
        str(tmp_path / "models"),
        "--host",
        "0.0.0.0",
        "--port",
        "8000",
        "--workers",
        "3",
    ]
    # image ENV (Dockerfile, without PATH) then the service's environment
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["TF_USE_LEGACY_KERAS"] == "1"
    assert env["RECSYS_MODEL_ROOT"] == str(tmp_path / "models")
    assert env["RECSYS_POLL_INTERVAL_S"] == "1"
    assert "PATH" not in env
    assert all(isinstance(v, str) for v in env.values())


def test_compose_service_command_rejects_unknown_services() -> None:
    with pytest.raises(KeyError, match="nosuch"):
        compose_service_command("nosuch")


def test_compose_service_command_on_other_compose_shapes(tmp_path: Path) -> None:
    compose = tmp_path / "compose.yml"
    compose.write_text(
        "services:\n"
        "  a:\n"
        "    build: .\n"
        "  b:\n"
        "    image: busybox\n"
        "    entrypoint: /bin/sh -c\n"
        "    command: ['echo $${HOME}']\n"
        "    environment: [X=1, 'Y=a=b', PASSED]\n"
    )
    argv, env = compose_service_command("a", compose_file=compose)
    assert argv == ["recsys", "serve", "--host", "0.0.0.0", "--port", "8000"]  # image ENTRYPOINT + CMD
    assert env["RECSYS_MODEL_ROOT"] == "/models"
    argv, env = compose_service_command("b", compose_file=compose, variables={"PASSED": "p"})
    assert argv == ["/bin/sh", "-c", "echo ${HOME}"]
    assert env == {"X": "1", "Y": "a=b", "PASSED": "p"}
