"""Packaging holds together: declared dependencies, the lockfiles, docker-compose.yml and the LICENSE."""

from __future__ import annotations

import ast
import importlib.metadata as md
import os
import re
import stat
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("x402", "chains", "risk", "wallets")


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].lower().replace("_", "-")


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def _imports() -> dict[str, set[str]]:
    """Top-level modules imported by the shipped packages, with the files importing them."""
    found: dict[str, set[str]] = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                else:
                    continue
                for name in names:
                    found.setdefault(name.split(".")[0], set()).add(str(path.relative_to(ROOT)))
    return found


def test_every_imported_distribution_is_declared_directly() -> None:
    project = _pyproject()["project"]
    declared = {_name(r) for r in project["dependencies"]}
    devchain = {_name(r) for r in project["optional-dependencies"]["devchain"]}
    otel = {_name(r) for r in project["optional-dependencies"]["otel"]}
    owners = md.packages_distributions()
    missing = []
    for module, files in sorted(_imports().items()):
        if module in PACKAGES or module in sys.stdlib_module_names:
            continue
        dists = {_name(d) for d in owners.get(module, [module])}
        allowed = declared | (devchain if files == {"chains/evm/devchain.py"} else set())
        # the otel extra is imported only by x402/tracing.py, lazily, when OTEL_* asks for trace export
        allowed |= otel if files == {"x402/tracing.py"} else set()
        if not dists & allowed:
            missing.append(f"{module} ({sorted(dists)}) in {sorted(files)[:3]}")
    assert not missing, "imported but not declared in pyproject dependencies:\n" + "\n".join(missing)


def test_web3_is_only_for_the_dev_chain() -> None:
    users = _imports().get("web3", set())
    assert users == {"chains/evm/devchain.py"}, users
    assert "web3" not in {_name(r) for r in _pyproject()["project"]["dependencies"]}
    assert not re.search(r"^web3==", (ROOT / "requirements.lock").read_text(), re.M)
    assert re.search(r"^web3==", (ROOT / "requirements-dev.lock").read_text(), re.M)


def test_lockfiles_pin_every_package_with_hashes() -> None:
    for name in ("requirements.lock", "requirements-dev.lock"):
        text = (ROOT / name).read_text()
        pins = re.findall(r"^([A-Za-z0-9_.-]+)==\S+ \\$", text, re.M)
        assert len(pins) > 20, name
        entries = [e for e in re.split(r"\n(?=[A-Za-z0-9_.-]+==)", text) if re.match(r"[A-Za-z0-9_.-]+==", e)]
        assert all("--hash=sha256:" in e for e in entries), name
        # the lock covers what pyproject declares (regenerate with scripts/lock)
        locked = {_name(p) for p in pins}
        runtime = {_name(r) for r in _pyproject()["project"]["dependencies"] if "win32'" not in r}
        assert runtime <= locked, (name, sorted(runtime - locked))
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "--require-hashes -r requirements.lock" in dockerfile
    assert "--no-deps ." in dockerfile
    assert "--require-hashes -r requirements-dev.lock" in (ROOT / "scripts/bootstrap").read_text()


def _compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return doc


def test_compose_service_has_a_master_key_and_only_files_it_mounts() -> None:
    compose = _compose()
    replicas = [s for s in compose["services"].values() if s.get("command") == ["serve"]]
    assert len(replicas) == 2  # two replicas behind the compose network
    for service in replicas:
        _check_replica(compose, service)


def _check_replica(compose: dict[str, Any], service: dict[str, Any]) -> None:
    env = service["environment"]
    assert env.get("X402_MASTER_KEY") or env.get("X402_MASTER_KEY_FILE")
    mounts = [v.split(":")[1] for v in service.get("volumes", [])]
    secrets = {f"/run/secrets/{s}" for s in service.get("secrets", [])}
    for s in service.get("secrets", []):
        assert s in compose.get("secrets", {}), f"secret {s} is not defined"
    for key, value in env.items():
        if key.endswith("_FILE"):
            assert value in secrets or any(value == m or value.startswith(m.rstrip("/") + "/") for m in mounts), value
    for volume in service.get("volumes", []):
        source = volume.split(":")[0]
        if source.startswith("."):
            assert (ROOT / source).exists(), source
        else:
            assert source in compose["volumes"], source
    deps = service["depends_on"]
    assert deps["keys"]["condition"] == "service_completed_successfully"


def test_compose_keys_step_writes_each_secret_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    script = _compose()["services"]["keys"]["command"][0].replace('"/keys"', repr(str(tmp_path)))
    if os.geteuid() != 0:
        monkeypatch.setattr(os, "chown", lambda *a: None)  # only root may hand files to uid 10402
    exec(compile(script, "docker-compose keys", "exec"), {})
    first = {p.name: p.read_text() for p in tmp_path.iterdir()}
    assert set(first) == {"master.key", "admin.token"}
    assert re.fullmatch(r"[0-9a-f]{64}\n", first["master.key"])
    assert stat.S_IMODE((tmp_path / "master.key").stat().st_mode) == 0o400
    exec(compile(script, "docker-compose keys", "exec"), {})
    assert {p.name: p.read_text() for p in tmp_path.iterdir()} == first


def test_license_is_the_apache_2_text_pyproject_names() -> None:
    assert _pyproject()["project"]["license"] == "Apache-2.0"
    text = (ROOT / "LICENSE").read_text()
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text
