"""Settings, read once from the environment (and an optional TOML file for networks) into frozen dataclasses."""

from __future__ import annotations

import json
import os
import tomllib
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from chains.config import AssetConfig, ChainOptions, NetworkConfig
from x402 import tracing
from x402.errors import ConfigError

DEFAULT_PORT = 4020


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything the service reads from its environment, once, at start-up."""

    database_url: str | None = None
    redis_url: str | None = None
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    workers: int = 1
    log_level: str = "info"
    log_format: str = "json"
    #: SIGTERM: seconds to let in-flight requests finish after the listener closes (then background work drains)
    shutdown_timeout: float = 20.0
    #: seconds between saturation samples (queue depths, signer balances; /metrics reads the last one)
    saturation_interval: float = 15.0
    #: OpenTelemetry trace export asked for by the standard OTEL_* variables (x402.tracing.wanted)
    otel_traces: bool = False
    public_url: str | None = None
    service_name: str = "x402-service"
    data_dir: Path = field(default_factory=lambda: default_data_dir())
    networks: tuple[NetworkConfig, ...] = ()
    evm_signer_key: str | None = field(default=None, repr=False)
    evm_signer_keys: tuple[str, ...] = field(default=(), repr=False)
    svm_fee_payer_keys: tuple[str, ...] = field(default=(), repr=False)
    svm_smart_wallet: bool = False
    svm_smart_wallet_programs: tuple[str, ...] = ()
    svm_smart_wallet_max_compute_units: int = 0
    svm_smart_wallet_max_price: int = -1
    master_key: str | None = field(default=None, repr=False)
    master_key_file: Path | None = None
    rpc_timeout: float = 5.0
    settle_timeout: float = 30.0
    #: longest a settlement waits for its signer's nonce lane before a 503 ``signer_busy`` (0: no bound)
    signer_wait: float = 10.0
    reconcile_interval: float = 15.0
    analytics_fold_interval: float = 1.0
    settle_stuck_after: float = 120.0
    dead_letter_retry_interval: float = 30.0
    #: days a payment identifier stays bound to its purchase; 0 keeps them forever
    payment_identifier_ttl_days: float = 30.0
    max_header_bytes: int = 16 * 1024
    max_body_bytes: int = 1024 * 1024
    dev: bool = False
    dev_state: Mapping[str, Any] | None = None
    migrate_on_start: bool = True
    allow_private_outbound: bool = False
    registry_probe_interval: float = 300.0
    #: routed calls (POST /v1/call, /v1/proxy/...): upstream time and body limits, the platform fee
    proxy_timeout: float = 30.0
    proxy_max_bytes: int = 1024 * 1024
    platform_fee_bps: int = 0
    platform_fee_overrides: Mapping[str, int] = field(default_factory=dict)
    #: seconds between incremental trust-score passes (0: never in the background)
    trust_interval: float = 60.0
    # False here so apps built in code stay open; load_settings (``x402 serve``) defaults it to True
    require_api_keys: bool = False
    risk_enabled: bool = True
    risk_rule_timeout: float = 0.25
    risk_config_ttl: float = 5.0
    risk_chainalysis_key: str | None = field(default=None, repr=False)
    #: ``x402 serve --dev``: the port wanted for the dev chain, and an explicit anvil binary.
    dev_anvil_port: int = 8545
    anvil_bin: str | None = None
    db_pool_size: int = 10
    #: The dashboard signs a session out after this many seconds without a request.
    dashboard_idle_seconds: float = 1800.0
    #: Row-level security between tenants (migration 0013); off only in code, for the RLS cost benchmark.
    row_security: bool = True
    admin_token: str | None = field(default=None, repr=False)
    tiers_override: Mapping[str, Any] | None = None
    #: Quota warnings by e-mail (all of host, from and to set: on). ``smtp_tls``: none, starttls or tls.
    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_user: str | None = None
    smtp_password: str | None = field(default=None, repr=False)
    smtp_from: str | None = None
    smtp_to: tuple[str, ...] = ()
    smtp_tls: str = "starttls"
    #: Usage events (issue 20): how old an event's timestamp may be when it arrives (seconds).
    usage_late_window: int = 7 * 86400
    #: Seconds between two passes that expire credits past their ``expiresAt`` (0: no pass in this process).
    credit_expiry_interval: float = 60.0
    #: Seconds between two passes that refund credit charges still held past ``credit_hold_timeout`` (0: no pass
    #: in this process).
    credit_hold_interval: float = 60.0
    #: Seconds a paywalled request's credit charge may stay held (burned, not yet answered) before the hold pass
    #: refunds it: longer than any credit-charged route may run.
    credit_hold_timeout: float = 300.0
    #: The credit pack ``POST /v1/credits/{customer}/topup`` sells over x402 (None: no top-up route):
    #: ``{credits, amount, network, asset, payTo, extra?}``.
    credit_pack: Mapping[str, Any] | None = None

    def with_(self, **changes: Any) -> Settings:
        """A copy with some fields replaced."""
        return replace(self, **changes)

    def chain_options(self) -> ChainOptions:
        """The part of the settings chain adapters take."""
        return ChainOptions(
            networks=self.networks,
            evm_signer_key=self.evm_signer_key,
            evm_signer_keys=self.evm_signer_keys,
            svm_fee_payer_keys=self.svm_fee_payer_keys,
            rpc_timeout=self.rpc_timeout,
            svm_smart_wallet=self.svm_smart_wallet,
            svm_smart_wallet_programs=self.svm_smart_wallet_programs,
            svm_smart_wallet_max_compute_units=self.svm_smart_wallet_max_compute_units,
            svm_smart_wallet_max_price=self.svm_smart_wallet_max_price,
        )

    def network(self, network: str) -> NetworkConfig | None:
        """The configured network with this CAIP-2 id, if any."""
        for cfg in self.networks:
            if cfg.network == network:
                return cfg
        return None


def default_data_dir() -> Path:
    """Where the embedded database and other local state live (per user)."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("x402", appauthor=False))


def _read_secret(env: Mapping[str, str], name: str) -> str | None:
    value = env.get(name)
    if value:
        return value.strip()
    path = env.get(f"{name}_FILE")
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"cannot read {name}_FILE: {exc.strerror}") from exc
    return None


def _split_keys(raw: str | None) -> tuple[str, ...]:
    """Comma-separated base58 secret keys; a JSON byte array (solana-keygen file) stays one key."""
    if not raw:
        return ()
    if raw.lstrip().startswith("["):
        return (raw.strip(),)
    return tuple(k.strip() for k in raw.replace("\n", ",").split(",") if k.strip())


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc


_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def _bool(env: Mapping[str, str], name: str, default: bool) -> bool:
    """The one rule for every boolean variable: 1/true/yes/on or 0/false/no/off, anything else refused."""
    raw = env.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ConfigError(f"{name} must be one of 1/true/yes/on or 0/false/no/off, got {raw!r}")


def parse_networks(doc: Mapping[str, Any], source: str) -> tuple[NetworkConfig, ...]:
    """Networks from a decoded config document: ``{"networks": {"eip155:8453": {"rpc_urls": [...]}}}``."""
    from chains.presets import apply_preset  # lazy: chains modules import this one

    raw = doc.get("networks", {})
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{source}: 'networks' must be a table keyed by CAIP-2 id")
    out: list[NetworkConfig] = []
    for key, entry in raw.items():
        if not isinstance(entry, Mapping):
            raise ConfigError(f"{source}: networks.{key} must be a table")
        network = apply_preset(str(key))
        urls = entry.get("rpc_urls") or ([entry["rpc_url"]] if "rpc_url" in entry else [])
        if not urls or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in urls):
            raise ConfigError(f"{source}: networks.{key} needs rpc_urls (http or https URLs)")
        assets = []
        for a in entry.get("assets", []):
            if not isinstance(a, Mapping) or "address" not in a:
                raise ConfigError(f"{source}: networks.{key}.assets entries need an address")
            assets.append(
                AssetConfig(
                    address=str(a["address"]),
                    name=str(a.get("name", "")),
                    version=str(a.get("version", "")),
                    decimals=int(a.get("decimals", 6)),
                    symbol=str(a.get("symbol", "")),
                )
            )
        out.append(
            NetworkConfig(
                network=network,
                rpc_urls=tuple(urls),
                assets=tuple(assets),
                confirmations=int(entry.get("confirmations", 1)),
                eip6492_factories=tuple(entry.get("eip6492_factories", ())),
            )
        )
    return tuple(out)


def load_networks_file(path: Path) -> tuple[NetworkConfig, ...]:
    """Read networks from a TOML or JSON file."""
    try:
        text = path.read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read networks file {path}: {exc.strerror}") from exc
    try:
        doc = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"networks file {path} is not valid: {exc}") from exc
    return parse_networks(doc, str(path))


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Read settings from the environment (``os.environ`` by default)."""
    env = os.environ if env is None else env
    networks: tuple[NetworkConfig, ...] = ()
    nets_file = env.get("X402_NETWORKS_FILE")
    if nets_file:
        networks = load_networks_file(Path(nets_file))
    inline = env.get("X402_NETWORKS")
    if inline:
        try:
            doc = json.loads(inline)
        except ValueError as exc:
            raise ConfigError(f"X402_NETWORKS is not JSON: {exc}") from exc
        networks = networks + parse_networks({"networks": doc}, "X402_NETWORKS")
    dev_state_raw = env.get("X402_DEV_STATE")
    dev_state = json.loads(dev_state_raw) if dev_state_raw else None
    data_dir = Path(env["X402_DATA_DIR"]) if env.get("X402_DATA_DIR") else default_data_dir()
    mkf = env.get("X402_MASTER_KEY_FILE")
    log_format = env.get("X402_LOG_FORMAT", "json")
    if log_format not in {"json", "console"}:
        raise ConfigError("X402_LOG_FORMAT must be json or console")
    hold_timeout = _float(env, "X402_CREDIT_HOLD_TIMEOUT", 300.0)
    if not hold_timeout > 0:
        raise ConfigError("X402_CREDIT_HOLD_TIMEOUT must be a number of seconds above 0")
    return Settings(
        database_url=env.get("DATABASE_URL") or None,
        redis_url=env.get("REDIS_URL") or None,
        host=env.get("X402_HOST", "127.0.0.1"),
        port=_int(env, "X402_PORT", DEFAULT_PORT),
        workers=_int(env, "X402_WORKERS", 1),
        log_level=env.get("X402_LOG_LEVEL", "info").lower(),
        log_format=log_format,
        shutdown_timeout=_float(env, "X402_SHUTDOWN_TIMEOUT", 20.0),
        saturation_interval=_float(env, "X402_SATURATION_INTERVAL", 15.0),
        otel_traces=tracing.wanted(env),
        public_url=env.get("X402_PUBLIC_URL") or None,
        service_name=env.get("X402_SERVICE_NAME", "x402-service"),
        data_dir=data_dir,
        networks=networks,
        evm_signer_key=_read_secret(env, "X402_EVM_SIGNER_KEY"),
        evm_signer_keys=_split_keys(_read_secret(env, "X402_EVM_SIGNER_KEYS")),
        svm_fee_payer_keys=_split_keys(_read_secret(env, "X402_SVM_FEE_PAYER_KEYS")),
        svm_smart_wallet=_bool(env, "X402_SVM_SMART_WALLET", False),
        svm_smart_wallet_programs=tuple(
            p.strip() for p in env.get("X402_SVM_SMART_WALLET_PROGRAMS", "").split(",") if p.strip()
        ),
        svm_smart_wallet_max_compute_units=_int(env, "X402_SVM_SMART_WALLET_MAX_COMPUTE_UNITS", 0),
        svm_smart_wallet_max_price=_int(env, "X402_SVM_SMART_WALLET_MAX_PRICE", -1),
        master_key=_read_secret(env, "X402_MASTER_KEY"),
        master_key_file=Path(mkf) if mkf else None,
        rpc_timeout=_float(env, "X402_RPC_TIMEOUT", 5.0),
        settle_timeout=_float(env, "X402_SETTLE_TIMEOUT", 30.0),
        signer_wait=_float(env, "X402_SIGNER_WAIT", 10.0),
        reconcile_interval=_float(env, "X402_RECONCILE_INTERVAL", 15.0),
        analytics_fold_interval=_float(env, "X402_ANALYTICS_FOLD_INTERVAL", 1.0),
        settle_stuck_after=_float(env, "X402_SETTLE_STUCK_AFTER", 120.0),
        dead_letter_retry_interval=_float(env, "X402_DEAD_LETTER_RETRY_INTERVAL", 30.0),
        payment_identifier_ttl_days=_float(env, "X402_PAYMENT_IDENTIFIER_TTL", 30.0),
        max_header_bytes=_int(env, "X402_MAX_HEADER_BYTES", 16 * 1024),
        max_body_bytes=_int(env, "X402_MAX_BODY_BYTES", 1024 * 1024),
        dev=_bool(env, "X402_DEV", False),
        dev_state=dev_state,
        migrate_on_start=_bool(env, "X402_MIGRATE_ON_START", True),
        risk_enabled=_bool(env, "X402_RISK_ENABLED", True),
        risk_rule_timeout=_float(env, "X402_RISK_RULE_TIMEOUT_MS", 250.0) / 1000,
        risk_config_ttl=_float(env, "X402_RISK_CONFIG_TTL", 5.0),
        risk_chainalysis_key=_read_secret(env, "X402_RISK_CHAINALYSIS_KEY"),
        dev_anvil_port=_int(env, "X402_DEV_ANVIL_PORT", 8545),
        anvil_bin=env.get("X402_ANVIL_BIN") or None,
        db_pool_size=_int(env, "X402_DB_POOL_SIZE", 10),
        dashboard_idle_seconds=_float(env, "X402_DASHBOARD_IDLE_SECONDS", 1800.0),
        allow_private_outbound=_bool(env, "X402_ALLOW_PRIVATE_OUTBOUND", False),
        registry_probe_interval=_float(env, "X402_REGISTRY_PROBE_INTERVAL", 300.0),
        proxy_timeout=_float(env, "X402_PROXY_TIMEOUT", 30.0),
        proxy_max_bytes=_int(env, "X402_PROXY_MAX_BYTES", 1024 * 1024),
        platform_fee_bps=_bps(env.get("X402_PLATFORM_FEE_BPS") or "0", "X402_PLATFORM_FEE_BPS"),
        platform_fee_overrides=_fee_overrides(env),
        trust_interval=_float(env, "X402_TRUST_INTERVAL", 60.0),
        require_api_keys=_bool(env, "X402_REQUIRE_API_KEYS", True),
        admin_token=_read_secret(env, "X402_ADMIN_TOKEN"),
        tiers_override=_json_object(env, "X402_TIERS"),
        smtp_host=env.get("X402_SMTP_HOST") or None,
        smtp_port=_int(env, "X402_SMTP_PORT", 587),
        smtp_user=env.get("X402_SMTP_USER") or None,
        smtp_password=_read_secret(env, "X402_SMTP_PASSWORD"),
        smtp_from=env.get("X402_SMTP_FROM") or None,
        smtp_to=tuple(a.strip() for a in env.get("X402_SMTP_TO", "").split(",") if a.strip()),
        smtp_tls=_smtp_tls(env),
        usage_late_window=_int(env, "X402_USAGE_LATE_WINDOW", 7 * 86400),
        credit_expiry_interval=_float(env, "X402_CREDIT_EXPIRY_INTERVAL", 60.0),
        credit_hold_interval=_float(env, "X402_CREDIT_HOLD_INTERVAL", 60.0),
        credit_hold_timeout=hold_timeout,
        credit_pack=_json_object(env, "X402_CREDIT_PACK"),
    )


def _bps(raw: str, name: str) -> int:
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be basis points (0-10000), got {raw!r}") from exc
    if not 0 <= value <= 10_000:
        raise ConfigError(f"{name} must be basis points (0-10000), got {raw!r}")
    return value


def _fee_overrides(env: Mapping[str, str]) -> dict[str, int]:
    """``X402_PLATFORM_FEE_OVERRIDES``: a JSON object of tenant id -> basis points."""
    doc = _json_object(env, "X402_PLATFORM_FEE_OVERRIDES") or {}
    out: dict[str, int] = {}
    for tenant, bps in doc.items():
        try:
            key = str(uuid.UUID(str(tenant)))
        except ValueError as exc:
            raise ConfigError(f"X402_PLATFORM_FEE_OVERRIDES: {tenant!r} is not a tenant id") from exc
        out[key] = _bps(str(bps), f"X402_PLATFORM_FEE_OVERRIDES[{tenant}]")
    return out


def _smtp_tls(env: Mapping[str, str]) -> str:
    value = env.get("X402_SMTP_TLS", "starttls").lower()
    if value not in {"none", "starttls", "tls"}:
        raise ConfigError("X402_SMTP_TLS must be none, starttls or tls")
    return value


def _json_object(env: Mapping[str, str], name: str) -> Mapping[str, Any] | None:
    raw = env.get(name)
    if not raw:
        return None
    try:
        doc = json.loads(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} is not JSON: {exc}") from exc
    if not isinstance(doc, dict):
        raise ConfigError(f"{name} must be a JSON object")
    return doc
