"""deploy/: the alert rules and the dashboard name only metrics the service exports; every Kubernetes manifest
validates against the Kubernetes schemas (offline, kubernetes-validate's bundled schemas); docker-compose.yml is
complete as written. No Docker engine runs on this machine, so the compose file is validated, not started."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import kubernetes_validate
import yaml

from chains.evm.devchain import DEV_TOKEN_ADDRESS
from x402.service.app import create_app
from x402.service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
K8S_VERSION = "1.30.0"
METRIC = re.compile(r"\bx402_[a-z0-9_]+")
SUFFIXES = ("_total", "_bucket", "_sum", "_count", "_created")


async def _exported(aiohttp_client: Any, database_url: str) -> set[str]:
    client = await aiohttp_client(create_app(Settings(database_url=database_url, log_level="warning")))
    r = await client.get("/metrics")
    assert r.status == 200
    names: set[str] = set()
    for line in (await r.text()).splitlines():
        if line.startswith("# HELP "):
            names.add(line.split()[2])
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def _known(name: str, exported: set[str]) -> bool:
    return name in exported or any(name.endswith(s) and name.removesuffix(s) in exported for s in SUFFIXES)


def _alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / "prometheus" / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def _dashboard_exprs() -> list[str]:
    dash = json.loads((DEPLOY / "grafana" / "x402-dashboard.json").read_text())
    return [t["expr"] for p in dash["panels"] for t in p["targets"]]


async def test_alerts_and_dashboard_name_only_exported_metrics(aiohttp_client: Any, database_url: str) -> None:
    exported = await _exported(aiohttp_client, database_url)
    rules = _alert_rules()
    exprs = [str(r["expr"]) for r in rules] + _dashboard_exprs()
    referenced = {m for e in exprs for m in METRIC.findall(e)}
    assert len(referenced) >= 15, referenced
    unknown = sorted(m for m in referenced if not _known(m, exported))
    assert not unknown, unknown
    for rule in rules:
        assert rule["alert"].startswith("X402"), rule
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule
        assert rule["annotations"]["summary"], rule
    # what the issue asks alerts for: gas, pending settlements growing, breaker open, error rate, queue age
    by_metric = {m: r["alert"] for r in rules for m in METRIC.findall(str(r["expr"]))}
    for needed in (
        "x402_signer_balance",
        "x402_settlements_pending",
        "x402_rpc_breaker_open",
        "x402_http_requests_total",
        "x402_record_queue_age_seconds",
        "x402_webhook_queue_age_seconds",
    ):
        assert needed in by_metric, needed


def _manifests() -> list[dict[str, Any]]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


def test_kubernetes_manifests_validate_and_fit_together() -> None:
    docs = _manifests()
    for doc in docs:
        kubernetes_validate.validate(doc, K8S_VERSION, strict=True)  # raises on any schema violation
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        by_kind.setdefault(doc["kind"], []).append(doc)
    [deployment] = by_kind["Deployment"]
    [service] = by_kind["Service"]
    [hpa] = by_kind["HorizontalPodAutoscaler"]
    [job] = by_kind["Job"]
    [secret] = by_kind["Secret"]
    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    pod = spec["template"]["spec"]
    [container] = pod["containers"]
    assert container["args"] == ["serve"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    env = {e["name"]: e for e in container["env"]}
    assert env["X402_MIGRATE_ON_START"]["value"] == "0"  # the Job migrates
    # the grace period outlasts the service's own drain bound
    assert pod["terminationGracePeriodSeconds"] > float(env["X402_SHUTDOWN_TIMEOUT"]["value"])
    secret_keys = set(secret["stringData"])
    for c in (container, job["spec"]["template"]["spec"]["containers"][0]):
        for e in c["env"]:
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["name"] == secret["metadata"]["name"]
                assert ref["key"] in secret_keys, ref
    for key in ("DATABASE_URL", "REDIS_URL", "X402_MASTER_KEY", "X402_EVM_SIGNER_KEY"):
        assert "secretKeyRef" in env[key]["valueFrom"], key
    assert job["spec"]["template"]["spec"]["containers"][0]["args"] == ["migrate"]
    labels = spec["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "x402"}
    assert hpa["spec"]["metrics"][0]["resource"]["name"] == "cpu"
    assert not any(d["kind"] in {"StatefulSet"} for d in docs), "Postgres and Redis are external services"


def test_docker_compose_is_complete_as_written() -> None:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services: dict[str, Any] = doc["services"]
    replicas = [n for n, s in services.items() if s.get("command") == ["serve"]]
    assert len(replicas) == 2, replicas
    assert {"postgres", "redis", "anvil", "devtoken", "keys", "migrate"} <= set(services)
    dockerfile = (ROOT / "Dockerfile").read_text()
    declared_secrets = doc.get("secrets", {})
    declared_volumes = set(doc.get("volumes", {}))
    for name, svc in services.items():
        assert ("image" in svc) != ("build" in svc), name
        build = svc.get("build")
        if isinstance(build, dict) and "target" in build:
            assert f" AS {build['target']}\n" in dockerfile, build
        for dep in svc.get("depends_on", {}):
            assert dep in services, (name, dep)
        for secret in svc.get("secrets", []):
            assert secret in declared_secrets, (name, secret)
        mounts = {"/run/secrets/" + s for s in svc.get("secrets", [])}
        for vol in svc.get("volumes", []):
            source, target = vol.split(":")[:2]
            if source.startswith("."):
                assert (ROOT / source).exists(), source
            else:
                assert source in declared_volumes, (name, source)
            mounts.add(target)
        for key, value in (svc.get("environment") or {}).items():
            if key.endswith("_FILE"):
                assert any(str(value).startswith(m) for m in mounts), (name, key, value)
    for secret in declared_secrets.values():
        assert (ROOT / secret["file"]).is_file(), secret
    for name in replicas:
        env = services[name]["environment"]
        assert env["DATABASE_URL"].split("@")[1].startswith("postgres:")
        assert env["REDIS_URL"].startswith("redis://redis:")
        assert env["X402_MASTER_KEY_FILE"].startswith("/keys/")
        nets = json.loads(env["X402_NETWORKS"])
        assert nets["eip155:31337"]["rpc_urls"] == ["http://anvil:8545"]
        assert nets["eip155:31337"]["assets"][0]["address"] == DEV_TOKEN_ADDRESS
        assert services[name]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    ports = [p.split(":")[0] for n in replicas for p in services[n]["ports"]]
    assert len(set(ports)) == len(ports), "the two replicas publish distinct host ports"
