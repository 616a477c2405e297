"""Offline checks of the Kubernetes manifests in k8s/ (no cluster, no network).

* Rendering: each kustomization (base, overlays/dev, overlays/prod) is built by a
  real kustomize v5 (``kubectl kustomize``, or ``kustomize build``; the tests skip
  with the reason when neither is installed).
* Schemas: every rendered document validates in strict mode (unknown fields are
  errors) against the Kubernetes OpenAPI schemas that the kubernetes-validate
  package ships, for Kubernetes 1.30 and for the newest version it knows.
* Policies: probes, resources, security context, volumes, selectors, names that
  refer to each other, and the multi-worker Job's TF_CONFIG, which is checked by
  running the Job's shell command locally for every worker index.
"""

from __future__ import annotations

import copy
import functools
from pathlib import Path

import kubernetes_validate
import pytest

from tests.deploy.deploy_support import (
    KUSTOMIZATIONS,
    RECSYS_IMAGE,
    ToolMissing,
    by_kind,
    container_env,
    k8s_expand,
    one,
    parse_quantity,
    patched_environ,
    pod_template,
    render_kustomization,
    run_pod_command,
    workloads,
)

K8S_VERSIONS = ["1.30", kubernetes_validate.utils.latest_version()]
KNOWN_SETTINGS = {
    "RECSYS_MODEL_ROOT",
    "RECSYS_POLL_INTERVAL_S",
    "RECSYS_MAX_K",
    "RECSYS_API_KEY",
    "RECSYS_HOST",
    "RECSYS_PORT",
    "RECSYS_WORKERS",
    "RECSYS_DEMO_ENABLED",
}
EXPECTED = {
    ("ServiceAccount", "recsys"),
    ("PersistentVolumeClaim", "recsys-models"),
    ("Deployment", "recsys-api"),
    ("Service", "recsys-api"),
    ("HorizontalPodAutoscaler", "recsys-api"),
    ("PodDisruptionBudget", "recsys-api"),
    ("CronJob", "recsys-retrain"),
    ("CronJob", "recsys-catalog-update"),
    ("Service", "recsys-train-workers"),
    ("Job", "recsys-train-dist"),
}


@functools.cache
def _render(name: str) -> list[dict] | str:
    try:
        return render_kustomization(KUSTOMIZATIONS[name])
    except ToolMissing as exc:
        return str(exc)


def rendered(name: str) -> list[dict]:
    docs = _render(name)
    if isinstance(docs, str):
        pytest.skip(docs)
    return copy.deepcopy(docs)


OVERLAYS = list(KUSTOMIZATIONS)


def api_container(docs: list[dict]) -> dict:
    return pod_template(one(docs, "Deployment", "recsys-api"))["spec"]["containers"][0]


def matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


# ------------------------------------------------------------ helper functions


@pytest.mark.parametrize(
    ("text", "env", "expected"),
    [
        ("--workers $(W)", {"W": "2"}, "--workers 2"),
        ("$(UNKNOWN) stays", {}, "$(UNKNOWN) stays"),
        ("$$(W) is escaped", {"W": "2"}, "$(W) is escaped"),
        ('i=$((i + 1)); echo "$i ${X}"', {"i": "9", "X": "x"}, 'i=$((i + 1)); echo "$i ${X}"'),
        ("trailing $", {}, "trailing $"),
        ("open $(W", {"W": "2"}, "open $(W"),
    ],
)
def test_k8s_expand(text: str, env: dict, expected: str) -> None:
    assert k8s_expand(text, env) == expected


def test_parse_quantity() -> None:
    assert parse_quantity("500m") == parse_quantity("0.5")
    assert parse_quantity("2") > parse_quantity("1500m")
    assert parse_quantity("1Gi") == 1024 * parse_quantity("1Mi")
    assert parse_quantity("1G") < parse_quantity("1Gi")
    with pytest.raises(ValueError):
        parse_quantity("2 cores")


def test_kubernetes_validate_ships_the_schemas_offline() -> None:
    versions = kubernetes_validate.utils.all_versions()
    assert any(v.startswith("1.30") for v in versions), versions


# ------------------------------------------------------- rendering and schemas


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_kustomization_renders_the_expected_objects(overlay: str) -> None:
    docs = rendered(overlay)
    names = {(d["kind"], d["metadata"]["name"]) for d in docs if d["kind"] != "ConfigMap"}
    assert names == EXPECTED
    configmaps = sorted(d["metadata"]["name"].rsplit("-", 1)[0] for d in by_kind(docs, "ConfigMap"))
    assert configmaps == ["recsys-config", "recsys-train"]
    for doc in docs:
        assert doc["metadata"]["labels"]["app.kubernetes.io/part-of"] == "recsys-two-tower"


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_rendered_objects_validate_strictly(overlay: str, version: str) -> None:
    failures = []
    for doc in rendered(overlay):
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            failures.append(f"{doc['kind']}/{doc['metadata']['name']}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            failures.append(exc.message)
    assert not failures, "\n".join(failures)


def test_strict_validation_catches_mistakes() -> None:
    """Guards the check above against a validator that accepts anything."""
    deployment = one(rendered("base"), "Deployment", "recsys-api")
    typo = copy.deepcopy(deployment)
    container = typo["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, "1.30", strict=True)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["replicas"] = "three"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong_type, "1.30", strict=True)


# ------------------------------------------------------------------- the API


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_probes(overlay: str) -> None:
    c = api_container(rendered(overlay))
    port_names = {p["name"] for p in c["ports"]}
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    startup = c["startupProbe"]
    assert startup["httpGet"]["path"] == "/healthz"
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 120, "time to import TF and load a model"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert c[probe]["httpGet"]["port"] in port_names


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_serves_the_model_volume_read_only(overlay: str) -> None:
    docs = rendered(overlay)
    pod = pod_template(one(docs, "Deployment", "recsys-api"))["spec"]
    c = pod["containers"][0]
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    models = volumes[mounts["/models"]["name"]]
    assert mounts["/models"]["readOnly"] is True
    assert models["persistentVolumeClaim"]["readOnly"] is True
    assert models["persistentVolumeClaim"]["claimName"] == "recsys-models"
    env = container_env(c, docs)
    assert env["RECSYS_MODEL_ROOT"] == "/models"
    assert c["args"][:1] == ["serve"]
    args = [k8s_expand(a, env) for a in c["args"]]
    assert dict(zip(args[1::2], args[2::2], strict=False))["--model-root"] == env["RECSYS_MODEL_ROOT"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_settings_configmap_is_used_via_envfrom(overlay: str) -> None:
    docs = rendered(overlay)
    c = api_container(docs)
    refs = [s["configMapRef"]["name"] for s in c["envFrom"]]
    configmaps = {d["metadata"]["name"]: d for d in by_kind(docs, "ConfigMap")}
    assert refs and all(r in configmaps for r in refs), "kustomize rewrote the hashed names"
    settings = configmaps[refs[0]]["data"]
    assert set(settings) <= KNOWN_SETTINGS, set(settings) - KNOWN_SETTINGS
    assert {"RECSYS_MODEL_ROOT", "RECSYS_POLL_INTERVAL_S", "RECSYS_WORKERS"} <= set(settings)
    secret = next(e for e in c["env"] if e["name"] == "RECSYS_API_KEY")
    assert secret["valueFrom"]["secretKeyRef"]["optional"] is True


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_runs_with_the_demo_off(overlay: str) -> None:
    """The demo (a page and routes listing user ids and their histories) is off, explicitly,
    in what the API container gets (ConfigMap and env), and the service reads it so."""
    from serving.settings import ServiceSettings

    docs = rendered(overlay)
    env = container_env(api_container(docs), docs)
    assert env["RECSYS_DEMO_ENABLED"] == "false"
    with patched_environ({k: v for k, v in env.items() if k.startswith("RECSYS_") and k != "RECSYS_API_KEY"}):
        assert ServiceSettings().demo_enabled is False


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_service_hpa_and_pdb_point_at_the_api(overlay: str) -> None:
    docs = rendered(overlay)
    deployment = one(docs, "Deployment", "recsys-api")
    pod_labels = pod_template(deployment)["metadata"]["labels"]
    assert matches(deployment["spec"]["selector"]["matchLabels"], pod_labels)

    service = one(docs, "Service", "recsys-api")
    assert matches(service["spec"]["selector"], pod_labels)
    port_names = {p["name"] for p in api_container(docs)["ports"]}
    assert all(p["targetPort"] in port_names for p in service["spec"]["ports"])

    hpa = one(docs, "HorizontalPodAutoscaler", "recsys-api")
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "recsys-api"}
    metric = hpa["spec"]["metrics"][0]
    assert metric["type"] == "Resource" and metric["resource"]["name"] == "cpu"
    assert 1 <= hpa["spec"]["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]

    pdb = one(docs, "PodDisruptionBudget", "recsys-api")
    assert matches(pdb["spec"]["selector"]["matchLabels"], pod_labels)
    # Other workloads' pods must not be selected by the API's Service.
    for doc in workloads(docs):
        if doc is not deployment:
            assert not matches(service["spec"]["selector"], pod_template(doc)["metadata"]["labels"])


# ------------------------------------------------------------- every workload


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_pod_is_locked_down(overlay: str) -> None:
    docs = rendered(overlay)
    for doc in workloads(docs):
        where = f"{doc['kind']}/{doc['metadata']['name']}"
        pod = pod_template(doc)["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, where
        assert pod["securityContext"]["runAsUser"] == 10001, where
        assert pod["securityContext"]["fsGroup"] == 10001, where
        assert pod["automountServiceAccountToken"] is False, where
        volumes = {v["name"]: v for v in pod["volumes"]}
        for c in pod["containers"]:
            sc = c["securityContext"]
            assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 10001, where
            assert sc["readOnlyRootFilesystem"] is True, where
            assert sc["allowPrivilegeEscalation"] is False, where
            assert sc["capabilities"]["drop"] == ["ALL"], where
            tmp = next(m for m in c["volumeMounts"] if m["mountPath"] == "/tmp")
            assert "emptyDir" in volumes[tmp["name"]], where
            image, _, tag = c["image"].rpartition(":")
            assert image.split("/")[-1] == RECSYS_IMAGE and tag and tag != "latest", (where, c["image"])
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(c["resources"][kind]), (where, kind)
            for res in ("cpu", "memory"):
                assert parse_quantity(c["resources"]["requests"][res]) <= parse_quantity(c["resources"]["limits"][res]), (
                    where,
                    res,
                )
            assert container_env(c, docs)["TF_USE_LEGACY_KERAS"] == "1", where


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_model_volume_is_a_shared_rwx_claim(overlay: str) -> None:
    docs = rendered(overlay)
    pvc = one(docs, "PersistentVolumeClaim", "recsys-models")
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    claims = {d["metadata"]["name"] for d in by_kind(docs, "PersistentVolumeClaim")}
    for doc in workloads(docs):
        for volume in pod_template(doc)["spec"]["volumes"]:
            if "persistentVolumeClaim" in volume:
                assert volume["persistentVolumeClaim"]["claimName"] in claims


# ------------------------------------------------------------------- training


def trainer_writes_models(pod: dict, container: dict) -> None:
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == "/models")
    assert not mount.get("readOnly", False)
    volume = next(v for v in pod["volumes"] if v["name"] == mount["name"])
    assert volume["persistentVolumeClaim"]["claimName"] == "recsys-models"
    assert not volume["persistentVolumeClaim"].get("readOnly", False)


CRONJOBS = {  # name -> the command its pod runs
    "recsys-retrain": ["train", "--data", "synthetic", "--model-root", "/models"],
    "recsys-catalog-update": ["update-catalog", "--model-root", "/models", "--items", "/models/incoming/items.parquet"],
}


@pytest.mark.parametrize("name", sorted(CRONJOBS))
@pytest.mark.parametrize("overlay", OVERLAYS)
def test_cronjobs_publish_into_the_model_root(overlay: str, name: str, tmp_path: Path) -> None:
    """The retraining and the daily catalog update: never two at once, writing the shared model root."""
    docs = rendered(overlay)
    cron = one(docs, "CronJob", name)
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    pod = pod_template(cron)["spec"]
    assert pod["restartPolicy"] in {"Never", "OnFailure"}
    container = pod["containers"][0]
    trainer_writes_models(pod, container)
    proc, called = run_pod_command(container, container_env(container, docs), tmp_path)
    assert proc.returncode == 0 and called is not None, proc.stderr
    assert called["argv"] == CRONJOBS[name]
    assert called["tf_config"] is None


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_multi_worker_job_shape(overlay: str) -> None:
    docs = rendered(overlay)
    job = one(docs, "Job", "recsys-train-dist")
    spec = job["spec"]
    assert spec["completionMode"] == "Indexed"
    assert spec["completions"] == spec["parallelism"] == 2
    pod = pod_template(job)["spec"]
    container = pod["containers"][0]
    trainer_writes_models(pod, container)
    env = {e["name"]: e for e in container["env"]}
    assert int(env["NUM_WORKERS"]["value"]) == spec["completions"]
    assert env["JOB_NAME"]["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.labels['batch.kubernetes.io/job-name']"

    service = one(docs, "Service", pod["subdomain"])
    assert service["spec"]["clusterIP"] == "None", "headless"
    assert env["WORKER_SERVICE"]["value"] == service["metadata"]["name"]
    assert matches(service["spec"]["selector"], pod_template(job)["metadata"]["labels"])
    port = int(env["WORKER_PORT"]["value"])
    assert [p["port"] for p in service["spec"]["ports"]] == [port]
    assert [p["containerPort"] for p in container["ports"]] == [port]


def worker_env(docs: list[dict], index: int) -> tuple[dict, dict[str, str]]:
    """What the kubelet would give worker ``index``: literal env, ConfigMap values,
    JOB_NAME from the job-name label (= the Job's name), JOB_COMPLETION_INDEX."""
    job = one(docs, "Job", "recsys-train-dist")
    container = pod_template(job)["spec"]["containers"][0]
    env = container_env(container, docs)
    env["JOB_NAME"] = job["metadata"]["name"]
    env["JOB_COMPLETION_INDEX"] = str(index)
    return container, env


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_multi_worker_job_derives_tf_config_from_the_pod_index(overlay: str, tmp_path: Path) -> None:
    docs = rendered(overlay)
    job = one(docs, "Job", "recsys-train-dist")
    n = job["spec"]["completions"]
    subdomain = pod_template(job)["spec"]["subdomain"]
    port = one(docs, "Service", subdomain)["spec"]["ports"][0]["port"]
    hosts = [f"recsys-train-dist-{i}.{subdomain}:{port}" for i in range(n)]
    for index in range(n):
        container, env = worker_env(docs, index)
        proc, called = run_pod_command(container, env, tmp_path / str(index))
        assert proc.returncode == 0 and called is not None, proc.stderr
        assert called["tf_config"] == {"cluster": {"worker": hosts}, "task": {"type": "worker", "index": index}}
        assert called["argv"] == ["train", "--data", "synthetic", "--model-root", "/models"]


def test_multi_worker_job_command_fails_without_a_pod_index(tmp_path: Path) -> None:
    docs = rendered("base")
    container, env = worker_env(docs, 0)
    del env["JOB_COMPLETION_INDEX"]
    proc, called = run_pod_command(container, env, tmp_path)
    assert proc.returncode != 0 and called is None
    assert "JOB_COMPLETION_INDEX" in proc.stderr


# -------------------------------------------------------------------- overlays


def api_resources(overlay: str) -> dict:
    return api_container(rendered(overlay))["resources"]


def test_dev_overlay_is_one_small_replica() -> None:
    docs = rendered("dev")
    assert one(docs, "Deployment", "recsys-api")["spec"]["replicas"] == 1
    hpa = one(docs, "HorizontalPodAutoscaler", "recsys-api")["spec"]
    assert hpa["minReplicas"] == 1 and hpa["maxReplicas"] <= 2
    dev, base = api_resources("dev"), api_resources("base")
    for kind in ("requests", "limits"):
        for res in ("cpu", "memory"):
            assert parse_quantity(dev[kind][res]) <= parse_quantity(base[kind][res])


def test_prod_overlay_is_three_to_ten_bigger_replicas() -> None:
    docs = rendered("prod")
    assert one(docs, "Deployment", "recsys-api")["spec"]["replicas"] == 3
    hpa = one(docs, "HorizontalPodAutoscaler", "recsys-api")["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 10)
    prod, base = api_resources("prod"), api_resources("base")
    for kind in ("requests", "limits"):
        for res in ("cpu", "memory"):
            assert parse_quantity(prod[kind][res]) > parse_quantity(base[kind][res])
    image = api_container(docs)["image"]
    assert "/" in image.rpartition(":")[0], "prod pulls from a registry"
    # Every pod of an overlay runs the same image (trainer and server).
    assert {c["image"] for d in workloads(docs) for c in pod_template(d)["spec"]["containers"]} == {image}
