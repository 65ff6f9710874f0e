"""Kubernetes manifests of the production profile (deploy/k8s, issue #25 item 7), checked
offline: every resource against the Kubernetes API schemas (kubernetes-validate, strict:
unknown fields are errors), and against the code and docker-compose.yml — every variable a
container gets is one its process reads, every Secret / ConfigMap reference exists, every
scaled tier has a Service, an autoscaler and a disruption budget, probes on the health
endpoints."""

from __future__ import annotations

from typing import Any

import kubernetes_validate  # type: ignore[import-untyped]
import pytest
import yaml

from bot.config import PROJECT_ROOT
from tests.test_deploy import (
    APP_NAMES,
    CONSUMER_NAMES,
    CREDENTIAL_NAMES,
    ENDPOINT_NAMES,
    _environment,
)

K8S = PROJECT_ROOT / "deploy" / "k8s"
# The oldest Kubernetes release the manifests promise to work on (autoscaling/v2 and
# policy/v1 are GA since 1.23 / 1.21) and the newest the validator knows.
VERSIONS = ("1.29.0", "1.37.0")
DOCUMENTS: list[dict[str, Any]] = [
    doc
    for path in sorted(K8S.glob("*.yaml"))
    for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
    if doc
]
BY_KIND: dict[str, dict[str, dict[str, Any]]] = {}
for _doc in DOCUMENTS:
    BY_KIND.setdefault(_doc["kind"], {})[_doc["metadata"]["name"]] = _doc
SCALED = ("web", "rasa", "actions")
# What each container's process reads (as tests/test_deploy.py checks the compose file).
READS = {
    "web": APP_NAMES,
    "actions": APP_NAMES,
    "migrate": APP_NAMES,
    "analytics": APP_NAMES | CONSUMER_NAMES,
    "rasa": ENDPOINT_NAMES | CREDENTIAL_NAMES | {"RASA_TOKEN"},
}


def _name(doc: dict[str, Any]) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("doc", DOCUMENTS, ids=_name)
def test_every_resource_matches_the_kubernetes_schema(doc: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(doc, version, strict=True)


def test_the_validator_rejects_a_wrong_manifest() -> None:
    deployment = yaml.safe_load(yaml.safe_dump(BY_KIND["Deployment"]["web"]))
    deployment["spec"]["replica"] = 2  # misspelt
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)
    deployment = yaml.safe_load(yaml.safe_dump(BY_KIND["Deployment"]["web"]))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, VERSIONS[-1], strict=True)


def _pods() -> dict[str, dict[str, Any]]:
    pods = {n: d["spec"]["template"]["spec"] for n, d in BY_KIND["Deployment"].items()}
    pods.update({n: d["spec"]["template"]["spec"] for n, d in BY_KIND["Job"].items()})
    return pods


def _env_names(container: dict[str, Any]) -> set[str]:
    names = {e["name"] for e in container.get("env", [])}
    for source in container.get("envFrom", []):
        names |= set(BY_KIND["ConfigMap"][source["configMapRef"]["name"]]["data"])
    return names


def test_containers_get_only_variables_their_process_reads_and_references_exist() -> None:
    secret = BY_KIND["Secret"]["shopbot-secrets"]["stringData"]
    for pod_name, pod in _pods().items():
        (container,) = pod["containers"]
        role = container["name"]
        names = _env_names(container)
        assert names <= READS[role], (pod_name, names - READS[role])
        for entry in container.get("env", []):
            reference = entry.get("valueFrom", {})
            if "secretKeyRef" in reference:
                assert reference["secretKeyRef"]["key"] in secret, (pod_name, entry)
            if "configMapKeyRef" in reference:
                ref = reference["configMapKeyRef"]
                assert ref["key"] in BY_KIND["ConfigMap"][ref["name"]]["data"], (pod_name, entry)
        assert container["resources"]["requests"], pod_name
        assert pod["securityContext"]["runAsNonRoot"] is True


def test_the_tiers_get_the_settings_docker_compose_gives_them() -> None:
    pods = _pods()
    web = _env_names(pods["web"]["containers"][0])
    assert web == set(_environment("web-1")), web ^ set(_environment("web-1"))
    rasa = _env_names(pods["rasa"]["containers"][0])
    assert rasa == set(_environment("rasa-1")), rasa ^ set(_environment("rasa-1"))


@pytest.mark.parametrize("tier", SCALED)
def test_every_scaled_tier_has_a_service_an_autoscaler_and_a_disruption_budget(tier: str) -> None:
    deployment = BY_KIND["Deployment"][tier]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    service = BY_KIND["Service"][tier]
    assert service["spec"]["selector"].items() <= labels.items()
    hpa = BY_KIND["HorizontalPodAutoscaler"][tier]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": tier,
    }
    assert hpa["spec"]["minReplicas"] >= 2
    budget = BY_KIND["PodDisruptionBudget"][tier]
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"]["minAvailable"] == 1
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["readinessProbe"] and container["livenessProbe"]


def test_web_probes_the_health_endpoints_and_the_ingress_upgrades_and_sticks() -> None:
    (web,) = BY_KIND["Deployment"]["web"]["spec"]["template"]["spec"]["containers"]
    assert web["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert web["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert web["readinessProbe"]["httpGet"]["path"] == "/readyz"
    ingress = BY_KIND["Ingress"]["shopbot"]
    notes = ingress["metadata"]["annotations"]
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600  # WebSockets
    assert notes["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert "location /metrics { deny all; }" in notes["nginx.ingress.kubernetes.io/server-snippet"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == "web"


def test_migrations_run_as_a_job_and_no_secret_value_is_committed() -> None:
    (job,) = BY_KIND["Job"].values()
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == [
        "python",
        "-m",
        "bot",
        "migrate",
    ]
    values = BY_KIND["Secret"]["shopbot-secrets"]["stringData"].values()
    assert all("REPLACE_ME" in value for value in values)
