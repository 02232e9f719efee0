"""``x402 serve --dev``: a local anvil chain with the EIP-3009 test token, wired in as ``eip155:31337``."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from pathlib import Path
from typing import Any

from chains.config import AssetConfig, NetworkConfig
from x402.errors import ConfigError
from x402.logs import say
from x402.service.settings import Settings

DEV_NETWORK = "eip155:31337"


def _free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


async def start_dev_chain(stack: contextlib.AsyncExitStack, settings: Settings) -> dict[str, Any]:
    """Start anvil, deploy + mint the test token, print it all; the stack stops anvil on exit."""
    try:
        from chains.evm.devchain import start_devchain
    except ImportError as exc:  # web3 comes with the devchain extra only
        raise ConfigError(f"dev mode needs the devchain extra: pip install 'x402-service[devchain]' ({exc})") from None

    wanted = settings.dev_anvil_port
    binary = await resolve_anvil(settings)
    anvil, chain = await start_devchain(wanted if _free(wanted) else None, anvil_bin=binary)
    stack.push_async_callback(anvil.stop)
    public = chain.to_public_dict()
    say("dev chain (anvil) is up:")
    say(f"  RPC URL        {chain.rpc_url}  (chain id {chain.chain_id}, network {chain.network})")
    say(f"  test token     {chain.token_address}  EIP-712 name {chain.token_name!r} version {chain.token_version!r}")
    say(f"  facilitator    {public.get('facilitatorAddress')}  (anvil dev account 0)")
    for name, address in public["permit2"].items():
        say(f"  {name:<14} {address}  (our build at the canonical address: exact by Permit2, upto)")
    for addr in chain.payer_addresses:
        say(f"  demo payer     {addr}  (1,000,000 tokens)")
    return {
        "rpc_url": chain.rpc_url,
        "chain_id": chain.chain_id,
        "network": chain.network,
        "token_address": chain.token_address,
        "token_name": chain.token_name,
        "token_version": chain.token_version,
        "token_decimals": chain.token_decimals,
        "facilitator_key": chain.facilitator_key,
        "public": public,
    }


async def forget_previous_dev_chain(database_url: str) -> int:
    """The dev chain starts empty every time, so journal rows of an earlier dev chain describe nothing real."""
    from x402.service.storage.db import connect

    conn = await connect(database_url)
    try:
        status = await conn.execute("DELETE FROM settlements WHERE network = $1", DEV_NETWORK)
        await conn.execute("DELETE FROM verified_transactions WHERE network = $1", DEV_NETWORK)
        await conn.execute("DELETE FROM nonce_fills WHERE network = $1", DEV_NETWORK)
    finally:
        await conn.close()
    return int(status.split()[-1])


def apply_dev_state(settings: Settings) -> Settings:
    """Settings with the dev network and signer added when a dev chain runs."""
    state = settings.dev_state
    if not state:
        return settings
    net = NetworkConfig(
        network=str(state["network"]),
        rpc_urls=(str(state["rpc_url"]),),
        assets=(
            AssetConfig(
                address=str(state["token_address"]),
                name=str(state["token_name"]),
                version=str(state["token_version"]),
                decimals=int(state["token_decimals"]),
                symbol="USDC",
            ),
        ),
    )
    others = tuple(n for n in settings.networks if n.network != net.network)
    return settings.with_(
        dev=True, networks=(net, *others), evm_signer_key=settings.evm_signer_key or str(state["facilitator_key"])
    )


#: The anvil ``x402 serve --dev`` installs when none is found (the version the test chain pins).
ANVIL_NPM_PACKAGE = "@foundry-rs/anvil@1.7.1"


def anvil_prefix(settings: Settings) -> Path:
    """The npm prefix under the data dir where ``x402 serve --dev`` installs anvil."""
    return settings.data_dir / "anvil"


def _missing_npm(prefix: Path) -> str:
    return (
        f"anvil is not installed and npm is not on PATH: install Node.js, then run "
        f"`npm install --prefix {prefix} {ANVIL_NPM_PACKAGE}` (or install Foundry, or set X402_ANVIL_BIN) "
        "and start `x402 serve --dev` again"
    )


async def resolve_anvil(settings: Settings) -> str:
    """An anvil binary for the dev chain: X402_ANVIL_BIN, PATH, one installed before, else installed now from npm.

    Every failure is one ``ConfigError`` line saying what to run, never a traceback.
    """
    from chains.evm.devchain import find_anvil

    prefix = anvil_prefix(settings)
    try:
        return await asyncio.to_thread(
            find_anvil, settings.anvil_bin, installed_under=prefix, search_from=(Path.cwd(),)
        )
    except FileNotFoundError as exc:
        if settings.anvil_bin:
            raise ConfigError(str(exc)) from None
    npm = shutil.which("npm")
    if npm is None:
        raise ConfigError(_missing_npm(prefix))
    say(f"anvil not found: installing {ANVIL_NPM_PACKAGE} from npm into {prefix} (one time)", event="anvil_install")
    prefix.mkdir(parents=True, exist_ok=True)
    cmd = [npm, "install", "--prefix", str(prefix), "--prefer-offline", "--no-audit", "--no-fund"]
    proc = await asyncio.create_subprocess_exec(
        *cmd, "--loglevel=error", ANVIL_NPM_PACKAGE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        lines = [ln for ln in out.decode(errors="replace").splitlines() if ln.strip() and "complete log" not in ln]
        last = lines[-1] if lines else f"exit status {proc.returncode}"
        raise ConfigError(f"npm could not install {ANVIL_NPM_PACKAGE} into {prefix} ({last}); run it by hand and retry")
    try:
        return await asyncio.to_thread(find_anvil, None, installed_under=prefix, search_from=())
    except FileNotFoundError:
        raise ConfigError(f"npm installed {ANVIL_NPM_PACKAGE} into {prefix} but no anvil binary is there") from None
