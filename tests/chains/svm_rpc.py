"""A small Solana JSON-RPC server over ``solders.litesvm.LiteSVM`` so the real ``AsyncClient`` code path is tested.

Serves what the Solana adapter, solana-py and the official @x402/svm client call: getLatestBlockhash,
isBlockhashValid, getAccountInfo (base64), getBalance, getMinimumBalanceForRentExemption, simulateTransaction,
sendTransaction, getSignatureStatuses, getTransaction, getSlot, getBlockHeight, getHealth, getVersion,
getTokenAccountBalance, getMultipleAccounts. Solana-specific JSON is produced by solders' own RPC response types.
Inner instructions (simulateTransaction ``innerInstructions: true``, getTransaction) and lookup-table addresses
(``loadedAddresses``) are reported in the compiled JSON form; ``parsed_inner`` switches the simulation to the
``jsonParsed`` form real nodes use for token instructions.

Simplifications: ``sigVerify`` and ``replaceRecentBlockhash`` of simulateTransaction are ignored (LiteSVM always
verifies signatures and checks the blockhash); a blockhash is valid while it is LiteSVM's latest one
(``expire_blockhash()`` makes every earlier transaction unlandable); every processed transaction is reported as
``finalized`` unless ``confirmation_status`` says otherwise.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from solders.account import Account
from solders.account_decoder import UiTokenAmount
from solders.address_lookup_table_account import ID as LOOKUP_TABLE_PROGRAM
from solders.address_lookup_table_account import AddressLookupTable
from solders.keypair import Keypair
from solders.litesvm import LiteSVM
from solders.message import MessageV0
from solders.pubkey import Pubkey
from solders.rpc.errors import SendTransactionPreflightFailureMessage
from solders.rpc.responses import (
    GetAccountInfoResp,
    GetBalanceResp,
    GetLatestBlockhashResp,
    GetMultipleAccountsResp,
    GetSignaturesForAddressResp,
    GetSignatureStatusesResp,
    GetTokenAccountBalanceResp,
    GetTransactionResp,
    IsBlockhashValidResp,
    RpcBlockhash,
    RpcConfirmedTransactionStatusWithSignature,
    RpcResponseContext,
    RpcSimulateTransactionResult,
    SimulateTransactionResp,
)
from solders.signature import Signature
from solders.system_program import CreateAccountParams, create_account
from solders.token.associated import get_associated_token_address
from solders.transaction import VersionedTransaction
from solders.transaction_metadata import FailedTransactionMetadata
from solders.transaction_status import (
    EncodedConfirmedTransactionWithStatusMeta,
    EncodedTransactionWithStatusMeta,
    ParsedInstruction,
    TransactionConfirmationStatus,
    TransactionErrorInstructionError,
    TransactionStatus,
    UiCompiledInstruction,
    UiInnerInstructions,
    UiLoadedAddresses,
    UiTransactionStatusMeta,
    UiTransactionTokenBalance,
)
from spl.token.constants import MINT_LEN, TOKEN_2022_PROGRAM_ID, TOKEN_PROGRAM_ID
from spl.token.instructions import create_associated_token_account, initialize_mint, mint_to_checked
from spl.token.models import InitializeMintParams, MintToCheckedParams

TOKEN_PROGRAMS = (TOKEN_PROGRAM_ID, TOKEN_2022_PROGRAM_ID)


@dataclass
class _Record:
    slot: int
    tx: VersionedTransaction
    meta: UiTransactionStatusMeta
    err: Any


def _token_account(acc: Account | None) -> tuple[Pubkey, Pubkey, int, Pubkey] | None:
    """(mint, owner, amount, program) when ``acc`` is an SPL Token / Token-2022 token account."""
    if acc is None or acc.owner not in TOKEN_PROGRAMS:
        return None
    data = bytes(acc.data)
    if len(data) < 165 or (len(data) > 165 and data[165] != 2):
        return None
    return (
        Pubkey.from_bytes(data[:32]),
        Pubkey.from_bytes(data[32:64]),
        int.from_bytes(data[64:72], "little"),
        acc.owner,
    )


class SvmRpc:
    """LiteSVM plus an aiohttp JSON-RPC front end; also has helpers to set up mints, ATAs and balances."""

    def __init__(self, svm: LiteSVM | None = None) -> None:
        self.svm = svm if svm is not None else LiteSVM()
        self.slot = 1
        self.records: dict[Signature, _Record] = {}
        self.calls: list[str] = []
        self.drop_sends = False
        self.parsed_inner = False
        self.confirmation_status = TransactionConfirmationStatus.Finalized
        self.bank = Keypair()
        self.svm.airdrop(self.bank.pubkey(), 1_000_000_000_000)
        self._runner: web.AppRunner | None = None
        self.url = ""

    # ------------------------------------------------------------------ server

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        """Serve on ``host:port`` (0 = any free port); returns the URL."""
        app = web.Application()
        app.router.add_post("/", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self.url = f"http://{host}:{self._runner.addresses[0][1]}"
        return self.url

    async def stop(self) -> None:
        """Stop serving."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        if isinstance(body, list):
            out = [self._dispatch(item) for item in body]
            return web.json_response(out)
        return web.json_response(self._dispatch(body))

    def _dispatch(self, req: dict[str, Any]) -> dict[str, Any]:
        rid = req.get("id", 0)
        method = req.get("method", "")
        params = req.get("params") or []
        self.calls.append(method)
        handler = getattr(self, f"rpc_{method}", None)
        if handler is None:
            return {"jsonrpc": "2.0", "id": rid, "error": {"code": -32601, "message": f"Method not found: {method}"}}
        try:
            result = handler(*params)
        except _RpcError as exc:
            return {"jsonrpc": "2.0", "id": rid, "error": exc.body}
        if isinstance(result, str) and result.startswith('{"jsonrpc"'):
            doc: dict[str, Any] = json.loads(result)
            doc["id"] = rid
            return doc
        return {"jsonrpc": "2.0", "id": rid, "result": result}

    def _ctx(self) -> RpcResponseContext:
        return RpcResponseContext(self.slot)

    # ------------------------------------------------------------------ RPC methods

    def rpc_getHealth(self, *_: Any) -> str:
        return "ok"

    def rpc_getVersion(self, *_: Any) -> dict[str, Any]:
        return {"solana-core": "2.2.0", "feature-set": 0}

    def rpc_getSlot(self, *_: Any) -> int:
        return self.slot

    def rpc_getBlockHeight(self, *_: Any) -> int:
        return self.slot

    def rpc_getLatestBlockhash(self, *_: Any) -> str:
        value = RpcBlockhash(self.svm.latest_blockhash(), self.slot + 150)
        return GetLatestBlockhashResp(value, self._ctx()).to_json()

    def rpc_isBlockhashValid(self, blockhash: str, *_: Any) -> str:
        valid = blockhash == str(self.svm.latest_blockhash())
        # solders' stub omits the context argument its constructor takes at runtime
        return IsBlockhashValidResp(valid, self._ctx()).to_json()  # type: ignore[call-arg]

    def rpc_getBalance(self, pubkey: str, *_: Any) -> str:
        return GetBalanceResp(self.svm.get_balance(Pubkey.from_string(pubkey)) or 0, self._ctx()).to_json()

    def rpc_getMinimumBalanceForRentExemption(self, size: int, *_: Any) -> int:
        return int(self.svm.minimum_balance_for_rent_exemption(size))

    def rpc_getAccountInfo(self, pubkey: str, config: dict[str, Any] | None = None) -> str:
        encoding = (config or {}).get("encoding", "base64")
        if encoding not in {"base64", "base58"}:
            raise _RpcError(-32602, f"unsupported encoding {encoding} in this test RPC")
        acc = self.svm.get_account(Pubkey.from_string(pubkey))
        if acc is not None and acc.lamports == 0:
            acc = None
        doc = json.loads(GetAccountInfoResp(acc, self._ctx()).to_json())
        if acc is not None:
            doc["result"]["value"]["space"] = len(bytes(acc.data))  # solders leaves it null; real nodes send it
        return json.dumps(doc)

    def rpc_getTokenAccountBalance(self, pubkey: str, *_: Any) -> str:
        parsed = _token_account(self.svm.get_account(Pubkey.from_string(pubkey)))
        if parsed is None:
            raise _RpcError(-32602, "Invalid param: not a Token account")
        mint, _owner, amount, _prog = parsed
        return GetTokenAccountBalanceResp(self._ui_amount(mint, amount), self._ctx()).to_json()

    def rpc_getMultipleAccounts(self, pubkeys: list[str], config: dict[str, Any] | None = None) -> str:
        encoding = (config or {}).get("encoding", "base64")
        if encoding not in {"base64", "base58"}:
            raise _RpcError(-32602, f"unsupported encoding {encoding} in this test RPC")
        accounts = [self.svm.get_account(Pubkey.from_string(k)) for k in pubkeys]
        value = [a if a is not None and a.lamports > 0 else None for a in accounts]
        return GetMultipleAccountsResp(value, self._ctx()).to_json()

    def rpc_simulateTransaction(self, raw: str, config: dict[str, Any] | None = None) -> str:
        tx = _decode_tx(raw, config)
        res = self.svm.simulate_transaction(tx)
        failed = isinstance(res, FailedTransactionMetadata)
        meta = res.meta()
        inner = None
        if (config or {}).get("innerInstructions"):
            inner = _ui_inner(meta.inner_instructions())
            if self.parsed_inner:
                inner = [self._parse_inner(g, self.account_keys(tx)) for g in inner]
        value = RpcSimulateTransactionResult(
            err=res.err() if isinstance(res, FailedTransactionMetadata) else None,
            logs=list(meta.logs()),
            units_consumed=meta.compute_units_consumed(),
            fee=None if failed else meta.fee(),
            inner_instructions=inner,
        )
        return SimulateTransactionResp(value, self._ctx()).to_json()  # type: ignore[call-arg]  # stub omits context

    def _parse_inner(self, group: UiInnerInstructions, keys: list[Pubkey]) -> Any:
        """The group with TransferChecked instructions in jsonParsed form (as nodes answer for token programs)."""
        out: list[Any] = []
        for ix in group.instructions:
            if not isinstance(ix, UiCompiledInstruction):
                out.append(ix)
                continue
            data = _b58decode(ix.data)
            prog = keys[ix.program_id_index]
            if prog in TOKEN_PROGRAMS and len(data) == 10 and data[0] == 12:
                acc = [str(keys[i]) for i in bytes(ix.accounts)]
                amount = int.from_bytes(data[1:9], "little")
                info: dict[str, Any] = {
                    "source": acc[0],
                    "mint": acc[1],
                    "destination": acc[2],
                    "authority": acc[3],
                    "tokenAmount": {"amount": str(amount), "decimals": data[9]},
                }
                out.append(ParsedInstruction("spl-token", prog, {"type": "transferChecked", "info": info}))
            else:
                out.append(ix)
        return UiInnerInstructions(group.index, out)

    def account_keys(self, tx: VersionedTransaction) -> list[Pubkey]:
        """Static keys, then the writable and read-only lookup-table addresses (runtime order)."""
        writable, readonly = self._loaded(tx)
        return list(tx.message.account_keys) + writable + readonly

    def _loaded(self, tx: VersionedTransaction) -> tuple[list[Pubkey], list[Pubkey]]:
        writable: list[Pubkey] = []
        readonly: list[Pubkey] = []
        for lk in getattr(tx.message, "address_table_lookups", None) or []:
            acc = self.svm.get_account(lk.account_key)
            if acc is None:
                continue
            addrs = list(AddressLookupTable.deserialize(bytes(acc.data)).addresses)
            writable += [addrs[i] for i in bytes(lk.writable_indexes) if i < len(addrs)]
            readonly += [addrs[i] for i in bytes(lk.readonly_indexes) if i < len(addrs)]
        return writable, readonly

    def rpc_sendTransaction(self, raw: str, config: dict[str, Any] | None = None) -> str:
        tx = _decode_tx(raw, config)
        cfg = config or {}
        if not cfg.get("skipPreflight"):
            sim = self.svm.simulate_transaction(tx)
            if isinstance(sim, FailedTransactionMetadata):
                fail = RpcSimulateTransactionResult(err=sim.err(), logs=list(sim.meta().logs()))
                msg = SendTransactionPreflightFailureMessage(f"Transaction simulation failed: {sim.err()}", fail)
                body = json.loads(msg.to_json())
                body["code"] = -32002
                raise _RpcError(body=body)
        sig = tx.signatures[0]
        if not self.drop_sends:
            self.execute(tx)
        return json.dumps({"jsonrpc": "2.0", "result": str(sig), "id": 0})

    def rpc_getSignatureStatuses(self, sigs: list[str], *_: Any) -> str:
        out: list[TransactionStatus | None] = []
        for s in sigs:
            rec = self.records.get(Signature.from_string(s))
            if rec is None:
                out.append(None)
                continue
            final = self.confirmation_status == TransactionConfirmationStatus.Finalized
            out.append(TransactionStatus(rec.slot, None if final else 0, rec.err, rec.err, self.confirmation_status))
        return GetSignatureStatusesResp(out, self._ctx()).to_json()

    def rpc_getSignaturesForAddress(self, address: str, config: dict[str, Any] | None = None) -> str:
        key = Pubkey.from_string(address)
        limit = int((config or {}).get("limit") or 1000)
        found = [
            RpcConfirmedTransactionStatusWithSignature(sig, rec.slot, rec.err, None, None, self.confirmation_status)
            for sig, rec in reversed(self.records.items())
            if key in rec.tx.message.account_keys
        ]
        return GetSignaturesForAddressResp(found[:limit]).to_json()

    def rpc_getTransaction(self, sig: str, *_: Any) -> str:
        rec = self.records.get(Signature.from_string(sig))
        if rec is None:
            return GetTransactionResp(None).to_json()
        enc = EncodedTransactionWithStatusMeta(rec.tx, rec.meta, 0)
        return GetTransactionResp(EncodedConfirmedTransactionWithStatusMeta(rec.slot, enc, None)).to_json()

    # ------------------------------------------------------------------ execution with balance bookkeeping

    def execute(self, tx: VersionedTransaction) -> Any:
        """Run ``tx`` on LiteSVM and record it (with pre/post balances) for getTransaction/getSignatureStatuses."""
        keys = self.account_keys(tx)
        writable, readonly = self._loaded(tx)
        pre = [self._snapshot(k) for k in keys]
        res = self.svm.send_transaction(tx)
        err = res.err() if isinstance(res, FailedTransactionMetadata) else None
        if err is not None and not isinstance(err, TransactionErrorInstructionError):
            return err  # never landed (AlreadyProcessed, BlockhashNotFound, SignatureFailure, ...)
        meta_src = res.meta() if isinstance(res, FailedTransactionMetadata) else res
        post = [self._snapshot(k) for k in keys]
        meta = UiTransactionStatusMeta(
            err,
            meta_src.fee(),
            [p[0] for p in pre],
            [p[0] for p in post],
            log_messages=list(meta_src.logs()),
            pre_token_balances=[b for i, p in enumerate(pre) if (b := self._token_balance(i, p[1])) is not None],
            post_token_balances=[b for i, p in enumerate(post) if (b := self._token_balance(i, p[1])) is not None],
            compute_units_consumed=meta_src.compute_units_consumed(),
            inner_instructions=_ui_inner(meta_src.inner_instructions()),
            loaded_addresses=UiLoadedAddresses(writable, readonly),
        )
        self.slot += 1
        self.records[tx.signatures[0]] = _Record(self.slot, tx, meta, err)
        return err

    def _snapshot(self, key: Pubkey) -> tuple[int, Account | None]:
        acc = self.svm.get_account(key)
        return (acc.lamports if acc is not None else 0), acc

    def _ui_amount(self, mint: Pubkey, amount: int) -> UiTokenAmount:
        mint_acc = self.svm.get_account(mint)
        decimals = bytes(mint_acc.data)[44] if mint_acc is not None else 0
        ui = amount / 10**decimals
        return UiTokenAmount(ui, decimals, str(amount), repr(ui))

    def _token_balance(self, index: int, acc: Account | None) -> UiTransactionTokenBalance | None:
        parsed = _token_account(acc)
        if parsed is None:
            return None
        mint, owner, amount, program = parsed
        return UiTransactionTokenBalance(index, mint, self._ui_amount(mint, amount), owner, program)

    # ------------------------------------------------------------------ set-up helpers

    def run(self, ixs: list[Any], signers: list[Keypair]) -> None:
        """Execute instructions paid by the bank account; raises on failure."""
        msg = MessageV0.try_compile(self.bank.pubkey(), ixs, [], self.svm.latest_blockhash())
        tx = VersionedTransaction(msg, [self.bank, *signers])
        err = self.execute(tx)
        if err is not None:
            raise RuntimeError(f"set-up transaction failed: {err}")

    def airdrop(self, pubkey: Pubkey, lamports: int = 10_000_000_000) -> None:
        """Give ``pubkey`` some SOL."""
        self.svm.airdrop(pubkey, lamports)

    def create_mint(
        self, authority: Keypair, decimals: int = 6, program: Pubkey = TOKEN_PROGRAM_ID, mint: Keypair | None = None
    ) -> Pubkey:
        """Create and initialise a mint (SPL Token or Token-2022) owned by ``authority``."""
        mint = mint or Keypair()
        rent = self.svm.minimum_balance_for_rent_exemption(MINT_LEN)
        create = create_account(
            CreateAccountParams(
                from_pubkey=self.bank.pubkey(), to_pubkey=mint.pubkey(), lamports=rent, space=MINT_LEN, owner=program
            )
        )
        init = initialize_mint(
            InitializeMintParams(
                decimals=decimals, program_id=program, mint=mint.pubkey(), mint_authority=authority.pubkey()
            )
        )
        self.run([create, init], [mint])
        return mint.pubkey()

    def create_ata(self, owner: Pubkey, mint: Pubkey, program: Pubkey = TOKEN_PROGRAM_ID) -> Pubkey:
        """Create ``owner``'s associated token account for ``mint``."""
        self.run([create_associated_token_account(self.bank.pubkey(), owner, mint, program)], [])
        return get_associated_token_address(owner, mint, program)

    def mint_to(
        self,
        mint: Pubkey,
        dest: Pubkey,
        amount: int,
        authority: Keypair,
        program: Pubkey = TOKEN_PROGRAM_ID,
        decimals: int = 6,
    ) -> None:
        """Mint ``amount`` atomic units into token account ``dest``."""
        ix = mint_to_checked(
            MintToCheckedParams(
                program_id=program,
                mint=mint,
                dest=dest,
                mint_authority=authority.pubkey(),
                amount=amount,
                decimals=decimals,
            )
        )
        self.run([ix], [authority])

    def token_balance(self, account: Pubkey) -> int:
        """The atomic balance of a token account (0 when it does not exist)."""
        parsed = _token_account(self.svm.get_account(account))
        return 0 if parsed is None else parsed[2]

    def add_lookup_table(self, addresses: list[Pubkey]) -> Pubkey:
        """An active address lookup table holding ``addresses`` (written directly, as the program would leave it)."""
        key = Keypair().pubkey()
        meta = (1).to_bytes(4, "little") + (2**64 - 1).to_bytes(8, "little") + bytes(8)
        meta += bytes([len(addresses)]) + bytes(1 + 32 + 2)  # start index, no authority, padding
        data = meta + b"".join(bytes(a) for a in addresses)
        rent = self.svm.minimum_balance_for_rent_exemption(len(data))
        self.svm.set_account(key, Account(rent, data, LOOKUP_TABLE_PROGRAM, False, 0))
        return key

    def copy_program(self, source: Pubkey, target: Pubkey) -> None:
        """Deploy the program at ``source`` (its ELF) at ``target`` too."""
        acc = self.svm.get_account(source)
        if acc is None:
            raise RuntimeError(f"no program at {source}")
        self.svm.add_program(target, bytes(acc.data))


def _ui_inner(groups: Any) -> list[UiInnerInstructions]:
    """LiteSVM inner instructions (one list per top-level instruction) in the RPC's compiled JSON form."""
    out: list[UiInnerInstructions] = []
    for index, group in enumerate(groups or []):
        if not group:
            continue
        ixs = [
            UiCompiledInstruction(
                i.instruction().program_id_index,
                bytes(i.instruction().accounts),
                _b58encode(bytes(i.instruction().data)),
                i.stack_height(),
            )
            for i in group
        ]
        out.append(UiInnerInstructions(index, ixs))
    return out


def _b58encode(data: bytes) -> str:
    num = int.from_bytes(data, "big")
    out = ""
    while num:
        num, rem = divmod(num, 58)
        out = _B58[rem] + out
    return "1" * (len(data) - len(data.lstrip(b"\0"))) + out


class _RpcError(Exception):
    def __init__(self, code: int = -32602, message: str = "", body: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.body = body if body is not None else {"code": code, "message": message}


def _decode_tx(raw: str, config: dict[str, Any] | None) -> VersionedTransaction:
    encoding = (config or {}).get("encoding", "base58")
    data = base64.b64decode(raw) if encoding == "base64" else _b58decode(raw)
    return VersionedTransaction.from_bytes(data)


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"


def _b58decode(text: str) -> bytes:
    num = 0
    for ch in text:
        num = num * 58 + _B58.index(ch)
    body = num.to_bytes((num.bit_length() + 7) // 8, "big")
    return b"\0" * (len(text) - len(text.lstrip("1"))) + body


__all__ = ["SvmRpc"]
