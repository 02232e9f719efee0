"""Settings are read once: one parse rule per variable, and nothing below the service reads the environment."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from risk.build import build_engine
from x402.errors import ConfigError
from x402.service.risk_api import risk_options
from x402.service.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("raw", ["0", "false", "no", "off", "FALSE", " No "])
def test_risk_enabled_false_spellings_all_disable(raw: str) -> None:
    assert load_settings({"X402_RISK_ENABLED": raw}).risk_enabled is False


@pytest.mark.parametrize("raw", ["1", "true", "yes", "on", "True", ""])
def test_risk_enabled_true_spellings_and_default(raw: str) -> None:
    assert load_settings({"X402_RISK_ENABLED": raw}).risk_enabled is True


@pytest.mark.parametrize("raw", ["disable", "nope", "2", "enabled"])
def test_risk_enabled_garbage_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="X402_RISK_ENABLED"):
        load_settings({"X402_RISK_ENABLED": raw})


def test_every_boolean_variable_uses_the_same_rule() -> None:
    for name in ("X402_DEV", "X402_MIGRATE_ON_START", "X402_REQUIRE_API_KEYS", "X402_ALLOW_PRIVATE_OUTBOUND"):
        with pytest.raises(ConfigError, match=name):
            load_settings({name: "maybe"})


def test_risk_knobs_come_from_settings() -> None:
    settings = load_settings(
        {
            "X402_RISK_RULE_TIMEOUT_MS": "40",
            "X402_RISK_CONFIG_TTL": "7",
            "X402_RISK_CHAINALYSIS_KEY": "chainalysis-secret-7",
            "X402_DATA_DIR": "/tmp/x402-risk-opts",
            "X402_DEV_ANVIL_PORT": "9999",
            "X402_ANVIL_BIN": "/opt/anvil",
        }
    )
    opts = risk_options(settings)
    assert (opts.rule_timeout, opts.config_ttl, opts.chainalysis_api_key) == (0.04, 7.0, "chainalysis-secret-7")
    assert opts.data_dir == Path("/tmp/x402-risk-opts")
    assert (settings.dev_anvil_port, settings.anvil_bin) == (9999, "/opt/anvil")
    assert "chainalysis-secret-7" not in repr(settings) + repr(opts)
    with pytest.raises(ConfigError, match="X402_RISK_RULE_TIMEOUT_MS"):
        load_settings({"X402_RISK_RULE_TIMEOUT_MS": "fast"})


async def test_risk_build_ignores_the_environment_after_settings(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    opts = risk_options(load_settings({"X402_DATA_DIR": str(tmp_path)}))
    # set after the settings were read: the engine must not see any of it
    monkeypatch.setenv("X402_RISK_RULE_TIMEOUT_MS", "1")
    monkeypatch.setenv("X402_RISK_CONFIG_TTL", "99")
    monkeypatch.setenv("X402_RISK_CHAINALYSIS_KEY", "from-env")
    engine = await build_engine(opts, None, None)
    try:
        assert engine.rule_timeout == 0.25
        assert engine.config_ttl == 5.0
        assert "screening" not in engine.list_versions
    finally:
        await engine.close()


def _reads_environment(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in {"environ", "getenv", "environb"}:
            hits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
        if (
            isinstance(node, ast.ImportFrom)
            and node.module == "os"
            and {a.name for a in node.names} & {"environ", "getenv"}
        ):
            hits.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return hits


def test_only_settings_and_the_worker_launcher_touch_the_environment() -> None:
    # settings.py parses it; server.py hands the parent's environment to ``x402 serve --workers`` children
    allowed = {"x402/service/settings.py", "x402/service/server.py"}
    hits = [
        hit
        for pkg in ("x402", "chains", "risk", "wallets")
        for path in sorted((ROOT / pkg).rglob("*.py"))
        if str(path.relative_to(ROOT)).replace("\\", "/") not in allowed
        for hit in _reads_environment(path)
    ]
    assert hits == []
