"""Local anvil dev chain helpers: start a node, deploy the test contracts, move TestUSDC.

Shared by the dev management command and the pytest fixtures, so this module must stay free of
Django imports (models, settings): only the stdlib, web3 and eth_account.

Contract artifacts come from `npm run compile-contracts`; the anvil binary from `npm install`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from eth_account import Account
from hexbytes import HexBytes
from web3 import Web3
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import RPCEndpoint, TxParams, TxReceipt

REPO_ROOT = Path(__file__).resolve().parent.parent
ANVIL_BIN = REPO_ROOT / "node_modules" / ".bin" / "anvil"
ARTIFACTS_DIR = Path(__file__).resolve().parent / "contracts"
CHAIN_ID = 31337

# The first 10 accounts anvil derives from its default mnemonic
# "test test test test test test test test test test test junk" (m/44'/60'/0'/0/i).
# These keys are public, well-known dev keys: never use them for anything holding real value.
ANVIL_ACCOUNTS: tuple[tuple[str, str], ...] = (
    (
        "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
        "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    ),
    (
        "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    ),
    (
        "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
        "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    ),
    (
        "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
        "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
    ),
    (
        "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
        "0x47e179ec197488593b187f80a00eb0da91f1b9d0b13f8733639f19c30a34926a",
    ),
    (
        "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
        "0x8b3a350cf5c34c9194ca85829a2df0ec3153be0318b5e2d3348e872092edffba",
    ),
    (
        "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
        "0x92db14e403b83dfe3df233f83dfa3a0d7096f21ca9b0d6d6b8d88b2b4ec1564e",
    ),
    (
        "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
        "0x4bbbf85ce3377467afe5d46f804f221813b2bb87f24d81f60f1fcdbf7cbf4356",
    ),
    (
        "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
        "0xdbda1821b80551c9d65939329250298aa3472ba22feea921c0cf5d620ea67b97",
    ),
    (
        "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
        "0x2a871d0798f97d79848a013d4936a73bf4cc922c825d33c1cf7073dff6d409c6",
    ),
)


class AnvilProcess(subprocess.Popen[bytes]):
    """A running anvil node; stop it with `stop()` or use it as a context manager."""

    url: str = ""
    _log: IO[bytes] | None = None  # anvil's output when started quiet

    def output(self) -> str:
        """Return what anvil has printed so far (empty unless started quiet)."""
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self, timeout: float = 5.0) -> None:
        """Terminate anvil and its npm wrapper, killing them if they ignore SIGTERM."""
        # The .bin/anvil wrapper is a node script that spawns the real binary, so signal the
        # whole process group: killing only the wrapper could orphan the node.
        _signal_group(self.pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        try:
            self.wait(timeout)
            # The wrapper exits without waiting for the binary; give that time to shut down too.
            while _signal_group(self.pid, 0) and time.monotonic() < deadline:
                time.sleep(0.05)
        except subprocess.TimeoutExpired:
            pass
        if _signal_group(self.pid, signal.SIGKILL):
            self.wait(timeout)
        if self._log is not None:
            self._log.close()
            self._log = None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        """Stop anvil when leaving the with block."""
        self.stop()
        super().__exit__(exc_type, exc, tb)


def _signal_group(pgid: int, sig: int) -> bool:
    """Send sig to process group pgid; return whether the group still existed."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    return True


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_anvil(
    *,
    port: int,
    block_time: int | None = None,
    quiet: bool = True,
    state_path: Path | None = None,
) -> AnvilProcess:
    """Start anvil on 127.0.0.1:port with chain id 31337 and the default dev accounts.

    Without block_time every transaction is mined at once (automine); with it, blocks are mined
    every block_time seconds. When quiet, anvil's output is kept for `AnvilProcess.output()`
    instead of going to the terminal. With state_path, the chain is loaded from that file and
    saved to it every few seconds and on exit, so it survives restarts. Call `wait_for_rpc()`
    before using the node.
    """
    if not ANVIL_BIN.exists():
        raise FileNotFoundError(f"{ANVIL_BIN} not found: run `npm install` in {REPO_ROOT}")
    cmd = [
        str(ANVIL_BIN),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--chain-id",
        str(CHAIN_ID),
    ]
    if block_time is not None:
        cmd += ["--block-time", str(block_time)]
    if state_path is not None:
        state_path.parent.mkdir(parents=True, exist_ok=True)
        cmd += ["--state", str(state_path), "--state-interval", "5"]
    if quiet:
        cmd.append("--quiet")
    # A file rather than a pipe, so a chatty anvil can never block on a full pipe buffer.
    log = tempfile.TemporaryFile() if quiet else None  # noqa: SIM115 - stop() closes it
    try:
        proc = AnvilProcess(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT if quiet else None,
            # Own process group, so stop() reaches the node wrapper and the anvil binary alike.
            start_new_session=True,
        )
    except BaseException:
        if log is not None:
            log.close()
        raise
    proc.url = f"http://127.0.0.1:{port}"
    proc._log = log
    return proc


def wait_for_rpc(url: str, timeout: float = 30.0, *, proc: AnvilProcess | None = None) -> int:
    """Poll url until eth_chainId answers and return the chain id.

    Pass proc to fail fast, with anvil's output, if the node dies while starting.
    """
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []})
    request = urllib.request.Request(
        url, data=body.encode(), headers={"Content-Type": "application/json"}
    )
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        # The npm wrapper exits 0 even when anvil fails, so any exit at all means it died.
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(
                f"anvil exited (code {proc.returncode}) before {url} answered:\n{proc.output()}"
            )
        try:
            with urllib.request.urlopen(request, timeout=1.0) as response:
                return int(json.load(response)["result"], 16)
        except (urllib.error.URLError, ConnectionError, TimeoutError, KeyError) as exc:
            last_error = exc
        time.sleep(0.1)
    output = f"\nanvil output:\n{proc.output()}" if proc is not None else ""
    raise TimeoutError(f"{url} did not answer eth_chainId in {timeout}s ({last_error}){output}")


def load_artifact(name: str) -> dict[str, Any]:
    """Load payments/contracts/<name>.json ({contractName, abi, bytecode})."""
    path = ARTIFACTS_DIR / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: run `npm run compile-contracts`")
    artifact: dict[str, Any] = json.loads(path.read_text())
    return artifact


def _check_receipt(w3: Web3, tx_hash: HexBytes, what: str) -> TxReceipt:
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash)
    if receipt["status"] != 1:
        raise RuntimeError(f"{what} reverted (tx {Web3.to_hex(tx_hash)})")
    return receipt


def deploy(w3: Web3, name: str, *args: Any, sender: str) -> str:
    """Deploy artifact `name` from the unlocked account sender; return its checksummed address."""
    artifact = load_artifact(name)
    factory = w3.eth.contract(abi=artifact["abi"], bytecode=artifact["bytecode"])
    tx_hash = factory.constructor(*args).transact({"from": Web3.to_checksum_address(sender)})
    receipt = _check_receipt(w3, tx_hash, f"deploying {name}")
    address = receipt["contractAddress"]
    if address is None:
        raise RuntimeError(f"deploying {name} produced no contract address")
    return Web3.to_checksum_address(address)


def _token(w3: Web3, token_address: str) -> Contract:
    # TestUSDC's ABI covers the standard ERC-20 calls used here.
    abi = load_artifact("TestUSDC")["abi"]
    return w3.eth.contract(address=Web3.to_checksum_address(token_address), abi=abi)


def _send_signed(w3: Web3, call: ContractFunction, private_key: str, what: str, wait: bool) -> str:
    """Build `call` as a tx from the key's account, sign it locally, send it; return its hash."""
    account = Account.from_key(private_key)
    # "pending" so back-to-back sends without waiting (e.g. with block_time) get fresh nonces.
    nonce = w3.eth.get_transaction_count(account.address, "pending")
    tx: TxParams = call.build_transaction({"from": account.address, "nonce": nonce})
    signed = account.sign_transaction(tx)
    tx_hash = w3.eth.send_raw_transaction(signed.raw_transaction)
    if wait:
        _check_receipt(w3, tx_hash, what)
    return tx_hash.to_0x_hex()


def mint(w3: Web3, token_address: str, to: str, amount_units: int, sender: str) -> str:
    """Mint amount_units base units of TestUSDC to `to`, sent by unlocked account sender.

    Return the tx hash (0x hex) once mined.
    """
    token = _token(w3, token_address)
    call = token.functions.mint(Web3.to_checksum_address(to), amount_units)
    tx_hash = call.transact({"from": Web3.to_checksum_address(sender)})
    _check_receipt(w3, tx_hash, "mint")
    return tx_hash.to_0x_hex()


def transfer(
    w3: Web3,
    token_address: str,
    to: str,
    amount_units: int,
    private_key: str,
    *,
    wait: bool = True,
) -> str:
    """Transfer amount_units from the key's account to `to`, signed locally; return the tx hash.

    With wait (the default) block until the tx is mined and raise if it reverted.
    """
    token = _token(w3, token_address)
    call = token.functions.transfer(Web3.to_checksum_address(to), amount_units)
    return _send_signed(w3, call, private_key, "transfer", wait)


def batch_send(
    w3: Web3,
    batch_address: str,
    token_address: str,
    recipients: Sequence[str],
    amounts: Sequence[int],
    private_key: str,
    *,
    wait: bool = True,
) -> str:
    """Pay every recipient its amount in one BatchSender tx; return that tx's hash.

    Approves BatchSender for the total first (waiting for it, since estimating gas for the batch
    needs the allowance in place). With wait, also block until the batch tx is mined.
    """
    if len(recipients) != len(amounts):
        raise ValueError(f"{len(recipients)} recipients but {len(amounts)} amounts")
    batch_address = Web3.to_checksum_address(batch_address)
    token = _token(w3, token_address)
    approve = token.functions.approve(batch_address, sum(amounts))
    _send_signed(w3, approve, private_key, "approve for batch_send", wait=True)
    batch = w3.eth.contract(address=batch_address, abi=load_artifact("BatchSender")["abi"])
    call = batch.functions.send(
        token.address, [Web3.to_checksum_address(r) for r in recipients], list(amounts)
    )
    return _send_signed(w3, call, private_key, "batch_send", wait)


def snapshot(w3: Web3) -> str:
    """Take an evm_snapshot and return its id."""
    snapshot_id: str = w3.manager.request_blocking(RPCEndpoint("evm_snapshot"), [])
    return snapshot_id


def revert(w3: Web3, snapshot_id: str) -> None:
    """Revert the chain to snapshot_id; anvil drops that snapshot, so take a new one to reuse it."""
    if not w3.manager.request_blocking(RPCEndpoint("evm_revert"), [snapshot_id]):
        raise RuntimeError(f"evm_revert to snapshot {snapshot_id} failed")


def mine(w3: Web3, blocks: int = 1) -> None:
    """Mine `blocks` empty blocks, e.g. to add confirmations."""
    w3.manager.request_blocking(RPCEndpoint("anvil_mine"), [hex(blocks)])
