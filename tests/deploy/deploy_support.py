"""Helpers for the offline deployment checks in ``tests/deploy/test_deploy_*.py``.

Nothing here needs a container engine, a cluster or the network:

* a small Dockerfile reader (logical lines, stages, exec/shell forms, ENV pairs);
* Docker's ``.dockerignore`` matching rules;
* Compose variable interpolation and :func:`compose_service_command`, which turns
  a ``docker-compose.yml`` service into the ``(argv, env)`` of a local process
  (for smoke tests that run the services' commands without Docker);
* kustomize rendering through a real binary (``kustomize`` or ``kubectl
  kustomize``), Kubernetes ``$(VAR)`` expansion and resource quantities;
* access to the ``recsys`` command line (``recsys.cli``) for checking that the
  commands written in the deployment files parse.

The tests in this folder import it as ``tests.deploy.deploy_support`` (pytest's
``pythonpath`` holds the repository root; ``tests`` is a namespace package, there
is deliberately no ``__init__.py``).
"""

from __future__ import annotations

import contextlib
import http.server
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
COMPOSE_FILE = REPO / "docker-compose.yml"
COMPOSE_SCHEMA = Path(__file__).resolve().parent / "compose_spec.json"
K8S_DIR = REPO / "k8s"
KUSTOMIZATIONS = {
    "base": K8S_DIR / "base",
    "dev": K8S_DIR / "overlays" / "dev",
    "prod": K8S_DIR / "overlays" / "prod",
}
RECSYS_IMAGE = "recsys-two-tower"
# Entrypoints of third-party images used in docker-compose.yml.
KNOWN_IMAGE_ENTRYPOINTS = {"locustio/locust": ["locust"]}


# --------------------------------------------------------------------- Dockerfile


@dataclass
class Instruction:
    keyword: str  # upper case, e.g. "RUN"
    args: str  # everything after the keyword, continuation lines joined
    line: int  # 1-based line of the keyword

    def exec_form(self) -> list[str] | None:
        """The JSON (exec) form's list, or None for the shell form."""
        return parse_exec_form(self.args)


@dataclass
class Stage:
    index: int
    base: str  # after substituting global ARG defaults
    name: str | None
    instructions: list[Instruction] = field(default_factory=list)

    def find(self, keyword: str) -> list[Instruction]:
        return [i for i in self.instructions if i.keyword == keyword]

    def last(self, keyword: str) -> Instruction | None:
        found = self.find(keyword)
        return found[-1] if found else None

    def required(self, keyword: str) -> Instruction:
        """The last ``keyword`` instruction, which this stage must have."""
        found = self.last(keyword)
        assert found is not None, f"stage {self.name or self.index} has no {keyword}"
        return found

    def env(self) -> dict[str, str]:
        """ENV pairs of this stage, in order, values as written (no $VAR substitution)."""
        env: dict[str, str] = {}
        for ins in self.find("ENV"):
            env.update(parse_env_args(ins.args))
        return env


def parse_exec_form(args: str) -> list[str] | None:
    text = args.strip()
    if not text.startswith("["):
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        return None  # Docker treats invalid JSON as shell form
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    return None


def parse_env_args(args: str) -> dict[str, str]:
    """``ENV a=1 b="two words"`` or the legacy ``ENV key value`` form."""
    tokens = shlex.split(args, posix=True)
    if tokens and "=" not in tokens[0]:
        key, _, value = args.strip().partition(" ")
        return {key: value.strip()}
    env = {}
    for token in tokens:
        key, sep, value = token.partition("=")
        if not sep:
            raise ValueError(f"ENV token without '=': {token!r}")
        env[key] = value
    return env


def read_dockerfile(path: Path = DOCKERFILE) -> tuple[list[Instruction], list[Stage]]:
    """Split a Dockerfile into instructions and build stages.

    Handles comments, parser directives, blank lines and backslash continuations
    (comment lines inside a continuation are dropped, as Docker does). Heredocs
    and a custom ``# escape=`` directive are not supported and are rejected.
    """
    instructions: list[Instruction] = []
    pending: list[str] = []
    start = 0
    for number, raw in enumerate(path.read_text().splitlines(), start=1):
        stripped = raw.strip()
        if stripped.startswith("#"):
            if re.match(r"#\s*escape\s*=", stripped) and not instructions:
                raise ValueError("custom escape directives are not supported")
            continue
        if not stripped:  # blank lines never end an instruction (Docker skips them)
            continue
        if not pending:
            start = number
        if stripped.endswith("\\"):
            pending.append(stripped[:-1].strip())
            continue
        pending.append(stripped)
        logical = " ".join(p for p in pending if p)
        pending = []
        keyword, _, args = logical.partition(" ")
        if "<<" in args and re.search(r"<<-?\s*['\"]?[A-Za-z_]", args) and keyword.upper() in {"RUN", "COPY"}:
            raise ValueError(f"line {start}: heredocs are not supported by this reader")
        instructions.append(Instruction(keyword.upper(), args.strip(), start))
    if pending:
        raise ValueError("Dockerfile ends inside a line continuation")

    global_args: dict[str, str] = {}
    stages: list[Stage] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            tokens = [t for t in ins.args.split() if not t.startswith("--")]
            base = re.sub(
                r"\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?",
                lambda m: global_args.get(m.group(1), m.group(0)),
                tokens[0],
            )
            name = tokens[2] if len(tokens) >= 3 and tokens[1].upper() == "AS" else None
            stages.append(Stage(len(stages), base, name))
        elif not stages:
            if ins.keyword != "ARG":
                raise ValueError(f"line {ins.line}: {ins.keyword} before the first FROM")
            key, _, value = ins.args.partition("=")
            global_args[key.strip()] = value.strip().strip("\"'")
        else:
            stages[-1].instructions.append(ins)
    return instructions, stages


def split_options(args: str) -> tuple[dict[str, str], str]:
    """Leading ``--flag=value`` options of COPY/HEALTHCHECK/RUN, and the rest."""
    options: dict[str, str] = {}
    rest = args.strip()
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        key, _, value = token[2:].partition("=")
        options[key] = value
        rest = rest.strip()
    return options, rest


def copy_sources(ins: Instruction) -> tuple[dict[str, str], list[str], str]:
    """(options, sources, destination) of a COPY/ADD instruction."""
    options, rest = split_options(ins.args)
    parts = parse_exec_form(rest) or shlex.split(rest)
    return options, parts[:-1], parts[-1]


# ----------------------------------------------------------------- .dockerignore


def _glob_to_regex(pattern: str) -> str:
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            if pattern[i : i + 2] == "**":
                if pattern[i : i + 3] == "**/":
                    out.append("(?:.*/)?")
                    i += 3
                else:
                    out.append(".*")
                    i += 2
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 1)
            if end == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                if body.startswith(("!", "^")):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = end
        elif c == "\\" and i + 1 < len(pattern):
            i += 1
            out.append(re.escape(pattern[i]))
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


class DockerIgnore:
    """Docker's .dockerignore rules: patterns are anchored at the context root,
    ``**`` spans directories, ``!`` re-includes, the last matching rule wins, and a
    path is excluded when it or one of its parent directories matches."""

    def __init__(self, text: str):
        self.rules: list[tuple[bool, re.Pattern[str]]] = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            if negate:
                line = line[1:].strip()
            line = os.path.normpath(line).lstrip("/")
            if line == ".":
                continue
            self.rules.append((negate, re.compile(_glob_to_regex(line) + r"\Z")))

    @classmethod
    def from_file(cls, path: Path = DOCKERIGNORE) -> DockerIgnore:
        return cls(path.read_text())

    def excluded(self, relpath: str) -> bool:
        relpath = os.path.normpath(relpath).lstrip("/")
        parts = relpath.split("/")
        candidates = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        result = False
        for negate, regex in self.rules:
            if any(regex.match(c) for c in candidates):
                result = not negate
        return result


# --------------------------------------------------------------------- Compose

_INTERPOLATION = re.compile(
    r"\$(?:(?P<escaped>\$)"
    r"|\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?+])(?P<arg>[^}]*))?\}"
    r"|(?P<named>[A-Za-z_][A-Za-z0-9_]*))"
)


class InterpolationError(ValueError):
    pass


def interpolate(text: str, variables: Mapping[str, str]) -> str:
    """Compose-spec interpolation: ``$$``, ``$VAR``, ``${VAR}``, ``${VAR:-default}``,
    ``${VAR-default}``, ``${VAR:?err}``, ``${VAR?err}``, ``${VAR:+alt}``, ``${VAR+alt}``.
    An unset variable without a default becomes "" (Compose warns)."""

    def substitute(m: re.Match[str]) -> str:
        if m.group("escaped"):
            return "$"
        name = m.group("braced") or m.group("named")
        op, arg = m.group("op"), m.group("arg") or ""
        is_set = name in variables
        value = variables.get(name, "")
        if op is None:
            return value
        empty_counts = op.startswith(":")
        present = is_set and (value != "" or not empty_counts)
        kind = op[-1]
        if kind == "-":
            return value if present else arg
        if kind == "?":
            if not present:
                raise InterpolationError(f"required variable {name} is missing: {arg}")
            return value
        return arg if present else ""  # "+"

    return _INTERPOLATION.sub(substitute, text)


def interpolate_tree(obj: Any, variables: Mapping[str, str]) -> Any:
    if isinstance(obj, str):
        return interpolate(obj, variables)
    if isinstance(obj, list):
        return [interpolate_tree(v, variables) for v in obj]
    if isinstance(obj, dict):
        return {k: interpolate_tree(v, variables) for k, v in obj.items()}
    return obj


def variable_references(obj: Any) -> list[tuple[str, str | None, str]]:
    """Every ``(name, operator, argument)`` interpolation in a compose tree."""
    found: list[tuple[str, str | None, str]] = []
    if isinstance(obj, str):
        for m in _INTERPOLATION.finditer(obj):
            if not m.group("escaped"):
                found.append((m.group("braced") or m.group("named"), m.group("op"), m.group("arg") or ""))
    elif isinstance(obj, list):
        for v in obj:
            found.extend(variable_references(v))
    elif isinstance(obj, dict):
        for v in obj.values():
            found.extend(variable_references(v))
    return found


def load_compose_raw(path: Path = COMPOSE_FILE) -> dict:
    """The compose file as YAML (merge keys ``<<`` resolved), not interpolated."""
    return yaml.safe_load(path.read_text())


def load_compose(path: Path = COMPOSE_FILE, variables: Mapping[str, str] | None = None) -> dict:
    """The compose file interpolated with ``variables`` (default: none set, so
    every ``${VAR:-default}`` takes its default)."""
    return interpolate_tree(load_compose_raw(path), variables or {})


def _environment_dict(environment: Any, variables: Mapping[str, str]) -> dict[str, str]:
    if environment is None:
        return {}
    items: list[tuple[str, Any]]  # (name, value); None: pass the variable through
    if isinstance(environment, dict):
        items = list(environment.items())
    else:
        items = []
        for entry in environment:
            key, sep, value = str(entry).partition("=")
            items.append((key, value if sep else None))
    env = {}
    for key, value in items:
        if value is None:  # "KEY" / "KEY:" alone: passed through from the shell
            if key in variables:
                env[key] = variables[key]
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        env[key] = str(value)
    return env


def _replace_all(text: str, replace: Mapping[str, str]) -> str:
    if not replace:
        return text
    keys = sorted(replace, key=len, reverse=True)
    regex = re.compile("|".join(re.escape(k) for k in keys))
    return regex.sub(lambda m: replace[m.group(0)], text)


def _uses_project_image(service: dict) -> bool:
    if "build" in service:
        return True
    image = str(service.get("image", ""))
    return image.split("/")[-1].split(":")[0] == RECSYS_IMAGE


def compose_service_command(
    service: str,
    *,
    variables: Mapping[str, str] | None = None,
    replace: Mapping[str, str] | None = None,
    compose_file: Path = COMPOSE_FILE,
    dockerfile: Path = DOCKERFILE,
) -> tuple[list[str], dict[str, str]]:
    """What a compose service runs, as ``(argv, env)`` for a local process.

    * ``argv``: the container's entrypoint + command: the service's own
      ``entrypoint``/``command`` if given, else the Dockerfile's ENTRYPOINT/CMD for
      services built from this repository (e.g. ``["recsys", "train", ...]``), or
      the known entrypoint of a third-party image (``locust``).
    * ``env``: what the container adds to the environment: the image's ENV
      (Dockerfile final stage, without PATH, for this repository's image) updated
      with the service's ``environment``. Merge it into ``os.environ`` yourself.
    * ``variables``: the values Compose would interpolate from the shell/.env;
      default: none set, so every ``${VAR:-default}`` takes its default.
    * ``replace``: substring replacements applied to every argv element and env
      value, longest key first, in one pass; use it to map container paths and
      hosts to local ones, e.g. ``{"/models": str(tmp_path), "http://api:8000":
      "http://127.0.0.1:8123"}``.
    """
    variables = dict(variables or {})
    compose = load_compose(compose_file, variables)
    services = compose.get("services") or {}
    if service not in services:
        raise KeyError(f"no service {service!r} in {compose_file.name}: {sorted(services)}")
    spec = services[service]

    image_entrypoint: list[str] | None = None
    image_cmd: list[str] | None = None
    env: dict[str, str] = {}
    if _uses_project_image(spec):
        _, stages = read_dockerfile(dockerfile)
        final = stages[-1]
        entry, cmd = final.last("ENTRYPOINT"), final.last("CMD")
        image_entrypoint = (entry.exec_form() or ["/bin/sh", "-c", entry.args]) if entry else []
        image_cmd = (cmd.exec_form() or ["/bin/sh", "-c", cmd.args]) if cmd else []
        env = {k: v for k, v in final.env().items() if k != "PATH"}
    else:
        image = str(spec.get("image", ""))
        repo = image.rsplit(":", 1)[0] if ":" in image.split("/")[-1] else image
        if repo in KNOWN_IMAGE_ENTRYPOINTS:
            image_entrypoint = list(KNOWN_IMAGE_ENTRYPOINTS[repo])
            image_cmd = []
        elif "entrypoint" not in spec:
            raise ValueError(f"service {service!r}: unknown entrypoint of image {image!r}")

    def as_argv(value: Any) -> list[str]:
        return shlex.split(value) if isinstance(value, str) else [str(v) for v in value]

    if "entrypoint" in spec:
        entrypoint = as_argv(spec["entrypoint"])
        command = as_argv(spec["command"]) if "command" in spec else []
    else:
        entrypoint = image_entrypoint or []
        command = as_argv(spec["command"]) if "command" in spec else list(image_cmd or [])
    env.update(_environment_dict(spec.get("environment"), variables))

    replace = replace or {}
    argv = [_replace_all(a, replace) for a in entrypoint + command]
    env = {k: _replace_all(v, replace) for k, v in env.items()}
    return argv, env


# ------------------------------------------------------------------- Kubernetes


class ToolMissing(RuntimeError):
    """No kustomize-capable binary on this machine."""


def _version_tuple(text: str) -> tuple[int, int] | None:
    m = re.search(r"v?(\d+)\.(\d+)\.\d+", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


MIN_KUSTOMIZE = (5, 0)


def kustomize_command() -> list[str]:
    """The command that renders a kustomization directory (append the directory).

    Order: ``$KUSTOMIZE`` (a path to a kustomize binary), ``kustomize build``, then
    ``kubectl kustomize``; the embedded kustomize must be v5 or newer (the
    manifests use ``labels.includeTemplates``).
    """
    candidates: list[tuple[list[str], list[str]]] = []
    explicit = os.environ.get("KUSTOMIZE")
    if explicit:
        candidates.append(([explicit, "build"], [explicit, "version"]))
    if shutil.which("kustomize"):
        candidates.append((["kustomize", "build"], ["kustomize", "version"]))
    if shutil.which("kubectl"):
        candidates.append((["kubectl", "kustomize"], ["kubectl", "version", "--client", "-o", "json"]))
    problems = []
    for build, version_cmd in candidates:
        try:
            out = subprocess.run(version_cmd, capture_output=True, text=True, timeout=60).stdout
        except (OSError, subprocess.TimeoutExpired) as exc:
            problems.append(f"{version_cmd[0]}: {exc}")
            continue
        if version_cmd[0] == "kubectl":
            try:
                out = json.loads(out).get("kustomizeVersion", "")
            except json.JSONDecodeError:
                out = ""
        version = _version_tuple(out)
        if version and version >= MIN_KUSTOMIZE:
            return build
        problems.append(f"{' '.join(build)}: kustomize version {out.strip() or 'unknown'} < v5")
    raise ToolMissing(
        "no kustomize v5+ found (install kubectl >= 1.27, which embeds it, or a "
        "kustomize v5 binary and set KUSTOMIZE=/path/to/kustomize)" + (": " + "; ".join(problems) if problems else "")
    )


def render_kustomization(directory: Path) -> list[dict]:
    """Run the real kustomize on ``directory``; the rendered documents. Fails on
    an error and on deprecation warnings (e.g. ``patchesStrategicMerge``)."""
    cmd = kustomize_command() + [str(directory)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr}")
    deprecations = [line for line in proc.stderr.splitlines() if "deprecat" in line.lower()]
    assert not deprecations, f"{' '.join(cmd)}: " + "\n".join(deprecations)
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def k8s_expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes' ``$(VAR)`` expansion of command/args: ``$$`` → ``$``, a known
    ``$(VAR)`` → its value, anything else (unknown names, ``$((i + 1))``, lone
    ``$``) left as written (k8s.io/kubernetes third_party/forked/golang/expansion)."""
    out = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end != -1:
                    name = text[i + 2 : end]
                    out.append(env[name] if name in env else text[i : end + 1])
                    i = end + 1
                    continue
                out.append("$(")
                i += 2
                continue
            out.append("$" + nxt)
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)


_QUANTITY = re.compile(r"^([0-9]+(?:\.[0-9]+)?)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei)?$")
_SUFFIX = {
    None: Decimal(1),
    "m": Decimal("0.001"),
    "k": Decimal(10) ** 3,
    "M": Decimal(10) ** 6,
    "G": Decimal(10) ** 9,
    "T": Decimal(10) ** 12,
    "P": Decimal(10) ** 15,
    "E": Decimal(10) ** 18,
    "Ki": Decimal(2) ** 10,
    "Mi": Decimal(2) ** 20,
    "Gi": Decimal(2) ** 30,
    "Ti": Decimal(2) ** 40,
    "Pi": Decimal(2) ** 50,
    "Ei": Decimal(2) ** 60,
}


def parse_quantity(value: Any) -> Decimal:
    """A Kubernetes resource quantity (``500m``, ``2``, ``512Mi``, ``4Gi``) as a number."""
    m = _QUANTITY.match(str(value))
    if not m:
        raise ValueError(f"not a quantity: {value!r}")
    return Decimal(m.group(1)) * _SUFFIX[m.group(2)]


def by_kind(docs: Sequence[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def one(docs: Sequence[dict], kind: str, name: str | None = None) -> dict:
    found = [d for d in by_kind(docs, kind) if name is None or d["metadata"]["name"] == name]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def pod_template(doc: dict) -> dict:
    """The pod template of a Deployment, Job or CronJob."""
    if doc["kind"] == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]
    return doc["spec"]["template"]


def workloads(docs: Sequence[dict]) -> list[dict]:
    return [d for d in docs if d.get("kind") in {"Deployment", "Job", "CronJob", "StatefulSet", "DaemonSet"}]


def container_env(container: dict, docs: Sequence[dict]) -> dict[str, str]:
    """The literal environment a container gets from envFrom ConfigMaps, ``value``
    and ``configMapKeyRef`` entries (other sources are left out)."""
    configmaps = {d["metadata"]["name"]: d.get("data", {}) for d in by_kind(docs, "ConfigMap")}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        if "configMapRef" in source:
            env.update(configmaps[source["configMapRef"]["name"]])
    for entry in container.get("env", []):
        if "value" in entry:
            env[entry["name"]] = k8s_expand(entry["value"], env)
        elif "configMapKeyRef" in entry.get("valueFrom", {}):
            ref = entry["valueFrom"]["configMapKeyRef"]
            env[entry["name"]] = configmaps[ref["name"]][ref["key"]]
    return env


# ------------------------------------------------------------------ probes


class ProbeServer:
    """A local HTTP server answering configured status codes per path (for probes)."""

    def __init__(self) -> None:
        self.status: dict[str, int] = {}
        statuses = self.status

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                code = statuses.get(self.path, 404)
                body = b'{"status": "x"}'
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> ProbeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def run_probe(argv: list[str], env: dict[str, str]) -> int:
    """Run a container probe command locally (``python`` = this interpreter); its exit code."""
    argv = [sys.executable if argv[0] == "python" else argv[0], *argv[1:]]
    return subprocess.run(argv, env={**os.environ, **env}, capture_output=True, timeout=30).returncode


# ---------------------------------------------------------------------- the CLI


class CliNotWritten(Exception):
    """``recsys.cli`` does not exist yet."""


def load_cli():
    """The ``recsys`` command line: ``(app, command)``, where ``app`` is what typer's
    CliRunner invokes and ``command`` the click(-compatible) command or group.

    Raises :class:`CliNotWritten` only when the module ``recsys.cli`` does not
    exist; any other import error propagates (it is a real failure).
    """
    import importlib

    import typer

    try:
        module = importlib.import_module("recsys.cli")
    except ModuleNotFoundError as exc:
        if exc.name == "recsys.cli":
            raise CliNotWritten(str(exc)) from exc
        raise
    candidates = [getattr(module, name, None) for name in ("app", "cli", "main")]
    candidates += list(vars(module).values())
    for value in candidates:
        if isinstance(value, typer.Typer):
            return value, typer.main.get_command(value)
    for value in candidates:  # a plain click command (typer >= 0.2x vendors its own click)
        if callable(getattr(value, "make_context", None)) and hasattr(value, "params"):
            return value, value
    raise AssertionError("recsys.cli exposes no typer.Typer or click.Command (expected `app`)")


def cli_usage_errors() -> tuple[type[BaseException], ...]:
    """The exception types a click parser raises for a bad command line (typer 0.2x
    raises those of its vendored click, older typer those of click)."""
    import typer

    found: list[type[BaseException]] = []
    if hasattr(typer, "TyperException"):
        found.append(typer.TyperException)
    with contextlib.suppress(ImportError):
        import click

        found.append(click.ClickException)
    return tuple(found)


@contextlib.contextmanager
def patched_environ(env: Mapping[str, str]) -> Iterator[None]:
    saved = dict(os.environ)
    os.environ.update(env)
    try:
        yield
    finally:
        os.environ.clear()
        os.environ.update(saved)


def check_recsys_args(args: Sequence[str], env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Check that ``recsys ARGS`` is a valid invocation without running it.

    Runs ``recsys <subcommand> --help`` through typer's CliRunner (must exit 0),
    then parses ARGS with the real click parser (unknown options, bad values and
    missing required parameters raise one of :func:`cli_usage_errors`) under ``env`` (the
    container's environment, for options read from environment variables).
    Returns the parsed parameters of the subcommand.
    """
    from typer.testing import CliRunner

    app, command = load_cli()
    args = list(args)
    assert args, "empty recsys command"
    with patched_environ(env or {}):
        result = CliRunner().invoke(app, [args[0], "--help"], env=dict(env or {}))
        assert result.exit_code == 0, (
            f"`recsys {args[0]} --help` exited {result.exit_code}:\n{result.output}\n{result.exception!r}"
        )
        if callable(getattr(command, "get_command", None)):  # a group of subcommands
            parent = command.context_class(command, info_name="recsys")
            sub = command.get_command(parent, args[0])
            assert sub is not None, f"recsys has no subcommand {args[0]!r}: {command.list_commands(parent)}"
            ctx = sub.make_context(args[0], args[1:], parent=parent)
        else:
            ctx = command.make_context("recsys", args)
        return dict(ctx.params)


# ------------------------------------------------- running a pod's command locally


def run_pod_command(
    container: dict,
    env: Mapping[str, str],
    workdir: Path,
    *,
    timeout: float = 60,
) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Run a container's ``command`` + ``args`` locally, after Kubernetes' ``$(VAR)``
    expansion with ``env``, with a stand-in ``recsys`` first on PATH that records its
    argv and TF_CONFIG instead of training. Returns the process and the record
    (``{"argv": [...], "tf_config": ...}``, or None when ``recsys`` was not run)."""
    record = workdir / "recsys-call.json"
    bindir = workdir / "bin"
    bindir.mkdir(parents=True, exist_ok=True)
    fake = bindir / "recsys"
    fake.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"with open({str(record)!r}, 'w') as f:\n"
        "    json.dump({'argv': sys.argv[1:], 'tf_config': os.environ.get('TF_CONFIG')}, f)\n"
    )
    fake.chmod(0o755)
    command = container.get("command") or ["recsys"]  # no command: the image's ENTRYPOINT
    argv = [k8s_expand(a, env) for a in [*command, *container.get("args", [])]]
    proc_env = {**env, "PATH": f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"}
    proc = subprocess.run(argv, env=proc_env, capture_output=True, text=True, timeout=timeout, cwd=workdir)
    called = json.loads(record.read_text()) if record.exists() else None
    if called is not None and called.get("tf_config"):
        called["tf_config"] = json.loads(called["tf_config"])
    return proc, called
