"""The one web3 client: the chain's id, head and finality, the token, receipts, Transfer logs,
and sending signed transactions.

Every node error reaches the rest of Vendo as the one ChainError (or RangeRefused, for an
eth_getLogs range the node will not serve), so services handle a node that is down, slow or
odd in one place. Every function reads settings at call time, so a test (or a management
command) may point Vendo at another node by changing CHAIN_RPC_URL and PAYMENT_TOKEN_ADDRESS.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache, wraps

from django.conf import settings
from web3 import HTTPProvider, Web3
from web3.exceptions import (
    BadFunctionCallOutput,
    ContractLogicError,
    TransactionNotFound,
    Web3RPCError,
)

from marketplace.errors import ApplicationError

# keccak("Transfer(address,address,uint256)"): topic 0 of every ERC-20 (and ERC-721) Transfer.
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
ERC20_ABI = [
    {
        "name": "decimals",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    },
    {
        "name": "balanceOf",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "owner", "type": "address"}],
        "outputs": [{"name": "", "type": "uint256"}],
    },
    {
        "name": "transfer",
        "type": "function",
        "stateMutability": "nonpayable",
        "inputs": [{"name": "to", "type": "address"}, {"name": "value", "type": "uint256"}],
        "outputs": [{"name": "", "type": "bool"}],
    },
]
# ERC-1271: a contract wallet answers this selector when it made the signature.
ERC1271_MAGIC = bytes.fromhex("1626ba7e")
# Enough for a multi-owner Safe or a passkey (P-256) smart account; a wallet that wants more
# is refused rather than let burn the node's time on every claim.
ERC1271_GAS = 1_000_000
# How nodes say that a call ran and failed (geth, erigon, anvil, hosted providers).
EXECUTION_FAILED = ("revert", "gas", "evm error", "execution")
ERC1271_ABI = [
    {
        "name": "isValidSignature",
        "type": "function",
        "stateMutability": "view",
        "inputs": [{"name": "hash", "type": "bytes32"}, {"name": "signature", "type": "bytes"}],
        "outputs": [{"name": "", "type": "bytes4"}],
    },
]
# What nodes say when an eth_getLogs range is too wide (geth, erigon, Alchemy, Infura...).
RANGE_REFUSALS = (
    "range",
    "too many",
    "limit exceeded",
    "query returned more than",
    "response size",
    "exceed",
)
SMALLEST_TAIL_DECIMALS = 6


class ChainError(ApplicationError):
    """The node is unreachable, refused a call, or is not the configured chain."""

    code = "chain_unavailable"


class RangeRefused(ChainError):
    """The node refused an eth_getLogs range as too wide: read fewer blocks at a time."""


def _node_call(function: Callable) -> Callable:
    """Turn any error of the node or the network into ChainError."""

    @wraps(function)
    def call(*args, **kwargs):
        try:
            return function(*args, **kwargs)
        except ChainError:
            raise
        except Exception as error:  # requests', web3's and the node's own errors alike
            raise ChainError(
                f"The chain node did not answer {function.__name__} ({type(error).__name__}: "
                f"{str(error)[:200]})."
            ) from error

    return call


@dataclass(frozen=True)
class TransferLog:
    """One log of a receipt, decoded as far as it is an ERC-20 Transfer."""

    tx_hash: str
    log_index: int
    address: str  # the contract that emitted it
    block_number: int
    block_hash: str
    block_time: datetime | None
    is_transfer: bool  # topic 0 is Transfer, 3 topics, one 32-byte word of data
    looks_like_transfer: bool  # topic 0 is Transfer, whatever its shape
    from_address: str = ""
    to_address: str = ""
    amount_units: int = 0

    @property
    def content(self) -> tuple:
        """What identifies the transfer whatever block or position it lands in."""
        return (self.address, self.from_address, self.to_address, self.amount_units)


@cache
def _web3(url: str) -> Web3:
    return Web3(HTTPProvider(url, request_kwargs={"timeout": settings.CHAIN_RPC_TIMEOUT}))


def web3() -> Web3:
    return _web3(settings.CHAIN_RPC_URL)


@cache
def _chain_id(url: str) -> int:
    return _web3(url).eth.chain_id


def chain_id() -> int:
    """Return the node's chain id, refusing a node that is not the configured chain."""
    found = _node_call(_chain_id)(settings.CHAIN_RPC_URL)
    if found != settings.CHAIN_ID:
        raise ChainError(
            f"The node is chain {found}, not the configured chain {settings.CHAIN_ID}."
        )
    return found


def token_address() -> str:
    if not settings.PAYMENT_TOKEN_ADDRESS:
        raise ChainError("No payment token: set PAYMENT_TOKEN_ADDRESS or run devchain_setup.")
    return Web3.to_checksum_address(settings.PAYMENT_TOKEN_ADDRESS)


def recipient() -> str:
    return Web3.to_checksum_address(settings.PAYMENT_RECIPIENT)


def _token(url: str, address: str):
    return _web3(url).eth.contract(address=address, abi=ERC20_ABI)


@cache
def _decimals(url: str, address: str) -> int:
    return _token(url, address).functions.decimals().call()


def token_decimals() -> int:
    """Return the token's decimals, read from the contract once per process.

    An invoice's unique tail sits in the sixth decimal place whatever the token's precision
    (scaled up for an 18-decimal token), so a token with fewer than six cannot carry one.
    """
    decimals = _node_call(_decimals)(settings.CHAIN_RPC_URL, token_address())
    if decimals < SMALLEST_TAIL_DECIMALS:
        raise ChainError(
            f"The token {token_address()} has {decimals} decimals; Vendo needs at least "
            f"{SMALLEST_TAIL_DECIMALS} to tell invoices apart."
        )
    return decimals


@_node_call
def token_balance(address: str, *, block: int | str = "latest") -> int:
    return (
        _token(settings.CHAIN_RPC_URL, token_address())
        .functions.balanceOf(Web3.to_checksum_address(address))
        .call(block_identifier=block)
    )


@_node_call
def native_balance(address: str) -> int:
    return web3().eth.get_balance(Web3.to_checksum_address(address))


@_node_call
def block_number() -> int:
    return web3().eth.block_number


@_node_call
def finalized_block() -> int | None:
    """Return the node's finalized block number, or None if it has no such tag."""
    try:
        return web3().eth.get_block("finalized")["number"]
    except ValueError:  # the node answered with an error: it knows no "finalized"
        return None


@_node_call
def block_hash(number: int) -> str | None:
    """Return the hash of the canonical block at `number`, or None past the head."""
    try:
        return Web3.to_hex(web3().eth.get_block(number)["hash"])
    except Exception as error:
        if "not found" in str(error).lower():
            return None
        raise


@cache
def _block_time(url: str, block_hash_hex: str) -> datetime:
    timestamp = _web3(url).eth.get_block(block_hash_hex)["timestamp"]
    return datetime.fromtimestamp(timestamp, tz=UTC)


def block_time(block_hash_hex: str) -> datetime:
    """Return when the block was mined (its header's timestamp); blocks never change."""
    return _node_call(_block_time)(settings.CHAIN_RPC_URL, block_hash_hex)


@_node_call
def receipt(tx_hash: str):
    """Return the transaction's receipt, or None while the chain does not know it."""
    try:
        return web3().eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        return None


@_node_call
def contract_signed(address: str, message_hash: bytes, signature: bytes) -> bool:
    """Return whether the contract wallet at `address` made `signature` over `message_hash`
    (ERC-1271). False for an address without code or a contract that does not say yes."""
    address = Web3.to_checksum_address(address)
    if not web3().eth.get_code(address):
        return False
    wallet = web3().eth.contract(address=address, abi=ERC1271_ABI)
    try:
        answer = wallet.functions.isValidSignature(message_hash, signature).call(
            {"gas": ERC1271_GAS}
        )
    except (ContractLogicError, BadFunctionCallOutput):  # reverted, or not ERC-1271 at all
        return False
    except Web3RPCError as error:
        # The node ran the call and it failed (out of gas, an EVM error): the wallet did not
        # say yes. Anything else (a rate limit, say) is the node's trouble, not the wallet's.
        if any(word in str(error).lower() for word in EXECUTION_FAILED):
            return False
        raise
    return answer == ERC1271_MAGIC


def _timestamp(log) -> datetime | None:
    # Newer nodes (anvil, geth 1.14+) put the block's timestamp in every log.
    value = log.get("blockTimestamp")
    if value is None:
        return None
    if isinstance(value, str):
        value = int(value, 16)
    return datetime.fromtimestamp(value, tz=UTC)


def decode_log(log) -> TransferLog:
    topics = [Web3.to_hex(t) for t in log["topics"]]
    data = bytes(log["data"])
    looks = bool(topics) and topics[0] == TRANSFER_TOPIC
    common = {
        "tx_hash": Web3.to_hex(log["transactionHash"]).lower(),
        "log_index": log["logIndex"],
        "address": Web3.to_checksum_address(log["address"]),
        "block_number": log["blockNumber"],
        "block_hash": Web3.to_hex(log["blockHash"]),
        "block_time": _timestamp(log),
        "looks_like_transfer": looks,
    }
    if not (looks and len(topics) == 3 and len(data) == 32):
        return TransferLog(is_transfer=False, **common)
    return TransferLog(
        is_transfer=True,
        from_address=Web3.to_checksum_address("0x" + topics[1][-40:]),
        to_address=Web3.to_checksum_address("0x" + topics[2][-40:]),
        amount_units=int.from_bytes(data, "big"),
        **common,
    )


def with_block_time(log: TransferLog) -> TransferLog:
    """Return the log with its block's timestamp, read from the node if the log lacks it."""
    if log.block_time is not None:
        return log
    from dataclasses import replace

    return replace(log, block_time=block_time(log.block_hash))


def transfer_logs(*, to: str, from_block: int, to_block: int) -> list[TransferLog]:
    """Return the token's Transfer logs to `to` between the two blocks, inclusive."""
    recipient_topic = "0x" + "0" * 24 + to.lower()[2:]
    query = {
        "address": token_address(),
        "topics": [TRANSFER_TOPIC, None, recipient_topic],
        "fromBlock": from_block,
        "toBlock": to_block,
    }
    try:
        logs = web3().eth.get_logs(query)
    except Exception as error:
        text = str(error).lower()
        if to_block > from_block and any(word in text for word in RANGE_REFUSALS):
            raise RangeRefused(f"The node refused blocks {from_block}-{to_block}.") from error
        raise ChainError(f"The chain node did not answer eth_getLogs ({error}).") from error
    return [decode_log(log) for log in logs]


# ------------------------------------------------------------------------------
# Sending: the platform signer's transactions
# ------------------------------------------------------------------------------


@_node_call
def pending_nonce(address: str) -> int:
    return web3().eth.get_transaction_count(Web3.to_checksum_address(address), "pending")


@_node_call
def mined_nonce(address: str) -> int:
    return web3().eth.get_transaction_count(Web3.to_checksum_address(address), "latest")


@_node_call
def fees() -> tuple[int, int]:
    """Return (max fee per gas, priority fee) in wei: twice the base fee plus the tip."""
    latest = web3().eth.get_block("latest")
    base = latest.get("baseFeePerGas") or web3().eth.gas_price
    try:
        tip = web3().eth.max_priority_fee
    except Exception:  # a node without eth_maxPriorityFeePerGas
        tip = 10**9
    return 2 * base + tip, tip


def transfer_call_data(to: str, amount_units: int) -> str:
    """Return the calldata of transfer(to, amount)."""
    contract = _token(settings.CHAIN_RPC_URL, token_address())
    return contract.encode_abi("transfer", args=[Web3.to_checksum_address(to), amount_units])


def send_raw(raw_tx: str) -> str:
    """Broadcast signed bytes; return the hash. "Already known" is success: it is ours."""
    try:
        return Web3.to_hex(web3().eth.send_raw_transaction(raw_tx))
    except Exception as error:
        raise ChainError(f"The node refused the transaction: {str(error)[:300]}") from error
