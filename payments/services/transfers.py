"""Outgoing transfers (payouts and refunds), each sent exactly once.

A transfer is queued in the transaction that decides it (its money booked into `in_flight`).
The sender then signs it once: the nonce is allocated under a row lock, and the signed bytes
and their hash are saved before the first broadcast. Every retry broadcasts those same bytes,
so a worker killed between broadcast and save, a redelivered task or a node that was down
can delay a transfer, never send it twice. It is confirmed like an incoming payment; a reorg
that drops it makes it broadcast again.
"""

import logging
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from eth_account import Account as EthAccount
from web3 import Web3

from marketplace.models import OperatorAlert
from marketplace.money import format_token
from marketplace.services import alert_clear, alert_raise
from payments import chain
from payments.chain import ChainError
from payments.models import Account, LedgerTransaction, OnchainTransfer, SignerNonce
from payments.services.ledger import Move, Ref, ledger_post

logger = logging.getLogger(__name__)
Status = OnchainTransfer.Status
# An ERC-20 transfer costs 35,000 to 55,000 gas; the limit leaves room, unused gas is not paid.
GAS_LIMIT = 100_000
RETRY_MAX_SECONDS = 300


@cache
def _signer(key: str):
    return EthAccount.from_key(key)


def signer():
    """Return the platform's signing account (PLATFORM_SIGNER_KEY)."""
    return _signer(settings.PLATFORM_SIGNER_KEY)


def in_flight_of(transfer: OnchainTransfer) -> Ref:
    return Ref.of(Account.IN_FLIGHT, transfer.pk)


def transfer_queue(
    *,
    kind: str,
    cause: str,
    source: Ref,
    to_address: str,
    amount_units: int,
    token_decimals: int,
    invoice=None,
    payment=None,
    agent=None,
    not_before=None,
) -> OnchainTransfer:
    """Book a transfer out of `source` and queue it for the sender, after commit (and not
    before `not_before`, if given: until then it can still be cancelled)."""
    transfer = OnchainTransfer.objects.create(
        kind=kind,
        cause=cause,
        chain_id=settings.CHAIN_ID,
        token_address=chain.token_address(),
        token_decimals=token_decimals,
        from_address=signer().address,
        to_address=Web3.to_checksum_address(to_address),
        amount_units=amount_units,
        invoice=invoice,
        payment=payment,
        agent=agent,
        next_attempt_at=not_before or timezone.now(),
    )
    ledger_post(
        kind=LedgerTransaction.Kind.TRANSFER_BOOKED,
        moves=[Move(source, in_flight_of(transfer), amount_units)],
        memo=f"{transfer.get_kind_display()} to {transfer.to_address}",
        invoice=invoice,
        payment=payment,
        transfer=transfer,
    )
    if not_before is None:
        transaction.on_commit(lambda: enqueue_send(transfer.pk), robust=True)
    return transfer


def enqueue_send(transfer_id: int) -> None:
    from payments.tasks import send_transfer

    send_transfer.delay(transfer_id)


def transfer_cancel(*, transfer: OnchainTransfer) -> None:
    """Cancel a transfer that has not been signed; its money goes back to `in_flight`'s source
    (the caller books where). The caller holds the transfer's row lock."""
    if transfer.status != Status.QUEUED:
        raise ValueError(f"Transfer {transfer.pk} is {transfer.status}: only queued ones cancel.")
    transfer.status = Status.CANCELLED
    transfer.cancelled_at = timezone.now()
    transfer.save(update_fields=["status", "cancelled_at"])
    ledger_post(
        kind=LedgerTransaction.Kind.TRANSFER_CANCELLED,
        moves=[
            Move(
                in_flight_of(transfer),
                Ref.of(Account.REFUND_DUE, transfer.to_address),
                int(transfer.amount_units),
            )
        ],
        memo=f"Transfer {transfer.pk} cancelled before it was signed",
        invoice=transfer.invoice,
        payment=transfer.payment,
        transfer=transfer,
    )


# ------------------------------------------------------------------------------
# Signing and broadcasting
# ------------------------------------------------------------------------------


def transfer_send(*, transfer_id: int) -> str:
    """Sign the transfer if it is not signed yet, then broadcast its bytes; return its status.

    Safe to run any number of times, concurrently or after a crash at any point.
    """
    transfer = OnchainTransfer.objects.filter(pk=transfer_id).first()
    if transfer is None or transfer.status in (Status.CANCELLED, Status.CONFIRMED):
        return transfer.status if transfer else "missing"
    if transfer.status == Status.QUEUED:
        if transfer.next_attempt_at and transfer.next_attempt_at > timezone.now():
            return Status.QUEUED  # held back on purpose, or waiting for gas: beat sends it
        transfer = _sign(transfer_id)
        if transfer is None:
            return Status.QUEUED
        if transfer.status not in (Status.SIGNED, Status.SENT):
            return transfer.status  # still waiting, or cancelled while we waited for the lock
    return _broadcast(transfer)


def _fees_if_funded(address: str) -> tuple[int, int] | None:
    """Return the fees to offer, or None (and alert operators) if the signer lacks the gas."""
    max_fee, tip = chain.fees()
    have = chain.native_balance(address)
    need = GAS_LIMIT * max_fee
    if have < need:
        alert_raise(
            kind=OperatorAlert.Kind.SIGNER_GAS,
            message=(
                f"The platform signer {address} holds {Web3.from_wei(have, 'ether')} of the "
                f"chain's native token and needs at least {Web3.from_wei(need, 'ether')} to pay "
                "gas. Payouts and refunds wait until it is topped up."
            ),
        )
        return None
    alert_clear(kind=OperatorAlert.Kind.SIGNER_GAS)
    return max_fee, tip


def _sign(transfer_id: int) -> OnchainTransfer | None:
    account = signer()
    fees = _fees_if_funded(account.address)  # chain reads before any lock is taken
    chain_nonce = chain.pending_nonce(account.address)
    with transaction.atomic():
        transfer = OnchainTransfer.objects.select_for_update().get(pk=transfer_id)
        if transfer.status != Status.QUEUED:
            return transfer
        if fees is None:
            _later(transfer, "The platform signer is out of gas.")
            return None
        max_fee, tip = fees
        counter, _ = SignerNonce.objects.select_for_update().get_or_create(
            chain_id=transfer.chain_id,
            address=account.address,
            defaults={"next_nonce": chain_nonce},
        )
        # Past nonces the key used outside Vendo, never below one Vendo allocated.
        nonce = max(counter.next_nonce, chain_nonce)
        counter.next_nonce = nonce + 1
        counter.save(update_fields=["next_nonce"])
        signed = account.sign_transaction(
            {
                "type": 2,
                "chainId": transfer.chain_id,
                "nonce": nonce,
                "to": Web3.to_checksum_address(transfer.token_address),
                "value": 0,
                "data": chain.transfer_call_data(transfer.to_address, int(transfer.amount_units)),
                "gas": GAS_LIMIT,
                "maxFeePerGas": max_fee,
                "maxPriorityFeePerGas": tip,
            }
        )
        transfer.nonce = nonce
        transfer.raw_tx = Web3.to_hex(signed.raw_transaction)
        transfer.tx_hash = Web3.to_hex(signed.hash)
        transfer.status = Status.SIGNED
        transfer.signed_at = timezone.now()
        transfer.save(update_fields=["nonce", "raw_tx", "tx_hash", "status", "signed_at"])
    return transfer


def _broadcast(transfer: OnchainTransfer) -> str:
    """Send the transfer's saved bytes; "already known" and "already mined" are success."""
    try:
        chain.send_raw(transfer.raw_tx)
    except ChainError as error:
        text = error.message.lower()
        known = "already known" in text or "known transaction" in text
        mined = "nonce too low" in text and _mined(transfer)
        if not (known or mined):
            if "insufficient funds" in text:
                _fees_if_funded(transfer.from_address)
            logger.warning("Transfer %s not broadcast: %s", transfer.pk, error.message)
            _later(transfer, error.message)
            return transfer.status
    now = timezone.now()
    OnchainTransfer.objects.filter(pk=transfer.pk, status__in=[Status.SIGNED, Status.SENT]).update(
        status=Status.SENT,
        sent_at=now,
        broadcasts=F("broadcasts") + 1,
        last_error="",
        next_attempt_at=now + timedelta(seconds=settings.CHAIN_SCAN_INTERVAL),
    )
    return Status.SENT


def _mined(transfer: OnchainTransfer) -> bool:
    try:
        return chain.receipt(transfer.tx_hash) is not None
    except ChainError:
        return False


def _later(transfer: OnchainTransfer, error: str) -> None:
    """Try again later, backing off up to RETRY_MAX_SECONDS."""
    waited = (timezone.now() - transfer.created_at).total_seconds()
    delay = min(max(waited, settings.CHAIN_SCAN_INTERVAL), RETRY_MAX_SECONDS)
    OnchainTransfer.objects.filter(pk=transfer.pk).update(
        last_error=error[:1000], next_attempt_at=timezone.now() + timedelta(seconds=delay)
    )


# ------------------------------------------------------------------------------
# Confirming
# ------------------------------------------------------------------------------


def transfers_advance() -> int:
    """Move every transfer on: sign queued ones that waited, broadcast signed ones again,
    confirm sent ones, and follow confirmed ones until final. Return how many moved."""
    now = timezone.now()
    due = OnchainTransfer.objects.filter(
        Q(next_attempt_at__lte=now) | Q(next_attempt_at__isnull=True)
    )
    moved = 0
    for transfer_id in due.filter(status=Status.QUEUED).values_list("pk", flat=True):
        moved += transfer_send(transfer_id=transfer_id) != Status.QUEUED
    # In nonce order: a later nonce waits in the node's pool until the earlier one arrives.
    for transfer in due.filter(status=Status.SIGNED).order_by("nonce"):
        moved += _broadcast(transfer) == Status.SENT
    unsettled = due.filter(status=Status.SENT) | due.filter(status=Status.CONFIRMED, is_final=False)
    if unsettled.exists():
        head, finalized = chain.block_number(), chain.finalized_block()
        for transfer in unsettled.order_by("nonce"):
            moved += _follow(transfer, head, finalized)
    return moved


def _follow(transfer: OnchainTransfer, head: int, finalized: int | None) -> bool:
    receipt = chain.receipt(transfer.tx_hash)
    with transaction.atomic():
        transfer = OnchainTransfer.objects.select_for_update().get(pk=transfer.pk)
        if receipt is None:
            return _dropped(transfer)
        if receipt["status"] != 1:
            return _failed_on_chain(transfer)
        block = receipt["blockNumber"]
        transfer.block_number, transfer.block_hash = block, Web3.to_hex(receipt["blockHash"])
        transfer.confirmations = max(head - block + 1, 0)
        changed = False
        if (
            transfer.status == Status.SENT
            and transfer.confirmations >= settings.REQUIRED_CONFIRMATIONS
        ):
            transfer.status = Status.CONFIRMED
            transfer.confirmed_at = timezone.now()
            ledger_post(
                kind=LedgerTransaction.Kind.TRANSFER_CONFIRMED,
                moves=[
                    Move(in_flight_of(transfer), Ref(Account.WALLET), int(transfer.amount_units))
                ],
                memo=f"{transfer.tx_hash} confirmed",
                invoice=transfer.invoice,
                payment=transfer.payment,
                transfer=transfer,
            )
            changed = True
        if transfer.status == Status.CONFIRMED and _is_final(
            block, transfer.confirmations, finalized
        ):
            transfer.is_final = True
        transfer.next_attempt_at = timezone.now() + timedelta(
            seconds=settings.CHAIN_SCAN_INTERVAL * (1 if transfer.status == Status.SENT else 4)
        )
        transfer.save()
    return changed


def _is_final(block: int, confirmations: int, finalized: int | None) -> bool:
    if finalized is not None and block <= finalized:
        return True
    return confirmations >= settings.FINAL_CONFIRMATIONS


def _dropped(transfer: OnchainTransfer) -> bool:
    """The chain does not know the transaction (dropped from the pool, or reorganised out):
    take back a confirmation that was booked, and send the same bytes again."""
    if transfer.status == Status.CONFIRMED:
        ledger_post(
            kind=LedgerTransaction.Kind.TRANSFER_REVERSED,
            moves=[Move(Ref(Account.WALLET), in_flight_of(transfer), int(transfer.amount_units))],
            memo=f"{transfer.tx_hash} reorganised out; sent again",
            invoice=transfer.invoice,
            payment=transfer.payment,
            transfer=transfer,
        )
        transfer.status = Status.SENT
        transfer.confirmed_at = None
        transfer.save(update_fields=["status", "confirmed_at"])
    transaction.on_commit(lambda: _broadcast(transfer))
    return True


def _failed_on_chain(transfer: OnchainTransfer) -> bool:
    """The transaction was mined but reverted (the wallet lacked the tokens): nothing moved,
    and its nonce is spent. Sign it again with a new nonce, later, and tell operators."""
    alert_raise(
        kind=OperatorAlert.Kind.OTHER,
        key=f"transfer:{transfer.pk}",
        message=(
            f"{transfer.get_kind_display()} {transfer.pk} of "
            f"{format_token(transfer.amount_units, transfer.token_decimals)} USDC reverted on "
            f"chain ({transfer.tx_hash}); it will be signed again. Check the wallet's balance."
        ),
    )
    transfer.last_error = f"Reverted on chain in {transfer.tx_hash}; signing again."
    transfer.status = Status.QUEUED
    transfer.nonce = None
    transfer.raw_tx = transfer.tx_hash = ""
    transfer.next_attempt_at = timezone.now() + timedelta(seconds=RETRY_MAX_SECONDS)
    transfer.save()
    return True
