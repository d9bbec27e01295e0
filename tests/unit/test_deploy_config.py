"""Deployment files agree with the code: env.example, docker-compose, Kubernetes, the image."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic_settings import BaseSettings
from typer.testing import CliRunner

from services import cli
from services.settings import ServiceSettings
from shared import settings as settings_module
from shared.settings import HttpSettings

ENV_EXAMPLE = Path(__file__).parents[2] / "deploy" / "env.example"


def code_settings() -> set[str]:
    names = set()
    for value in vars(settings_module).values():
        if (
            isinstance(value, type)
            and issubclass(value, BaseSettings)
            and value is not BaseSettings
        ):
            prefix = value.model_config.get("env_prefix", "")
            names |= {f"{prefix}{field}".upper() for field in value.model_fields}
    return names


def documented_settings() -> set[str]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    return {line.split("=", 1)[0] for line in lines if line and not line.startswith("#")}


def test_every_setting_is_documented_in_env_example_and_nothing_else_is() -> None:
    assert documented_settings() == code_settings()


# --- docker-compose, Kubernetes and the image agree with the code ---------------------------

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy"
SERVICES = ("intake", "classifier", "notifier")
CONSUMERS = ("classifier", "notifier")
# Without these a deployed service does not start, or starts with a development default that is
# wrong in a container (loopback listener, SQLite file, local broker).
REQUIRED = {
    "DATABASE_URL",
    "KAFKA_BOOTSTRAP_SERVERS",
    "ESCALATION_ENVIRONMENT",
    "ESCALATION_API_KEY_PEPPER",
    "HTTP_HOST",
}


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEPLOY / "docker-compose.yml").read_text())
    return loaded


def interpolate(value: object) -> str:
    """Compose's ``${VAR:?message}`` and ``${VAR:-default}``, with a sample value for the first."""
    text = str(value)
    text = re.sub(r"\$\{[A-Z_]+:\?[^}]*\}", "s" * 32, text)
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", text)


def settings_from(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ServiceSettings:
    for name in code_settings():
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return ServiceSettings()


def k8s() -> list[dict[str, Any]]:
    return [
        doc
        for path in sorted((DEPLOY / "k8s").glob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text())
        if doc
    ]


def kind(name: str) -> list[dict[str, Any]]:
    return [doc for doc in k8s() if doc["kind"] == name]


def cli_accepts(args: list[str]) -> bool:
    return CliRunner().invoke(cli.app, [*args, "--help"]).exit_code == 0


def test_compose_sets_every_required_setting_and_only_settings_the_code_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    env = {k: interpolate(v) for k, v in compose()["x-escalation"]["environment"].items()}
    assert set(env) <= code_settings(), set(env) - code_settings()
    assert set(env) >= REQUIRED
    settings = settings_from(env, monkeypatch)
    assert settings.app.environment == "production"
    assert settings.database.url.startswith("postgresql+asyncpg://")
    assert settings.http.host == "0.0.0.0"


def test_compose_runs_kraft_kafka_postgres_a_migration_job_and_the_three_services() -> None:
    services = compose()["services"]
    kafka = services["kafka"]
    assert kafka["image"].startswith("apache/kafka:")
    assert "controller" in kafka["environment"]["KAFKA_PROCESS_ROLES"]
    assert not any("ZOOKEEPER" in name for name in kafka["environment"])
    assert services["postgres"]["image"].startswith("postgres:")
    for dependency in ("kafka", "postgres"):
        assert "healthcheck" in services[dependency]
    migrate = " ".join(services["migrate"]["entrypoint"])
    assert "escalation db upgrade" in migrate
    assert "escalation topics create" in migrate
    assert services["migrate"]["depends_on"] == {
        "postgres": {"condition": "service_healthy"},
        "kafka": {"condition": "service_healthy"},
    }
    assert cli_accepts(["db", "upgrade"])
    assert cli_accepts(["topics", "create"])


@pytest.mark.parametrize("name", SERVICES)
def test_each_compose_service_runs_its_command_on_its_port_with_a_health_check(name: str) -> None:
    document = compose()
    service = document["services"][name]
    env = document["x-escalation"]["environment"]
    port = env[f"HTTP_{name.upper()}_PORT"]
    assert service["command"] == ["run", name]
    assert cli_accepts(service["command"])
    assert service["ports"] == [f"{port}:{port}"]
    assert f"127.0.0.1:{port}/readyz" in " ".join(service["healthcheck"]["test"])
    assert service["depends_on"] == {"migrate": {"condition": "service_completed_successfully"}}


def test_kubernetes_config_sets_every_required_setting_and_only_settings_the_code_reads(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    [config] = kind("ConfigMap")
    [secret] = kind("Secret")
    env = {**config["data"], **secret["stringData"]}
    assert set(env) <= code_settings(), set(env) - code_settings()
    assert set(env) >= REQUIRED
    assert {"DATABASE_URL", "ESCALATION_API_KEY_PEPPER"} <= set(secret["stringData"])
    settings = settings_from(env, monkeypatch)
    assert settings.app.environment == "production"
    assert settings.database.url.startswith("postgresql+asyncpg://")


def test_kustomize_lists_every_manifest() -> None:
    [kustomization] = kind("Kustomization")
    files = {p.name for p in (DEPLOY / "k8s").glob("*.yaml")} - {"kustomization.yaml"}
    assert set(kustomization["resources"]) == files


@pytest.mark.parametrize("name", SERVICES)
def test_each_deployment_runs_its_service_with_probes_requests_a_pdb_and_an_hpa(
    name: str,
) -> None:
    [config] = kind("ConfigMap")
    port = int(config["data"][f"HTTP_{name.upper()}_PORT"])
    [deployment] = [d for d in kind("Deployment") if d["metadata"]["name"].endswith(name)]
    spec = deployment["spec"]
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    [container] = pod["containers"]
    assert container["args"] == ["run", name]
    assert cli_accepts(container["args"])
    assert [p["containerPort"] for p in container["ports"]] == [port]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert {
        ref.get("configMapRef", ref.get("secretRef"))["name"] for ref in container["envFrom"]
    } == {
        config["metadata"]["name"],
        kind("Secret")[0]["metadata"]["name"],
    }
    [pdb] = [p for p in kind("PodDisruptionBudget") if p["metadata"]["name"].endswith(name)]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= labels.items()
    [hpa] = [h for h in kind("HorizontalPodAutoscaler") if h["metadata"]["name"].endswith(name)]
    assert hpa["spec"]["scaleTargetRef"]["name"] == deployment["metadata"]["name"]
    assert hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]
    if name in CONSUMERS:
        # A consumer group member beyond the partition count gets no partition.
        assert hpa["spec"]["maxReplicas"] <= int(config["data"]["KAFKA_PARTITIONS"])
    [service] = [s for s in kind("Service") if s["metadata"]["name"].endswith(name)]
    assert service["spec"]["selector"].items() <= labels.items()


def test_the_migration_job_upgrades_the_schema_before_creating_topics() -> None:
    [job] = kind("Job")
    pod = job["spec"]["template"]["spec"]
    steps = [c["args"] for c in pod["initContainers"] + pod["containers"]]
    assert steps == [["db", "upgrade"], ["topics", "create"]]
    assert all(cli_accepts(step) for step in steps)


def test_the_image_is_multi_stage_slim_non_root_and_exposes_the_default_ports() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", dockerfile, flags=re.MULTILINE)
    assert len(stages) >= 2
    assert all("slim" in image for image in stages)
    [user] = re.findall(r"^USER (\S+)", dockerfile, flags=re.MULTILINE)
    assert not user.startswith(("root", "0"))
    defaults = HttpSettings()
    exposed = re.findall(r"^EXPOSE (.+)$", dockerfile, flags=re.MULTILINE)[0].split()
    ports = [defaults.intake_port, defaults.classifier_port, defaults.notifier_port]
    assert exposed == [str(p) for p in ports]
    assert 'ENTRYPOINT ["escalation"]' in dockerfile


def docker_compose_plugin() -> bool:
    if shutil.which("docker") is None:
        return False
    probe = subprocess.run(
        ["docker", "compose", "version"], capture_output=True, timeout=30, check=False
    )
    return probe.returncode == 0


@pytest.mark.skipif(not docker_compose_plugin(), reason="the docker compose plugin is not here")
def test_docker_compose_accepts_the_file() -> None:
    result = subprocess.run(
        ["docker", "compose", "-f", str(DEPLOY / "docker-compose.yml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "ESCALATION_API_KEY_PEPPER": "s" * 32},
        check=False,
    )
    assert result.returncode == 0, result.stderr
