"""The one web3 client: the chain's id and head, the token's decimals, receipts and Transfer logs.

Every function reads settings at call time, so a test (or a management command) may point Vendo
at another node by changing CHAIN_RPC_URL and PAYMENT_TOKEN_ADDRESS.
"""

from dataclasses import dataclass
from functools import cache

from django.conf import settings
from web3 import HTTPProvider, Web3
from web3.exceptions import TransactionNotFound

from marketplace.errors import ApplicationError

# keccak("Transfer(address,address,uint256)"): topic 0 of every ERC-20 (and ERC-721) Transfer.
TRANSFER_TOPIC = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
DECIMALS_ABI = [
    {
        "name": "decimals",
        "type": "function",
        "stateMutability": "view",
        "inputs": [],
        "outputs": [{"name": "", "type": "uint8"}],
    }
]


class ChainError(ApplicationError):
    """The node is unreachable or is not the configured chain."""

    code = "chain_unavailable"


@dataclass(frozen=True)
class TransferLog:
    """One log of a receipt, decoded as far as it is an ERC-20 Transfer."""

    tx_hash: str
    log_index: int
    address: str  # the contract that emitted it
    block_number: int
    block_hash: str
    is_transfer: bool  # topic 0 is Transfer, 3 topics, one 32-byte word of data
    looks_like_transfer: bool  # topic 0 is Transfer, whatever its shape
    from_address: str = ""
    to_address: str = ""
    amount_units: int = 0


@cache
def _web3(url: str) -> Web3:
    return Web3(HTTPProvider(url, request_kwargs={"timeout": 10}))


def web3() -> Web3:
    return _web3(settings.CHAIN_RPC_URL)


@cache
def _chain_id(url: str) -> int:
    return _web3(url).eth.chain_id


def chain_id() -> int:
    """Return the node's chain id, refusing a node that is not the configured chain."""
    try:
        found = _chain_id(settings.CHAIN_RPC_URL)
    except Exception as error:  # requests' and web3's own errors alike
        raise ChainError("Payments are unavailable: the chain node cannot be reached.") from error
    if found != settings.CHAIN_ID:
        raise ChainError(
            f"The node is chain {found}, not the configured chain {settings.CHAIN_ID}."
        )
    return found


def token_address() -> str:
    if not settings.PAYMENT_TOKEN_ADDRESS:
        raise ChainError("No payment token: set PAYMENT_TOKEN_ADDRESS or run devchain_setup.")
    return Web3.to_checksum_address(settings.PAYMENT_TOKEN_ADDRESS)


@cache
def _decimals(url: str, address: str) -> int:
    return _web3(url).eth.contract(address=address, abi=DECIMALS_ABI).functions.decimals().call()


def token_decimals() -> int:
    """Return the token's decimals, read from the contract once per process."""
    try:
        return _decimals(settings.CHAIN_RPC_URL, token_address())
    except ChainError:
        raise
    except Exception as error:
        raise ChainError(f"Cannot read decimals() of the token {token_address()}.") from error


def block_number() -> int:
    return web3().eth.block_number


def receipt(tx_hash: str):
    """Return the transaction's receipt, or None while the chain does not know it."""
    try:
        return web3().eth.get_transaction_receipt(tx_hash)
    except TransactionNotFound:
        return None


def decode_log(log) -> TransferLog:
    topics = [Web3.to_hex(t) for t in log["topics"]]
    data = bytes(log["data"])
    looks = bool(topics) and topics[0] == TRANSFER_TOPIC
    common = {
        "tx_hash": Web3.to_hex(log["transactionHash"]),
        "log_index": log["logIndex"],
        "address": Web3.to_checksum_address(log["address"]),
        "block_number": log["blockNumber"],
        "block_hash": Web3.to_hex(log["blockHash"]),
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


def transfer_logs(*, to: str, from_block: int, to_block: int) -> list[TransferLog]:
    """Return the token's Transfer logs to `to` between the two blocks, inclusive."""
    recipient_topic = "0x" + "0" * 24 + to.lower()[2:]
    logs = web3().eth.get_logs(
        {
            "address": token_address(),
            "topics": [TRANSFER_TOPIC, None, recipient_topic],
            "fromBlock": from_block,
            "toBlock": to_block,
        }
    )
    return [decode_log(log) for log in logs]
