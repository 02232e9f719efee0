"""Local EVM dev chain for tests and demos: an anvil child process plus a deterministic EIP-3009 test token."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import json
import os
import platform
import shutil
import socket
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self, cast

import aiohttp
import platformdirs
from eth_account import Account
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.crypto import keccak
from web3 import AsyncHTTPProvider, AsyncWeb3
from web3.types import Nonce, TxParams, TxReceipt

__all__ = [
    "DEV_ADDRESSES",
    "DEV_CHAIN_ID",
    "DEV_KEYS",
    "DEV_MINT_AMOUNT",
    "DEV_NETWORK",
    "DEV_TOKEN_ADDRESS",
    "PERMIT2_CONTRACTS",
    "AnvilError",
    "AnvilProcess",
    "DevChain",
    "deploy_contract",
    "deploy_dev_token",
    "find_anvil",
    "install_permit2",
    "load_artifact",
    "start_devchain",
]

# The ten accounts anvil derives from the public test mnemonic
# "test test test test test test test test test test test junk". They are well known: never fund them anywhere real.
DEV_KEYS: Final[tuple[str, ...]] = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
)
DEV_ADDRESSES: Final[tuple[ChecksumAddress, ...]] = tuple(
    ChecksumAddress(a)  # type: ignore[arg-type]
    for a in (
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
        "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
        "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
        "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
        "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
        "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
        "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
    )
)
DEV_CHAIN_ID: Final = 31337
DEV_NETWORK: Final = f"eip155:{DEV_CHAIN_ID}"
# CREATE address of DEV_ADDRESSES[0] at nonce 0: deploy_dev_token makes the token that account's first transaction.
DEV_TOKEN_ADDRESS: Final = ChecksumAddress("0x5FbDB2315678afecb367f032d93F642f64180aa3")  # type: ignore[arg-type]
DEV_TOKEN_DECIMALS: Final = 6
DEV_MINT_AMOUNT: Final = 1_000_000 * 10**DEV_TOKEN_DECIMALS

# eth-hash picks its keccak backend on first use, which reads the filesystem; do that now, outside any event loop.
keccak(b"")

_ANVIL_HELP: Final = (
    "anvil not found. Install it with `npm install --prefix tests/chains` (from the repository root), "
    "`npm install -g @foundry-rs/anvil`, or `npm install --prefix ~/.local/share/x402/anvil @foundry-rs/anvil`, "
    "or point X402_ANVIL_BIN at an anvil binary."
)
_STDERR_LINES: Final = 200


class AnvilError(RuntimeError):
    """anvil failed to start or answer."""


class DeployError(RuntimeError):
    """A dev-chain transaction reverted or a deployment produced no contract."""


# --------------------------------------------------------------------------------------------- artifacts


@functools.cache
def _artifact_text(name: str) -> str:
    return resources.files("chains.evm").joinpath("artifacts", f"{name}.json").read_text(encoding="utf-8")


def load_artifact(name: str) -> dict[str, Any]:
    """Return the compiled `{abi, bytecode}` of a bundled test contract (TestUSDC, MockERC1271Wallet, PlainERC20)."""
    data = json.loads(_artifact_text(name))
    if not isinstance(data, dict) or "abi" not in data or "bytecode" not in data:
        raise ValueError(f"artifact {name!r} is not an {{abi, bytecode}} object")
    return cast(dict[str, Any], data)


# --------------------------------------------------------------------------------------------- finding anvil


def _platform_package() -> str:
    system = {"Linux": "linux", "Darwin": "darwin", "Windows": "win32"}.get(
        platform.system(), platform.system().lower()
    )
    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "amd64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)
    return f"anvil-{system}-{arch}"


def _candidates_under(node_modules: Path) -> list[Path]:
    exe = "anvil.exe" if os.name == "nt" else "anvil"
    return [
        node_modules / "@foundry-rs" / _platform_package() / "bin" / exe,
        node_modules / ".bin" / exe,
    ]


def _is_executable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)


def find_anvil(
    explicit: str | None = None, *, installed_under: Path | None = None, search_from: tuple[Path, ...] | None = None
) -> str:
    """Locate an anvil binary: ``explicit`` (the X402_ANVIL_BIN setting), PATH, ``installed_under`` (an npm prefix,
    e.g. the service's data dir), tests/chains/node_modules above ``search_from`` (default: the working directory and
    this checkout), the per-user data dir."""
    if explicit:
        if _is_executable(Path(explicit)):
            return explicit
        raise FileNotFoundError(f"X402_ANVIL_BIN={explicit!r} is not an executable file. {_ANVIL_HELP}")
    on_path = shutil.which("anvil")
    if on_path:
        return on_path
    roots: list[Path] = []
    for start in search_from if search_from is not None else (Path.cwd(), Path(__file__).resolve().parents[2]):
        for base in (start, *start.parents):
            if base not in roots:
                roots.append(base)
    candidates = _candidates_under(installed_under / "node_modules") if installed_under else []
    candidates += [c for base in roots for c in _candidates_under(base / "tests" / "chains" / "node_modules")]
    candidates += _candidates_under(platformdirs.user_data_path("x402") / "anvil" / "node_modules")
    for candidate in candidates:
        if _is_executable(candidate):
            return str(candidate)
    raise FileNotFoundError(_ANVIL_HELP)


def _port_is_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # ignore TIME_WAIT leftovers, not listeners
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def _free_port(host: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


# --------------------------------------------------------------------------------------------- anvil process


class AnvilProcess:
    """An anvil node run as a child process on 127.0.0.1; use as `async with AnvilProcess() as anvil:`."""

    def __init__(
        self,
        *,
        port: int | None = None,
        chain_id: int = DEV_CHAIN_ID,
        block_time: float | None = None,
        extra_args: Sequence[str] = (),
        anvil_bin: str | None = None,
        host: str = "127.0.0.1",
        startup_timeout: float = 10.0,
    ) -> None:
        self._requested_port = port
        self._port: int | None = None
        self.chain_id = chain_id
        self.block_time = block_time
        self.extra_args = tuple(extra_args)
        self._anvil_bin = anvil_bin
        self.host = host
        self.startup_timeout = startup_timeout
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr: collections.deque[str] = collections.deque(maxlen=_STDERR_LINES)
        self._drain: asyncio.Task[None] | None = None

    @property
    def rpc_url(self) -> str:
        """HTTP JSON-RPC URL of the running node."""
        if self._port is None:
            raise AnvilError("anvil is not started")
        return f"http://{self.host}:{self._port}"

    @property
    def port(self) -> int | None:
        """The TCP port anvil listens on, once started."""
        return self._port

    @property
    def running(self) -> bool:
        """True while the child process is alive."""
        return self._proc is not None and self._proc.returncode is None

    @property
    def stderr_tail(self) -> str:
        """The last lines anvil wrote to stderr."""
        return "".join(self._stderr)

    def _args(self, binary: str, port: int) -> list[str]:
        args = [binary, "--host", self.host, "--port", str(port), "--chain-id", str(self.chain_id), "--silent"]
        if self.block_time is not None:
            bt = self.block_time
            args += ["--block-time", str(int(bt)) if float(bt).is_integer() else repr(float(bt))]
        args += self.extra_args
        return args

    async def start(self) -> None:
        """Spawn anvil and wait until it answers `eth_chainId`."""
        if self.running:
            return
        binary: str = self._anvil_bin if self._anvil_bin else await asyncio.to_thread(find_anvil)
        attempts = 1 if self._requested_port is not None else 3
        for attempt in range(attempts):
            port: int = self._requested_port if self._requested_port else await asyncio.to_thread(_free_port, self.host)
            try:
                await self._spawn_and_wait(binary, port)
                return
            except AnvilError as exc:
                self._port = None
                # An auto-picked port can be taken between probing and binding; only that is worth a retry.
                if attempt + 1 >= attempts or "in use" not in str(exc).lower():
                    raise

    async def _spawn_and_wait(self, binary: str, port: int) -> None:
        self._stderr.clear()
        # Without this check a node already listening there would answer the readiness probe in our anvil's place.
        if not await asyncio.to_thread(_port_is_free, self.host, port):
            raise AnvilError(f"port {port} on {self.host} is already in use")
        self._proc = await asyncio.create_subprocess_exec(
            *self._args(binary, port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        self._drain = asyncio.create_task(self._drain_stderr(self._proc))
        self._port = port
        try:
            await self._wait_ready()
        except BaseException:
            await self.stop()
            raise

    async def _drain_stderr(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stderr is not None
        while line := await proc.stderr.readline():
            self._stderr.append(line.decode("utf-8", "replace"))

    async def _wait_ready(self) -> None:
        assert self._proc is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.startup_timeout
        payload = {"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}
        timeout = aiohttp.ClientTimeout(total=1.0)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while True:
                if self._proc.returncode is not None:
                    await self._finish_drain()
                    raise AnvilError(
                        f"anvil exited with code {self._proc.returncode} during start-up: {self.stderr_tail.strip()}"
                    )
                with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError, ValueError):
                    async with session.post(self.rpc_url, json=payload) as resp:
                        body = await resp.json(content_type=None)
                    if isinstance(body, dict) and body.get("result") == hex(self.chain_id):
                        return
                    raise AnvilError(f"anvil at {self.rpc_url} answered eth_chainId with {body!r}")
                if loop.time() >= deadline:
                    raise AnvilError(
                        f"anvil did not answer on {self.rpc_url} within {self.startup_timeout:g} s: "
                        f"{self.stderr_tail.strip()}"
                    )
                await asyncio.sleep(0.02)

    async def _finish_drain(self) -> None:
        if self._drain is not None:
            with contextlib.suppress(asyncio.TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._drain, 1.0)
            self._drain = None

    async def stop(self) -> None:
        """Terminate anvil (SIGTERM, then SIGKILL after 5 s) and wait for it to exit."""
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 5.0)
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        await self._finish_drain()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


# --------------------------------------------------------------------------------------------- dev chain


@dataclass(frozen=True)
class DevChain:
    """Connection facts of a local dev chain with the TestUSDC token deployed and payers funded."""

    rpc_url: str
    chain_id: int = DEV_CHAIN_ID
    network: str = DEV_NETWORK
    token_address: ChecksumAddress = DEV_TOKEN_ADDRESS
    token_name: str = "USD Coin"  # noqa: S105 - a token (asset) name, not a credential
    token_version: str = "2"  # noqa: S105 - a token (asset) name, not a credential
    token_decimals: int = DEV_TOKEN_DECIMALS
    facilitator_key: str = field(default=DEV_KEYS[0], repr=False)
    payer_keys: tuple[str, ...] = field(default=DEV_KEYS[1:], repr=False)
    payer_addresses: tuple[ChecksumAddress, ...] = DEV_ADDRESSES[1:]

    @property
    def facilitator_address(self) -> ChecksumAddress:
        """Address of the facilitator (dev account 0)."""
        return cast(ChecksumAddress, Account.from_key(self.facilitator_key).address)

    def to_public_dict(self) -> dict[str, Any]:
        """Describe the chain as JSON-ready data: payer keys (public anvil test keys) included, facilitator key not."""
        return {
            "rpcUrl": self.rpc_url,
            "chainId": self.chain_id,
            "network": self.network,
            "asset": {
                "address": self.token_address,
                "name": self.token_name,
                "version": self.token_version,
                "decimals": self.token_decimals,
            },
            "facilitatorAddress": self.facilitator_address,
            "permit2": {
                "permit2": PERMIT2_CONTRACTS[0][1],
                "exactProxy": PERMIT2_CONTRACTS[1][1],
                "uptoProxy": PERMIT2_CONTRACTS[2][1],
            },
            "payersNote": "payers approve Permit2 once (approve) before paying exact by Permit2 or upto",
            "payers": [
                {"address": address, "privateKey": key}
                for address, key in zip(self.payer_addresses, self.payer_keys, strict=True)
            ],
            "payerKeysNote": "well-known anvil test keys (public test mnemonic); never use them on a real network",
        }


@contextlib.asynccontextmanager
async def _web3(rpc_url: str) -> AsyncIterator[AsyncWeb3[AsyncHTTPProvider]]:
    w3 = AsyncWeb3(AsyncHTTPProvider(rpc_url))
    try:
        yield w3
    finally:
        await w3.provider.disconnect()


async def _send(w3: AsyncWeb3[AsyncHTTPProvider], account: LocalAccount, tx: TxParams) -> bytes:
    signed = account.sign_transaction(cast(dict[str, Any], tx))
    return bytes(await w3.eth.send_raw_transaction(signed.raw_transaction))


async def _receipt(w3: AsyncWeb3[AsyncHTTPProvider], tx_hash: bytes, what: str) -> TxReceipt:
    receipt = await w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.05)  # type: ignore[arg-type]
    if receipt["status"] != 1:
        raise DeployError(f"{what} reverted (tx 0x{tx_hash.hex()})")
    return receipt


async def _deploy(
    w3: AsyncWeb3[AsyncHTTPProvider], account: LocalAccount, artifact_name: str, args: Sequence[Any], nonce: int
) -> ChecksumAddress:
    artifact = await asyncio.to_thread(load_artifact, artifact_name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx = await factory.constructor(*args).build_transaction({"from": account.address, "nonce": Nonce(nonce)})
    receipt = await _receipt(w3, await _send(w3, account, tx), f"deploying {artifact_name}")
    address = receipt["contractAddress"]
    if address is None:
        raise DeployError(f"deploying {artifact_name} produced no contract address")
    return AsyncWeb3.to_checksum_address(address)


async def deploy_contract(rpc_url: str, key: str, artifact_name: str, *args: Any) -> ChecksumAddress:
    """Deploy a bundled artifact from the account of `key` and return its checksummed address."""
    async with _web3(rpc_url) as w3:
        account: LocalAccount = Account.from_key(key)
        nonce = int(await w3.eth.get_transaction_count(account.address, "pending"))
        return await _deploy(w3, account, artifact_name, args, nonce)


async def deploy_dev_token(rpc_url: str) -> ChecksumAddress:
    """Deploy TestUSDC at DEV_TOKEN_ADDRESS (dev account 0, nonce 0), fund accounts 1-9 and install Permit2 with
    the x402 proxies (``install_permit2``); idempotent."""
    async with _web3(rpc_url) as w3:
        deployer: LocalAccount = Account.from_key(DEV_KEYS[0])
        nonce = int(await w3.eth.get_transaction_count(deployer.address, "pending"))
        if not await w3.eth.get_code(DEV_TOKEN_ADDRESS):
            if nonce != 0:
                raise DeployError(
                    f"dev account 0 has already sent {nonce} transaction(s), so TestUSDC cannot land at "
                    f"{DEV_TOKEN_ADDRESS}; use a fresh chain"
                )
            address = await _deploy(w3, deployer, "TestUSDC", (), nonce)
            if address != DEV_TOKEN_ADDRESS:
                raise DeployError(f"TestUSDC landed at {address}, expected {DEV_TOKEN_ADDRESS}")
            nonce += 1
        artifact = await asyncio.to_thread(load_artifact, "TestUSDC")
        token = w3.eth.contract(address=DEV_TOKEN_ADDRESS, abi=artifact["abi"])
        balances = await asyncio.gather(*(token.functions.balanceOf(a).call() for a in DEV_ADDRESSES[1:]))
        hashes: list[bytes] = []
        for payer, balance in zip(DEV_ADDRESSES[1:], balances, strict=True):
            if balance == 0:
                tx = await token.functions.mint(payer, DEV_MINT_AMOUNT).build_transaction(
                    {"from": deployer.address, "nonce": Nonce(nonce), "gas": 100_000}
                )
                hashes.append(await _send(w3, deployer, tx))
                nonce += 1
        await asyncio.gather(*(_receipt(w3, h, "minting TestUSDC") for h in hashes))
    await install_permit2(rpc_url)
    return DEV_TOKEN_ADDRESS


#: Our Permit2 and x402 proxy builds and the canonical address each is placed at (architecture.md §4.6, §12.2).
PERMIT2_CONTRACTS: Final = (
    ("Permit2", "0x000000000022D473030F116dDEE9F6B43aC78BA3"),
    ("X402ExactPermit2Proxy", "0x402085c248EeA27D92E8b30b2C58ed07f9E20001"),
    ("X402UptoPermit2Proxy", "0x4020A4f3b7b90ccA423B9fabCc0CE57C6C240002"),
)


async def install_permit2(rpc_url: str) -> None:
    """Place Permit2 and the exact / upto x402 Permit2 proxies at their canonical addresses (idempotent).

    The runtime code comes from ``eth_call`` of each creation code (the proxies' constructor takes the canonical
    Permit2 address, kept as an immutable), then ``anvil_setCode``: no transaction, no account nonce used.
    """
    permit2 = PERMIT2_CONTRACTS[0][1]
    async with _web3(rpc_url) as w3:
        for name, address in PERMIT2_CONTRACTS:
            target = AsyncWeb3.to_checksum_address(address)
            if await w3.eth.get_code(target):
                continue
            artifact = await asyncio.to_thread(load_artifact, name)
            init = str(artifact["bytecode"])
            if name != "Permit2":
                init += "00" * 12 + permit2.lower().removeprefix("0x")
            runtime = await w3.eth.call({"data": init})  # type: ignore[typeddict-item]
            if not runtime:
                raise DeployError(f"{name}'s creation code returned no runtime code")
            await w3.provider.make_request("anvil_setCode", [target, "0x" + bytes(runtime).hex()])


async def start_devchain(port: int | None = None, *, anvil_bin: str | None = None) -> tuple[AnvilProcess, DevChain]:
    """Start anvil, deploy and fund the dev token, and return the process (caller stops it) and the chain facts."""
    anvil = AnvilProcess(port=port, anvil_bin=anvil_bin)
    await anvil.start()
    try:
        await deploy_dev_token(anvil.rpc_url)
    except BaseException:
        await anvil.stop()
        raise
    return anvil, DevChain(rpc_url=anvil.rpc_url)
