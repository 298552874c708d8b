"""The deployment files: Kubernetes manifests against the Kubernetes JSON schemas (shipped offline by
kubernetes-validate), the compose file parsed and checked, and the Dockerfile's entrypoint run from a
wheel of the package installed into a fresh virtual environment, as the image does.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
import tomllib
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from loopml.config import parse_settings
from loopml.examples import write_example
from loopml.serve import free_port

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSIONS = ["1.30.0", "1.37.0"]


def _k8s() -> dict[str, dict[str, Any]]:
    """The manifests by kind; those of the online state's Redis (``redis.yaml``) as ``redis/<kind>``."""
    docs = [doc for f in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(f.read_text())]
    return {_key(doc): doc for doc in docs if doc}


def _key(doc: dict[str, Any]) -> str:
    online = doc["metadata"]["labels"].get("app.kubernetes.io/component") == "online-state"
    return f"redis/{doc['kind']}" if online else doc["kind"]


def _dockerfile() -> list[str]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", (DEPLOY / "Dockerfile").read_text())
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _instruction(name: str) -> list[str]:
    return [line[len(name) + 1 :].strip() for line in _dockerfile() if line.upper().startswith(name + " ")]


@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_manifest_is_valid_against_the_kubernetes_schema(version: str) -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    manifests = _k8s()
    assert set(manifests) == {
        "ConfigMap",
        "Secret",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "redis/Service",
        "redis/StatefulSet",
    }
    for kind, doc in manifests.items():
        kubernetes_validate.validate(doc, version, strict=True)  # raises on any error or unknown key
        assert doc["metadata"]["labels"]["app.kubernetes.io/name"] == "loopml", kind


def test_a_broken_manifest_is_refused() -> None:
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    deployment = _k8s()["Deployment"]
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["port"] = [8000]
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)
    typo = json.loads(json.dumps(deployment))
    typo["spec"]["replica"] = 2
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSIONS[-1], strict=True)


def test_the_deployment_probes_config_and_scaling_fit_together() -> None:
    m = _k8s()
    pod = m["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert container["livenessProbe"]["httpGet"]["path"] == "/health/live"
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": 8000}
    assert container["args"][container["args"].index("--port") + 1] == "8000"
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["resources"]["requests"]["cpu"], "the HPA's utilization needs a CPU request"
    refs = {next(iter(r)): r[next(iter(r))]["name"] for r in container["envFrom"]}
    assert refs == {
        "configMapRef": m["ConfigMap"]["metadata"]["name"],
        "secretRef": m["Secret"]["metadata"]["name"],
    }
    assert set(m["Secret"]["stringData"]) == {
        "LOOPML_DB_URL",
        "LOOPML_SERVE__ADMIN_TOKEN",
        "LOOPML_SERVE__METRICS_TOKEN",
    }
    assert not any(key.startswith("LOOPML_DB") or "TOKEN" in key for key in m["ConfigMap"]["data"])
    settings = parse_settings(m["ConfigMap"]["data"]["loopml.yaml"], environ={})  # a valid project file
    assert settings.name == "fraud"
    service = m["Service"]["spec"]
    assert service["selector"].items() <= pod["metadata"]["labels"].items()
    assert service["ports"][0]["targetPort"] == "http"
    target = m["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", m["Deployment"]["metadata"]["name"])


def test_several_replicas_share_the_online_state_in_redis() -> None:
    """With more than one API replica the window features' state must be shared: the config points
    every replica at the Redis of redis.yaml (serve.online_store), which keeps events rather than
    evicting them."""
    m = _k8s()
    replicas = max(m["Deployment"]["spec"]["replicas"], m["HorizontalPodAutoscaler"]["spec"]["minReplicas"])
    assert replicas > 1
    url = m["ConfigMap"]["data"]["LOOPML_ONLINE_URL"]
    settings = parse_settings(m["ConfigMap"]["data"]["loopml.yaml"], environ={"LOOPML_ONLINE_URL": url})
    assert settings.serve.online_store == url
    service, redis = m["redis/Service"], m["redis/StatefulSet"]
    port = service["spec"]["ports"][0]
    assert url == f"redis://{service['metadata']['name']}:{port['port']}/0"
    assert redis["spec"]["serviceName"] == service["metadata"]["name"]
    pod = redis["spec"]["template"]
    assert service["spec"]["selector"].items() <= pod["metadata"]["labels"].items()
    (container,) = pod["spec"]["containers"]
    assert port["targetPort"] in {p["name"] for p in container["ports"]}
    args = container["args"]
    assert args[args.index("--maxmemory-policy") + 1] == "noeviction"
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert any(dep.startswith("redis") for dep in extras["serve"])  # the image's extras hold the client


def test_the_compose_file_wires_api_worker_and_postgres() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert set(services) == {"api", "worker", "db"}
    api, worker, db = services["api"], services["worker"], services["db"]
    assert api["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    assert (DEPLOY / api["build"]["context"] / api["build"]["dockerfile"]).resolve() == DEPLOY / "Dockerfile"
    for service in (api, worker):
        url = service["environment"]["LOOPML_DB_URL"]
        assert url.startswith("postgresql://loopml:") and url.endswith("@db:5432/loopml")
        assert "LOOPML_SERVE__ADMIN_TOKEN" in service["environment"]
        assert service["depends_on"] == {"db": {"condition": "service_healthy"}}
    assert any("/health/live" in part for part in api["healthcheck"]["test"])
    assert api["ports"] == ["8000:8000"]
    assert worker["entrypoint"] == ["loopml", "worker"] and "ports" not in worker
    assert db["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(db["healthcheck"]["test"])
    volume = db["volumes"][0].split(":")[0]
    assert volume in compose["volumes"]
    assert db["environment"]["POSTGRES_USER"] == "loopml" and db["environment"]["POSTGRES_DB"] == "loopml"


def test_the_dockerfile_is_multi_stage_non_root_and_healthchecked() -> None:
    stages = _instruction("FROM")
    assert len(stages) >= 2 and stages[0].endswith(" AS build")
    assert any(line.startswith("COPY --from=build") for line in _dockerfile())
    (user,) = _instruction("USER")
    assert user.split(":")[0] not in {"0", "root"}
    (health,) = _instruction("HEALTHCHECK")
    assert "/health/live" in health and ":8000/" in health
    assert json.loads(_instruction("ENTRYPOINT")[0]) == ["loopml", "serve", "--host", "0.0.0.0"]
    extras = set(re.search(r"\[([a-z0-9,]+)\]", _install_line()).group(1).split(","))  # type: ignore[union-attr]
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert extras <= set(declared) and {"serve", "postgres"} <= extras


def _install_line() -> str:
    return next(line for line in _instruction("RUN") if "pip install" in line and ".whl" in line)


def _entrypoint() -> list[str]:
    return json.loads(_instruction("ENTRYPOINT")[0])


@pytest.mark.slow
def test_the_image_entrypoint_runs_from_a_fresh_venv(tmp_path: Path) -> None:
    """Build the wheel from the files the Dockerfile copies, install it into a new venv, run serve."""
    context = tmp_path / "context"
    context.mkdir()
    for line in _instruction("COPY"):
        if not line.startswith("--"):
            *sources, _ = shlex.split(line)
            for source in sources:
                copy = shutil.copytree if (ROOT / source).is_dir() else shutil.copy2
                copy(ROOT / source, context / source)
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    wheels = tmp_path / "wheels"
    subprocess.run(
        [*pip, "wheel", "--no-deps", "--no-build-isolation", "-w", str(wheels), str(context)], check=True
    )
    (wheel,) = wheels.glob("loopml-*.whl")
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    subprocess.run([*pip, "--python", str(python), "install", "--no-deps", str(wheel)], check=True)
    # The dependencies come from this environment (no download); loopml itself only from the wheel.
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    Path(site, "zz_test_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOOPML_")}
    where = subprocess.run(
        [python, "-c", "import loopml; print(loopml.__file__)"],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    assert where.stdout.startswith(str(venv))

    command = [str(venv / "bin" / _entrypoint()[0]), *_entrypoint()[1:]]
    help_text = subprocess.run([*command, "--help"], capture_output=True, text=True, env=env, timeout=60)
    assert help_text.returncode == 0 and "--project" in help_text.stdout

    project = tmp_path / "project"
    write_example("fraud", project, days=3)
    port = free_port()
    server = subprocess.Popen(
        [*command, "--project", str(project), "--port", str(port)], env=env, stderr=subprocess.PIPE
    )
    try:
        assert _live(f"http://127.0.0.1:{port}/health/live", server), "the server never answered /health/live"
    finally:
        server.terminate()
        server.wait(30)


def _live(url: str, server: subprocess.Popen[bytes]) -> bool:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(
                f"serve exited {server.returncode}: {server.stderr.read().decode() if server.stderr else ''}"
            )
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.2)
    return False
