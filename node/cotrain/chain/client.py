"""A signing JSON-RPC client: sends contract calls as EIP-1559 transactions and explains their reverts.

:class:`ChainClient` checks the connection (with exponential backoff), estimates gas (a revert during
estimation is reported as that revert, and nothing is sent), keeps each account's nonce locally so a process
can send several transactions without waiting, waits for receipts with N confirmations, and decodes failures
into :class:`ContractRevert` carrying the custom error's name and arguments from the registered ABIs.

On a real chain (see :class:`cotrain.chain.settings.ChainSettings`) it also retries dropped requests and rate
limits within a time budget, pages ``eth_getLogs`` under a provider's cap, and sees each action through to
one mined transaction: a lost answer to a send is not a second send, a dropped transaction is sent again, a
stuck one is replaced with the same nonce and higher fees.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import re
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from enum import IntEnum
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

import eth_abi
import requests
import urllib3
from eth_abi.exceptions import DecodingError
from eth_utils import abi_to_signature, keccak, to_checksum_address
from hexbytes import HexBytes
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractLogicError, TransactionNotFound, Web3Exception, Web3RPCError
from web3.types import Nonce, RPCEndpoint, TxParams, TxReceipt, Wei

from cotrain.chain.keys import TransactionSigner
from cotrain.chain.retry import Transient, log_limit, rate_limited, retry, transient_status
from cotrain.chain.settings import ChainSettings
from cotrain.errors import ChainError

_log = logging.getLogger("cotrain")

Stage = Literal["call", "estimate", "receipt"]

# Solidity's built-in errors: require(cond, "text") and assert/overflow panics.
_BUILTIN_ERRORS: list[dict[str, Any]] = [
    {"type": "error", "name": "Error", "inputs": [{"name": "message", "type": "string"}]},
    {"type": "error", "name": "Panic", "inputs": [{"name": "code", "type": "uint256"}]},
]
_NONCE_ERRORS = ("nonce too low", "already known", "replacement transaction underpriced", "nonce too high")
# What geth, anvil, Nethermind and Erigon answer to a transaction they already hold.
_ALREADY_KNOWN = ("already known", "already imported", "known transaction", "alreadyknown", "already exists")
#: Pages of logs a node must accept in a row before the page size doubles again after a refusal.
_PAGES_BEFORE_GROWING = 4


class ContractRevert(ChainError):
    """A contract call reverted.

    Attributes
    ----------
    name : str or None
        The custom error's name (``"WrongPhase"``; ``"Error"``/``"Panic"`` for Solidity's built-ins), or None
        when the revert carried no data this client can decode (e.g. out of gas).
    arguments : dict[str, Any]
        The error's decoded arguments by ABI name, in ABI order; enum arguments as IntEnum members.
    data : bytes
        The raw revert data (selector and ABI-encoded arguments).
    stage : {"call", "estimate", "receipt"}
        Whether the revert came from a read-only call, from gas estimation (nothing was sent), or from a mined
        transaction's failed receipt.
    function : str or None
        The contract function that reverted.
    tx_hash : str or None
        The failed transaction (receipt stage only).
    block : int or None
        The block the failed transaction was mined in (receipt stage only).
    detail : str or None
        What is known when the revert could not be decoded (``name`` is None).
    explanation : str or None
        The error in words, as registered with its ABI (``"this account is not a validator of the task"``).
    """

    def __init__(
        self,
        name: str | None,
        arguments: Mapping[str, Any],
        *,
        data: bytes,
        stage: Stage,
        function: str | None = None,
        tx_hash: str | None = None,
        block: int | None = None,
        detail: str | None = None,
        explanation: str | None = None,
    ) -> None:
        self.name = name
        self.arguments = dict(arguments)
        self.data = bytes(data)
        self.stage = stage
        self.function = function
        self.tx_hash = tx_hash
        self.block = block
        self.detail = detail
        self.explanation = explanation
        super().__init__(self._message())

    @property
    def signature(self) -> str:
        """The error with its arguments, e.g. ``WrongAmount(expected=100, sent=5)``."""
        if self.name is None:
            return self.detail or "unknown error"
        inner = ", ".join(f"{key}={_show(value)}" for key, value in self.arguments.items())
        return f"{self.name}({inner})"

    def _message(self) -> str:
        where = {"call": "call to", "estimate": "gas estimate for", "receipt": "transaction"}[self.stage]
        text = f"{where} {self.function or 'contract'} reverted"
        if self.block is not None:
            text += f" in block {self.block}"
        text += f": {self.signature}"
        if self.explanation:
            text += f" ({self.explanation})"
        if self.tx_hash is not None:
            text += f" (tx {self.tx_hash})"
        return text

    def __reduce__(self) -> Any:
        return (
            _rebuild_revert,
            (
                self.name,
                self.arguments,
                self.data,
                self.stage,
                self.function,
                self.tx_hash,
                self.block,
                self.detail,
                self.explanation,
            ),
        )


def _rebuild_revert(
    name: str | None,
    arguments: Mapping[str, Any],
    data: bytes,
    stage: Stage,
    function: str | None,
    tx_hash: str | None,
    block: int | None,
    detail: str | None,
    explanation: str | None,
) -> ContractRevert:
    return ContractRevert(
        name,
        arguments,
        data=data,
        stage=stage,
        function=function,
        tx_hash=tx_hash,
        block=block,
        detail=detail,
        explanation=explanation,
    )


def _show(value: Any) -> str:
    if isinstance(value, IntEnum):
        return f"{type(value).__name__}.{value.name}"
    if isinstance(value, bytes):
        return "0x" + value.hex()
    if isinstance(value, str):
        return value if value.startswith("0x") else repr(value)
    return str(value)


class RevertDecoder:
    """Decodes revert data and calldata with the errors and functions of registered ABIs."""

    def __init__(self) -> None:
        self._errors: dict[bytes, dict[str, Any]] = {}
        self._functions: dict[bytes, str] = {}
        self._enums: dict[str, type[IntEnum]] = {}
        self._explanations: dict[str, str] = {}
        self.register(_BUILTIN_ERRORS)

    def register(
        self,
        abi: Sequence[Mapping[str, Any]],
        enums: Mapping[str, type[IntEnum]] | None = None,
        explanations: Mapping[str, str] | None = None,
    ) -> None:
        """Learn the custom errors and function selectors of ``abi``.

        Parameters
        ----------
        abi : Sequence[Mapping]
            A contract ABI.
        enums : Mapping[str, type[IntEnum]]
            IntEnum classes by Solidity enum name (``"Phase"``): arguments whose ABI ``internalType`` is that
            enum are decoded into members.
        explanations : Mapping[str, str]
            Each custom error in words, by error name; reverts carry it as ``explanation``.
        """
        self._enums.update(enums or {})
        self._explanations.update(explanations or {})
        for entry in abi:
            if entry.get("type") not in ("error", "function"):
                continue
            selector = keccak(text=abi_to_signature(entry))[:4]  # type: ignore[arg-type]
            if entry["type"] == "error":
                self._errors[selector] = dict(entry)
            else:
                self._functions[selector] = entry["name"]

    def explain(self, name: str | None) -> str | None:
        """The registered words for the error ``name``, or None."""
        return None if name is None else self._explanations.get(name)

    def function_name(self, calldata: bytes) -> str | None:
        """The registered function whose selector starts ``calldata``, or None."""
        return self._functions.get(bytes(calldata[:4]))

    def decode(self, data: bytes) -> tuple[str | None, dict[str, Any]]:
        """Return ``(error name, arguments)`` for revert data; ``(None, {})`` for unknown or empty data."""
        entry = self._errors.get(bytes(data[:4])) if len(data) >= 4 else None
        if entry is None:
            return None, {}
        inputs = entry.get("inputs", [])
        try:
            values = eth_abi.decode([_abi_type(param) for param in inputs], bytes(data[4:]))
        except (DecodingError, ValueError):
            return None, {}
        names = [param.get("name") or f"arg{i}" for i, param in enumerate(inputs)]
        return entry["name"], {
            name: self._convert(param, value)
            for name, param, value in zip(names, inputs, values, strict=True)
        }

    def _convert(self, param: Mapping[str, Any], value: Any) -> Any:
        internal = str(param.get("internalType", ""))
        if internal.startswith("enum "):
            enum = self._enums.get(internal.rsplit(".", 1)[-1])
            if enum is not None:
                try:
                    return enum(value)
                except ValueError:
                    return value
        if param["type"] == "address":
            return to_checksum_address(value)
        return value


def _abi_type(param: Mapping[str, Any]) -> str:
    kind = str(param["type"])
    if kind.startswith("tuple"):
        return "(" + ",".join(_abi_type(c) for c in param["components"]) + ")" + kind[len("tuple") :]
    return kind


@dataclass
class _Sent:
    """A transaction this process signed and has not seen mined: what :meth:`ChainClient.wait` needs to
    send it again, or to replace it (same nonce, higher fees) when it stays pending."""

    signer: TransactionSigner
    transaction: dict[str, Any]  # the signed fields, including nonce and both fee caps
    raw: bytes  # the newest signed version
    hashes: list[str]  # every version sent, oldest first; whichever is mined is the result
    sent_at: float  # time.monotonic() of the newest version's sending


@dataclass
class _Shared:
    """State every ChainClient for one endpoint shares, whichever account it signs with."""

    w3: Web3
    rpc_url: str
    chain_id: int
    request_timeout: float
    headers: dict[str, str]
    settings: ChainSettings
    decoder: RevertDecoder = field(default_factory=RevertDecoder)
    # Reads go straight to the endpoint: web3's formatting layers cost ten times the request itself.
    http: urllib3.PoolManager = field(default_factory=lambda: urllib3.PoolManager(maxsize=4))
    nonces: dict[str, int] = field(default_factory=dict)
    sent: dict[str, _Sent] = field(default_factory=dict)  # by each version's hash
    log_page: int = 0  # blocks per eth_getLogs the endpoint last accepted (0: not learned yet)
    lock: threading.Lock = field(default_factory=threading.Lock)


class _RetryingProvider(HTTPProvider):
    """web3's HTTP transport, retrying dropped connections, HTTP 429/5xx and rate-limit answers.

    Resending a request is safe for every call web3 makes here: reads, gas estimates, and raw transactions
    (the same signed bytes have the same hash; the node answers "already known" or mines it once).
    """

    def __init__(self, rpc_url: str, settings: ChainSettings, **kwargs: Any) -> None:
        super().__init__(rpc_url, **kwargs)
        self.settings = settings
        self.retrying = False  # off while connecting: the connection check counts its own attempts
        self.shown_url = _redact(rpc_url)

    def _make_request(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        if not self.retrying:
            return super()._make_request(method, request_data)
        return retry(lambda: self._attempt(method, request_data), self.settings)

    def _attempt(self, method: RPCEndpoint, request_data: bytes) -> bytes:
        try:
            raw = super()._make_request(method, request_data)
        except (requests.ConnectionError, requests.Timeout) as exc:
            reason = _reason(exc)
            raise Transient(
                self._failure(f"cannot reach RPC at {self.shown_url} for", method, reason, exc)
            ) from exc
        except requests.HTTPError as exc:
            status = exc.response.status_code if exc.response is not None else 0
            if not transient_status(status):
                raise
            raise Transient(
                self._failure(f"the node at {self.shown_url} refused", method, f"HTTP {status}", exc)
            ) from exc
        error = _error_of(raw)
        if error is not None and rate_limited(error.get("code"), str(error.get("message", ""))):
            message = str(error.get("message"))
            raise Transient(self._failure(f"the node at {self.shown_url} refused", method, message, None))
        return raw

    @staticmethod
    def _failure(what: str, method: str, reason: str, cause: BaseException | None) -> ChainError:
        error = ChainError(f"{what} {method}: {reason}")
        error.__cause__ = cause
        return error


def _error_of(raw: bytes) -> Mapping[str, Any] | None:
    """The JSON-RPC error object of a raw answer, if it is one (cheap for the usual answer)."""
    if b'"error"' not in raw:
        return None
    try:
        answer = json.loads(raw)
    except ValueError:
        return None
    error = answer.get("error") if isinstance(answer, Mapping) else None
    return error if isinstance(error, Mapping) else None


class ChainClient:
    """A connection to one JSON-RPC endpoint, optionally signing as one account.

    Parameters
    ----------
    rpc_url : str
        ``http://`` or ``https://`` JSON-RPC endpoint.
    account : TransactionSigner, optional
        Signs transactions (a :class:`cotrain.chain.keys.Signer`); read-only client when None.
    confirmations : int
        Blocks to wait on top of a transaction's block before :meth:`wait` returns (0: as soon as mined).
    timeout : float
        Seconds :meth:`wait` waits for a receipt and its confirmations.
    poll : float
        Longest pause between receipt polls (the first come after 10, 20, 40 ms...).
    retries : int
        Connection attempts after the first before giving up.
    backoff : float
        Seconds before the first retry; doubled after each.
    request_timeout : float
        Seconds one HTTP request may take.
    gas_margin : float
        Gas limit sent = estimate times this (the state can change between estimate and inclusion).
    settings : ChainSettings, optional
        Finality depth, retries, fee bumps and log paging for a real chain; ``confirmations``, when given,
        overrides its field.

    Raises
    ------
    ChainError
        If the endpoint does not answer ``eth_chainId`` after all retries.
    """

    def __init__(
        self,
        rpc_url: str,
        account: TransactionSigner | None = None,
        *,
        confirmations: int | None = None,
        timeout: float = 120.0,
        poll: float = 0.5,
        retries: int = 5,
        backoff: float = 0.5,
        request_timeout: float = 30.0,
        gas_margin: float = 1.25,
        settings: ChainSettings | None = None,
    ) -> None:
        if urlsplit(rpc_url).scheme not in ("http", "https"):
            raise ChainError(f"RPC URL {_redact(rpc_url)!r} must start with http:// or https://")
        settings = settings or ChainSettings()
        if confirmations is not None:
            settings = replace(settings, confirmations=confirmations)
        if timeout <= 0 or poll <= 0 or retries < 0 or backoff < 0 or gas_margin < 1:
            raise ValueError("retries, backoff >= 0; timeout, poll > 0; gas_margin >= 1")
        provider = _RetryingProvider(
            rpc_url,
            settings,
            request_kwargs={"timeout": request_timeout},
            # Retries are this client's: web3's own would multiply them and slow a clear failure down.
            exception_retry_configuration=None,
            # web3 checks every call and transaction against the node's chain id, asked anew each time: more
            # than half of a contributor's requests per step. It cannot change under a connected client.
            cache_allowed_requests=True,
            cacheable_requests={RPCEndpoint("eth_chainId")},
        )
        w3 = Web3(provider)
        chain_id = _connect(w3, _redact(rpc_url), retries, backoff)
        provider.retrying = True
        headers = {"Content-Type": "application/json"}
        parts = urlsplit(rpc_url)
        if parts.username is not None:  # as requests (web3's transport) does with credentials in the URL
            headers |= urllib3.util.make_headers(basic_auth=f"{parts.username}:{parts.password or ''}")
        self._shared = _Shared(
            w3=w3,
            rpc_url=rpc_url,
            chain_id=chain_id,
            request_timeout=request_timeout,
            headers=headers,
            settings=settings,
        )
        self._account = account
        self.timeout = timeout
        self.poll = poll
        self.gas_margin = gas_margin

    def as_account(self, account: TransactionSigner) -> ChainClient:
        """A client for the same endpoint (connection, nonce book, known errors) signing as ``account``."""
        other = object.__new__(ChainClient)
        other.__dict__.update(self.__dict__)
        other._account = account
        return other

    # ---------------------------------------------------------------- properties

    @property
    def settings(self) -> ChainSettings:
        """How this client copes with a real chain (confirmations, retries, fee bumps, log paging)."""
        return self._shared.settings

    @property
    def confirmations(self) -> int:
        """Blocks on top of a transaction's or log's block before it counts as final."""
        return self._shared.settings.confirmations

    @property
    def w3(self) -> Web3:
        """The underlying web3 instance."""
        return self._shared.w3

    @property
    def rpc_url(self) -> str:
        """The endpoint, with any password in it masked."""
        return _redact(self._shared.rpc_url)

    @property
    def chain_id(self) -> int:
        """The chain id the endpoint reported at connection."""
        return self._shared.chain_id

    @property
    def account(self) -> TransactionSigner | None:
        """The signing account, if any."""
        return self._account

    @property
    def address(self) -> str | None:
        """The signing account's address, if any."""
        return None if self._account is None else self._account.address

    @property
    def decoder(self) -> RevertDecoder:
        """The errors and functions this client can name (see :meth:`register_abi`)."""
        return self._shared.decoder

    def register_abi(
        self,
        abi: Sequence[Mapping[str, Any]],
        enums: Mapping[str, type[IntEnum]] | None = None,
        explanations: Mapping[str, str] | None = None,
    ) -> None:
        """Teach the client a contract's custom errors so its reverts are decoded (see RevertDecoder)."""
        self._shared.decoder.register(abi, enums, explanations)

    def __repr__(self) -> str:
        return f"ChainClient({self.rpc_url!r}, account={self.address}, chain_id={self.chain_id})"

    # ---------------------------------------------------------------- reads

    def block_number(self) -> int:
        """The latest block number."""
        return int(self.read("eth_blockNumber", [], "reading the block number"), 16)

    def latest_timestamp(self) -> int:
        """The latest block's timestamp (unix seconds): the clock contracts see."""
        return int(
            self.read("eth_getBlockByNumber", ["latest", False], "reading the latest block")["timestamp"], 16
        )

    def block_hash(self, number: int) -> str | None:
        """The 0x-hex hash of block ``number`` (it changes when a reorganisation replaces the block), or
        None when the chain is not that long (any more)."""
        block = self.read("eth_getBlockByNumber", [hex(number), False], f"reading block {number}")
        return None if block is None else str(block["hash"])

    def get_code(self, address: str) -> bytes:
        """The runtime code at ``address`` (empty for an account without code)."""
        with self._rpc_errors(f"reading the code at {address}"):
            return bytes(self.w3.eth.get_code(to_checksum_address(address)))

    def final_block(self) -> int:
        """The newest block with ``confirmations`` blocks on top (the latest block when that is 0)."""
        return self.block_number() - self.confirmations

    def get_logs(
        self, address: str, topics: Sequence[Any], first: int, last: int, *, page: int | None = None
    ) -> list[dict[str, Any]]:
        """``eth_getLogs`` of one contract over blocks ``first..last``, as the node's JSON (hex strings).

        The range is asked ``page`` blocks at a time (``settings.log_page_blocks`` when None). Where the
        node refuses a page as too wide or too full, the page is halved and asked again; after a run of
        accepted pages it doubles back. The size the node last accepted is where the next call starts.

        Raises
        ------
        ChainError
            If the node refuses even a single block's logs, or cannot be reached.
        """
        largest = page or self.settings.log_page_blocks
        shared = self._shared
        size = min(largest, shared.log_page or largest) if page is None else largest
        logs: list[dict[str, Any]] = []
        low, passed = first, 0
        while low <= last:
            high = min(low + size - 1, last)
            query = {"address": address, "fromBlock": hex(low), "toBlock": hex(high), "topics": list(topics)}
            try:
                logs += self._request("eth_getLogs", [query], "reading logs")
            except _Refusal as refusal:
                if not log_limit(refusal.message):
                    raise ChainError(
                        f"the node at {self.rpc_url} refused reading logs: {refusal.message}"
                    ) from None
                if high == low:
                    raise ChainError(
                        f"the node at {self.rpc_url} refuses the logs of block {low} alone: {refusal.message}"
                    ) from None
                size, passed = max(1, (high - low + 1) // 2), 0
                continue
            low, passed = high + 1, passed + 1
            if passed >= _PAGES_BEFORE_GROWING and size < largest:
                size, passed = min(2 * size, largest), 0
        if page is None:
            shared.log_page = size
        return logs

    def call(self, to: str, data: bytes, *, label: str, block: int | str = "latest") -> bytes:
        """Run a read-only call of ``data`` (selector and ABI-encoded arguments) at ``to``; return its output.

        Raises
        ------
        ContractRevert
            If the call reverts (stage ``"call"``), with ``label`` as the function's name.
        ChainError
            If the node cannot be reached or refuses the call.
        """
        call: dict[str, str] = {"to": to, "data": "0x" + data.hex()}
        if self._account is not None:
            call["from"] = self._account.address
        action = f"calling {label}"
        try:
            return _as_bytes(
                self._request("eth_call", [call, block if isinstance(block, str) else hex(block)], action)
            )
        except _Refusal as refusal:
            if not refusal.reverted:
                raise ChainError(f"the node at {self.rpc_url} refused {action}: {refusal.message}") from None
            raise self._revert(_as_bytes(refusal.data), refusal.message, "call", label) from None

    def read(self, method: str, params: Sequence[Any], action: str) -> Any:
        """One JSON-RPC request's result, straight from the endpoint (no web3 formatting: values are hex).

        Raises
        ------
        ChainError
            If the endpoint cannot be reached, or answers with an error (``action`` says what was asked).
        """
        try:
            return self._request(method, params, action)
        except _Refusal as refusal:
            raise ChainError(f"the node at {self.rpc_url} refused {action}: {refusal.message}") from None

    # ---------------------------------------------------------------- transactions

    def estimate_gas(self, function: Any, *, value: int = 0) -> int:
        """Estimate the gas of a contract function or constructor call sent from this client's account.

        Raises
        ------
        ContractRevert
            If the call would revert (stage ``"estimate"``); this is the error to report, nothing is sent.
        """
        label = _label(function)
        params: TxParams = {"from": self._require_account().address}
        if value:
            params["value"] = Wei(value)
        try:
            with self._rpc_errors(f"estimating gas for {label}"):
                return int(function.estimate_gas(params))
        except ContractLogicError as exc:
            raise self._revert(_as_bytes(exc.data), exc.message, "estimate", label) from exc

    def submit(self, function: Any, *, value: int = 0, gas: int | None = None) -> str:
        """Sign and send a contract function or constructor call; return its transaction hash without waiting.

        The nonce comes from this process's book (fetched from the node once per account, then counted
        locally), so several transactions can be in flight at once.

        Parameters
        ----------
        function : ContractFunction or ContractConstructor
            The bound call, e.g. ``contract.functions.join(task_id)``.
        value : int
            Wei to send.
        gas : int, optional
            Gas limit; estimated (times ``gas_margin``) when None. Giving one skips estimation, so a revert
            shows up only in the receipt.

        Raises
        ------
        ContractRevert
            If gas estimation reverts.
        ChainError
            If there is no account, the node is unreachable, or the node refuses the transaction.
        """
        account = self._require_account()
        label = _label(function)
        if gas is None:
            gas = math.ceil(self.estimate_gas(function, value=value) * self.gas_margin)
        shared = self._shared
        with shared.lock:
            for attempt in range(2):
                nonce = self._next_nonce(account.address)
                params: TxParams = {
                    "from": account.address,
                    "nonce": Nonce(nonce),
                    "gas": gas,
                    "chainId": shared.chain_id,
                }
                if value:
                    params["value"] = Wei(value)
                with self._rpc_errors(f"preparing {label}"):
                    # build_transaction fills the EIP-1559 fee fields; adding gasPrice would be an error.
                    transaction = dict(function.build_transaction(params))
                signed = account.sign_transaction(transaction)
                tx_hash = HexBytes(signed.hash).to_0x_hex()
                try:
                    self._send_raw(bytes(signed.raw_transaction), tx_hash, f"sending {label}")
                except ChainError as exc:
                    shared.nonces.pop(account.address, None)  # resynchronise from the node next time
                    if attempt == 0 and any(text in str(exc).lower() for text in _NONCE_ERRORS):
                        continue
                    raise
                shared.nonces[account.address] = nonce + 1
                shared.sent[tx_hash] = _Sent(
                    account, transaction, bytes(signed.raw_transaction), [tx_hash], time.monotonic()
                )
                return tx_hash
        raise AssertionError("unreachable")

    def wait(self, tx_hash: str) -> TxReceipt:
        """Wait for a transaction's receipt and ``confirmations`` blocks on top of it.

        A transaction this client sent that is still pending after ``settings.stuck_after`` seconds is sent
        again if the node forgot it, else replaced: the same nonce with both fee caps raised by
        ``settings.fee_bump`` (up to ``settings.max_fee_per_gas``). One nonce means at most one of the
        versions is mined; its receipt is the result.

        Raises
        ------
        ContractRevert
            If the transaction failed (stage ``"receipt"``), decoded from a call trace or a replay.
        ChainError
            If it is not mined and confirmed within ``timeout`` seconds.
        """
        sent = self._shared.sent.get(tx_hash)
        try:
            receipt = self._await_receipt(tx_hash, sent)
        finally:
            if sent is not None:
                with self._shared.lock:
                    for version in sent.hashes:
                        self._shared.sent.pop(version, None)
        if receipt["status"] != 1:
            raise self._receipt_revert(HexBytes(receipt["transactionHash"]).to_0x_hex(), receipt)
        return receipt

    def _await_receipt(self, tx_hash: str, sent: _Sent | None) -> TxReceipt:
        deadline = time.monotonic() + self.timeout
        # A chain that mines on arrival has the receipt in milliseconds: ask soon, then back off to ``poll``.
        pause = 0.01
        while True:
            versions = [tx_hash] if sent is None else sent.hashes
            receipt = self._newest_receipt(versions)
            if receipt is not None:
                if self.confirmations == 0:
                    return receipt
                if self.block_number() >= receipt["blockNumber"] + self.confirmations:
                    again = self._receipt(HexBytes(receipt["transactionHash"]).to_0x_hex())
                    if again is not None and again["blockHash"] == receipt["blockHash"]:
                        return again
                    # Reorganised out of its block: wait for it to be mined again.
            elif sent is not None and time.monotonic() - sent.sent_at >= self.settings.stuck_after:
                self._unstick(sent)
            if time.monotonic() >= deadline:
                if self._account is not None:
                    self._shared.nonces.pop(self._account.address, None)
                state = "mined" if receipt is None else f"confirmed by {self.confirmations} blocks"
                raise ChainError(
                    f"transaction {', '.join(versions)} was not {state} within {self.timeout} s at "
                    f"{self.rpc_url}; it may still be pending: check the node, or raise the timeout"
                )
            time.sleep(min(pause, self.poll))
            pause *= 2

    def _newest_receipt(self, versions: Sequence[str]) -> TxReceipt | None:
        """The receipt of whichever version of a transaction was mined (newest asked first), or None."""
        for version in reversed(versions):
            receipt = self._receipt(version)
            if receipt is not None:
                return receipt
        return None

    def _unstick(self, sent: _Sent) -> None:
        """Send a pending transaction again if the node forgot it, fill a nonce gap it waits behind, else
        replace it with higher fees."""
        shared = self._shared
        with shared.lock:
            sent.sent_at = time.monotonic()
            latest = sent.hashes[-1]
            if not self._known(latest):
                _log.info("transaction %s was dropped by the node; sending it again", latest)
                self._resend(sent.raw, latest, f"sending transaction {latest} again")
                return
            address = sent.signer.address
            action = f"reading the nonce of {address}"
            expected = int(self.read("eth_getTransactionCount", [address, "pending"], action), 16)
            if expected < int(sent.transaction["nonce"]):
                self._fill_gap(sent, expected)
                return
            fee, tip = int(sent.transaction["maxFeePerGas"]), int(sent.transaction["maxPriorityFeePerGas"])
            bump = self.settings.fee_bump
            new_fee = max(math.ceil(fee * (1 + bump)), fee + 1)
            if new_fee > self.settings.max_fee_per_gas:
                _log.warning(
                    "transaction %s is pending at the fee cap (%d wei per gas); waiting", latest, fee
                )
                return
            new_tip = min(max(math.ceil(tip * (1 + bump)), tip + 1), new_fee)
            transaction = {**sent.transaction, "maxFeePerGas": new_fee, "maxPriorityFeePerGas": new_tip}
            signed = sent.signer.sign_transaction(transaction)
            tx_hash = HexBytes(signed.hash).to_0x_hex()
            if not self._resend(bytes(signed.raw_transaction), tx_hash, f"replacing transaction {latest}"):
                return
            sent.transaction, sent.raw = transaction, bytes(signed.raw_transaction)
            sent.hashes.append(tx_hash)
            shared.sent[tx_hash] = sent
            _log.info(
                "transaction %s pending for %.0f s: replaced by %s with fees raised %.1f%%",
                latest,
                self.settings.stuck_after,
                tx_hash,
                100 * bump,
            )

    def _fill_gap(self, sent: _Sent, first: int) -> None:
        """Fill nonces ``first`` up to ``sent``'s, which the node lacks: each with the transaction this
        process signed for it, else (its action was given up on) with an empty transfer to the sender itself,
        which acts on nothing. One nonce is one mined transaction at most, so no action happens twice."""
        signer, last = sent.signer, int(sent.transaction["nonce"])
        for nonce in range(first, last):
            own = [
                other
                for other in self._shared.sent.values()
                if other.signer.address == signer.address and int(other.transaction["nonce"]) == nonce
            ]
            if own:
                _log.info("nonce %d of %s was dropped by the node; sending it again", nonce, signer.address)
                self._resend(own[0].raw, own[0].hashes[-1], f"sending nonce {nonce} again")
                continue
            filler = {
                "type": 2,
                "chainId": self._shared.chain_id,
                "nonce": nonce,
                "to": signer.address,
                "value": 0,
                "gas": 21_000,
                "maxFeePerGas": sent.transaction["maxFeePerGas"],
                "maxPriorityFeePerGas": sent.transaction["maxPriorityFeePerGas"],
            }
            signed = signer.sign_transaction(filler)
            _log.warning(
                "nonce %d of %s is missing at the node; filling it with an empty transfer",
                nonce,
                signer.address,
            )
            self._resend(
                bytes(signed.raw_transaction), HexBytes(signed.hash).to_0x_hex(), f"filling nonce {nonce}"
            )

    def _resend(self, raw: bytes, tx_hash: str, action: str) -> bool:
        """Send a version of a sent transaction; False when its nonce is spent or the node wants more."""
        try:
            self._send_raw(raw, tx_hash, action)
        except ChainError as exc:
            text = str(exc).lower()
            if "nonce too low" in text or "underpriced" in text:
                return False  # a version was mined meanwhile (the receipt shows it), or the bump was small
            raise
        return True

    def _send_raw(self, raw: bytes, tx_hash: str, action: str) -> None:
        """Send signed bytes; a node that already has them (a retried send whose answer was lost) is fine.

        Raises
        ------
        ChainError
            If the node refuses the transaction, e.g. "nonce too low" for a nonce another transaction took.
        """
        try:
            with self._rpc_errors(action):
                self.w3.eth.send_raw_transaction(raw)
        except ChainError as exc:
            text = str(exc).lower()
            if any(known in text for known in _ALREADY_KNOWN):
                return
            if "nonce too low" in text and self._known(tx_hash):
                return  # an earlier attempt of this very send was mined before the answer came back
            raise

    def _known(self, tx_hash: str) -> bool:
        """Whether the node has the transaction, pending or mined."""
        return (
            self.read("eth_getTransactionByHash", [tx_hash], f"looking up transaction {tx_hash}") is not None
        )

    def transact(self, function: Any, *, value: int = 0, gas: int | None = None) -> TxReceipt:
        """:meth:`submit` then :meth:`wait`: send a call and return its successful receipt."""
        return self.wait(self.submit(function, value=value, gas=gas))

    def reset_nonces(self) -> None:
        """Forget the locally counted nonces (e.g. after reverting a dev chain to a snapshot)."""
        with self._shared.lock:
            self._shared.nonces.clear()

    # ---------------------------------------------------------------- internals

    def signing_address(self) -> str:
        """The address this client signs with; raises ChainError when it has no signing account."""
        return self._require_account().address

    def _require_account(self) -> TransactionSigner:
        if self._account is None:
            raise ChainError(
                "this client has no signing account: pass one (see cotrain.chain.keys.load_signer) "
                "to send transactions"
            )
        return self._account

    def _next_nonce(self, address: str) -> int:
        nonce = self._shared.nonces.get(address)
        if nonce is None:
            with self._rpc_errors(f"reading the nonce of {address}"):
                nonce = int(self.w3.eth.get_transaction_count(address, "pending"))  # type: ignore[arg-type]
        return nonce

    def _receipt(self, tx_hash: str) -> TxReceipt | None:
        try:
            with self._rpc_errors(f"reading the receipt of {tx_hash}"):
                return self.w3.eth.get_transaction_receipt(tx_hash)  # type: ignore[arg-type]
        except TransactionNotFound:
            return None

    def _request(self, method: str, params: Sequence[Any], action: str) -> Any:
        """One JSON-RPC result; transport failures, HTTP 429/5xx and rate limits are retried (see retry)."""
        body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": method, "params": list(params)})
        return retry(lambda: self._attempt(body, action), self._shared.settings)

    def _attempt(self, body: str, action: str) -> Any:
        shared = self._shared
        try:
            response = shared.http.request(
                "POST",
                shared.rpc_url,
                body=body,
                headers=shared.headers,
                timeout=shared.request_timeout,
                retries=False,
            )
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            error = ChainError(f"cannot reach RPC at {self.rpc_url} while {action}: {_reason(exc)}")
            error.__cause__ = exc
            raise Transient(error) from exc
        try:
            answer = json.loads(response.data)
        except ValueError:
            answer = None
        if not isinstance(answer, Mapping) or ("result" not in answer and "error" not in answer):
            error = ChainError(
                f"{action} failed at {self.rpc_url}: HTTP {response.status}, not a JSON-RPC answer"
            )
            if transient_status(response.status):
                raise Transient(error)
            raise error
        if answer.get("error") is not None:
            refusal = _Refusal(answer["error"])
            busy = transient_status(response.status) or rate_limited(refusal.code, refusal.message)
            if busy and not refusal.reverted:
                raise Transient(ChainError(f"the node at {self.rpc_url} refused {action}: {refusal.message}"))
            raise refusal
        return answer["result"]

    def _revert(self, data: bytes, message: str | None, stage: Stage, function: str | None) -> ContractRevert:
        name, arguments = self.decoder.decode(data)
        detail = None if name is not None else _reason_without_data(message, data)
        return ContractRevert(
            name,
            arguments,
            data=data,
            stage=stage,
            function=function,
            detail=detail,
            explanation=self.decoder.explain(name),
        )

    def _receipt_revert(self, tx_hash: str, receipt: TxReceipt) -> ContractRevert:
        with self._rpc_errors(f"reading transaction {tx_hash}"):
            transaction = self.w3.eth.get_transaction(tx_hash)  # type: ignore[arg-type]
        function = self.decoder.function_name(bytes(transaction["input"])) or (
            "constructor" if transaction.get("to") is None else None
        )
        failed = functools.partial(
            ContractRevert, stage="receipt", function=function, tx_hash=tx_hash, block=receipt["blockNumber"]
        )
        if receipt["gasUsed"] >= transaction["gas"]:
            gas = transaction["gas"]
            return failed(None, {}, data=b"", detail=f"ran out of gas (used all {gas}); raise the gas limit")
        data = self._revert_data(tx_hash, transaction, receipt)
        if data is None:
            return failed(None, {}, data=b"", detail="replaying it did not reproduce the failure")
        name, arguments = self.decoder.decode(data)
        return failed(
            name,
            arguments,
            data=data,
            detail=None if name else f"undecodable data 0x{data.hex()}",
            explanation=self.decoder.explain(name),
        )

    def _revert_data(self, tx_hash: str, transaction: Mapping[str, Any], receipt: TxReceipt) -> bytes | None:
        """The failed transaction's revert data: from a call trace where the node has one, else by replay."""
        try:
            trace = self.w3.provider.make_request(
                "debug_traceTransaction",  # type: ignore[arg-type]
                [tx_hash, {"tracer": "callTracer"}],
            )
        except (Web3Exception, requests.RequestException):
            trace = {}
        result = trace.get("result") if isinstance(trace, Mapping) else None
        if isinstance(result, Mapping) and "output" in result:
            return _as_bytes(result["output"])
        # No tracer: replay the call on the state of its block (other transactions in the block may differ).
        replay: TxParams = {
            "from": transaction["from"],
            "data": transaction["input"],
            "gas": transaction["gas"],
        }
        if transaction.get("to") is not None:
            replay["to"] = transaction["to"]
        if transaction.get("value"):
            replay["value"] = transaction["value"]
        try:
            with self._rpc_errors(f"replaying transaction {tx_hash}"):
                self.w3.eth.call(replay, receipt["blockNumber"])
        except ContractLogicError as exc:
            return _as_bytes(exc.data)
        return None

    @contextmanager
    def _rpc_errors(self, action: str) -> Iterator[None]:
        """Turn transport and node errors into ChainError; contract reverts pass through for decoding."""
        try:
            yield
        except (ContractLogicError, TransactionNotFound, ChainError):
            raise
        except (requests.ConnectionError, requests.Timeout, ConnectionError, TimeoutError) as exc:
            raise ChainError(f"cannot reach RPC at {self.rpc_url} while {action}: {_reason(exc)}") from exc
        except Web3RPCError as exc:
            raise ChainError(f"the node at {self.rpc_url} refused {action}: {_rpc_message(exc)}") from exc
        except (Web3Exception, requests.RequestException) as exc:
            raise ChainError(f"{action} failed at {self.rpc_url}: {_short(exc)}") from exc


def _connect(w3: Web3, url: str, retries: int, backoff: float) -> int:
    """Return the endpoint's chain id, retrying with exponential backoff."""
    started = time.monotonic()
    delay = backoff
    last: Exception | None = None
    for attempt in range(retries + 1):
        try:
            return int(w3.eth.chain_id)
        except (requests.RequestException, Web3Exception, OSError, ValueError) as exc:
            last = exc
        if attempt < retries:
            time.sleep(delay)
            delay *= 2
    elapsed = time.monotonic() - started
    raise ChainError(
        f"cannot reach RPC at {url}: {_reason(last)} ({retries + 1} attempts over {elapsed:.1f} s); "
        "start the node or fix the URL"
    ) from last


def _label(function: Any) -> str:
    return str(getattr(function, "fn_name", None) or "constructor")


def _as_bytes(data: Any) -> bytes:
    if data is None:
        return b""
    if isinstance(data, bytes | bytearray):
        return bytes(data)
    if isinstance(data, str):
        try:
            return bytes(HexBytes(data))
        except ValueError:
            return b""
    return b""


class _Refusal(Exception):
    """A JSON-RPC error answer; ``reverted`` when it is the EVM reverting the call."""

    def __init__(self, error: Any) -> None:
        error = error if isinstance(error, Mapping) else {"message": str(error)}
        self.message = str(error.get("message", error))
        self.code = error.get("code")
        self.data = error.get("data")
        self.reverted = error.get("code") == 3 or "revert" in self.message.lower()
        super().__init__(self.message)


def _reason_without_data(message: str | None, data: bytes) -> str:
    if data:
        return f"undecodable revert data 0x{data.hex()}"
    return str(message or "reverted without data")


def _rpc_message(exc: Web3RPCError) -> str:
    response = getattr(exc, "rpc_response", None)
    if isinstance(response, Mapping) and isinstance(response.get("error"), Mapping):
        return str(response["error"].get("message", response["error"]))
    return _short(exc)


def _reason(exc: BaseException | None) -> str:
    """The root cause of a transport error (``[Errno 111] Connection refused``), else its short text."""
    found = re.search(r"\[Errno -?\d+\] [^'\")]+", str(exc))
    return found.group(0) if found else _short(exc)


def _short(exc: BaseException | None, limit: int = 300) -> str:
    text = f"{type(exc).__name__}: {exc}" if exc is not None else "no answer"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))
