"""Shared fixtures: a real anvil chain with TestUSDC, the Anthropic stub, a real Celery worker."""

import os

os.environ.setdefault("DEBUG", "true")

import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from django.conf import settings
from web3 import HTTPProvider, Web3

from payments import devchain
from tests.anthropic_stub import AnthropicStub

ROOT = Path(__file__).resolve().parent.parent
DEPLOYER = devchain.ANVIL_ACCOUNTS[0][0]
RECIPIENT = devchain.ANVIL_ACCOUNTS[9][0]
BUYERS = devchain.ANVIL_ACCOUNTS[1:5]
FUNDING_UNITS = 1_000_000 * 10**6


@dataclass
class Chain:
    url: str
    w3: Web3
    token: str
    lookalike: str  # a second TestUSDC: same name, same event, another address
    batch_sender: str
    odd_transfer: str  # emits a 4-topic "Transfer"
    recipient: str

    def transfer(self, amount_units: int, *, buyer: int = 0, to: str | None = None, token=None):
        """Send TestUSDC from a funded buyer; return the tx hash."""
        return devchain.transfer(
            self.w3, token or self.token, to or self.recipient, int(amount_units), BUYERS[buyer][1]
        )

    def mine(self, blocks: int = 1) -> None:
        devchain.mine(self.w3, blocks)


@pytest.fixture(scope="session")
def chain():
    """Start anvil on a free port, deploy the contracts, fund buyers, point Vendo at it."""
    anvil = devchain.start_anvil(port=devchain.free_port())
    try:
        devchain.wait_for_rpc(anvil.url, proc=anvil)
        w3 = Web3(HTTPProvider(anvil.url))
        token = devchain.deploy(w3, "TestUSDC", sender=DEPLOYER)
        lookalike = devchain.deploy(w3, "TestUSDC", sender=DEPLOYER)
        batch_sender = devchain.deploy(w3, "BatchSender", sender=DEPLOYER)
        odd_transfer = devchain.deploy(w3, "OddTransfer", sender=DEPLOYER)
        for address, _ in BUYERS:
            devchain.mint(w3, token, address, FUNDING_UNITS, DEPLOYER)
            devchain.mint(w3, lookalike, address, FUNDING_UNITS, DEPLOYER)
        overrides = {
            "CHAIN_RPC_URL": anvil.url,
            "CHAIN_ID": devchain.CHAIN_ID,
            "PAYMENT_TOKEN_ADDRESS": token,
            "PAYMENT_RECIPIENT": RECIPIENT,
        }
        for name, value in overrides.items():
            setattr(settings, name, value)
            os.environ[name] = str(value)
        yield Chain(anvil.url, w3, token, lookalike, batch_sender, odd_transfer, RECIPIENT)
    finally:
        anvil.stop()


@pytest.fixture(autouse=True)
def _chain_for_every_test(chain, settings):
    """Every test sees the session chain and the default confirmation count."""
    settings.REQUIRED_CONFIRMATIONS = 1
    # The default hasher is slow on purpose; tests make many users.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    return chain


@pytest.fixture(autouse=True)
def _fresh_rate_limits(settings):
    """Each test counts its requests from zero: its own key prefix in the shared cache."""
    settings.RATELIMIT_CACHE_PREFIX = f"rl:{uuid.uuid4().hex}:"


@pytest.fixture
def fresh_wallet(chain, settings):
    """A platform wallet of its own for one test, holding gas and no token yet, so the chain
    balance the books are reconciled against is this test's alone (the chain outlives tests)."""
    from eth_account import Account
    from web3.types import RPCEndpoint

    account = Account.create()
    chain.w3.manager.request_blocking(
        RPCEndpoint("anvil_setBalance"), [account.address, hex(10**20)]
    )
    settings.PAYMENT_RECIPIENT = account.address
    settings.PLATFORM_SIGNER_KEY = account.key.to_0x_hex()
    kept, chain.recipient = chain.recipient, account.address
    yield account
    chain.recipient = kept


@pytest.fixture(scope="session")
def anthropic_stub():
    with AnthropicStub(chunks=6) as stub:
        yield stub


@pytest.fixture
def stub(anthropic_stub, settings):
    """The Anthropic stub, reset, with Vendo's anthropic backend pointed at it."""
    anthropic_stub.reset()
    settings.AI_BACKEND = "anthropic"
    settings.ANTHROPIC_API_KEY = "test-key"
    settings.ANTHROPIC_BASE_URL = anthropic_stub.base_url
    # As in the worker: each model error reaches the task, which retries it.
    settings.ANTHROPIC_MAX_RETRIES = 0
    from jobs.ai import _backend

    _backend.cache_clear()
    yield anthropic_stub
    _backend.cache_clear()


# ------------------------------------------------------------------------------
# A real Celery worker on the test database
# ------------------------------------------------------------------------------

WORKER_ENV = {
    "AI_BACKEND": "anthropic",
    "ANTHROPIC_API_KEY": "test-key",
    "GENERATION_MAX_RETRIES": "3",
    "GENERATION_RETRY_BASE": "0.05",
    "GENERATION_MAX_DELIVERIES": "4",
    "JOB_LEASE_SECONDS": "3",
    "PARTIAL_SAVE_INTERVAL": "0.2",
    "GENERATION_TIMEOUT": "20",
    "ANTHROPIC_MAX_RETRIES": "0",
    # A failed job's refund waits longer than a test, so a replay can take it back.
    "FAILED_REFUND_DELAY_SECONDS": "600",
}


def database_url() -> str:
    """Return a URL for the test database, for processes outside pytest."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    user = db["USER"] or "postgres"
    return f"postgres://{user}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class Worker:
    """A `celery worker` subprocess; start(), kill() and restart() it at will."""

    def __init__(self, env: dict, log: Path) -> None:
        self.env, self.log = env, log
        self.proc: subprocess.Popen | None = None

    def start(self) -> "Worker":
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "celery", "-A", "config", "worker",
                "-Q", "generation,payments,reaper", "--pool", "threads", "--concurrency", "8",
                "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        return self

    def kill(self) -> None:
        """SIGKILL: no cleanup, no ack, as when a machine dies."""
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.kill()
        self.start()


@pytest.fixture(scope="session")
def celery_worker_process(
    django_db_setup, django_db_blocker, chain, anthropic_stub, tmp_path_factory
):
    """A real worker process on the test database, the broker and the Anthropic stub."""
    from config.celery import app

    with django_db_blocker.unblock():
        url = database_url()
    with app.connection_for_write() as connection:
        for queue in ("generation", "payments", "reaper"):
            connection.default_channel.queue_purge(queue)
    env = {**os.environ, **WORKER_ENV, "DATABASE_URL": url}
    env["ANTHROPIC_BASE_URL"] = anthropic_stub.base_url
    log = tmp_path_factory.mktemp("worker") / "worker.log"
    worker = Worker(env, log).start()
    yield worker
    worker.stop()


@pytest.fixture
def worker(celery_worker_process, stub, settings):
    """The running worker, with this process's settings matching the worker's."""
    for name, value in WORKER_ENV.items():
        current = getattr(settings, name)
        setattr(settings, name, type(current)(value) if not isinstance(current, str) else value)
    if celery_worker_process.proc.poll() is not None:
        celery_worker_process.start()
    return celery_worker_process


def wait_for(predicate, *, timeout: float = 30.0, interval: float = 0.1, what: str = "condition"):
    """Poll until predicate() is truthy; fail the test after `timeout` (a wait, not a timing)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    pytest.fail(f"Timed out waiting for {what}")


# ------------------------------------------------------------------------------
# Paying on the test chain
# ------------------------------------------------------------------------------


def submit(job, tx_hash: str, signature: str = ""):
    """Submit a transaction hash for the job's invoice, as the pay form does."""
    from payments.services.submissions import payment_submit

    job.refresh_from_db()
    return payment_submit(invoice=job.invoice, tx_hash=tx_hash, signature=signature)


def sign_claim(private_key: str, tx_hash: str, job) -> str:
    """The sender's EIP-191 signature claiming `tx_hash` for `job`."""
    from eth_account import Account
    from eth_account.messages import encode_defunct

    text = f"Vendo: transaction {tx_hash.lower()} pays job {job.public_id}"
    return Account.sign_message(encode_defunct(text=text), private_key).signature.to_0x_hex()


def pay(job, chain, *, buyer: int = 0, amount_units: int | None = None):
    """Pay the job's invoice on chain (its amount due by default) and submit the hash."""
    job.refresh_from_db()
    amount = job.invoice.due_units if amount_units is None else amount_units
    submission = submit(job, chain.transfer(amount, buyer=buyer))
    job.refresh_from_db()
    return submission


def paid(job):
    """Pay the job's invoice on the test chain (every test has one) and return the job."""
    from payments import chain as vendo_chain

    job.refresh_from_db()
    invoice = job.invoice
    tx = devchain.transfer(
        vendo_chain.web3(), invoice.token_address, invoice.recipient, invoice.due_units,
        BUYERS[0][1],
    )  # fmt: skip
    submit(job, tx)
    job.refresh_from_db()
    return job


def reload(job):
    job.refresh_from_db()
    job.invoice.refresh_from_db()
    return job


def complete(job, chain=None, *, text: str = "Done."):
    """Pay the job on chain (unless paid) and record its result, as the worker would."""
    from jobs.generation import _complete, job_claim
    from jobs.models import Job
    from jobs.output import Output
    from jobs.services import job_transition

    job.refresh_from_db()
    if chain is not None and not job.invoice.is_paid:
        if job.status == Job.Status.PENDING:
            # Marked paid first, so paying queues nothing: in a test that commits, the
            # session's worker would otherwise race this helper for the job.
            job_transition(job=job, to=Job.Status.PAID)
        pay(job, chain)
    claimed, token = job_claim(job_id=job.pk)
    _complete(claimed, token, Output(text=text, data=None), 10, 5)
    return reload(job)


def send_transfers(limit: int = 20) -> None:
    """Sign, broadcast and confirm every outgoing transfer that is due, as beat would."""
    from payments.models import OnchainTransfer
    from payments.services.transfers import transfers_advance

    OnchainTransfer.objects.filter(status__in=OnchainTransfer.OPEN_STATUSES).update(
        next_attempt_at=None
    )
    for _ in range(limit):
        transfers_advance()
        open_ = OnchainTransfer.objects.filter(status__in=OnchainTransfer.OPEN_STATUSES)
        if not open_.exists():
            return
        open_.update(next_attempt_at=None)  # due again at once, as if beat's interval passed
    pytest.fail("Transfers did not settle")


def token_balance(chain, address: str) -> int:
    """The token balance of `address` read from the chain, not from the database."""
    from payments import chain as vendo_chain

    return vendo_chain.token_balance(address)


def log_in(client, user) -> None:
    """Sign `user` in on the test client, as stored: UserFactory sets the password on the
    instance after saving it and does not save again, so the instance's session hash would not
    match the database's."""
    client.force_login(type(user)._default_manager.get(pk=user.pk))


@pytest.fixture
def operator(client):
    """An operator, signed in on the test client."""
    from tests.factories import OperatorFactory

    user = OperatorFactory()
    log_in(client, user)
    return user


@pytest.fixture
def provider(client):
    """A provider, signed in on the test client."""
    from tests.factories import ProviderFactory

    user = ProviderFactory()
    log_in(client, user)
    return user
