"""The bench's own anvil chain with TestUSDC, and fast real transfers to the recipient.

Transfers are ordinary ERC-20 `transfer` transactions from anvil's unlocked dev accounts,
sent with eth_sendTransaction (anvil signs them) in JSON-RPC batches with explicit nonces, so
thousands can be made in seconds. Each one is a real transaction with a real Transfer log.
"""

from __future__ import annotations

import itertools
import json
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from web3 import HTTPProvider, Web3

from bench.stack import Stack, StackError, free_port
from payments import devchain
from payments.chain import TRANSFER_TOPIC

DEPLOYER = devchain.ANVIL_ACCOUNTS[0][0]
RECIPIENT, SIGNER_KEY = devchain.ANVIL_ACCOUNTS[9]
BUYERS = [address for address, _ in devchain.ANVIL_ACCOUNTS[1:9]]
FUNDING_UNITS = 10**9 * 10**6  # a billion TestUSDC each
TRANSFER_SELECTOR = "0xa9059cbb"


@dataclass
class Chain:
    anvil: devchain.AnvilProcess
    url: str
    w3: Web3
    token: str
    recipient: str = RECIPIENT
    state_path: Path | None = None
    _nonces: dict = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=itertools.count)

    def restart(self) -> float:
        """Stop the node (it saves its state) and start it again on the same port; return the
        seconds it was down. Pending transactions in its pool are lost, as on a real restart."""
        began = time.monotonic()
        port = int(self.url.rsplit(":", 1)[1])
        self.anvil.stop()
        self.anvil = devchain.start_anvil(port=port, state_path=self.state_path)
        devchain.wait_for_rpc(self.url, proc=self.anvil)
        self._nonces.clear()
        return time.monotonic() - began

    def balance(self, address: str) -> int:
        """The token balance of `address`, read from the chain."""
        abi = devchain.load_artifact("TestUSDC")["abi"]
        contract = self.w3.eth.contract(address=self.token, abi=abi)
        return contract.functions.balanceOf(Web3.to_checksum_address(address)).call()

    def transfers_from(self, sender: str) -> list[tuple[str, str, int]]:
        """Every Transfer of the token from `sender`: (tx hash, to, amount), from the chain."""
        topic = "0x" + "0" * 24 + sender.lower()[2:]
        logs = self.w3.eth.get_logs(
            {
                "address": self.token,
                "topics": [TRANSFER_TOPIC, topic],
                "fromBlock": 0,
                "toBlock": "latest",
            }
        )
        return [
            (
                Web3.to_hex(log["transactionHash"]).lower(),
                Web3.to_checksum_address("0x" + Web3.to_hex(log["topics"][2])[-40:]),
                int.from_bytes(bytes(log["data"]), "big"),
            )
            for log in logs
        ]

    def env(self) -> dict:
        return {
            "CHAIN_RPC_URL": self.url,
            "CHAIN_ID": str(devchain.CHAIN_ID),
            "PAYMENT_TOKEN_ADDRESS": self.token,
            "PAYMENT_RECIPIENT": self.recipient,
            "PLATFORM_SIGNER_KEY": SIGNER_KEY,
        }

    def _rpc(self, calls: list[dict]) -> list[dict]:
        body = [{"jsonrpc": "2.0", "id": next(self._ids), **call} for call in calls]
        request = urllib.request.Request(
            self.url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            answers = json.load(response)
        by_id = {answer["id"]: answer for answer in answers}
        return [by_id[call["id"]] for call in body]

    def pay(self, amounts: list[int], *, timeout: float = 60.0) -> list[str]:
        """Send one real TestUSDC transfer to the recipient per amount; return the tx hashes.

        Returns once every transfer is mined (status 1).
        """
        hashes: list[str] = []
        # One transaction per sender per request: anvil takes a batch's calls in any order, and a
        # nonce that arrives before its predecessor is queued and, with automine, never mined.
        for start in range(0, len(amounts), len(BUYERS)):
            calls = []
            for sender, amount in zip(BUYERS, amounts[start : start + len(BUYERS)], strict=False):
                if sender not in self._nonces:
                    self._nonces[sender] = self.w3.eth.get_transaction_count(sender, "pending")
                nonce = self._nonces[sender]
                self._nonces[sender] += 1
                data = (
                    TRANSFER_SELECTOR
                    + "0" * 24
                    + self.recipient[2:].lower()
                    + format(amount, "064x")
                )
                calls.append(
                    {
                        "method": "eth_sendTransaction",
                        "params": [
                            {
                                "from": sender,
                                "to": self.token,
                                "data": data,
                                "gas": hex(100_000),
                                "nonce": hex(nonce),
                            }
                        ],
                    }
                )
            for answer in self._rpc(calls):
                if "error" in answer:
                    raise StackError(f"anvil refused a transfer: {answer['error']}")
                hashes.append(answer["result"])
        self._wait_mined(hashes, timeout=timeout)
        return hashes

    def _wait_mined(self, hashes: list[str], *, timeout: float) -> None:
        pending = list(hashes)
        deadline = time.monotonic() + timeout
        while pending:
            answers = []
            for start in range(0, len(pending), 500):
                chunk = pending[start : start + 500]
                answers += self._rpc(
                    [{"method": "eth_getTransactionReceipt", "params": [h]} for h in chunk]
                )
            still = []
            for tx_hash, answer in zip(pending, answers, strict=True):
                receipt = answer.get("result")
                if receipt is None:
                    still.append(tx_hash)
                elif int(receipt["status"], 16) != 1:
                    raise StackError(f"transfer {tx_hash} reverted")
            pending = still
            if pending:
                if time.monotonic() > deadline:
                    raise StackError(f"{len(pending)} transfers not mined after {timeout:.0f}s")
                # Automine mines as transactions arrive; nudge it if it ever stalls.
                if time.monotonic() > deadline - timeout / 2:
                    self._rpc([{"method": "evm_mine", "params": []}])
                time.sleep(0.05)


def start_chain(stack: Stack, *, state_path: Path | None = None) -> Chain:
    """Start anvil on a free port (owned by `stack`), deploy TestUSDC and fund the buyers.

    With `state_path` the node keeps its chain there, so `Chain.restart()` resumes it.
    """
    anvil = devchain.start_anvil(port=free_port(), state_path=state_path)
    devchain.wait_for_rpc(anvil.url, proc=anvil)
    w3 = Web3(HTTPProvider(anvil.url))
    token = devchain.deploy(w3, "TestUSDC", sender=DEPLOYER)
    for buyer in BUYERS:
        devchain.mint(w3, token, buyer, FUNDING_UNITS, DEPLOYER)
    chain = Chain(anvil=anvil, url=anvil.url, w3=w3, token=token, state_path=state_path)
    stack.on_close(lambda: chain.anvil.stop())
    return chain
