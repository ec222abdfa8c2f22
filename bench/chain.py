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

from web3 import HTTPProvider, Web3

from bench.stack import Stack, StackError, free_port
from payments import devchain

DEPLOYER = devchain.ANVIL_ACCOUNTS[0][0]
RECIPIENT = devchain.ANVIL_ACCOUNTS[9][0]
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
    _nonces: dict = field(default_factory=dict)
    _ids: itertools.count = field(default_factory=itertools.count)

    def env(self) -> dict:
        return {
            "CHAIN_RPC_URL": self.url,
            "CHAIN_ID": str(devchain.CHAIN_ID),
            "PAYMENT_TOKEN_ADDRESS": self.token,
            "PAYMENT_RECIPIENT": self.recipient,
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


def start_chain(stack: Stack) -> Chain:
    """Start anvil on a free port (owned by `stack`), deploy TestUSDC and fund the buyers."""
    anvil = devchain.start_anvil(port=free_port())
    stack.on_close(anvil.stop)
    devchain.wait_for_rpc(anvil.url, proc=anvil)
    w3 = Web3(HTTPProvider(anvil.url))
    token = devchain.deploy(w3, "TestUSDC", sender=DEPLOYER)
    for buyer in BUYERS:
        devchain.mint(w3, token, buyer, FUNDING_UNITS, DEPLOYER)
    return Chain(anvil=anvil, url=anvil.url, w3=w3, token=token)
